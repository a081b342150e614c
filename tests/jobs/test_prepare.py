"""One build path: every kind of job builds its model through `qcompare.jobs.prepare`, and a
request is validated once at submission and once in the worker."""
from __future__ import annotations

import ast
from pathlib import Path

from qcompare.core import registry
from qcompare.core.specs import CorpusSpec
from qcompare.jobs import prepare
from qcompare.jobs.submit import build_specs
from qcompare.sources import models

ROOT = Path(__file__).resolve().parents[2] / "qcompare"
# who may call these: the build path itself, the loader's own module, and methods (which get
# their loader through the BuildContext and call their own build steps)
BUILD_CALLS = {"load_model", "local_folder", "load_tokenizer", "BuildContext"}
ALLOWED = {"jobs/prepare.py", "sources/models.py", "core/method.py"}


def _calls(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call):
            f = node.func
            out.add(f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", ""))
    return out


def test_only_prepare_loads_and_builds_models():
    """No job, page helper or worker loads a checkpoint or makes a BuildContext by itself."""
    found = []
    for p in sorted(ROOT.rglob("*.py")):
        rel = p.relative_to(ROOT).as_posix()
        if rel in ALLOWED or rel.startswith("methods/"):
            continue
        hits = _calls(p) & BUILD_CALLS
        if hits:
            found.append(f"{rel}: {sorted(hits)}")
    assert found == []


def test_the_scan_sees_a_second_build_path(tmp_path):
    p = tmp_path / "x.py"
    p.write_text("from qcompare.sources import models\nmodels.load_model(1, 2, 3, 4)\n")
    assert _calls(p) & BUILD_CALLS == {"load_model"}


def test_a_request_is_checked_once_at_submission_and_once_in_the_worker(tiny_model_dir, tiny_eval,
                                                                       state_dir, monkeypatch):
    calls = {"unavailable": 0, "problem": 0, "parse": 0}
    cls = registry.get("rtn")
    for name, key in (("unavailable_reason", "unavailable"), ("request_problem", "problem")):
        original = getattr(cls, name).__func__

        def counted(c, *a, _original=original, _key=key, **kw):
            calls[_key] += 1
            return _original(c, *a, **kw)
        monkeypatch.setattr(cls, name, classmethod(counted))
    parse = cls.config_cls.parse.__func__

    def counted_parse(c, raw):
        calls["parse"] += 1
        return parse(c, raw)
    monkeypatch.setattr(cls.config_cls, "parse", classmethod(counted_parse))

    method = registry.make_method_spec("rtn", {"bits": 4, "group_size": 32})
    calls.update(unavailable=0, problem=0, parse=0)
    (spec,) = build_specs(models.model_from_arg(str(tiny_model_dir)), [method], CorpusSpec(),
                          tiny_eval)
    assert (calls["unavailable"], calls["problem"]) == (1, 1)
    calls.update(unavailable=0, problem=0, parse=0)
    opened = prepare.open_spec(spec, state_dir)
    assert (calls["unavailable"], calls["problem"], calls["parse"]) == (1, 1, 1)
    built = prepare.build(opened)
    assert built.kernel == "simulated" and built.weights_bytes > 0
    assert calls["parse"] == 1                      # building parses nothing again


def test_the_fingerprint_is_computed_once_per_content(tiny_model_dir, tmp_path):
    import shutil

    folder = tmp_path / "m"
    shutil.copytree(tiny_model_dir, folder)
    spec = models.model_from_arg(str(folder))
    first = models.resolve(spec).fingerprint
    misses = models._file_sha256_of.cache_info().misses
    assert models.resolve(spec).fingerprint == first
    assert models._file_sha256_of.cache_info().misses == misses      # no file hashed again
    cfg = folder / "config.json"
    cfg.write_text(cfg.read_text().replace('"hidden_act"', '"hidden_act" ', 1))
    assert models.resolve(spec).fingerprint != first                 # a changed file: anew
