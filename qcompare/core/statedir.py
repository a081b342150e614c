"""The state folder: where qcompare keeps its job table, results, baselines and converted
models. $QCOMPARE_HOME (the CLI's --home), else the repository's data/ folder."""
from __future__ import annotations

import os
from pathlib import Path


def default_state_dir() -> Path:
    env = os.environ.get("QCOMPARE_HOME")
    return Path(env).expanduser() if env else Path(__file__).resolve().parents[2] / "data"
