"""Per-token scores of each result, kept beside its row for paired comparisons.

`<state_dir>/tokens/<RunSpec.key()>.npz` holds `nll` (the run's NLL of every scored token, in
evaluation order), `kl` (its KL divergence from the baseline at each of those tokens) and, in
files written since it existed, `same_top` (1 where its top token is the baseline's). Two
results with the same `reference_key` scored the same tokens in the same order, so their
arrays pair up element by element: that is what `qcompare.stats.ranking` uses to say whether the
difference between two methods is larger than its own noise. float32 (2 x 4 bytes per token).
Written atomically (`.tmp-pid<PID>-…`, then renamed; qcompare.jobs.cleanup removes a killed
writer's) before the result row, so every row written
since this existed has its scores; older rows simply have none.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np


class TokenScores:
    def __init__(self, state_dir: str | os.PathLike):
        self.dir = Path(state_dir) / "tokens"

    def path(self, key: str) -> Path:
        return self.dir / f"{key}.npz"

    def write(self, key: str, nll: np.ndarray, kl: np.ndarray,
              same_top: np.ndarray | None = None) -> Path:
        if len(nll) != len(kl) or (same_top is not None and len(same_top) != len(kl)):
            raise ValueError(f"nll has {len(nll)} tokens and kl {len(kl)}")
        extra = {} if same_top is None else {"same_top": np.asarray(same_top, np.uint8)}
        self.dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=f".tmp-pid{os.getpid()}-", suffix=".npz")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, nll=np.asarray(nll, np.float32), kl=np.asarray(kl, np.float32),
                         **extra)
            os.replace(tmp, self.path(key))
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return self.path(key)

    def read(self, key: str) -> dict[str, np.ndarray] | None:
        """{'nll', 'kl'} as float64 (and 'same_top' as bool where stored), or None when this
        result has no stored scores."""
        try:
            with np.load(self.path(key)) as z:
                out = {k: z[k].astype(np.float64) for k in ("nll", "kl")}
                if "same_top" in z.files:
                    out["same_top"] = z["same_top"].astype(bool)
                return out
        except (OSError, KeyError, ValueError):
            return None
