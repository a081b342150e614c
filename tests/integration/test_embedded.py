"""The real embedded model (SmolLM2-135M-Instruct, dequantized from Q4_1) end to end."""
import math

import pytest

from qcompare.core.registry import parse_method_arg
from qcompare.core.specs import CorpusSpec, EvalSpec, ModelSpec
from qcompare.jobs import submit as submitting
from qcompare.jobs import worker
from qcompare.sources.models import converted_dir, embedded_gguf

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def rows(tmp_path_factory):
    state_dir = tmp_path_factory.mktemp("embedded-state_dir")
    ev = EvalSpec(tokens=2048, window=512, speed_repeats=1, speed_new_tokens=16)
    specs = submitting.build_specs(ModelSpec(), [parse_method_arg(m) for m in ("fp32", "rtn:bits=4")],
                                   CorpusSpec(), ev)
    return state_dir, {s.method.name: worker.run(s, state_dir) for s in specs}


def test_conversion_is_cached_as_safetensors(rows):
    state_dir, r = rows
    folder = converted_dir(state_dir, embedded_gguf(), r["fp32"]["model_fingerprint"])
    assert (folder / "model.safetensors").is_file() and (folder / "config.json").is_file()
    assert "Q4_1" in r["fp32"]["model_note"]


def test_fp32_perplexity_is_finite_and_its_kld_against_itself_is_zero(rows):
    _, r = rows
    fp32 = r["fp32"]
    assert math.isfinite(fp32["ppl"]) and 1 < fp32["ppl"] < 100
    assert fp32["kld_mean"] == 0 and fp32["top1_agree"] == 1
    assert fp32["n_scored"] == 4 * 511 and fp32["weights_mib"] == pytest.approx(134.5e6 * 4 / 2**20, rel=0.02)


def test_rtn_4bit_is_worse_than_fp32_and_smaller(rows):
    _, r = rows
    fp32, rtn = r["fp32"], r["rtn"]
    assert rtn["ppl"] > fp32["ppl"] and rtn["kld_mean"] > 0 and rtn["top1_agree"] < 1
    assert rtn["weights_mib"] < fp32["weights_mib"] / 3
    assert rtn["reference_key"] == fp32["reference_key"]
