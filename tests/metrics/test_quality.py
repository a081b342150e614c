import math

import numpy as np
import pytest
import torch

from qcompare.metrics import quality as q


def test_three_token_perplexity_by_hand():
    nll = np.array([math.log(2), 2 * math.log(2), 3 * math.log(2)])   # p = 1/2, 1/4, 1/8
    ppl, se = q.perplexity(nll)
    assert ppl == pytest.approx(4.0)
    assert se == pytest.approx(4.0 * math.log(2) / math.sqrt(3))


def test_kl_of_two_known_distributions():
    p = torch.log(torch.tensor([[0.5, 0.5]]))
    qq = torch.log(torch.tensor([[0.25, 0.75]]))
    d = q.divergence(p, qq, torch.tensor([1]))
    assert d["kl"][0] == pytest.approx(0.5 * math.log(4 / 3), rel=1e-6)
    assert d["same_top"][0] == 0.0            # argmax: P ties -> index 0, Q -> index 1
    assert d["dp"][0] == pytest.approx(0.75 - 0.5)


def test_identical_distributions_have_zero_kl_after_storage_rounding():
    logp = torch.log_softmax(torch.randn(5, 300) * 4, dim=-1)
    a, b = q.storage_logprobs(logp), q.storage_logprobs(logp.clone())
    d = q.divergence(a, b, torch.zeros(5, dtype=torch.long))
    assert np.all(d["kl"] == 0) and np.all(d["same_top"] == 1)


def test_summary_statistics():
    kl = np.array([0.0, 0.1, 0.2, 0.3])
    s = q.summarize_divergence(kl, np.array([1, 1, 0, 1.0]), np.array([0.1, -0.1, 0.0, 0.2]))
    assert s["kld_mean"] == pytest.approx(0.15)
    assert s["kld_se"] == pytest.approx(np.std(kl, ddof=1) / 2)
    assert s["kld_p99"] == pytest.approx(0.297)
    assert s["top1_agree"] == 0.75 and s["delta_p_mean"] == pytest.approx(0.05)


def test_byte_metrics():
    bpb, byte_ppl = q.byte_metrics(nll_sum=8 * math.log(2), n_bytes=4)
    assert bpb == pytest.approx(2.0) and byte_ppl == pytest.approx(4.0)


def test_disjoint_windows_drop_the_remainder():
    ws = q.plan_windows(10, 4, "disjoint")
    assert [(w.start, w.end, w.score_from) for w in ws] == [(0, 4, 1), (4, 8, 1)]
    assert sum(w.n_scored for w in ws) == 6


def test_llamacpp_windows_score_the_second_half_after_bos():
    ws = q.plan_windows(16, 8, "llamacpp")
    assert [(w.start, w.score_from, w.bos) for w in ws] == [(0, 5, True), (8, 5, True)]
    assert all(w.n_scored == 8 - 1 - 8 // 2 for w in ws)


@pytest.mark.parametrize("n,window,stride", [(10, 4, 2), (37, 8, 3), (64, 16, 15), (9, 8, 1)])
def test_strided_windows_score_every_token_but_the_first_once(n, window, stride):
    ws = q.plan_windows(n, window, "strided", stride)
    scored = [w.start + i for w in ws for i in range(w.score_from, w.end - w.start)]
    assert sorted(scored) == list(range(1, n))
    assert all(w.end - w.start <= window and w.n_scored > 0 for w in ws)


def test_strided_with_stride_equal_to_window_cannot_score_window_starts():
    ws = q.plan_windows(20, 8, "strided", 8)
    scored = {w.start + i for w in ws for i in range(w.score_from, w.end - w.start)}
    assert scored == set(range(1, 20)) - {8, 16}    # no context to predict them from
    assert all(w.n_scored > 0 for w in ws)


class _FixedLogits:
    """A runtime whose logits at position i put all mass on token (input[i] + 1) % V; it
    records how many positions it was asked for."""
    V = 7
    asked: list = []

    def logits(self, x, keep):
        self.asked.append((x.tolist(), keep))
        out = torch.full((x.shape[0], self.V), -1e4)
        out[torch.arange(x.shape[0]), (x + 1) % self.V] = 0.0
        return out[-keep:]


def test_window_logits_score_the_right_positions_and_replace_bos():
    ids = np.array([1, 2, 3, 5, 6, 0, 1, 2])
    w = q.Window(0, 8, 2, bos=True)
    rt = _FixedLogits()
    logits, targets = q.window_logits(rt, ids, w, bos_id=4)
    assert rt.asked[-1] == ([4, 2, 3, 5, 6, 0, 1, 2], 7)     # BOS first; positions 1..7 only
    logp = torch.log_softmax(logits, dim=-1)
    assert targets.tolist() == [3, 5, 6, 0, 1, 2]
    nll = -logp.gather(-1, targets[:, None]).squeeze(-1)
    # position 1 predicts 3 from 2 (right); 2 -> 5 from 3 (wrong); 5 -> 6 ... (right)
    assert (nll < 1e-3).tolist() == [True, False, True, True, True, True]
    assert torch.allclose(q.token_nll(*q.window_logits(_FixedLogits(), ids, w, 4)), nll)


def test_tokenize_stream_bytes_partition_the_text(tiny_model_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    text = "Grüße, 世界! " * 50
    ids, nbytes = q.tokenize_stream(tok, text, 40)
    assert len(ids) == 40
    full = tok(text)["input_ids"]
    assert ids.tolist() == full[:40]
    assert nbytes.sum() == len(tok.decode(ids).encode("utf-8"))


def _independent_float64(base16: np.ndarray, logits: torch.Tensor, targets: torch.Tensor):
    """The metric's definition written out in float64 with numpy: both sides rounded to the
    fp16 storage form and renormalised, then KL, argmax agreement and Delta-p per token."""
    def storage(lp16):
        lp = lp16.astype(np.float64)
        m = lp.max(-1, keepdims=True)
        return lp - (m + np.log(np.exp(lp - m).sum(-1, keepdims=True)))

    b = storage(base16)
    z = logits.double().numpy()
    lq = z - z.max(-1, keepdims=True)
    lq = lq - np.log(np.exp(lq).sum(-1, keepdims=True))
    q16 = storage(lq.astype(np.float16))
    p = np.exp(b)
    t = targets.numpy()
    rows = np.arange(len(t))
    return {"kl": (p * (b - q16)).sum(-1), "same_top": (b.argmax(-1) == q16.argmax(-1)) * 1.0,
            "dp": np.exp(q16[rows, t]) - p[rows, t], "nll": -lq[rows, t]}


@pytest.mark.parametrize("chunk", [1, 5, 16, 64])
def test_fused_window_scores_equal_the_definition_in_float64(chunk):
    g = torch.Generator().manual_seed(0)
    n, V = 37, 3000
    logits = torch.randn(n, V, generator=g) * 3
    base_logits = logits + 0.2 * torch.randn(n, V, generator=g)
    targets = torch.randint(0, V, (n,), generator=g)
    base16 = torch.log_softmax(base_logits, -1).to(torch.float16).numpy()
    got = q.score_window(logits, targets, base16, keep_logprobs=True, chunk=chunk)
    want = _independent_float64(base16, logits, targets)
    assert got["kl"].mean() == pytest.approx(want["kl"].mean(), rel=1e-4)
    np.testing.assert_allclose(got["kl"], want["kl"], rtol=1e-3, atol=1e-6)
    np.testing.assert_allclose(got["nll"], want["nll"], rtol=1e-5)
    np.testing.assert_allclose(got["dp"], want["dp"], atol=1e-6)
    assert (got["same_top"] == want["same_top"]).all()
    assert got["lp16"].dtype == np.float16 and got["lp16"].shape == (n, V)
    # and the unfused reference path of this module agrees as well
    old = q.divergence(q.storage_logprobs(torch.from_numpy(base16)),
                       q.storage_logprobs(torch.from_numpy(got["lp16"])), targets)
    np.testing.assert_allclose(got["kl"], old["kl"], rtol=1e-3, atol=1e-6)


def test_fused_scores_of_a_model_against_itself_are_exactly_zero():
    logits = torch.randn(9, 500) * 4
    base16 = torch.log_softmax(logits, -1).to(torch.float16).numpy()
    got = q.score_window(logits, torch.zeros(9, dtype=torch.long), base16, chunk=4)
    assert np.all(got["kl"] == 0) and np.all(got["same_top"] == 1)
    assert "lp16" not in got


def test_the_one_kl_in_its_fused_and_unfused_forms_agree():
    """kl_rows (unfused, float64), BaselineDistribution (fused: one product and one logsumexp
    per pass) and divergence (on stored log-probs) are the same KL(P || Q)."""
    g = torch.Generator().manual_seed(3)
    base, quant = torch.randn(7, 50, generator=g) * 3, torch.randn(7, 50, generator=g) * 3
    unfused = q.kl_rows(base, quant)
    fused = q.BaselineDistribution(base).kl(quant)
    torch.testing.assert_close(fused, unfused, rtol=0, atol=1e-12)
    lp = torch.log_softmax(base.double(), -1), torch.log_softmax(quant.double(), -1)
    d = q.divergence(*lp, torch.zeros(7, dtype=torch.long))
    np.testing.assert_allclose(d["kl"], unfused.numpy(), rtol=0, atol=1e-12)
    assert (unfused > 0.1).all()                     # different rows: a real divergence
    assert q.kl_rows(base, base).abs().max() < 1e-12
