"""The whole distribution of a method's per-token KL divergence, not only its mean.

For the per-token KL values k_t of a row (`qcompare.store.tokenscores`, in evaluation order) and the
baseline's top-token probability p_t = max_v softmax(z_base)_v at each scored position (from
the baseline's stored fp16 log-probabilities, `qcompare.store.reference`):

* percentiles p50, p90, p99, p99.9 and the maximum of k (NumPy's linear interpolation, as
  `kld_p99` always was);
* the share of tokens with k > 0.1 and with k > 1.0 nats;
* KL by the baseline's confidence: the tokens split by p into the buckets BUCKETS
  ([0, 0.2), [0.2, 0.4), ..., [0.95, 1]); per bucket its token count and mean k. A method that
  hurts where the baseline was sure is worse than one that hurts where it was guessing.

Stored per row (`kld_p50`, ..., `kld_by_confidence_json`); rows written before these columns
read as nulls and the pages ask to re-run them.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

PERCENTILES = {"kld_p50": 50, "kld_p90": 90, "kld_p99": 99, "kld_p999": 99.9}
THRESHOLDS = {"kld_share_01": 0.1, "kld_share_1": 1.0}
BUCKETS = (0.0, 0.2, 0.4, 0.6, 0.8, 0.95, 1.0)
COLUMNS = (*PERCENTILES, "kld_max", *THRESHOLDS, "kld_by_confidence_json")


def buckets(kl: np.ndarray, top: np.ndarray) -> list[dict]:
    """Per confidence bucket: [lo, hi), its tokens and their mean KL (the last bucket closed)."""
    kl, top = np.asarray(kl, np.float64), np.asarray(top, np.float64)
    if len(kl) != len(top):
        raise ValueError(f"{len(kl)} KL values but {len(top)} baseline probabilities")
    which = np.clip(np.searchsorted(BUCKETS, top, side="right") - 1, 0, len(BUCKETS) - 2)
    out = []
    for i in range(len(BUCKETS) - 1):
        sel = kl[which == i]
        out.append({"lo": BUCKETS[i], "hi": BUCKETS[i + 1], "tokens": int(sel.size),
                    "kld_mean": float(sel.mean()) if sel.size else None})
    return out


def summary(kl: np.ndarray, top: np.ndarray | None) -> dict:
    """The row's distribution columns (module doc); no buckets without the baseline's
    probabilities."""
    kl = np.asarray(kl, np.float64)
    out = {name: float(np.percentile(kl, q)) for name, q in PERCENTILES.items()}
    out["kld_max"] = float(kl.max())
    out.update({name: float((kl > t).mean()) for name, t in THRESHOLDS.items()})
    out["kld_by_confidence_json"] = json.dumps(buckets(kl, top)) if top is not None else None
    return out


def baseline_top(state_dir: str | os.PathLike, reference_key: str) -> np.ndarray | None:
    """p_t of every scored token of a baseline pass: exp of the row maximum of its stored fp16
    log-probabilities, computed once and kept as `top.npy` beside them; None without them."""
    folder = Path(state_dir) / "baselines" / reference_key
    cached = folder / "top.npy"
    if cached.is_file():
        return np.load(cached)
    if not (folder / "logprobs.npy").is_file():
        return None
    lp = np.load(folder / "logprobs.npy", mmap_mode="r")
    top = np.concatenate([np.exp(np.asarray(lp[i:i + 512], np.float32).max(axis=1))
                          for i in range(0, lp.shape[0], 512)]).astype(np.float32)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".top-pid{os.getpid()}-", suffix=".npy")
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, top)
        os.replace(tmp, cached)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return top
