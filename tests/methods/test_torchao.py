"""torchao methods on the tiny model: real library, stored bytes checked against the shapes."""
from dataclasses import replace

import pytest
import torch

pytest.importorskip("torchao", reason="torchao is not installed")

from qcompare.core.registry import parse_method_arg  # noqa: E402
from qcompare.core.specs import CorpusSpec  # noqa: E402
from qcompare.jobs import submit as submitting
from qcompare.jobs import worker  # noqa: E402
from qcompare.methods import torchao as tao  # noqa: E402
from qcompare.runtime.storage import subclass_bytes  # noqa: E402
from qcompare.sources.models import model_from_arg  # noqa: E402


@pytest.mark.parametrize("cls", [tao.TorchAoInt8WeightOnly, tao.TorchAoInt8Dynamic])
def test_int8_weights_are_stored_as_int8_codes_plus_row_scales(build_context, cls, tiny_model_dir):
    from transformers import AutoModelForCausalLM

    built = cls().build(build_context(tiny_model_dir))
    q = built.runtime.model.model.layers[0].self_attn.q_proj.weight
    inner = {n: getattr(q, n) for n in q.__tensor_flatten__()[0]}
    assert inner["qdata"].dtype == torch.int8 and inner["qdata"].shape == q.shape
    ref = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    head = ref.get_output_embeddings()
    shapes = [m.weight.shape for m in ref.modules() if isinstance(m, torch.nn.Linear) and m is not head]
    other = sum(p.numel() for n, p in ref.named_parameters() if not n.endswith("proj.weight"))
    per_row = sum(subclass_bytes(t) for n, t in inner.items() if n != "qdata") // q.shape[0]
    expect = sum(o * i + o * per_row for o, i in shapes) + other * 4      # the rest in fp32
    assert built.weights_bytes == expect and built.kernel == "real"
    assert built.weights_bytes < sum(p.numel() for p in ref.parameters()) * 4


def test_torchao_rows_through_the_worker(tiny_model_dir, state_dir, tiny_eval):
    ev = replace(tiny_eval, speed_repeats=1)
    model = model_from_arg(str(tiny_model_dir))
    methods = [parse_method_arg(m) for m in ("fp32", "torchao-int8wo", "torchao-int8dq")]
    rows = {r["method"]: r for r in (worker.run(s, state_dir)
                                      for s in submitting.build_specs(model, methods, CorpusSpec(), ev))}
    for m in ("torchao-int8wo", "torchao-int8dq"):
        assert 0 < rows[m]["kld_mean"] < 0.05 and rows[m]["decode_tok_s"] > 0
        assert "torchao" in rows[m]["backend"] and rows[m]["library_version"]
    assert rows["torchao-int8wo"]["kld_mean"] <= rows["torchao-int8dq"]["kld_mean"]


@pytest.mark.parametrize("symmetric", [False, True])
def test_int4_codes_are_4_bit_per_group_and_stored_one_per_byte(build_context, symmetric, tiny_model_dir):
    from transformers import AutoModelForCausalLM

    m = tao.TorchAoInt4WeightOnly(tao.TorchAoInt4Config(group_size=32, symmetric=symmetric))
    built = m.build(build_context(tiny_model_dir))
    q = built.runtime.model.model.layers[0].mlp.down_proj.weight           # 128 inputs: 4 groups
    inner = {n: getattr(q, n) for n in q.__tensor_flatten__()[0]}
    codes = inner["qdata"]
    assert codes.dtype == torch.int8 and codes.shape == q.shape      # one code per byte
    assert -8 <= int(codes.min()) and int(codes.max()) <= 7          # signed 4-bit range
    assert inner["scale"].shape == (q.shape[0], q.shape[1] // 32)
    ref = AutoModelForCausalLM.from_pretrained(tiny_model_dir).model.layers[0].mlp.down_proj.weight
    # dequantized weights are within half a step of the originals, group by group
    step = inner["scale"].repeat_interleave(32, dim=1)
    err = (q.dequantize() - ref.detach()).abs()
    assert bool((err <= step / 2 + 1e-6).all())
    assert built.kernel == "dequantized" and "one per int8 byte" in built.notes


def test_int4_group_size_that_does_not_divide_the_inputs_is_a_clear_error(build_context, tiny_model_dir):
    from qcompare.core.errors import UserError

    m = tao.TorchAoInt4WeightOnly(tao.TorchAoInt4Config(group_size=256))   # inputs 64 and 128
    with pytest.raises(UserError, match="divisible by group_size 256; this model has 64, 128"):
        m.build(build_context(tiny_model_dir))


def test_int4_row_through_the_worker(tiny_model_dir, state_dir, tiny_eval):
    model = model_from_arg(str(tiny_model_dir))
    methods = [parse_method_arg(m) for m in ("fp32", "torchao-int8wo", "torchao-int4wo")]
    rows = {r["method"]: r for r in (worker.run(s, state_dir)
                                      for s in submitting.build_specs(model, methods, CorpusSpec(), tiny_eval))}
    assert rows["torchao-int4wo"]["kld_mean"] > rows["torchao-int8wo"]["kld_mean"] > 0
    assert rows["torchao-int4wo"]["kernel"] == "dequantized"
