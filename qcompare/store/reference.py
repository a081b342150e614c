"""Cached baseline log-probabilities, computed once per (model, corpus, protocol) and reused by
every method's KL divergence and top-1 agreement.

Layout of `<state_dir>/baselines/<RunSpec.reference_key()>/`: `logprobs.npy` (fp16, [n_scored,
vocab], the form `metrics.quality.storage_logprobs` rounds to, like llama.cpp's 16-bit
`--kl-divergence-base` file), `targets.npy` (int64 scored token ids), `nll.npy` (the baseline's
per-token NLL, float64; absent in folders written before it existed) and `meta.json`. A folder is
written under a temporary name and renamed when complete; `lock()` serialises its computation.
`pieces.json` (`ensure_pieces`) holds the text each evaluated token owns and the positions
scored, for the drift explorer (`qcompare.explore.drift`).
`meta.json` also keeps the baseline pass's own quality numbers and time (`quality`, `eval_s`):
the reference method's row reuses them instead of scoring the same model on the same tokens
again.
Size: 2 bytes x vocab per scored token (about 0.8 GB for 8,192 tokens of a 49k vocabulary).
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from qcompare.core import diskspace


class ReferenceWriter:
    def __init__(self, folder: Path, n_scored: int, vocab: int):
        self.folder = folder
        path = folder / "logprobs.npy"
        self.logprobs = np.lib.format.open_memmap(path, mode="w+", dtype=np.float16,
                                                  shape=(n_scored, vocab))
        with open(path, "r+b") as f:           # a sparse file until its blocks are reserved
            diskspace.reserve(f.fileno(), os.fstat(f.fileno()).st_size, path,
                              "the baseline's log-probabilities")
        self.targets = np.zeros(n_scored, dtype=np.int64)
        self.pos = 0
        self.nll: np.ndarray | None = None   # the pass's per-token NLL, saved beside when set
        self.meta: dict = {}          # more facts for meta.json, known once the pass is done

    def append(self, logp16: np.ndarray, targets: np.ndarray) -> None:
        n = logp16.shape[0]
        self.logprobs[self.pos:self.pos + n] = logp16
        self.targets[self.pos:self.pos + n] = targets
        self.pos += n


class ReferenceReader:
    def __init__(self, folder: Path):
        self.meta = json.loads((folder / "meta.json").read_text())
        self.logprobs = np.load(folder / "logprobs.npy", mmap_mode="r")
        self.targets = np.load(folder / "targets.npy")
        nll = folder / "nll.npy"
        self.nll = np.load(nll) if nll.is_file() else None

    def rows(self, start: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        return np.array(self.logprobs[start:start + n]), self.targets[start:start + n]


class ReferenceStore:
    def __init__(self, state_dir: str | os.PathLike):
        self.dir = Path(state_dir) / "baselines"

    def folder(self, key: str) -> Path:
        return self.dir / key

    def exists(self, key: str) -> bool:
        return (self.folder(key) / "meta.json").is_file()

    @contextlib.contextmanager
    def lock(self, key: str):
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / f".{key}.lock", "w") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            yield

    @contextlib.contextmanager
    def write(self, key: str, n_scored: int, vocab: int, meta: dict):
        """Yields a ReferenceWriter; the folder appears only if the block completes."""
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=self.dir, prefix=f".{key}-pid{os.getpid()}-"))
        try:
            w = ReferenceWriter(tmp, n_scored, vocab)
            yield w
            if w.pos != n_scored:
                raise RuntimeError(f"reference has {w.pos} of {n_scored} scored tokens")
            w.logprobs.flush()
            del w.logprobs
            np.save(tmp / "targets.npy", w.targets)
            if w.nll is not None:
                np.save(tmp / "nll.npy", np.asarray(w.nll, dtype=np.float64))
            (tmp / "meta.json").write_text(json.dumps({**meta, **w.meta, "n_scored": n_scored,
                                                       "vocab": vocab}, indent=1))
            final = self.folder(key)
            if final.exists():          # side files (pieces, noise floor; from a demo pack
                for p in final.iterdir():       # without log-probabilities) stay with the pass
                    if p.is_file() and not (tmp / p.name).exists():
                        os.replace(p, tmp / p.name)
                shutil.rmtree(final)
            os.replace(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def read(self, key: str) -> ReferenceReader:
        return ReferenceReader(self.folder(key))


def ensure_pieces(state_dir: str | os.PathLike, reference_key: str, pieces: list[str],
                  windows) -> Path | None:
    """Write pieces.json beside a baseline pass if it is not there (atomic); None when the
    baseline folder does not exist."""
    folder = Path(state_dir) / "baselines" / reference_key
    path = folder / "pieces.json"
    if path.is_file() or not folder.is_dir():
        return path if path.is_file() else None
    scored = [p for w in windows for p in range(w.start + w.score_from, w.end)]
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".pieces-pid{os.getpid()}-", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"pieces": pieces, "scored": scored}, f, ensure_ascii=False)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
