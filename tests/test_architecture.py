"""The folders' import directions (../shared/STYLE.md, 'The shape'): every import inside
`qcompare` points down the list of neighbourhoods below, never up or sideways across the top,
and no module reaches itself through its imports. Imports inside functions count too: a lazy
import is still a dependency. A method named by a registry string is not an import."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "qcompare"
# lowest first; a folder may import its own modules and any folder before it
ORDER = ("i18n", "core", "sources", "metrics", "runtime", "methods", "store", "stats", "charts",
         "decide", "recipes", "jobs", "explore", ("cli", "ui"))
RANK = {name: i for i, entry in enumerate(ORDER)
        for name in (entry if isinstance(entry, tuple) else (entry,))}


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 \
                and node.module.split(".")[0] == "qcompare":
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                out.add(sub if _exists(sub) else node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.split(".")[0] == "qcompare")
    return out


def _exists(module: str) -> bool:
    p = ROOT.parent / module.replace(".", "/")
    return p.with_suffix(".py").is_file() or (p / "__init__.py").is_file()


def _graph() -> dict[str, set[str]]:
    return {_module(p): _imports(p) for p in sorted(ROOT.rglob("*.py"))}


def folder(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in RANK) else ""


def upward(graph: dict[str, set[str]]) -> list[str]:
    """'a -> b' for every import of a folder above or beside the importer's."""
    bad = []
    for mod, deps in graph.items():
        src = folder(mod)
        for dep in sorted(deps):
            dst = folder(dep)
            if src and dst and dst != src and RANK[dst] >= RANK[src]:
                bad.append(f"{mod} -> {dep}")
    return bad


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected set of two or more modules (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))
    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_every_folder_is_ranked():
    folders = {p.parent.relative_to(ROOT).parts[0] for p in ROOT.rglob("*.py")
               if p.parent != ROOT}
    assert folders == set(RANK), "a new folder needs its place in ORDER"


def test_imports_point_down():
    assert upward(_graph()) == []


def test_no_circles():
    assert cycles(_graph()) == []


def test_at_most_eight_modules_at_the_top():
    assert len(list(ROOT.glob("*.py"))) <= 8


@pytest.mark.parametrize("pkg", ["core", "metrics", "methods", "charts", "jobs", "store",
                                 "stats", "sources", "runtime", "decide", "recipes", "explore",
                                 "cli", "i18n"])
def test_only_ui_imports_streamlit(pkg):
    for p in (ROOT / pkg).rglob("*.py"):
        tree = ast.parse(p.read_text(encoding="utf-8"))
        names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import)
                 for a in n.names}
        names |= {n.module.split(".")[0] for n in ast.walk(tree)
                  if isinstance(n, ast.ImportFrom) and n.module}
        assert "streamlit" not in names, p


def test_the_checks_can_fail():
    """The two checks find an upward arrow and a circle in a graph that has them."""
    g = {"qcompare.core.x": {"qcompare.jobs.y"}, "qcompare.jobs.y": {"qcompare.core.x"}}
    assert upward(g) == ["qcompare.core.x -> qcompare.jobs.y"]
    assert cycles(g) == [["qcompare.core.x", "qcompare.jobs.y"]]


def test_tests_mirror_the_folders():
    """tests/<folder>/ for a folder of qcompare; the rest are whole-product suites."""
    suites = {"app", "e2e", "integration", "reliability", "fixtures"}
    tests = Path(__file__).resolve().parent
    folders = {p.name for p in tests.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))}
    assert folders - suites <= set(RANK), sorted(folders - suites - set(RANK))
    assert not [p.name for p in tests.glob("test_*.py") if p.name != "test_architecture.py"]
