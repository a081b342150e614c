"""Free disk space, checked before large writes so a full disk fails one job with a clear
message instead of killing the runner halfway through a write."""
from __future__ import annotations

import shutil
from pathlib import Path

from qcompare.core.errors import UserError

MB = 1_000_000
HEADROOM = 16 * MB        # kept free for the job table, logs and result rows


def free_bytes(folder: str | Path) -> int:
    """Free bytes on the file system holding `folder` (or its nearest existing parent)."""
    p = Path(folder).resolve()
    while not p.exists() and p != p.parent:
        p = p.parent
    return shutil.disk_usage(p).free


def require(folder: str | Path, needed: int, what: str) -> None:
    """Raise a UserError unless `needed` bytes plus HEADROOM are free where `folder` lives."""
    free = free_bytes(folder)
    if free < needed + HEADROOM:
        raise UserError(key="errors.disk_full", free=free / MB, folder=folder,
                        need=(needed + HEADROOM) / MB, what=what)
