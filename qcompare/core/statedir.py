"""The state folder: where qcompare keeps its job table, results, baselines and converted
models. $QCOMPARE_HOME (the CLI's --home), else the repository's data/ folder. It is made
absolute once, here, so a runner or worker started from another working directory serves the
same folder."""
from __future__ import annotations

import os
from pathlib import Path

from qcompare.core.errors import UserError

PACKAGE = Path(__file__).resolve().parents[1]          # qcompare/: code, never state


def resolve(path: str | os.PathLike) -> Path:
    """`path` with '~' expanded, made absolute; refused inside the package's own folder."""
    try:
        p = Path(path).expanduser().resolve()
    except (RuntimeError, OSError):
        raise UserError(key="errors.path_home", path=str(path)) from None
    if p == PACKAGE or PACKAGE in p.parents:
        raise UserError(key="errors.home_in_package", path=p, package=PACKAGE)
    return p


def default_state_dir() -> Path:
    env = os.environ.get("QCOMPARE_HOME")
    return resolve(env) if env else PACKAGE.parent / "data"
