"""Effort presets: how much measuring a run does, named so every row can say which it had.

An effort is a set of values for the fields that decide how long a run takes and how precise
its numbers are: the evaluated tokens, the speed protocol's prompt, new tokens, repeats and
early-stop spread, and the calibration set's size. Everything else (model, window, protocol,
device, dtype) is chosen separately.

* quick: the Home button's first answer on a laptop CPU: 2,048 evaluated tokens, a 128-token
  prompt and 32 new tokens, at most 3 speed repeats (stopping after 2 that agree within 10 %),
  8 x 256 calibration tokens.
* thorough: 8,192 tokens, a 256-token prompt and 64 new tokens, 3 repeats, 32 x 512
  calibration tokens (the defaults of EvalSpec and CalibSpec).

An effort is not a field of the spec: a row's effort is read back from its values
(`effort_of`), so rows measured before efforts had names are labelled by what they did, the
cache key of a question does not depend on how it was asked, and a run with any value changed
by hand is "custom". How far quick's numbers are from thorough's is measured in BENCHMARKS.md
(bench/default_comparison.py).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from qcompare.core.errors import UserError
from qcompare.core.specs import CalibSpec, CorpusSpec, EvalSpec, RunSpec

EVAL_FIELDS = ("tokens", "speed_prompt", "speed_new_tokens", "speed_repeats", "speed_spread")
CALIB_FIELDS = ("samples", "seq_len")
CUSTOM = "custom"


@dataclass(frozen=True)
class Effort:
    name: str
    eval: dict
    calib: dict
    summary: str


_E, _C = EvalSpec(), CalibSpec()
EFFORTS: dict[str, Effort] = {
    "quick": Effort("quick", {"tokens": 2048, "speed_prompt": 128, "speed_new_tokens": 32,
                              "speed_repeats": 3, "speed_spread": 0.10},
                    {"samples": 8, "seq_len": 256},
                    "a first answer in minutes: 2,048 tokens, short speed runs, 8 x 256 "
                    "calibration tokens"),
    "thorough": Effort("thorough", {f: getattr(_E, f) for f in EVAL_FIELDS},
                       {f: getattr(_C, f) for f in CALIB_FIELDS},
                       "4x the tokens and calibration text: tighter error bars, slower"),
}
DEFAULT_EFFORT = "thorough"


def get(name: str) -> Effort:
    if name not in EFFORTS:
        raise UserError(key="errors.effort", name=repr(name), efforts=", ".join(EFFORTS))
    return EFFORTS[name]


def eval_spec(name: str, base: EvalSpec | None = None) -> EvalSpec:
    """`base` (default EvalSpec()) with the effort's evaluation values."""
    return replace(base or EvalSpec(), **get(name).eval)


def calib_spec(name: str, corpus: CorpusSpec, base: CalibSpec | None = None) -> CalibSpec:
    """`base` (default: CalibSpec on `corpus`) with the effort's calibration size."""
    return replace(base or CalibSpec(corpus=corpus), **get(name).calib)


def effort_of(spec: RunSpec) -> str:
    """The effort whose values this spec has (calibration compared only when it has one), or
    "custom"."""
    for e in EFFORTS.values():
        if any(getattr(spec.eval, f) != v for f, v in e.eval.items()):
            continue
        if spec.calib is not None and any(getattr(spec.calib, f) != v for f, v in e.calib.items()):
            continue
        return e.name
    return CUSTOM
