"""Advisory file locks (flock) that mark work in progress: a runner serving a state folder, a
model being converted, a baseline being computed."""
from __future__ import annotations

import contextlib
import fcntl
from pathlib import Path


@contextlib.contextmanager
def exclusive(lock: str | Path):
    """Hold an exclusive flock on `lock` (created if missing) for the block."""
    with open(lock, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def held(lock: str | Path) -> bool:
    """True when another open file description holds an flock on `lock` (False if it does not
    exist). Probing takes and at once releases the lock."""
    path = Path(lock)
    if not path.exists():
        return False
    with open(path, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(f, fcntl.LOCK_UN)
    return False
