"""The noise floor: its own job, queued once per baseline behind every other job, fp32 against
itself exactly 0, the bf16 baseline inside the band, and a CPU's simulated low-precision compute
that leaves the model as it was."""
import pandas as pd
import torch

from qcompare.charts import tradeoff as charts
from qcompare.core.registry import parse_method_arg
from qcompare.core.specs import CorpusSpec
from qcompare.jobs import noise_job, prepare, worker
from qcompare.jobs import submit as submitting
from qcompare.jobs.runner import run_inline
from qcompare.jobs.store import JobStore
from qcompare.sources import models
from qcompare.stats import noisefloor
from qcompare.store.reference import ReferenceStore
from qcompare.store.results import ResultStore


def _drain(state_dir) -> list[str]:
    """Run every queued job in the runner's order; returns their keys in that order."""
    store, order = JobStore.open(state_dir), []
    while (job := store.next_queued()) is not None:
        order.append(job.key)
        run_inline(store, state_dir, job.id)
    return order


def test_the_noise_floor_is_its_own_last_job_once_per_baseline(tiny_model_dir, state_dir,
                                                               tiny_eval, monkeypatch):
    monkeypatch.setenv("QCOMPARE_NOISE_FLOOR", "1")
    model = models.model_from_arg(str(tiny_model_dir))
    specs = submitting.build_specs(model, [parse_method_arg(m) for m in ("rtn:bits=3", "bf16")],
                                   CorpusSpec(), tiny_eval)
    answers = submitting.submit(specs[:1], state_dir, start_runner=False)
    assert len(answers) == 1                       # `run` waits for its own job only
    later = submitting.submit(specs[1:], state_dir, start_runner=False)   # queued after it
    rk = specs[0].reference_key()
    order = _drain(state_dir)
    assert order == [specs[0].key(), specs[1].key(), noise_job.job_key(rk)]    # last
    noise = noisefloor.read(state_dir, rk)
    assert set(noise["variants"]) == set(noisefloor.CPU_VARIANTS)
    scored = (tiny_eval.tokens // tiny_eval.window) * (tiny_eval.window - 1)
    assert (noise["tokens"], noise["of_tokens"]) == (min(scored, max(128, scored // 16)), scored)
    assert noise["kld_band"] == max(v["kld_mean"] for v in noise["variants"].values()) > 0
    assert 0 < noise["top1_band"] <= 1
    rows = ResultStore(state_dir).load().frame.set_index("method")
    # the simulated bf16 compute is within a factor 2 of the real one (measured on the embedded
    # model: 9.1e-4 against 1.12e-3), and 3-bit RTN far outside the band
    assert rows.loc["bf16", "kld_mean"] / 2 < noise["kld_band"] < 2 * rows.loc["bf16", "kld_mean"]
    assert noisefloor.versus(rows.loc["rtn", "kld_mean"], noise).endswith("x the noise floor")
    assert later[0].job_id != 0

    # once: a new submission on this baseline queues no second noise-floor job
    assert noise_job.queue_for(specs, state_dir, JobStore.open(state_dir)) == []
    # off: none is queued (the switch most tests use)
    monkeypatch.setenv("QCOMPARE_NOISE_FLOOR", "0")
    other = specs[0].__class__(model=specs[0].model, method=specs[0].method,
                               corpus=specs[0].corpus,
                               eval=__import__("dataclasses").replace(tiny_eval, tokens=192))
    assert noise_job.queue_for([other], state_dir, JobStore.open(state_dir)) == []

    # the fp32 baseline rerun against its own stored pass: exactly zero
    opened = prepare.open_spec(noise_job.baseline_spec(specs[0]), state_dir)
    ids, nbytes, windows = worker.evaluation_tokens(opened)
    again = worker.noise_floor_compute(opened, ids, nbytes, windows, opened.tokenizer.bos_token_id,
                              ReferenceStore(state_dir).read(rk),
                              variants={"fp32 again": ("float32", False, True)})
    v = again["variants"]["fp32 again"]
    assert v["kld_mean"] == 0.0 and v["top1_agree"] == 1.0


def test_simulated_low_precision_rounds_what_is_stored_and_restores_the_model(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    x = torch.arange(1, 40).unsqueeze(0) % 300
    with torch.no_grad():
        before = model(x).logits
        weights = [p.clone() for p in model.parameters()]
        with noise_job.rounded_compute(model, "float16"):
            fp16 = model(x).logits
            assert all(torch.equal(p, p.half().float()) for p in model.parameters())
        with noise_job.rounded_compute(model, "bfloat16", weights_only=True):
            bf16_weights = model(x).logits
        after = model(x).logits
    assert torch.equal(before, after)
    assert all(torch.equal(a, b) for a, b in zip(weights, model.parameters()))
    assert 0 < (fp16 - before).abs().max() < 0.05
    assert 0 < (bf16_weights - before).abs().max() < 0.5


def test_a_failing_noise_floor_job_leaves_the_rows_and_is_queued_again(tiny_model_dir, state_dir,
                                                                       tiny_eval, monkeypatch):
    monkeypatch.setenv("QCOMPARE_NOISE_FLOOR", "1")

    def broken(*a, **kw):
        raise MemoryError("no room for a second copy")

    monkeypatch.setattr(worker, "noise_floor_compute", broken)
    (spec,) = submitting.build_specs(models.model_from_arg(str(tiny_model_dir)),
                                     [parse_method_arg("rtn:bits=4")], CorpusSpec(), tiny_eval)
    submitting.submit([spec], state_dir, start_runner=False)
    _drain(state_dir)
    store = JobStore.open(state_dir)
    run_job, noise = sorted(store.list(), key=lambda j: j.id)
    assert run_job.state == "done" and noise.state == "failed" and "MemoryError" in noise.error
    assert ResultStore(state_dir).readable(spec.key())[0]
    assert noisefloor.read(state_dir, spec.reference_key()) is None
    assert noise_job.queue_for([spec], state_dir, store) != []     # the next submission retries


def test_the_band_is_drawn_on_kl_and_top1_axes_only_and_coming_is_said_before():
    rows = pd.DataFrame([{"method": m, "method_label": m, "key": m, "family": "f", "options_json": "{}",
                          "model_fingerprint": "m", "corpus_sha256": "c", "protocol": "p",
                          "tokens": 1, "window": 1, "stride": 1, "device": "cpu",
                          "weights_mib": w, "kld_mean": k, "top1_agree": t, "ppl": 10.0}
                         for m, w, k, t in (("fp32", 4.0, 0.0, 1.0), ("a", 1.0, 0.1, 0.8),
                                            ("b", 2.0, 0.01, 0.95))])
    noise = {"kld_band": 0.02, "top1_band": 0.97, "variants": {}}
    kl = charts.tradeoff(rows, "weights_mib", "kld_mean", noise=noise)
    assert any(s.type == "rect" and s.y1 == 0.02 for s in kl.layout.shapes)
    top = charts.tradeoff(rows, "weights_mib", "top1_agree", noise=noise)
    assert any(s.type == "rect" and s.y0 == 0.97 for s in top.layout.shapes)
    ppl = charts.tradeoff(rows, "weights_mib", "ppl", noise=noise)
    assert not any(s.type == "rect" for s in ppl.layout.shapes)
    # before its job has run: said on the KL axis, not drawn
    coming = charts.tradeoff(rows, "weights_mib", "kld_mean", noise_pending=True, lang="ja")
    assert not any(s.type == "rect" for s in coming.layout.shapes) and any(a.text == "ノイズフロア: 計算待ち"
                                            for a in coming.layout.annotations)
    assert not any("noise" in (a.text or "") for a in
                   charts.tradeoff(rows, "weights_mib", "ppl", noise_pending=True).layout.annotations)
