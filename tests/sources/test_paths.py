"""Typed paths confined to allowed roots (a dashboard shared on a network)."""
import pytest

from qcompare.core.errors import UserError
from qcompare.sources import paths


def test_a_path_inside_a_root_passes_and_links_or_dotdot_out_of_it_do_not(tmp_path, monkeypatch):
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "models" / "m").mkdir(parents=True)
    outside.mkdir()
    (outside / "secret.txt").write_text("x")
    (root / "link").symlink_to(outside / "secret.txt")
    assert paths.confined(root / "models" / "m", [root], "0.0.0.0") == (root / "models" / "m").resolve()
    for escape in (root / "link", root / "models" / ".." / ".." / "outside" / "secret.txt",
                   outside / "secret.txt", tmp_path / "root-sibling"):
        with pytest.raises(UserError, match="outside the folders this shared dashboard may read"):
            paths.confined(escape, [root], "0.0.0.0")
    monkeypatch.setenv(paths.ROOTS_VARIABLE, f"{outside}")
    roots = paths.allowed_roots(root)
    assert roots[0] == root.resolve() and outside.resolve() in roots
    assert paths.confined(outside / "secret.txt", roots, "0.0.0.0")
