"""Effort presets: named sets of values, read back from a spec's own values, without changing
the cache key of any question asked before they existed."""
from dataclasses import replace

import pytest

from qcompare.core import effort
from qcompare.core.errors import UserError
from qcompare.core.specs import CalibSpec, CorpusSpec, EvalSpec, MethodSpec, ModelSpec, RunSpec


def _spec(ev, calib=None, method="rtn"):
    return RunSpec(model=ModelSpec(fingerprint="f"), method=MethodSpec.of(method),
                   corpus=CorpusSpec(content_sha256="c"), eval=ev, calib=calib)


def test_thorough_is_the_old_default_and_quick_is_smaller():
    assert effort.eval_spec("thorough") == EvalSpec()
    assert effort.calib_spec("thorough", CorpusSpec()) == CalibSpec()
    q = effort.eval_spec("quick")
    assert q.tokens < EvalSpec().tokens and q.speed_new_tokens < EvalSpec().speed_new_tokens
    assert q.window == EvalSpec().window and q.protocol == EvalSpec().protocol


def test_a_rows_effort_is_read_from_its_values():
    corpus = CorpusSpec()
    assert effort.effort_of(_spec(EvalSpec())) == "thorough"           # rows from before efforts
    assert effort.effort_of(_spec(effort.eval_spec("quick"))) == "quick"
    quick_cal = effort.calib_spec("quick", corpus)
    assert effort.effort_of(_spec(effort.eval_spec("quick"), quick_cal, "gptq")) == "quick"
    # a quick evaluation with thorough calibration, or one changed value, is custom
    assert effort.effort_of(_spec(effort.eval_spec("quick"), CalibSpec(), "gptq")) == "custom"
    assert effort.effort_of(_spec(replace(EvalSpec(), tokens=4096))) == "custom"
    # the choices that are not part of an effort do not change it
    assert effort.effort_of(_spec(replace(effort.eval_spec("quick"), device="cuda"))) == "quick"
    with pytest.raises(UserError, match="unknown effort"):
        effort.get("fast")


def test_new_fields_at_their_default_leave_old_keys_alone():
    spec = _spec(EvalSpec())
    assert "speed_spread" not in spec.to_json()
    # the key of this question as it was computed before speed_spread existed
    assert spec.key() == _spec(replace(EvalSpec(), speed_spread=0.0)).key()
    quick = _spec(effort.eval_spec("quick"))
    assert '"speed_spread":0.1' in quick.to_json()
    assert RunSpec.from_json(quick.to_json()) == quick
    # the baseline of a quick run does not depend on its speed settings
    assert quick.reference_key() == _spec(replace(EvalSpec(), tokens=2048)).reference_key()


def test_cli_effort_sets_the_values_and_flags_override_them(tiny_model_dir):
    from qcompare.cli.commands import _specs_from_args, build_parser

    args = build_parser().parse_args(["sweep", "--model", str(tiny_model_dir), "--effort", "quick",
                                      "--method", "gptq"])
    (spec,) = _specs_from_args(args, args.method)
    assert effort.effort_of(spec) == "quick" and spec.calib.samples == 8
    args = build_parser().parse_args(["sweep", "--model", str(tiny_model_dir), "--effort", "quick",
                                      "--tokens", "1024", "--method", "rtn"])
    (spec,) = _specs_from_args(args, args.method)
    assert spec.eval.tokens == 1024 and spec.eval.speed_new_tokens == 32
    assert effort.effort_of(spec) == "custom"


def test_the_home_button_and_the_cli_preset_ask_the_same_questions():
    from qcompare.cli.commands import _specs_from_args, build_parser
    from qcompare.core.presets import preset_methods
    from qcompare.jobs.submit import preset_specs

    home = preset_specs("default", "quick")
    args = build_parser().parse_args(["sweep", "--preset", "default", "--effort", "quick"])
    cli = _specs_from_args(args, [m.label for m in preset_methods("default", "cpu")], [])
    assert [s.key() for s in home] == [s.key() for s in cli]
    assert {effort.effort_of(s) for s in home} == {"quick"}
