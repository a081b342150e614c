"""Demo packs: written from one state folder, loaded into an empty one, the same rows, per-token
files, baseline side files, noise floor and charts come out; loading twice changes nothing; a
pack with a broken row or a path outside the state folder writes nothing."""
import io
import json
import zipfile

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from qcompare.charts import tradeoff as charts
from qcompare.core.errors import UserError
from qcompare.core.registry import parse_method_arg
from qcompare.core.specs import CorpusSpec
from qcompare.jobs import noise_job, worker
from qcompare.jobs.submit import build_specs
from qcompare.sources import models
from qcompare.store import pack
from qcompare.store.reference import ReferenceStore
from qcompare.store.results import ResultStore


@pytest.fixture
def measured(tmp_path, tiny_model_dir, tiny_eval):
    state = tmp_path / "night-before"
    specs = build_specs(models.model_from_arg(str(tiny_model_dir)),
                        [parse_method_arg(m) for m in ("fp32", "rtn:bits=4")], CorpusSpec(), tiny_eval)
    for s in specs:
        worker.run(s, state)
    worker.run_noise_floor(noise_job.to_json(specs[0]), state)
    return state, specs


def _files(state, rel):
    return {p.relative_to(state).as_posix(): p.read_bytes()
            for p in (state / rel).rglob("*") if p.is_file()}


def test_a_pack_round_trips_into_an_empty_state_folder(measured, tmp_path):
    state, specs = measured
    keys = [s.key() for s in specs]
    out = tmp_path / "demo.qcpack"
    manifest = pack.write(state, out, keys, who="presenter")
    assert manifest["rows"] == keys and manifest["who"] == "presenter"
    assert manifest["baselines"] == [specs[0].reference_key()]
    names = zipfile.ZipFile(out).namelist()
    assert not any(n.endswith(("logprobs.npy", "meta.json")) for n in names)    # small by default
    assert any(n.endswith("noise.json") for n in names) and any(n.endswith("pieces.json") for n in names)

    empty = tmp_path / "talk"
    got = pack.load(empty, out)
    assert (got.rows_added, got.rows_kept) == (2, 0)
    a, b = ResultStore(state).load().frame, ResultStore(empty).load().frame
    assert a.sort_values("key").reset_index(drop=True).equals(b.sort_values("key").reset_index(drop=True))
    assert _files(state, "tokens") == _files(empty, "tokens")
    rk = specs[0].reference_key()
    for name in ("pieces.json", "noise.json", "top.npy", "nll.npy"):
        assert (state / "baselines" / rk / name).read_bytes() == (empty / "baselines" / rk / name).read_bytes()
    assert charts.tradeoff(a, "weights_mib", "kld_mean").to_json() == \
        charts.tradeoff(b, "weights_mib", "kld_mean").to_json()
    assert not ReferenceStore(empty).exists(rk)           # no log-probabilities: not a baseline here
    assert pack.provenance(empty)[keys[1]]["who"] == "presenter"

    # loading again: nothing written, nothing changed
    before = {p: p.stat().st_mtime_ns for p in empty.rglob("*") if p.is_file() and "packs" not in p.parts}
    again = pack.load(empty, out)
    assert (again.rows_added, again.rows_kept, again.added) == (0, 2, [])
    assert before == {p: p.stat().st_mtime_ns for p in before}


def test_with_log_probabilities_the_baseline_is_complete_where_it_is_loaded(measured, tmp_path):
    state, specs = measured
    out = tmp_path / "full.qcpack"
    pack.write(state, out, [specs[1].key()], logprobs=True)
    there = tmp_path / "there"
    pack.load(there, io.BytesIO(out.read_bytes()))                  # an upload: a file object
    rk = specs[0].reference_key()
    assert ReferenceStore(there).exists(rk)
    assert (there / "baselines" / rk / "logprobs.npy").read_bytes() == \
        (state / "baselines" / rk / "logprobs.npy").read_bytes()


def _pack_with(tmp_path, name, data: bytes, manifest=None):
    out = tmp_path / "bad.qcpack"
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("manifest.json", json.dumps(manifest or {"format": "qcpack", "version": 1}))
        z.writestr(name, data)
    return out


def test_a_broken_pack_writes_nothing(measured, tmp_path):
    state, specs = measured
    row = ResultStore(state).get(specs[1].key())
    row["ppl"] = float("nan")                                        # a number that could be wrong
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist([row]), buf)
    target = tmp_path / "target"
    with pytest.raises(UserError, match="ppl=nan"):
        pack.load(target, _pack_with(tmp_path, f"results/{specs[1].key()}.parquet", buf.getvalue()))
    with pytest.raises(UserError, match="not the one row"):
        pack.load(target, _pack_with(tmp_path, "results/another-key.parquet", buf.getvalue()))
    with pytest.raises(UserError, match="outside results/"):
        pack.load(target, _pack_with(tmp_path, "../escape.txt", b"x"))
    with pytest.raises(UserError, match="not a qcompare pack"):
        pack.load(target, _pack_with(tmp_path, "results/x.parquet", b"x", {"format": "zip"}))
    not_zip = tmp_path / "n.qcpack"
    not_zip.write_text("hello")
    with pytest.raises(UserError, match="not a qcompare pack"):
        pack.load(target, not_zip)
    assert not target.exists() or not any(target.rglob("*.parquet"))


def test_the_cli_writes_and_loads_a_pack(cli, state_dir, tiny_model_dir, tmp_path):
    cli("sweep", "--model", str(tiny_model_dir), "--method", "fp32", "--method", "rtn:bits=8",
        "--tokens", "256", "--window", "64", "--speed-repeats", "0", "--quiet")
    out = tmp_path / "demo.qcpack"
    said = cli("pack", "--output", str(out), "--who", "me").stdout
    assert "2 row(s), 1 baseline(s)" in said and out.is_file()
    other = tmp_path / "other-home"
    import subprocess
    import sys

    loaded = subprocess.run([sys.executable, "-m", "qcompare", "--home", str(other), "pack", "--load",
                             str(out)], capture_output=True, text=True, timeout=120)
    assert loaded.returncode == 0, loaded.stderr
    assert "2 row(s) added, 0 already here" in loaded.stdout and "by me" in loaded.stdout
    refused = subprocess.run([sys.executable, "-m", "qcompare", "--home", str(other), "pack", "--load",
                              str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert refused.returncode != 0 and "not a qcompare pack" in refused.stderr
