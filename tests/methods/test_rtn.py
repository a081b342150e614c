import torch

from qcompare.methods import rtn


def test_symmetric_per_tensor_by_hand():
    w = torch.tensor([[1.0, -2.2, 0.5, 4.0]])
    s = 4 / 7                                        # max|w| / (2^3 - 1)
    # w/s = 1.75, -3.85, 0.875, 7 -> 2, -4, 1, 7
    expect = torch.tensor([[2 * s, -4 * s, 1 * s, 7 * s]])
    assert torch.allclose(rtn.fake_quantize(w, 4, True, "tensor", 0), expect)


def test_asymmetric_two_bit_by_hand():
    w = torch.tensor([[-1.0, 0.2, 0.9, 2.0]])       # lo=-1, hi=2, s=1, z=1
    assert torch.equal(rtn.fake_quantize(w, 2, False, "tensor", 0),
                       torch.tensor([[-1.0, 0.0, 1.0, 2.0]]))


def test_per_channel_uses_one_scale_per_row():
    w = torch.tensor([[1.0, 0.5], [100.0, 50.0]])
    out = rtn.fake_quantize(w, 2, True, "channel", 0)   # qmax=1: each row -> [s, s*round(.5)=0]
    assert torch.equal(out, torch.tensor([[1.0, 0.0], [100.0, 0.0]]))
    # per tensor, the small row would vanish entirely
    assert torch.equal(rtn.fake_quantize(w, 2, True, "tensor", 0)[0], torch.zeros(2))


def test_per_group_with_a_ragged_last_group():
    w = torch.tensor([[1.0, -1.0, 8.0]])            # groups [1, -1] and [8, (pad 0)]
    out = rtn.fake_quantize(w, 2, True, "group", 2)
    assert torch.equal(out, torch.tensor([[1.0, -1.0, 8.0]]))
    coarse = rtn.fake_quantize(w, 2, True, "tensor", 0)
    assert torch.equal(coarse, torch.tensor([[0.0, 0.0, 8.0]]))


def test_eight_bit_error_is_small_and_four_bit_larger():
    torch.manual_seed(0)
    w = torch.randn(64, 256)
    err = {b: ((rtn.fake_quantize(w, b, True, "group", 64) - w).norm() / w.norm()).item()
           for b in (8, 4, 2)}
    assert err[8] < 0.01 < err[4] < err[2]


def test_storage_bits_count_codes_scales_and_zero_points():
    assert rtn.storage_bits((4, 6), 4, True, "group", 4) == 4 * 6 * 4 + 8 * 16
    assert rtn.storage_bits((4, 6), 4, False, "group", 4) == 4 * 6 * 4 + 8 * (16 + 4)
    assert rtn.storage_bits((4, 6), 8, True, "channel", 0) == 4 * 6 * 8 + 4 * 16
    assert rtn.storage_bits((4, 6), 2, False, "tensor", 0) == 4 * 6 * 2 + 16 + 2




def test_rtn_build_quantizes_linears_but_not_the_tied_head(build_context, tiny_model_dir):
    built = rtn.RTN(rtn.RTNConfig(bits=4, granularity="group", group_size=32)).build(build_context(tiny_model_dir))
    m = built.runtime.model
    assert m.lm_head.weight.data_ptr() == m.model.embed_tokens.weight.data_ptr()
    q = m.model.layers[0].self_attn.q_proj.weight
    for row in q.reshape(-1, 32):                   # at most 16 distinct levels per group
        assert row.unique().numel() <= 16
    assert {layer["layer"] for layer in built.layers} >= {"model.layers.0.mlp.down_proj"}
    n_linear = sum(p.numel() for n, p in m.named_parameters() if "layers" in n and n.endswith("proj.weight"))
    n_other = sum(p.numel() for n, p in m.named_parameters() if not n.endswith("proj.weight"))
    expect_bits = sum(rtn.storage_bits(tuple(p.shape), 4, True, "group", 32)
                      for n, p in m.named_parameters() if n.endswith("proj.weight")) + 16 * n_other
    assert built.weights_bytes == round(expect_bits / 8)
    assert built.weights_bytes < (n_linear + n_other) * 2


def test_rtn_include_lm_head_unties_it(build_context, tiny_model_dir):
    built = rtn.RTN(rtn.RTNConfig(bits=2, include_lm_head=True, granularity="channel")).build(build_context(tiny_model_dir))
    m = built.runtime.model
    assert m.lm_head.weight.data_ptr() != m.model.embed_tokens.weight.data_ptr()
    assert m.lm_head.weight[0].unique().numel() <= 4
    assert m.model.embed_tokens.weight[0].unique().numel() > 4
