"""Advisory file locks (flock) that mark work in progress: a runner serving a state folder, a
model being converted, a baseline being computed."""
from __future__ import annotations

import fcntl
from pathlib import Path


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
