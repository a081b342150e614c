import math

import pytest

from qcompare.core.errors import UserError
from qcompare.core.registry import parse_method_arg
from qcompare.core.specs import CorpusSpec
from qcompare.jobs import submit as submitting
from qcompare.jobs import worker
from qcompare.jobs.runner import run_inline
from qcompare.jobs.store import JobStore
from qcompare.sources.models import model_from_arg
from qcompare.store.results import ResultStore, check_finite


def _specs(model_dir, ev, *methods):
    return submitting.build_specs(model_from_arg(str(model_dir)),
                                  [parse_method_arg(m) for m in methods], CorpusSpec(), ev)


def test_worker_rows_are_complete_and_fp32_against_itself_has_zero_kld(tiny_model_dir, state_dir, tiny_eval):
    fp32, rtn2 = _specs(tiny_model_dir, tiny_eval, "fp32", "rtn:bits=2,granularity=tensor")
    row = worker.run(fp32, state_dir)
    assert math.isfinite(row["ppl"]) and row["ppl"] > 1
    assert row["kld_mean"] == 0 and row["top1_agree"] == 1 and row["delta_p_mean"] == 0
    assert row["n_scored"] == (256 // 64) * 63
    assert row["decode_tok_s"] > 0 and row["ttft_ms"] > 0 and row["peak_rss_mib"] > 0
    assert row["kernel"] == "real" and row["storage"] == "real"
    bad = worker.run(rtn2, state_dir)
    assert bad["kld_mean"] > 0 and bad["top1_agree"] < 1 and bad["weights_mib"] < row["weights_mib"] / 2
    assert bad["kernel"] == "simulated"
    stored = ResultStore(state_dir).load().frame
    assert set(stored["key"]) == {fp32.key(), rtn2.key()}


def test_protocols_score_the_documented_token_counts(tiny_model_dir, state_dir, tiny_eval):
    from dataclasses import replace

    ev = replace(tiny_eval, speed_repeats=0)
    (lc,) = _specs(tiny_model_dir, replace(ev, protocol="llamacpp"), "fp32")
    (st,) = _specs(tiny_model_dir, replace(ev, protocol="strided", stride=16), "fp32")
    assert worker.run(lc, state_dir)["n_scored"] == 4 * (64 - 1 - 32)
    row = worker.run(st, state_dir)
    assert row["n_scored"] == 255 and row.get("decode_tok_s") is None


def test_corpus_shorter_than_requested_tokens_is_a_clear_failure(tiny_model_dir, state_dir, tiny_eval, tmp_path):

    short = tmp_path / "short.txt"
    short.write_text("only a few words here. " * 5)         # 115 bytes: refused at submission
    with pytest.raises(UserError, match="115 bytes, so fewer than the 256 tokens"):
        submitting.build_specs(model_from_arg(str(tiny_model_dir)), [parse_method_arg("fp32")],
                               CorpusSpec(source="file", ref=str(short)), tiny_eval)
    words = tmp_path / "words.txt"
    words.write_text("the " * 75)                            # 300 bytes, but about 75 tokens
    (spec,) = submitting.build_specs(model_from_arg(str(tiny_model_dir)), [parse_method_arg("fp32")],
                                     CorpusSpec(source="file", ref=str(words)), tiny_eval)
    with pytest.raises(UserError, match="fewer than the 256 asked for"):
        worker.run(spec, state_dir)


def test_cuda_asked_for_where_there_is_none(tiny_model_dir, state_dir, tiny_eval):
    from dataclasses import replace

    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    (spec,) = _specs(tiny_model_dir, tiny_eval, "fp32")          # submission refuses cuda here,
    spec = replace(spec, eval=replace(spec.eval, device="cuda"))  # so build the spec by hand
    with pytest.raises(UserError, match="CUDA"):
        worker.run(spec, state_dir)


def test_submission_refuses_a_device_the_method_cannot_use(tiny_model_dir, tiny_eval):
    import os
    from dataclasses import replace

    if os.path.exists("/proc/driver/nvidia/version"):
        pytest.skip("this machine has an NVIDIA driver")
    with pytest.raises(UserError, match="needs CUDA"):
        _specs(tiny_model_dir, replace(tiny_eval, device="cuda"), "rtn")


def test_inline_runner_records_failures_as_readable_rows(tiny_model_dir, state_dir, tiny_eval):
    from dataclasses import replace

    store = JobStore.open(state_dir)
    (spec,) = _specs(tiny_model_dir, tiny_eval, "fp32")
    spec = replace(spec, eval=replace(spec.eval, device="cuda"))
    (sub,) = submitting.submit([spec], state_dir, start_runner=False)
    run_inline(store, state_dir, sub.job_id)
    job = store.get(sub.job_id)
    assert job.state == "failed" and "CUDA" in job.error and "Traceback" in job.traceback


def test_the_fp32_row_reuses_the_baseline_pass_instead_of_scoring_again(tiny_model_dir, state_dir, tiny_eval,
                                                                        monkeypatch):
    from qcompare.store.reference import ReferenceStore

    monkeypatch.setenv("QCOMPARE_NOISE_FLOOR", "0")       # its 3 passes are counted elsewhere
    calls = []
    real = worker._evaluate
    monkeypatch.setattr(worker, "_evaluate", lambda *a, **kw: calls.append(kw.keys()) or real(*a, **kw))
    model = model_from_arg(str(tiny_model_dir))
    fp32, rtn = submitting.build_specs(model, [parse_method_arg("fp32"), parse_method_arg("rtn:bits=8")],
                                       CorpusSpec(), tiny_eval)
    row = worker.run(fp32, state_dir)
    assert len(calls) == 1                                    # the baseline pass only
    meta = ReferenceStore(state_dir).read(fp32.reference_key()).meta
    assert row["ppl"] == meta["quality"]["ppl"] and row["n_scored"] == meta["quality"]["n_scored"]
    assert row["kld_mean"] == 0.0 and row["top1_agree"] == 1.0 and row["eval_s"] == meta["eval_s"]
    assert "from the baseline pass" in row["notes"] and row["decode_tok_s"] > 0
    other = worker.run(rtn, state_dir)                        # any other method is scored
    assert len(calls) == 2 and other["kld_mean"] > 0


def test_a_sweep_shares_its_baseline_and_calibration_draw(tiny_model_dir, state_dir, tiny_eval,
                                                          monkeypatch):
    """The second calibrating method of a sweep reuses the cached baseline pass and the
    cached calibration draw: neither is computed again."""
    import json

    from qcompare.core.specs import CalibSpec
    from qcompare.sources import calibration
    from qcompare.store.tokenscores import TokenScores

    monkeypatch.setenv("QCOMPARE_NOISE_FLOOR", "0")       # its 3 passes are counted elsewhere
    passes, draws = [], []
    real_eval, real_draw = worker._evaluate, calibration.draw
    monkeypatch.setattr(worker, "_evaluate", lambda *a, **kw: passes.append("writer" in kw) or real_eval(*a, **kw))
    monkeypatch.setattr(calibration, "draw", lambda *a, **kw: draws.append(1) or real_draw(*a, **kw))
    model = model_from_arg(str(tiny_model_dir))
    gptq, awq = submitting.build_specs(model, [parse_method_arg("gptq:group_size=32"),
                                               parse_method_arg("awq:group_size=32,n_grid=2")],
                                       CorpusSpec(), tiny_eval, CalibSpec(samples=2, seq_len=32))
    first = worker.run(gptq, state_dir)
    assert passes == [True, False] and draws == [1]            # baseline pass, then gptq scored
    second = worker.run(awq, state_dir)
    assert passes == [True, False, False] and draws == [1]     # awq: scored only
    assert first["calibration"] == second["calibration"]
    phases = json.loads(second["phases_json"])
    assert {"load", "reference", "calibration", "build", "evaluation", "kld", "speed", "write"} <= set(phases)
    assert 0 < phases["kld"] < phases["evaluation"]
    assert phases["reference"] < json.loads(first["phases_json"])["reference"] + 1
    # per-token scores beside each row, paired on the same tokens
    a, b = TokenScores(state_dir).read(gptq.key()), TokenScores(state_dir).read(awq.key())
    assert len(a["kl"]) == len(b["kl"]) == first["n_scored"]
    assert a["kl"].mean() == pytest.approx(first["kld_mean"], rel=1e-5)
    assert second["effort"] == "custom"


def test_rows_name_their_effort_and_carry_roofline_columns(tiny_model_dir, state_dir):
    from dataclasses import replace

    from qcompare.core import effort

    ev = replace(effort.eval_spec("quick"), tokens=256, window=64)   # tiny model: tiny protocol
    (spec,) = _specs(tiny_model_dir, ev, "rtn:bits=8")
    row = worker.run(spec, state_dir)
    assert row["effort"] == "custom"
    (quick,) = _specs(tiny_model_dir, replace(effort.eval_spec("quick"), window=64), "bf16")
    row = worker.run(quick, state_dir)
    assert row["effort"] == "quick" and 2 <= row["speed_runs"] <= 3
    assert 0 < row["decode_roofline_pct"] and 0 < row["prefill_roofline_pct"]
    assert row["mem_bandwidth_gbs"] > 0 and row["decode_read_mib"] > 0


def test_a_run_with_non_finite_numbers_is_a_failed_job_and_stores_no_row(tiny_model_dir, state_dir,
                                                                          tiny_eval, monkeypatch):
    """A method whose weights become NaN gives NaN perplexity and divergence: the job fails with
    the reason, and no row is stored to be ranked or charted."""
    import torch

    from qcompare.methods.rtn import RTN

    monkeypatch.setattr(RTN, "quantize_weight", lambda self, w: torch.full_like(w, float("nan")))
    (spec,) = _specs(tiny_model_dir, tiny_eval, "rtn:bits=4,group_size=32")
    store = JobStore.open(state_dir)
    job_id, _ = store.submit(spec.key(), "nan", spec.to_json())
    run_inline(store, state_dir, job_id)
    job = store.get(job_id)
    assert job.state == "failed" and "not finite" in job.error and "ppl=nan" in job.error
    assert not ResultStore(state_dir).has(spec.key())
    with pytest.raises(UserError, match="no row was stored"):
        check_finite({"ppl": 12.0, "kld_mean": float("inf")})
    check_finite({"ppl": 12.0, "kld_mean": 0.1, "decode_tok_s": None})     # no speed: fine
