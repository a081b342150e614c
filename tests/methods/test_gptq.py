import pytest
import torch

from qcompare.methods import gptq, rtn
from qcompare.methods.kernels.sequential import relative_output_error


def _correlated_inputs(n=512, d=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(d, d, generator=g, dtype=torch.float64) / d ** 0.5
    scale = torch.logspace(-1, 1, d, dtype=torch.float64)      # channels of very different size
    return (torch.randn(n, d, generator=g, dtype=torch.float64) @ mix) * scale


def _hessian(X):
    return 2 * X.T @ X / X.shape[0]


@pytest.mark.parametrize("group_size,sym", [(16, True), (0, True), (32, False)])
def test_identity_hessian_is_exactly_rtn(group_size, sym):
    torch.manual_seed(0)
    W = torch.randn(24, 64)
    Q, _ = gptq.gptq_quantize(W, torch.eye(64), bits=4,
                              group_size=group_size, sym=sym, damp=0.01)
    gran = "group" if group_size else "channel"
    assert torch.equal(Q, rtn.fake_quantize(W, 4, sym, gran, group_size))


@pytest.mark.parametrize("group_size,act_order,block", [(16, False, 128), (0, False, 8),
                                                       (16, True, 32), (8, True, 20)])
def test_blocked_gptq_equals_the_per_column_loop(group_size, act_order, block):
    torch.manual_seed(1)
    W = torch.randn(32, 64, dtype=torch.float64)
    H = _hessian(_correlated_inputs())
    fast, _ = gptq.gptq_quantize(W, H, bits=3, group_size=group_size, sym=True,
                                 act_order=act_order, block=block)
    ref = gptq.gptq_reference(W, H, bits=3, group_size=group_size, sym=True, act_order=act_order)
    assert torch.allclose(fast, ref, atol=1e-9)
    assert not torch.equal(fast, rtn.fake_quantize(W, 3, True, "group" if group_size else "channel",
                                                   group_size))


def test_gptq_output_error_is_below_rtn_on_correlated_inputs():
    torch.manual_seed(2)
    W = torch.randn(64, 64, dtype=torch.float64)
    # inputs near a 12-dimensional subspace: the rounding error can be moved where it is unseen
    X = torch.randn(512, 12, dtype=torch.float64) @ torch.randn(12, 64, dtype=torch.float64)
    X += 0.05 * torch.randn(512, 64, dtype=torch.float64)
    H = _hessian(X)
    Q, _ = gptq.gptq_quantize(W, H, bits=3, group_size=16, sym=True)
    R = rtn.fake_quantize(W, 3, True, "group", 16)
    e_gptq, e_rtn = relative_output_error(W, Q, H), relative_output_error(W, R, H)
    assert e_gptq < 0.5 * e_rtn
    # the helper is the relative RMS change of the output over the calibration tokens
    direct = ((X @ (Q - W).T).norm() / (X @ W.T).norm()).item()
    assert e_gptq == pytest.approx(direct, rel=1e-9)


def test_dead_inputs_and_a_singular_hessian_are_handled():
    W = torch.randn(8, 16, dtype=torch.float64)
    X = torch.randn(4, 16, dtype=torch.float64)          # rank 4 < 16
    X[:, 3] = 0                                          # a dead input channel
    Q, info = gptq.gptq_quantize(W, _hessian(X), bits=4, group_size=8, sym=False)
    assert torch.isfinite(Q).all() and (Q[:, 3] == 0).all()
    assert info.damp >= 0.01


def test_keep_mask_stores_outliers_exactly_and_stat_bits_quantize_scales():
    torch.manual_seed(4)
    W = torch.randn(32, 32, dtype=torch.float64)
    W[5, 7] = 40.0
    keep = torch.zeros_like(W, dtype=torch.bool)
    keep[5, 7] = True
    H = _hessian(_correlated_inputs(d=32))
    Q, _ = gptq.gptq_quantize(W, H, bits=3, group_size=16, sym=False, keep=keep, stat_bits=3)
    # kept exactly at its value after the error feedback of earlier columns, not on the grid
    assert abs(float(Q[5, 7]) - 40.0) < 0.5
    assert float(Q[5, 7]) not in set(Q[5, :16].tolist()) - {float(Q[5, 7])}
    # without the mask the outlier's group is coarse: error on its row is much larger
    Q2, _ = gptq.gptq_quantize(W, H, bits=3, group_size=16, sym=False)
    row = lambda q: (q[5] - W[5]).abs().sum()
    assert row(Q) < 0.5 * row(Q2)
    s = torch.rand(40, 1) + 0.1
    qs = gptq.quantize_scales(s, 3)
    assert (qs > 0).all() and len(torch.unique(qs[:16])) <= 8


def test_storage_counts_group_index_with_act_order():
    base = gptq.storage_bits((4, 64), 4, True, 32, False)
    assert base == 4 * 64 * 4 + 4 * 2 * 16
    assert gptq.storage_bits((4, 64), 4, True, 32, True) == base + 64 * 32
