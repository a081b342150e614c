import numpy as np
import pytest
import torch

from qcompare.methods import smoothquant, w8a8
from qcompare.methods.kernels import calibrators


def test_minmax_and_percentile_thresholds_by_hand():
    x = np.arange(1, 101, dtype=float)               # |x| = 1..100
    assert calibrators.threshold(x, "minmax") == 100
    assert calibrators.threshold(x, "percentile", percentile=50) == pytest.approx(50.5)
    assert calibrators.threshold(x[:10], "minmax", true_max=250.0) == 250.0


def test_clipping_calibrators_clip_a_heavy_tail_and_lower_the_error():
    rng = np.random.default_rng(0)
    x = np.abs(rng.standard_normal(200_000))
    x[:20] = 60.0                                     # rare huge outliers
    mx = calibrators.threshold(x, "minmax", bits=4)
    for method in ("mse", "entropy", "percentile"):
        t = calibrators.threshold(x, method, bits=4, percentile=99.9)
        assert t < mx / 4, method

    def err(t, qmax=7):
        s = t / qmax
        return ((x - np.clip(np.round(x / s), 0, qmax) * s) ** 2).mean()

    assert err(calibrators.threshold(x, "mse", bits=4)) < err(mx)
    assert err(calibrators.threshold(x, "entropy", bits=4)) < err(mx)


def test_entropy_keeps_the_full_range_of_a_uniform_distribution():
    x = np.random.default_rng(1).uniform(0, 1, 100_000)
    assert calibrators.threshold(x, "entropy") > 0.9


def test_per_row_weight_calibrators():
    w = torch.tensor([[1.0, 2.0, 3.0, 100.0], [0.5, 0.5, 0.5, 0.5]])
    assert torch.equal(calibrators.per_row(w, "minmax"), torch.tensor([[100.0], [0.5]]))
    mse = calibrators.per_row(w, "mse", bits=2)
    assert float(mse[0]) <= 100 and float(mse[1]) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        calibrators.per_row(w, "entropy")


def test_weight_int8_is_on_a_per_row_grid_and_dynamic_activations_per_token():
    torch.manual_seed(0)
    W = torch.randn(4, 32)
    Wq = w8a8.weight_int8(W, "minmax", 99.99)
    s = W.abs().amax(1, keepdim=True) / 127
    assert torch.allclose(Wq / s, torch.round(Wq / s), atol=1e-4)
    assert (Wq - W).abs().max() <= s.max() / 2 + 1e-6
    x = torch.tensor([[1.0, -127.0], [0.01, 0.02]])
    q = w8a8.quantize_activations(x, w8a8.per_token_scale(x))
    assert torch.allclose(q, x, rtol=1 / 127, atol=0)   # each row is on its own grid


def test_smoothing_preserves_the_model_output_before_quantization(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    from qcompare.methods.awq import scale_groups
    from qcompare.methods.kernels.sequential import decoder_layers

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    ids = torch.randint(0, 300, (2, 32))
    with torch.no_grad():
        before = model(ids).logits
    inputs, handles = {}, []
    for li, layer in enumerate(decoder_layers(model)):
        for pname, prod, lin_names in scale_groups(layer):
            if prod is None or isinstance(prod, torch.nn.Linear):
                continue
            def hook(_m, args, key=(li, pname)):
                x = args[0].reshape(-1, args[0].shape[-1])
                inputs[key] = (x, x.abs().amax(0))
            handles.append(layer.get_submodule(lin_names[0]).register_forward_pre_hook(hook))
    with torch.no_grad():
        model(ids)
    for h in handles:
        h.remove()
    for li, layer in enumerate(decoder_layers(model)):
        notes = smoothquant.smooth_layer(layer, {p: v for (i, p), v in inputs.items() if i == li}, 0.8)
        assert notes["self_attn.q_proj"]["smooth_alpha"] == 0.8
    with torch.no_grad():
        after = model(ids).logits
    assert torch.allclose(after, before, atol=1e-4)


def test_smoothing_scales_follow_the_formula():
    act = torch.tensor([8.0, 1.0])
    w = [torch.tensor([[2.0, 1.0], [-0.5, 4.0]])]      # column maxima 2, 4
    s = smoothquant.smoothing_scales(act, w, 0.5)
    assert torch.allclose(s, torch.tensor([(8 / 2) ** 0.5, (1 / 4) ** 0.5]))
