"""Stale temporaries in the state folder: what a killed writer leaves behind, found and removed
when a runner starts.

Every writer names its temporary after its own process: `.<name>-pid<PID>-…` (a baseline's
log-probabilities, a converted model), `.tmp-pid<PID>-…` (a result row, its per-token scores, a calibration draw) and
`.<file>.pid<PID>.tmp` (a quantized GGUF file), and beside a baseline `.top-pid…`, `.pieces-pid…`,
`.noise-pid…` (its derived files). A temporary is stale when that process no
longer runs, or runs but started after the temporary was last written (its pid was reused).
Temporaries named before owners were recorded are stale when no process holds the lock file
of what they were writing (`.<name>.lock`, flock).
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path

from qcompare.core import locks

OWNER = re.compile(r"pid(\d+)")
# where writers put temporaries: folder -> pattern of the temporary names
PLACES = {"baselines": ".*-*", "models": ".*-*", "results": ".tmp-*", "tokens": ".tmp-*",
          "calibration": ".tmp-*", "baselines/*": ".*-pid*",      # top, pieces, noise files
          "models/gguf": ".*pid*",                   # a converter's view folder and output
          "machine": ".tmp-*", "work/*": ".*.tmp", "sensitivity": ".tmp-*",
          "generation": ".tmp-*", "generation/*": ".tmp-*"}


def _size(p: Path) -> int:
    if p.is_file():
        return p.stat().st_size
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())


def is_stale(p: Path) -> bool:
    """Whether temporary `p`'s writer is gone (module doc)."""
    import psutil

    m = OWNER.search(p.name)
    if m is None:                                   # a legacy name: ask the writer's lock
        if p.name.endswith(".lock"):
            return False
        stem = p.name[1:].rsplit("-", 1)[0]
        return not locks.held(p.parent / f".{stem}.lock")
    try:
        proc = psutil.Process(int(m.group(1)))
        return proc.status() == psutil.STATUS_ZOMBIE or proc.create_time() > p.stat().st_mtime + 1
    except psutil.Error:
        return True


def stale_temporaries(state_dir: str | Path) -> list[Path]:
    root, out = Path(state_dir), []
    for folder, pattern in PLACES.items():
        for base in root.glob(folder):
            out += [p for p in base.glob(pattern) if not p.name.endswith(".lock") and is_stale(p)]
    return sorted(out)


def clean(state_dir: str | Path) -> tuple[int, int]:
    """Remove stale temporaries; (how many, bytes freed)."""
    count = freed = 0
    for p in stale_temporaries(state_dir):
        try:
            size = _size(p)
            shutil.rmtree(p) if p.is_dir() else p.unlink()
        except OSError:
            continue
        count, freed = count + 1, freed + size
    return count, freed
