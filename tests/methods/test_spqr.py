import torch

from qcompare.methods import gptq, spqr


def _H(d=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(256, d, generator=g)
    X[:, 3] *= 30                                    # one input channel the layer is sensitive to
    return 2 * X.T @ X / 256


def test_magnitude_rule_keeps_the_largest_weights():
    W = torch.randn(8, 32)
    W[2, 5], W[7, 0] = 50.0, -40.0
    mask = spqr.outlier_mask(W, _H(), 2 / W.numel(), "magnitude", 3, 16, False, 0.01)
    assert mask.sum() == 2 and mask[2, 5] and mask[7, 0]


def test_sensitivity_rule_prefers_the_channel_with_large_activations():
    torch.manual_seed(1)
    W = torch.randn(16, 32)
    mask = spqr.outlier_mask(W, _H(), 0.05, "sensitivity", 3, 16, False, 0.01)
    per_col = mask.sum(0)
    assert int(per_col[3]) == int(per_col.max()) and int(per_col[3]) > 0


def test_outliers_cut_the_output_error_and_storage_counts_them():
    from qcompare.methods.kernels.sequential import relative_output_error

    torch.manual_seed(2)
    W = torch.randn(32, 64)
    W[torch.rand_like(W) < 0.01] *= 20               # sparse outliers, as in LLM weights
    H = _H(64)
    plain, _ = gptq.gptq_quantize(W, H, bits=3, group_size=16, sym=False, stat_bits=3)
    keep = spqr.outlier_mask(W, H, 0.01, "sensitivity", 3, 16, False, 0.01)
    kept, _ = gptq.gptq_quantize(W, H, bits=3, group_size=16, sym=False, keep=keep, stat_bits=3)
    assert relative_output_error(W, kept, H) < relative_output_error(W, plain, H)
    n = int(keep.sum())
    # 3-bit codes; per group: 3-bit zero + 3-bit scale + 2 bits of second-level stats
    assert spqr.storage_bits((32, 64), 3, False, 16, 3, n) == 32 * 64 * 3 + 128 * 8 + n * 32 + 32 * 32
