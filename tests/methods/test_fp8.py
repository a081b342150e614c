"""FP8 e4m3 weight-only: the rounding by hand, storage by hand, and a run through the worker."""
import math

import torch

from qcompare.methods import fp8


def test_e4m3_rounding_by_hand():
    # per channel, s = 448 / 448 = 1: 448 and 1.0 are exact; 1.0625 lies halfway between 1.0
    # and 1.125 (3 mantissa bits) and rounds to the even 1.0; 3.3 rounds to 3.25 (steps of 0.25)
    w = torch.tensor([[448.0, 1.0, 1.0625, -3.3]])
    assert fp8.fake_quantize_e4m3(w, per_channel=True).tolist() == [[448.0, 1.0, 1.0, -3.25]]
    # a row scaled down by 100 keeps its relative grid: s = 4.48 / 448 = 0.01
    small = fp8.fake_quantize_e4m3(w / 100, per_channel=True)
    assert torch.allclose(small, torch.tensor([[4.48, 0.01, 0.01, -0.0325]]), rtol=1e-6)


def test_per_tensor_scale_crushes_a_small_row_that_per_channel_keeps():
    w = torch.tensor([[448.0, 100.0], [1e-6, -1e-6]])
    assert fp8.fake_quantize_e4m3(w, per_channel=False)[1].abs().max() == 0   # below e4m3's range
    kept = fp8.fake_quantize_e4m3(w, per_channel=True)[1]
    assert torch.allclose(kept, w[1])


def test_build_counts_8_bits_and_a_16_bit_scale_per_row(build_context, tiny_model_dir):
    built = fp8.FP8(fp8.FP8Config(scaling="channel")).build(build_context(tiny_model_dir))
    m = built.runtime.model
    assert built.kernel == "simulated" and built.storage == "simulated"
    assert m.lm_head.weight.data_ptr() == m.model.embed_tokens.weight.data_ptr()   # still tied
    proj = {n: p for n, p in m.named_parameters() if n.endswith("proj.weight")}
    other = sum(p.numel() for n, p in m.named_parameters() if n not in proj)
    expect_bits = sum(8 * p.numel() + 16 * p.shape[0] for p in proj.values()) + 16 * other
    assert built.weights_bytes == round(expect_bits / 8)
    assert {layer["layer"] for layer in built.layers} >= {"model.layers.1.mlp.down_proj"}


def test_fp8_row_through_the_worker_is_close_to_the_baseline(tiny_model_dir, state_dir, tiny_eval):
    from qcompare.core.registry import parse_method_arg
    from qcompare.core.specs import CorpusSpec
    from qcompare.jobs import submit as submitting
    from qcompare.jobs import worker
    from qcompare.sources.models import model_from_arg

    model = model_from_arg(str(tiny_model_dir))
    rows = [worker.run(s, state_dir) for s in submitting.build_specs(
        model, [parse_method_arg("fp32"), parse_method_arg("fp8"),
                parse_method_arg("rtn:bits=2,granularity=channel")], CorpusSpec(), tiny_eval)]
    base, f8, r2 = rows
    assert f8["method_label"] == "fp8 scaling=channel" and f8["family"] == "float8 (simulated)"
    assert 0 < f8["kld_mean"] < r2["kld_mean"] and f8["top1_agree"] > r2["top1_agree"]
    assert math.isclose(f8["ppl"], base["ppl"], rel_tol=0.05)
    assert f8["weights_mib"] < base["weights_mib"] / 2
