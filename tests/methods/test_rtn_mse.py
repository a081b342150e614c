"""RTN with MSE-optimal clipping: never a larger squared error than plain RTN on any block,
clearly smaller at 4 bits and below on Gaussian weights, exactly RTN with a one-ratio grid,
stored as RTN."""
from __future__ import annotations

import pytest
import torch

from qcompare.core import registry
from qcompare.methods.rtn import RTN, _blocks, fake_quantize
from qcompare.methods.rtn_mse import mse_fake_quantize


def _heavy_tailed(rows=16, cols=256, seed=0):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(rows, cols, generator=g) * 0.02
    w[torch.rand(rows, cols, generator=g) < 0.01] *= 25          # a few outliers per row
    return w


@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("bits,gran,group", [(4, "group", 64), (3, "channel", 128), (8, "tensor", 128)])
def test_no_block_gets_a_larger_error_than_plain_rtn(symmetric, bits, gran, group):
    for w in (_heavy_tailed(), torch.randn(16, 256, generator=torch.Generator().manual_seed(2))):
        plain = fake_quantize(w, bits, symmetric, gran, group)
        clipped = mse_fake_quantize(w, bits, symmetric, gran, group, grid=20, min_ratio=0.5)
        e_plain = ((_blocks(plain - w, gran, group)[0]) ** 2).sum(1)
        e_clip = ((_blocks(clipped - w, gran, group)[0]) ** 2).sum(1)
        assert (e_clip <= e_plain + 1e-12).all()
    if bits <= 4:      # Gaussian weights: the largest is rare, a finer grid pays (measured
        assert e_clip.sum() < 0.95 * e_plain.sum()     # 0.45-0.93 of RTN's error here)


def test_a_one_ratio_grid_is_exactly_rtn():
    w = _heavy_tailed(seed=1)
    for symmetric in (True, False):
        assert torch.equal(mse_fake_quantize(w, 4, symmetric, "group", 32, grid=1, min_ratio=0.5),
                           fake_quantize(w, 4, symmetric, "group", 32))


def test_registered_stored_and_built_as_rtn(tiny_model_dir, build_context):
    cls = registry.get("rtn-mse")
    options = {"bits": 4, "group_size": 32}
    assert cls.chart_label(options) == "rtn-mse 4b g32"
    ctx = build_context(tiny_model_dir, "rtn-mse")
    mse = cls(cls.config_cls.parse(options)).build(ctx)
    plain = RTN(RTN.config_cls.parse(options)).build(build_context(tiny_model_dir, "rtn"))
    assert mse.weights_bytes == plain.weights_bytes
    assert "MSE-optimal clipping" in mse.notes
    errs = {d["layer"]: d["weight_rel_err"] for d in mse.layers}
    for d in plain.layers:
        assert errs[d["layer"]] <= d["weight_rel_err"] + 1e-9


def test_options_are_checked():
    from qcompare.core.errors import UserError

    cls = registry.get("rtn-mse")
    with pytest.raises(UserError, match="at most"):
        cls.config_cls.parse({"min_ratio": "1.5"})
    with pytest.raises(UserError, match="at least"):
        cls.config_cls.parse({"grid": "0"})
