import math

import numpy as np
import pytest
import torch

from qcompare.explore import playground as pg
from qcompare.methods import rtn


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("granularity,group", [("tensor", 0), ("channel", 0), ("group", 32), ("group", 48)])
def test_min_max_equals_the_projects_torch_rtn(bits, symmetric, granularity, group):
    x = np.random.default_rng(bits).standard_normal((24, 100)).astype(np.float32)
    x[3, 7] = 9.0                                          # an outlier in one block
    got = pg.quantize(x, pg.Setting(bits=bits, symmetric=symmetric, granularity=granularity,
                                    group_size=group or 128))
    want = rtn.fake_quantize(torch.from_numpy(x), bits, symmetric, granularity, group or 128).numpy()
    np.testing.assert_allclose(got.x_hat, want, atol=1e-6, rtol=0)


def test_the_formulas_by_hand():
    x = np.array([[-1.0, 0.2, 0.9, 2.0]], np.float32)    # asym 2-bit: lo=-1, hi=2, s=1, z=1
    q = pg.quantize(x, pg.Setting(bits=2, symmetric=False, granularity="tensor"))
    np.testing.assert_array_equal(q.x_hat, [[-1.0, 0.0, 1.0, 2.0]])
    assert (q.scale.item(), q.zero.item()) == (1.0, 1.0)
    err = x - q.x_hat
    assert q.mse == pytest.approx(float(np.mean(err ** 2)))
    assert q.sqnr_db == pytest.approx(10 * math.log10(np.sum(x ** 2) / np.sum(err ** 2)))
    assert q.max_abs_err == pytest.approx(0.2) and q.clipped == 0.0
    levels = pg.grid_levels(1.0, 1.0, 2, False)
    np.testing.assert_array_equal(levels, [-1.0, 0.0, 1.0, 2.0])


def test_clipping_calibrators_trade_outliers_for_resolution():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 512)).astype(np.float32)
    x[rng.integers(0, 64, 40), rng.integers(0, 512, 40)] *= 25          # rare large outliers
    base = pg.quantize(x, pg.Setting(bits=4, granularity="tensor"))
    for cal in ("percentile", "kl", "mse"):
        q = pg.quantize(x, pg.Setting(bits=4, granularity="tensor", calibrator=cal))
        assert q.ratio < 1.0 and q.clipped > 0, cal
        assert q.sqnr_db > base.sqnr_db, cal                # better for the bulk of the values
        assert q.max_abs_err > base.max_abs_err, cal        # worse for the clipped outliers


def test_kl_threshold_keeps_everything_for_a_uniform_distribution():
    u = np.random.default_rng(1).uniform(0, 1, 200_000)
    assert pg.kl_ratio(u, 8) > 0.95
    heavy = np.abs(np.random.default_rng(2).standard_cauchy(200_000))
    assert pg.kl_ratio(heavy / heavy.max(), 4) < 0.05


def test_tensors_are_read_straight_from_safetensors(tiny_model_dir):
    from safetensors.torch import load_file

    weights = pg.weight_tensors(tiny_model_dir)
    assert "model.layers.1.mlp.down_proj.weight" in weights
    path, shape = weights["model.layers.0.self_attn.q_proj.weight"]
    x = pg.read_tensor(path, "model.layers.0.self_attn.q_proj.weight")
    ref = load_file(path)["model.layers.0.self_attn.q_proj.weight"]
    assert list(x.shape) == shape and np.array_equal(x, ref.float().numpy())


def test_bf16_is_widened_exactly(tmp_path):
    from safetensors.torch import save_file

    t = torch.randn(8, 16).to(torch.bfloat16)
    save_file({"model.layers.0.mlp.up_proj.weight": t}, str(tmp_path / "m.safetensors"))
    x = pg.read_tensor(tmp_path / "m.safetensors", "model.layers.0.mlp.up_proj.weight")
    assert np.array_equal(x, t.float().numpy())
