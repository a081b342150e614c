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


ROOTS_VARIABLE = "QCOMPARE_ALLOWED_ROOTS"


def hub_cache() -> Path:
    """The Hugging Face cache folder (HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub)."""
    import os

    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "huggingface")
    return Path(home).expanduser() / "hub"


def allowed_roots(state_dir: Path) -> list[Path]:
    """The folders a shared dashboard may read typed paths from: the state folder (its models/
    included), the Hugging Face cache, and the folders listed in QCOMPARE_ALLOWED_ROOTS
    (separated by the system's path separator, ':' on Linux), each resolved."""
    import os

    extra = [p for p in os.environ.get(ROOTS_VARIABLE, "").split(os.pathsep) if p.strip()]
    roots = []
    for p in [Path(state_dir), hub_cache(), *map(Path, extra)]:
        try:
            roots.append(p.expanduser().resolve())
        except (RuntimeError, OSError):
            continue
    return list(dict.fromkeys(roots))


def confined(path: Path, roots: list[Path], address: str) -> Path:
    """`path` (made absolute, links followed, so a link out of a root does not count as
    inside it) when it lies in one of `roots`; else a UserError naming the roots and how to
    add one. Used only when the dashboard listens on `address`, a non-loopback one."""
    real = user_path(str(path))
    if any(real == r or r in real.parents for r in roots):
        return real
    raise UserError(key="errors.path_not_allowed", path=path, address=address,
                    roots=", ".join(str(r) for r in roots), variable=ROOTS_VARIABLE)
