"""The memory calculator: its arithmetic by hand, and every method's stored-size rule against
the bytes the method's real build reports, on the tiny model."""
import json
import math

import pytest

from qcompare.core import registry
from qcompare.core.shape import ModelShape
from qcompare.decide import sizing
from qcompare.decide.sizing import GB, GIB, MIB, Setting

SMALL = ModelShape("small", layers=2, hidden=8, heads=2, kv_heads=1, intermediate=16, vocab=10,
                   tied=False)


def test_tensors_and_parameter_count_of_a_small_config_by_hand():
    # per layer: q 8x8, k 4x8, v 4x8, o 8x8, gate/up 16x8, down 8x16, two norms of 8
    per_layer = 64 + 32 + 32 + 64 + 128 + 128 + 128 + 16
    assert SMALL.param_count() == 2 * per_layer + 8 + 10 * 8 + 10 * 8
    tied = ModelShape("t", 2, 8, 2, 1, 16, 10, tied=True)
    assert tied.param_count() == SMALL.param_count() - 80
    assert [t.role for t in SMALL.tensors() if t.layer == 0 and t.kind == "linear"] == [
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def test_kv_cache_activations_and_total_by_hand():
    s = Setting(device="cuda", context=100, batch=3, kv="16-bit", overhead_mib=10)
    e = sizing.estimate(registry.get("fp16"), {}, SMALL, s)
    assert e.weights == SMALL.param_count() * 2
    assert e.kv_cache == 2 * 2 * 1 * 4 * 100 * 3 * 2           # k and v, L, K, d, T, B, bytes
    assert e.activations == 3 * 100 * (4 * 8 + 3 * 16) * 2 + 3 * 10 * 4
    assert e.overhead == 10 * MIB and e.overhead_source == "given"
    assert e.total == e.weights + e.kv_cache + e.activations + e.overhead
    two = sizing.estimate(registry.get("fp16"), {}, SMALL, Setting(gpus=2, overhead_mib=10))
    assert two.per_gpu == pytest.approx((two.weights + two.kv_cache) / 2 + two.activations + 10 * MIB)


def test_measured_weights_replace_the_calculated_ones_and_say_so():
    e = sizing.estimate(registry.get("fp16"), {}, SMALL, Setting(), measured_weights_mib=1.5)
    assert e.weights == 1.5 * MIB and e.weights_source == "measured"
    assert e.overhead_source == "assumed"


def test_config_json_and_a_bare_parameter_count():
    from qcompare.decide.catalog import MODELS

    shape = ModelShape.from_config({"num_hidden_layers": 32, "hidden_size": 4096,
                                    "num_attention_heads": 32, "num_key_value_heads": 8,
                                    "intermediate_size": 14336, "vocab_size": 128256})
    assert shape.dim == 128 and not shape.tied
    with pytest.raises(ValueError, match="intermediate"):
        ModelShape.from_config({"num_hidden_layers": 2, "hidden_size": 8, "num_attention_heads": 2,
                                "vocab_size": 10})
    guess = sizing.shape_from_params(7e9, MODELS)
    assert guess.param_count() == pytest.approx(7e9, rel=0.03) and "guessed" in guess.basis


def test_published_7b_figures_against_the_calculator():
    """The source figures for a 7B Llama, with the difference and where it comes from
    (written out in sizing_notes.PUBLISHED_CHECKS, shown on the Choose page)."""
    from qcompare.decide.catalog import MODELS

    llama = MODELS["Llama-2-7B"]
    fp16 = sizing.estimate(registry.get("fp16"), {}, llama, Setting())
    assert fp16.weights / GB == pytest.approx(13.5, rel=0.01)          # the guide: 13.5 GB
    int8 = sizing.estimate(registry.get("bnb-int8"), {}, llama, Setting(gpus=2, context=1))
    # the talk: 3271 + 4055 MiB in nvidia-smi across two A10s after loading; the weights
    # alone are 6.68 GiB, the rest two CUDA contexts (assumed 400 MiB each)
    assert int8.weights / MIB == pytest.approx(6681, rel=0.005)
    assert (int8.weights + int8.overhead) / MIB == pytest.approx(3271 + 4055, rel=0.03)
    q4 = sizing.estimate(registry.get("gguf"), {"type": "Q4_K_M"}, llama, Setting())
    assert q4.weights / GB == pytest.approx(4.1, rel=0.02)              # the guide: 4.1 GB


def _tiny_shape(folder) -> ModelShape:
    return ModelShape.from_config(json.loads((folder / "config.json").read_text()), "tiny")


VARIANTS = [
    "fp32", "bf16", "fp16", "fp8", "fp8:scaling=tensor", "rtn", "rtn:bits=3,group_size=48",
    "rtn:symmetric=false,granularity=channel", "rtn:bits=8,granularity=tensor,include_lm_head=true",
    "gptq:group_size=32", "gptq:group_size=32,act_order=true", "awq:group_size=32,n_grid=2",
    "spqr:group_size=16", "spqr:bits=4,stat_bits=0,symmetric=true",
    "qat:group_size=32,steps=1,seq_len=32", "w8a8", "smoothquant",
    "bnb-int8", "bnb-nf4", "bnb-nf4:double_quant=true", "bnb-fp4:compute_dtype=float32",
    "torchao-int8wo", "torchao-int8dq:compute_dtype=bfloat16", "torchao-int4wo", "torchao-int4wo:compute_dtype=bfloat16,symmetric=true",
    "torch-dynamic-int8", "torch-dynamic-int8:per_channel=false",
    "hqq", "hqq:bits=3", "hqq:bits=2,group_size=32", "hqq:bits=8,axis=0",
    "llmc-gptq:group_size=32", "llmc-gptq:bits=8,group_size=0", "llmc-awq:group_size=32",
    'mixed:group_size=32,bits_map={"0":8,"1.down_proj":16,"1.q_proj":2}',
    'mixed:family=gptq,group_size=0,default_bits=3,bits_map={"1":8}',
]


@pytest.mark.parametrize("arg", VARIANTS)
def test_stored_size_rule_equals_the_real_build(arg, build_context, tiny_model_dir, tmp_path):
    """Each method's `stored_bits` adds up to exactly the `weights_bytes` its build counts."""
    import torch

    spec = registry.parse_method_arg(arg)
    cls = registry.get(spec.name)
    reason = cls.unavailable_reason("cpu")
    if reason:
        pytest.skip(reason)
    options = dict(spec.options)
    ctx = build_context(tiny_model_dir, workdir=str(tmp_path),
                        calibration=lambda: torch.randint(0, 380, (4, 64),
                                                          generator=torch.Generator().manual_seed(0)))
    built = cls(cls.config_cls.parse(options)).build(ctx)
    bits = sizing.weight_bits(cls, options, _tiny_shape(tiny_model_dir))
    assert math.isclose(sum(bits.values()) / 8, built.weights_bytes, rel_tol=0, abs_tol=1), arg


def test_a_method_without_a_rule_is_reported_not_guessed():
    from qcompare.core.method import Method

    class NoRule(Method):
        name = "no-rule"

    with pytest.raises(sizing.NoSizeRule, match="no-rule"):
        sizing.estimate(NoRule, {}, SMALL, Setting())


def test_fits_per_gpu():
    e = sizing.estimate(registry.get("fp16"), {}, SMALL, Setting(overhead_mib=0, context=1))
    assert sizing.fits(e, e.per_gpu / GIB) and not sizing.fits(e, e.per_gpu / GIB * 0.99)
