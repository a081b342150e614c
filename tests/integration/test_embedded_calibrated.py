"""Calibrating built-in methods on the real embedded model (small calibration set, for CI time).

The full-size comparison (8,192 tokens, 32 x 512 calibration, and the llm-compressor rows) is
bench/algorithms.py, recorded in BENCHMARKS.md.
"""
import json

import pytest

from qcompare.core.registry import parse_method_arg
from qcompare.core.specs import CalibSpec, CorpusSpec, EvalSpec, ModelSpec
from qcompare.jobs import submit as submitting
from qcompare.jobs import worker

pytestmark = pytest.mark.slow

METHODS = {
    "rtn": "rtn:bits=4,granularity=group,group_size=128",
    "rtn-asym": "rtn:bits=4,granularity=group,group_size=128,symmetric=false",
    "gptq": "gptq:bits=4,group_size=128",
    "awq": "awq:bits=4,group_size=128,search_tokens=512",
    "smoothquant": "smoothquant:alpha=0.5",
    "w8a8": "w8a8",
    "qat": "qat:bits=4,group_size=128,steps=2,seq_len=128",
    "spqr": "spqr:bits=3,group_size=16",
}


@pytest.fixture(scope="module")
def rows(tmp_path_factory):
    state_dir = tmp_path_factory.mktemp("embedded-calibrated")
    ev = EvalSpec(tokens=1024, window=512, speed_repeats=0)
    calib = CalibSpec(samples=8, seq_len=256)
    specs = submitting.build_specs(ModelSpec(), [parse_method_arg(m) for m in METHODS.values()],
                                   CorpusSpec(), ev, calib)
    return {name: worker.run(s, state_dir) for name, s in zip(METHODS, specs)}


def test_gptq_and_awq_beat_rtn_of_the_same_format(rows):
    assert rows["gptq"]["ppl"] < rows["rtn"]["ppl"] and rows["gptq"]["kld_mean"] < rows["rtn"]["kld_mean"]
    assert rows["awq"]["ppl"] < rows["rtn-asym"]["ppl"]
    assert rows["awq"]["kld_mean"] < rows["rtn-asym"]["kld_mean"]
    assert rows["gptq"]["weights_mib"] == pytest.approx(rows["rtn"]["weights_mib"])


def test_int8_methods_stay_close_and_smoothing_helps_w8a8(rows):
    assert rows["smoothquant"]["kld_mean"] < rows["w8a8"]["kld_mean"] < rows["rtn"]["kld_mean"]
    assert rows["smoothquant"]["kld_mean"] >= 0


def test_per_layer_diagnostics_cover_every_linear(rows):
    layers = json.loads(rows["gptq"]["layers_json"])
    assert len(layers) == 30 * 7
    assert all(0 <= l["output_rel_err"] < 1 for l in layers)
    awq_layers = json.loads(rows["awq"]["layers_json"])
    assert any(l["alpha"] > 0 for l in awq_layers)
    assert all(l["scale_loss"] <= l["rtn_loss"] + 1e-12 for l in awq_layers)


def test_qat_reports_ptq_and_qat_losses(rows):
    notes = rows["qat"]["notes"]
    assert "PTQ (RTN)" in notes and "-> QAT" in notes
    layers = json.loads(rows["qat"]["layers_json"])
    assert any(l["codes_changed"] > 0 for l in layers)


def test_spqr_keeps_outliers_and_stays_close_to_the_4bit_rows_at_3_bits(rows):
    spqr = rows["spqr"]
    layers = json.loads(spqr["layers_json"])
    assert all(l["outliers_kept"] > 0 for l in layers)
    assert spqr["weights_mib"] < rows["rtn"]["weights_mib"]
    assert spqr["ppl"] < rows["rtn"]["ppl"]          # 3-bit SpQR-style beats 4-bit g128 RTN


def test_the_memory_calculator_gives_every_rows_weights(rows):
    """The calculator (each method's stored_bits over the shape read from the GGUF header)
    against the weights these real runs reported: the issue's bar is 2 %; they agree exactly."""
    import json

    from qcompare.core import registry
    from qcompare.decide import sizing
    from qcompare.decide.shapes import shape_of_gguf
    from qcompare.sources.models import embedded_gguf

    shape = shape_of_gguf(embedded_gguf())
    for name, row in rows.items():
        cls = registry.get(row["method"])
        calc = sizing.estimate(cls, json.loads(row["options_json"]), shape, sizing.Setting())
        assert calc.weights / sizing.MIB == pytest.approx(row["weights_mib"], rel=1e-9), name
