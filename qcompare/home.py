"""Where qcompare keeps its state: $QCOMPARE_HOME, else the repository's data/ folder."""
from __future__ import annotations

import os
from pathlib import Path


def default_home() -> Path:
    env = os.environ.get("QCOMPARE_HOME")
    return Path(env).expanduser() if env else Path(__file__).resolve().parents[1] / "data"
