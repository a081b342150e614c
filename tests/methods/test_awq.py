import torch

from qcompare.methods import awq, rtn
from qcompare.methods.kernels import scaling


def _inputs(n=256, d=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g)
    X[:, :4] *= 20                                  # a few salient channels, as in LLM activations
    return X


def test_alpha_zero_is_exactly_rtn():
    torch.manual_seed(0)
    W = torch.randn(16, 64)
    s, alpha, _ = awq.search_scale(_inputs(), [W], 4, 32, False, [0.0])
    assert alpha == 0.0 and torch.equal(s, torch.ones(64))
    assert torch.equal(rtn.fake_quantize(W * s, 4, False, "group", 32) / s,
                       rtn.fake_quantize(W, 4, False, "group", 32))


def test_search_never_loses_to_rtn_and_wins_with_salient_channels():
    torch.manual_seed(1)
    X, W = _inputs(), torch.randn(32, 64)
    _, alpha, losses = awq.search_scale(X, [W], 3, 32, False, [i / 20 for i in range(20)])
    assert losses[alpha] <= losses[0.0]
    assert alpha > 0 and losses[alpha] < 0.9 * losses[0.0]


def test_folding_into_a_norm_and_a_linear_keeps_the_function():
    torch.manual_seed(2)
    norm = torch.nn.LayerNorm(8)
    torch.nn.init.uniform_(norm.weight, 0.5, 1.5)
    norm.bias = None
    prev, nxt = torch.nn.Linear(8, 8), torch.nn.Linear(8, 5, bias=False)
    x = torch.randn(10, 8)
    before = nxt(prev(norm(x)))
    s1, s2 = torch.rand(8) + 0.5, torch.rand(8) + 0.5
    scaling.fold_scale(norm, [prev], s1)
    scaling.fold_scale(prev, [nxt], s2)
    assert torch.allclose(nxt(prev(norm(x))), before, atol=1e-5)


def test_clip_search_never_increases_the_group_error():
    torch.manual_seed(3)
    X, W = _inputs(), torch.randn(8, 64)
    W[0, 5] = 12.0                                  # one weight that stretches its group's range
    clip = awq.search_clip(X, W, 3, 32, True)
    Wc = awq.apply_clip(W, clip, 32)
    err = lambda w: ((X @ (rtn.fake_quantize(w, 3, True, "group", 32) - W).T) ** 2).sum()
    assert err(Wc) <= err(W)
    assert clip.shape == (8, 2, 1) and float(clip[0, 0]) <= 12.0


def test_unsupported_layout_is_a_clear_error():
    import pytest

    from qcompare.core.errors import UserError

    with pytest.raises(UserError, match="Llama-style"):
        scaling.scale_groups(torch.nn.Linear(2, 2))
