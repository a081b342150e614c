"""A path a person typed (a model folder or file, a corpus file), made absolute once, with a
clear refusal where the operating system cannot make it one."""
from __future__ import annotations

from pathlib import Path

from qcompare.core.errors import UserError


def user_path(arg: str) -> Path:
    """`arg` with '~' expanded and links followed; an unknown '~user' or a symlink loop is
    refused with what to type instead, rather than a traceback."""
    try:
        p = Path(arg).expanduser()
    except RuntimeError:              # '~nosuchuser/...': no such user's home
        raise UserError(key="errors.path_home", path=arg) from None
    try:
        return p.resolve()
    except (RuntimeError, OSError) as e:    # a symlink loop (RuntimeError on 3.11, OSError later)
        raise UserError(key="errors.path_loop", path=arg, error=e) from None
