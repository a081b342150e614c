"""Every calibrating built-in method, end to end through the worker on the tiny model."""
import json
import math

import numpy as np
import pytest

from qcompare.core.registry import parse_method_arg
from qcompare.core.specs import CalibSpec, CorpusSpec
from qcompare.jobs import submit as submitting
from qcompare.jobs import worker
from qcompare.sources.models import model_from_arg

CALIB = CalibSpec(samples=8, seq_len=64)


def _run(tiny_model_dir, state_dir, ev, method):
    (spec,) = submitting.build_specs(model_from_arg(str(tiny_model_dir)), [parse_method_arg(method)],
                                     CorpusSpec(), ev, CALIB)
    assert spec.calib is not None and spec.calib.corpus.content_sha256
    return worker.run(spec, state_dir)


@pytest.mark.parametrize("method,kernel_bits", [
    ("gptq:bits=4,group_size=32", 4), ("gptq:bits=3,group_size=0,act_order=true", 3),
    ("awq:bits=4,group_size=32", 4), ("spqr:bits=3,group_size=16", 3),
    ("w8a8", 8), ("w8a8:activations=static,act_calibrator=entropy,weight_calibrator=mse", 8),
    ("smoothquant:alpha_search=true,activations=static", 8),
    ("qat:bits=4,group_size=32,steps=3,seq_len=32", 4),
])
def test_method_runs_and_reports_per_layer_diagnostics(tiny_model_dir, state_dir, tiny_eval, method, kernel_bits):
    row = _run(tiny_model_dir, state_dir, tiny_eval, method)
    assert math.isfinite(row["ppl"]) and row["kld_mean"] >= 0 and row["kernel"] == "simulated"
    assert "8x64 tokens" in row["calibration"]
    layers = json.loads(row["layers_json"])
    assert len(layers) == 2 * 7                          # every Linear of both decoder layers
    assert all(l["weight_rel_err"] >= 0 for l in layers)
    assert all(kernel_bits <= l["bits_per_weight"] < 2 * kernel_bits + 40 for l in layers)
    if not method.startswith("qat"):
        assert all(0 <= l["output_rel_err"] < 1 for l in layers)
        assert all("act_outlier_channels" in l for l in layers)


def test_calibration_text_never_overlaps_the_evaluated_tokens(tiny_model_dir, tiny_eval):
    from qcompare.metrics import quality as q
    from qcompare.sources import calibration, corpora, models

    corpus = corpora.resolve(CorpusSpec())
    tok = models.load_tokenizer(tiny_model_dir, model_from_arg(str(tiny_model_dir)))
    text = corpora.load_checked(corpus)
    ids, _ = q.tokenize_stream(tok, text, 4096)
    cal = calibration.draw(tok, CalibSpec(corpus=corpus, samples=64, seq_len=128), corpus, ids)
    assert cal.ids.shape == (64, 128)
    grams = calibration.ngrams(ids)
    assert not any(calibration.overlaps(row, grams) for row in cal.ids)
    # also at the text level: no calibration sequence's text occurs in the evaluated text
    eval_text = tok.decode(ids.tolist())
    assert not any(tok.decode(row.tolist()) in eval_text for row in cal.ids)
    # a repeated passage is caught: feed the evaluated tokens back as "another corpus"
    assert calibration.overlaps(ids[100:228], grams)
    again = calibration.draw(tok, CalibSpec(corpus=corpus, samples=64, seq_len=128, seed=1), corpus, ids)
    assert not np.array_equal(again.ids, cal.ids)


def test_too_little_calibration_text_is_a_clear_error(tiny_model_dir, state_dir, tiny_eval):
    from dataclasses import replace

    from qcompare.core.errors import UserError

    big = replace(CALIB, samples=100_000)
    (spec,) = submitting.build_specs(model_from_arg(str(tiny_model_dir)), [parse_method_arg("gptq")],
                                     CorpusSpec(), tiny_eval, big)
    with pytest.raises(UserError, match="lower the calibration samples"):
        worker.run(spec, state_dir)


def test_calibration_settings_only_key_methods_that_calibrate(tiny_model_dir, tiny_eval):
    from dataclasses import replace

    args = (model_from_arg(str(tiny_model_dir)), [parse_method_arg("rtn"), parse_method_arg("gptq")],
            CorpusSpec(), tiny_eval)
    rtn_a, gptq_a = submitting.build_specs(*args, CALIB)
    rtn_b, gptq_b = submitting.build_specs(*args, replace(CALIB, seed=7))
    assert rtn_a.calib is None and rtn_a.key() == rtn_b.key()
    assert gptq_a.key() != gptq_b.key()
    from qcompare.core.specs import RunSpec
    assert RunSpec.from_json(gptq_a.to_json()) == gptq_a


def test_a_calibration_draw_is_cached_by_what_it_depends_on(tiny_model_dir, state_dir, monkeypatch):
    from qcompare.metrics import quality as q
    from qcompare.sources import calibration, corpora, models

    corpus = corpora.resolve(CorpusSpec())
    spec = models.resolve(model_from_arg(str(tiny_model_dir)))
    tok = models.load_tokenizer(tiny_model_dir, spec)
    ids, _ = q.tokenize_stream(tok, corpora.load_checked(corpus), 512)
    made = []
    real = calibration.draw
    monkeypatch.setattr(calibration, "draw", lambda *a, **kw: made.append(1) or real(*a, **kw))
    cs = CalibSpec(corpus=corpus, samples=4, seq_len=64)
    first, hit1 = calibration.cached_draw(state_dir, tok, cs, corpus, ids, spec.fingerprint)
    second, hit2 = calibration.cached_draw(state_dir, tok, cs, corpus, ids, spec.fingerprint)
    assert (hit1, hit2) == (False, True) and len(made) == 1
    assert np.array_equal(first.ids, second.ids) and first.label == second.label
    # another seed, other evaluated tokens or another model: another draw
    calibration.cached_draw(state_dir, tok, CalibSpec(corpus=corpus, samples=4, seq_len=64, seed=1),
                            corpus, ids, spec.fingerprint)
    calibration.cached_draw(state_dir, tok, cs, corpus, ids[:256], spec.fingerprint)
    calibration.cached_draw(state_dir, tok, cs, corpus, ids, "another-model")
    assert len(made) == 4
    # no fingerprint, no safe key: drawn afresh every time
    calibration.cached_draw(state_dir, tok, cs, corpus, ids, "")
    calibration.cached_draw(state_dir, tok, cs, corpus, ids, "")
    assert len(made) == 6
