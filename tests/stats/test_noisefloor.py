"""The noise floor: computed once per baseline by the first job, fp32 against itself exactly 0,
and the bf16 baseline inside the band."""
import pandas as pd

from qcompare.charts import tradeoff as charts
from qcompare.core.registry import parse_method_arg
from qcompare.core.specs import CorpusSpec
from qcompare.jobs import prepare, worker
from qcompare.jobs.submit import build_specs
from qcompare.metrics import quality as q
from qcompare.sources import corpora, models
from qcompare.stats import noisefloor
from qcompare.store.reference import ReferenceStore


def test_noise_floor_once_per_baseline_fp32_rerun_is_zero_and_bf16_is_inside(tiny_model_dir,
                                                                             state_dir, tiny_eval,
                                                                             monkeypatch):
    monkeypatch.setenv("QCOMPARE_NOISE_FLOOR", "1")
    model = models.model_from_arg(str(tiny_model_dir))
    specs = build_specs(model, [parse_method_arg(m) for m in ("rtn:bits=3", "bf16")],
                        CorpusSpec(), tiny_eval)
    rtn = worker.run(specs[0], state_dir)
    noise = noisefloor.read(state_dir, rtn["reference_key"])
    assert set(noise["variants"]) == set(noisefloor.VARIANTS)
    assert noise["kld_band"] == max(v["kld_mean"] for v in noise["variants"].values()) > 0
    assert 0 < noise["top1_band"] <= 1
    mtime = noisefloor.path(state_dir, rtn["reference_key"]).stat().st_mtime_ns
    bf16 = worker.run(specs[1], state_dir)
    assert noisefloor.path(state_dir, rtn["reference_key"]).stat().st_mtime_ns == mtime   # once
    assert bf16["kld_mean"] <= noise["kld_band"]
    assert noisefloor.versus(bf16["kld_mean"], noise) == "inside the noise floor"
    assert noisefloor.versus(rtn["kld_mean"], noise).endswith("x the noise floor")

    # off: no noise floor is computed (the switch the tests and QCOMPARE_NOISE_FLOOR=0 use)
    monkeypatch.setenv("QCOMPARE_NOISE_FLOOR", "0")
    other = build_specs(model, [parse_method_arg("fp16")], CorpusSpec(),
                        __import__("dataclasses").replace(tiny_eval, tokens=192))[0]
    worker.run(other, state_dir)
    assert noisefloor.read(state_dir, other.reference_key()) is None

    # the fp32 baseline rerun against its own stored pass: exactly zero
    spec = specs[0]
    opened = prepare.open_spec(spec, state_dir)
    tok = opened.tokenizer
    ids, nbytes = q.tokenize_stream(tok, corpora.load_text(spec.corpus), spec.eval.tokens)
    windows = q.plan_windows(len(ids), spec.eval.window, spec.eval.protocol, spec.eval.effective_stride)
    reference = ReferenceStore(state_dir).read(spec.reference_key())
    again = worker._ensure_noise_floor(opened, ids, nbytes, windows, tok.bos_token_id,
                                       reference, lambda s, f: None,
                                       variants={"fp32 again": ("float32", False)})
    assert again["fp32 again"]["kld_mean"] == 0.0 and again["fp32 again"]["top1_agree"] == 1.0


def test_the_band_is_drawn_on_kl_and_top1_axes_only():
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


def test_a_failing_noise_floor_leaves_the_row_and_the_job_done(tiny_model_dir, state_dir, tiny_eval,
                                                               monkeypatch):
    monkeypatch.setenv("QCOMPARE_NOISE_FLOOR", "1")

    def broken(*a, **kw):
        raise MemoryError("no room for a second copy")

    monkeypatch.setattr(worker, "_ensure_noise_floor", broken)
    stages = []
    (spec,) = build_specs(models.model_from_arg(str(tiny_model_dir)), [parse_method_arg("rtn:bits=4")],
                          CorpusSpec(), tiny_eval)
    row = worker.run(spec, state_dir, report=lambda s, f: stages.append(s))
    assert row["kld_mean"] > 0 and stages[-1] == "done"
    assert any(s.startswith("noise floor not computed (MemoryError") for s in stages)
    assert noisefloor.read(state_dir, spec.reference_key()) is None
