"""PyTorch's eager dynamic int8 on the tiny model: int8 GEMM modules, bytes as stored, output
close to fp32."""
from dataclasses import replace

import pytest
import torch

from qcompare.core.registry import parse_method_arg
from qcompare.core.specs import CorpusSpec
from qcompare.jobs import submit as submitting
from qcompare.jobs import worker
from qcompare.methods import torch_dynamic as td
from qcompare.sources.models import model_from_arg


@pytest.mark.parametrize("per_channel", [True, False])
def test_linears_become_int8_modules_and_bytes_are_counted_as_stored(build_context, per_channel, tiny_model_dir):
    from transformers import AutoModelForCausalLM

    built = td.TorchDynamicInt8(td.TorchDynamicConfig(per_channel=per_channel)).build(build_context(tiny_model_dir))
    q = built.runtime.model.model.layers[0].mlp.up_proj
    assert isinstance(q, torch.ao.nn.quantized.dynamic.Linear) and q.weight().dtype == torch.qint8
    assert isinstance(built.runtime.model.lm_head, torch.nn.Linear)               # head left in float
    ref = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    head = ref.get_output_embeddings()
    shapes = [m.weight.shape for m in ref.modules() if isinstance(m, torch.nn.Linear) and m is not head]
    per_layer = lambda o: 16 * o if per_channel else 16          # float64 scale + int64 zero point
    other = sum(p.numel() for n, p in ref.named_parameters() if not n.endswith("proj.weight"))
    assert built.weights_bytes == sum(o * i + per_layer(o) for o, i in shapes) + other * 4
    x = torch.randint(0, ref.config.vocab_size, (1, 32))
    with torch.inference_mode():
        a, b = ref(x).logits, built.runtime.model(x).logits
    assert float((a - b).norm() / a.norm()) < 0.05


def test_dynamic_int8_row_through_the_worker(tiny_model_dir, state_dir, tiny_eval):
    ev = replace(tiny_eval, speed_repeats=1)
    model = model_from_arg(str(tiny_model_dir))
    methods = [parse_method_arg(m) for m in ("fp32", "torch-dynamic-int8")]
    rows = [worker.run(s, state_dir) for s in submitting.build_specs(model, methods, CorpusSpec(), ev)]
    r = rows[1]
    assert 0 < r["kld_mean"] < 0.05 and r["decode_tok_s"] > 0 and r["kernel"] == "real"
    assert "quantize_dynamic" in r["backend"]


def test_activations_are_quantized_per_tensor_to_7_bits():
    """quantize_dynamic's Linear calls the int8 kernel with reduce_range=True: each activation
    tensor gets one min/max scale and 7-bit codes, which is what breaks on outlier features."""
    import warnings

    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    torch.manual_seed(0)
    lin = torch.nn.Linear(64, 32, bias=False)
    x = torch.randn(16, 64)
    x[:, 3] *= 40                                                   # one outlier feature
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        q = quantize_dynamic(torch.nn.Sequential(lin), {torch.nn.Linear: per_channel_dynamic_qconfig},
                             dtype=torch.qint8)[0]
    w = lin.weight.detach()
    s = w.abs().amax(1, keepdim=True) / 127
    wq = (w / s).round().clamp(-128, 127) * s

    def per_tensor(a, bits):
        lo, hi = a.min().clamp(max=0), a.max().clamp(min=0)
        top = 2 ** bits - 1
        scale = (hi - lo) / top
        zero = (-lo / scale).round()
        return ((a / scale + zero).round().clamp(0, top) - zero) * scale

    with torch.inference_mode():
        y = q(x)
    err = {b: float((y - per_tensor(x, b) @ wq.T).norm()) for b in (7, 8)}
    assert err[7] < 0.25 * err[8]
