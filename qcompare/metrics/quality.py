"""Quality metrics: perplexity, bytes-normalised perplexity, and divergence from the baseline.

Protocol (every row names it, so numbers from different tools are never silently compared):

* Tokenization: the corpus is tokenized once, as one stream, with the tokenizer's default
  special-token handling; the first N tokens are kept. Each token owns the UTF-8 bytes of the
  text between the previous token's end offset and its own, so the bytes of all tokens add up
  to the bytes of the text they cover.
* Windows (`plan_windows`): the model sees each window alone, starting from an empty cache.
  - disjoint: consecutive non-overlapping windows of W tokens, the remainder dropped; every
    token but the first of each window is scored (W = 2048 is the GPTQ/AWQ papers' protocol).
  - llamacpp: exactly as llama.cpp's `llama-perplexity -c W`: the text is tokenized with BOS
    prepended (`bos_first`: the stream is BOS followed by the text's first N-1 tokens, unless
    the tokenizer put a BOS there itself), cut into consecutive windows of W, each window's
    first token replaced by BOS, and only the second half scored: logits at positions
    W/2 .. W-2 predict tokens W/2+1 .. W-1.
  - strided: sliding windows of at most W tokens starting every S tokens; in each, only the
    tokens not scored by an earlier window are scored (the transformers perplexity guide).
* A scored token t at position i has NLL_t = -log softmax(z_{i-1})[x_i], computed in fp32.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Window:
    start: int          # first corpus token fed to the model
    end: int            # one past the last
    score_from: int     # first scored position inside the window (>= 1)
    bos: bool = False   # replace the window's first token with BOS

    @property
    def n_scored(self) -> int:
        return self.end - self.start - self.score_from


def plan_windows(n_tokens: int, window: int, protocol: str, stride: int = 0) -> list[Window]:
    """The windows and scored positions of a protocol over an n-token stream (module doc)."""
    if protocol in ("disjoint", "llamacpp"):
        first = 1 if protocol == "disjoint" else window // 2 + 1
        return [Window(s, s + window, first, bos=protocol == "llamacpp")
                for s in range(0, n_tokens - window + 1, window)]
    if protocol != "strided":
        raise ValueError(f"unknown protocol {protocol!r}")
    stride = stride or window // 2
    out, prev_end = [], 0
    for begin in range(0, n_tokens, stride):
        end = min(begin + window, n_tokens)
        score_from = max(1, (end - begin) - (end - prev_end))
        if end - begin > score_from:            # a window with nothing new to score is skipped
            out.append(Window(begin, end, score_from))
        prev_end = end
        if end == n_tokens:
            break
    return out


def tokenize_stream(tokenizer, text: str, n_tokens: int) -> tuple[np.ndarray, np.ndarray]:
    """First `n_tokens` ids of `text` tokenized as one stream, and the UTF-8 bytes each owns."""
    ids, offsets = _stream(tokenizer, text, n_tokens)
    nbytes = [len(piece.encode("utf-8")) for piece in _pieces(text, offsets)]
    return np.asarray(ids, dtype=np.int64), np.asarray(nbytes, dtype=np.int64)


def bos_first(values, bos_value, n_tokens: int, ids, bos_id: int | None):
    """The llamacpp protocol's stream (module doc) of a per-token sequence `values` (the ids,
    the bytes each owns, the text each owns) whose ids are `ids`: `bos_value` first (BOS owns no
    bytes and no text), then the first n_tokens - 1 values. Unchanged when the tokenizer
    already starts the stream with BOS."""
    if bos_id is None:
        raise ValueError("the llamacpp protocol needs a tokenizer with a BOS token")
    if len(ids) and int(ids[0]) == bos_id:
        return values
    if isinstance(values, np.ndarray):
        return np.concatenate([np.asarray([bos_value], dtype=values.dtype), values[:n_tokens - 1]])
    return [bos_value, *values[:n_tokens - 1]]


def token_texts(tokenizer, text: str, n_tokens: int) -> list[str]:
    """The text each of the first `n_tokens` tokens owns (the characters between the previous
    token's end offset and its own; the bytes `tokenize_stream` counts): joined, they give the
    evaluated text. For the drift explorer."""
    return _pieces(text, _stream(tokenizer, text, n_tokens)[1])


def _pieces(text: str, offsets) -> list[str]:
    out, prev_end = [], 0
    for _start, end in offsets:
        end = max(end, prev_end)
        out.append(text[prev_end:end])
        prev_end = end
    return out


def _stream(tokenizer, text: str, n_tokens: int):
    """(ids, character offsets) of the first `n_tokens` tokens. Only a prefix of a long text is
    tokenized (for speed); tokens ending near the cut are dropped, so the kept tokens are
    exactly those of tokenizing the whole text."""
    margin = 256
    cut = min(len(text), n_tokens * 12 + margin)
    while True:
        enc = tokenizer(text[:cut], return_offsets_mapping=True)
        ids, offsets = enc["input_ids"], enc["offset_mapping"]
        if cut < len(text):
            keep = [i for i, (_, e) in enumerate(offsets) if e <= cut - margin]
            ids, offsets = [ids[i] for i in keep], [offsets[i] for i in keep]
        if len(ids) >= n_tokens or cut >= len(text):
            break
        cut = min(len(text), cut * 2)
    return ids[:n_tokens], offsets[:n_tokens]


def window_logits(runtime, ids, w: Window, bos_id: int | None):
    """(fp32 logits [n_scored, V] that predict the scored tokens, their target ids [n_scored]).

    The window is fed alone to `runtime` (qcompare.runtime); only the positions that predict
    scored tokens are asked for: score_from - 1 .. end - 2.
    """
    import torch

    x = torch.as_tensor(ids[w.start:w.end], dtype=torch.long).clone()
    if w.bos:
        if bos_id is None:
            raise ValueError("the llamacpp protocol needs a tokenizer with a BOS token")
        x[0] = bos_id
    keep = x.numel() - w.score_from + 1          # positions score_from-1 .. end-1
    logits = runtime.logits(x, keep)[:-1]        # the last position predicts past the window
    return logits, x[w.score_from:].to(logits.device)


def token_nll(logits, targets):
    """NLL_t = -log softmax(z_t)[x_t] per scored token (fused, fp32)."""
    import torch

    with torch.inference_mode():
        return torch.nn.functional.cross_entropy(logits, targets, reduction="none")


def perplexity(nll: np.ndarray) -> tuple[float, float]:
    """PPL = exp(mean NLL) over scored tokens, and its standard error by the delta method:
    se(PPL) = PPL * sd(NLL) / sqrt(n) (sample sd, n - 1 in the denominator)."""
    nll = np.asarray(nll, dtype=np.float64)
    n = nll.size
    if n == 0:
        raise ValueError("no scored tokens")
    ppl = math.exp(nll.mean())
    se = ppl * nll.std(ddof=1) / math.sqrt(n) if n > 1 else float("nan")
    return ppl, se


def byte_metrics(nll_sum: float, n_bytes: int) -> tuple[float, float]:
    """(bits_per_byte, byte_ppl) as lm-eval defines them over the scored text's UTF-8 bytes:
    bits_per_byte = sum NLL / (n_bytes * ln 2),  byte_ppl = exp(sum NLL / n_bytes)."""
    if n_bytes <= 0:
        return float("nan"), float("nan")
    return nll_sum / (n_bytes * math.log(2)), math.exp(nll_sum / n_bytes)


def storage_logprobs(logp):
    """The compact form baseline log-probabilities are stored in: fp16, then renormalised.

    Both sides of a KL are passed through this, so identical models give exactly zero and the
    rounding (about 1e-3 nats on improbable tokens) affects base and quantized alike.
    """
    import torch

    lp = logp.to(torch.float16).float()
    return lp - torch.logsumexp(lp, dim=-1, keepdim=True)


def kl_from_logprobs(base_lp, quant_lp):
    """KL(P || Q) per row from log-probabilities [n, V] of the baseline (P) and the method (Q):

        kl = sum_v P(v) (log P(v) - log Q(v))      (nats)

    The one definition of the divergence: `divergence`, `kl_rows` and the fused forms
    (`score_window`, `BaselineDistribution`) compute this and are tested equal to it."""
    return (base_lp.exp() * (base_lp - quant_lp)).sum(-1)


def kl_rows(base_logits, quant_logits):
    """KL(softmax(base) || softmax(quant)) per row of logits [n, V], in float64 (nats): the
    unfused form, for a few rows at a time (the generation page's steps)."""
    import torch

    return kl_from_logprobs(torch.log_softmax(base_logits.double(), -1),
                            torch.log_softmax(quant_logits.double(), -1))


class BaselineDistribution:
    """The fused form for many passes against one baseline (the sensitivity sweep): the
    baseline's rows kept as p [n, V] and sum_v p log p per row (float64), so that for logits z

        KL(p || softmax z) = sum_v p log p - sum_v p z + logsumexp(z)

    costs one product and one logsumexp per pass (equal to `kl_rows` to 1e-12)."""

    def __init__(self, logits):
        import torch

        logp = torch.log_softmax(logits.double(), dim=-1)
        self.p = logp.exp()
        self.neg_entropy = (self.p * logp).sum(-1)

    @property
    def rows(self) -> int:
        return self.p.shape[0]

    def kl(self, logits):
        import torch

        z = logits.double()
        return self.neg_entropy - (self.p * z).sum(-1) + torch.logsumexp(z, dim=-1)


def divergence(base_lp, quant_lp, targets) -> dict[str, np.ndarray]:
    """Per scored token, from renormalised log-probs [n, V] of the baseline (P) and method (Q):

    kl        = sum_v P(v) (log P(v) - log Q(v))       (nats; clipped at 0 against rounding)
    same_top  = argmax P == argmax Q
    dp        = Q(x) - P(x) for the correct next token x
    """
    import torch

    kl = kl_from_logprobs(base_lp, quant_lp).clamp_min(0)
    same = base_lp.argmax(-1) == quant_lp.argmax(-1)
    idx = targets.unsqueeze(-1)
    dp = quant_lp.gather(-1, idx).exp().squeeze(-1) - base_lp.gather(-1, idx).exp().squeeze(-1)
    return {k: v.double().cpu().numpy() for k, v in
            (("kl", kl), ("same_top", same.to(torch.float64)), ("dp", dp))}


SCORE_CHUNK = 16         # rows per pass of `score_window`: [16, vocab] fp32 stays in cache


def score_window(logits, targets, base16=None, keep_logprobs: bool = False,
                 chunk: int = SCORE_CHUNK) -> dict[str, np.ndarray]:
    """Everything one window contributes, in one fused pass over its logits, `chunk` rows at a
    time (each chunk's softmaxes stay in cache instead of streaming [n, V] arrays through
    memory several times; measured in bench/ppl_throughput.py):

    nll  = -log softmax(z)[x]        (fp32 logits, as `token_nll`)
    lp16 = log softmax(z) in fp16    (the stored form, when `keep_logprobs`: the baseline pass)
    and, against baseline rows `base16` (fp16 [n, V], as stored), the same values as
    `divergence(storage_logprobs(base16), storage_logprobs(lp16), targets)`, computed as

      e_b = exp(b), c_b = log sum e_b, p = e_b / e^{c_b};   c_q = log sum exp(q16)
      kl  = sum_v p (b - q16) - c_b + c_q                  (= sum_v p (log P - log Q), as sum p = 1)
      same_top = argmax b == argmax q16;   dp = exp(q16[x] - c_q) - p[x]

    where b and q16 are the fp16 log-probabilities in fp32 (renormalising shifts every entry
    of a row by the same constant, so argmax and the sum above need no renormalised copy).
    """
    import torch

    n = logits.shape[0]
    out: dict[str, list] = {"nll": [], "lp16": [], "kl": [], "same_top": [], "dp": []}
    with torch.inference_mode():
        base = None if base16 is None else torch.as_tensor(base16).to(logits.device)
        for s in range(0, n, chunk):
            z, x = logits[s:s + chunk], targets[s:s + chunk, None]
            ls = torch.log_softmax(z.float(), dim=-1)
            out["nll"].append(-ls.gather(-1, x).squeeze(-1))
            q16 = ls.to(torch.float16)
            if keep_logprobs:
                out["lp16"].append(q16)
            if base is None:
                continue
            qf = q16.float()
            c_q = torch.log(qf.exp().sum(-1))
            b = base[s:s + chunk].float()
            e_b = b.exp()
            z_b = e_b.sum(-1)
            p = e_b / z_b.unsqueeze(-1)
            kl = (p * (b - qf)).sum(-1) - torch.log(z_b) + c_q
            out["kl"].append(kl.clamp_min(0))
            out["same_top"].append(b.argmax(-1) == qf.argmax(-1))
            out["dp"].append((qf.gather(-1, x).squeeze(-1) - c_q).exp() - p.gather(-1, x).squeeze(-1))
    res = {"nll": torch.cat(out["nll"]).double().cpu().numpy()}
    if keep_logprobs:
        res["lp16"] = torch.cat(out["lp16"]).cpu().numpy()
    if base is not None:
        res["kl"] = torch.cat(out["kl"]).double().cpu().numpy()
        res["same_top"] = torch.cat(out["same_top"]).to(torch.float64).cpu().numpy()
        res["dp"] = torch.cat(out["dp"]).double().cpu().numpy()
    return res


def summarize_divergence(kl: np.ndarray, same_top: np.ndarray, dp: np.ndarray) -> dict[str, float]:
    """Mean KL with its standard error (sd / sqrt n) and 99th percentile (linear interpolation),
    top-1 agreement (fraction of scored tokens), mean Delta-p of the correct token."""
    n = kl.size
    return {
        "kld_mean": float(kl.mean()),
        "kld_se": float(kl.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan"),
        "kld_p99": float(np.percentile(kl, 99)),
        "top1_agree": float(same_top.mean()),
        "delta_p_mean": float(dp.mean()),
    }
