"""Free disk space, checked before large writes so a full disk fails one job with a clear
message instead of killing the runner halfway through a write."""
from __future__ import annotations

import shutil
from pathlib import Path

from qcompare.core.errors import UserError

MB = 1_000_000
MIB = 2**20
HEADROOM = 16 * MB        # kept free for the job table, logs and result rows
FULL = 2 * MIB            # less than this free: the disk counts as full (a job cannot finish)


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


def is_full(folder: str | Path) -> bool:
    """Fewer than FULL bytes free where `folder` lives: too little for the job table's next
    writes, so a job that died now died of it."""
    return free_bytes(folder) < FULL


def reserve(fd: int, size: int, path: str | Path, what: str) -> None:
    """Allocate the blocks of a file about to be memory-mapped for writing, so that a disk
    filling later cannot kill the writer with SIGBUS at its first touch of a page: a disk
    already too small fails here, with the sizes, as a UserError."""
    import errno
    import os

    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as e:
        if e.errno != errno.ENOSPC:
            if e.errno in (errno.EOPNOTSUPP, errno.EINVAL):   # a file system without it
                return
            raise
        raise UserError(key="errors.disk_full", free=free_bytes(Path(path).parent) / MB,
                        folder=Path(path).parent, need=size / MB, what=what) from None
