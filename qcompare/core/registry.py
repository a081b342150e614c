"""Method registry: kebab-case name -> "module:Class", imported only when asked for.

The table is explicit and loud: a name that does not import, or whose class is not a Method of
that name, raises (and fails the registry test) instead of silently disappearing.
"""
from __future__ import annotations

import difflib
import functools
import importlib
import itertools

from qcompare.core.errors import UserError
from qcompare.core.method import Method

# The unquantized reference every other method is measured against.
BASELINE = "fp32"
# The method a mixed-precision recipe (a bits map from a sensitivity sweep) runs as.
RECIPE = "mixed"

METHODS: dict[str, str] = {
    "fp32": "qcompare.methods.baselines:FP32",
    "bf16": "qcompare.methods.baselines:BF16",
    "fp16": "qcompare.methods.baselines:FP16",
    "fp8": "qcompare.methods.fp8:FP8",
    "rtn": "qcompare.methods.rtn:RTN",
    "rtn-mse": "qcompare.methods.rtn_mse:RTNMSE",
    "bnb-int8": "qcompare.methods.bnb:BnbInt8",
    "bnb-nf4": "qcompare.methods.bnb:BnbNF4",
    "bnb-fp4": "qcompare.methods.bnb:BnbFP4",
    "torchao-int8wo": "qcompare.methods.torchao:TorchAoInt8WeightOnly",
    "torchao-int8dq": "qcompare.methods.torchao:TorchAoInt8Dynamic",
    "torchao-int4wo": "qcompare.methods.torchao:TorchAoInt4WeightOnly",
    "torch-dynamic-int8": "qcompare.methods.torch_dynamic:TorchDynamicInt8",
    "hqq": "qcompare.methods.hqq:HQQ",
    "gguf": "qcompare.methods.gguf:GGUF",
    "llmc-gptq": "qcompare.methods.llmc:LlmcGPTQ",
    "llmc-awq": "qcompare.methods.llmc:LlmcAWQ",
    "gptq": "qcompare.methods.gptq:GPTQ",
    "awq": "qcompare.methods.awq:AWQ",
    "w8a8": "qcompare.methods.w8a8:W8A8",
    "smoothquant": "qcompare.methods.smoothquant:SmoothQuant",
    "spqr": "qcompare.methods.spqr:SpQR",
    "qat": "qcompare.methods.qat:QAT",
    "mixed": "qcompare.methods.mixed:Mixed",
}


def names() -> list[str]:
    return list(METHODS)


@functools.lru_cache(maxsize=1)          # the table is fixed: the Jobs page asks every refresh
def stage_patterns() -> tuple[tuple[str, str], ...]:
    """Every registered method's own progress lines (`Method.stages`), for `i18n.stages.text`."""
    seen: dict[tuple[str, str], None] = {}
    for n in METHODS:
        seen.update(dict.fromkeys(get(n).stages))
    return tuple(seen)


@functools.lru_cache(maxsize=1)          # asked at every MixedConfig parse
def unit_quantizers() -> tuple[str, ...]:
    """The methods that can quantize one Linear alone (`Method.unit_quantizer`): the quantizers
    mixed precision and sensitivity sweeps offer."""
    return tuple(n for n in METHODS if get(n).unit_quantizer)


def get(name: str) -> type[Method]:
    """The Method class registered as `name`; unknown names get a 'did you mean' message."""
    target = METHODS.get(name)
    if target is None:
        close = difflib.get_close_matches(name, METHODS, n=3, cutoff=0.5)
        raise UserError(key="errors.unknown_method_close" if close else "errors.unknown_method",
                        name=repr(name), close=" or ".join(close), known=", ".join(METHODS))
    module_name, _, cls_name = target.partition(":")
    cls = getattr(importlib.import_module(module_name), cls_name)
    if not (isinstance(cls, type) and issubclass(cls, Method)):
        raise TypeError(f"{target} is not a qcompare Method subclass")
    if cls.name != name:
        raise TypeError(f"{target} declares name {cls.name!r} but is registered as {name!r}")
    return cls


def all_methods() -> list[type[Method]]:
    return [get(n) for n in METHODS]


def parse_method_arg(text: str):
    """'rtn:bits=4,group_size=128' -> MethodSpec with options validated by the method's config.
    A value may be JSON with commas inside braces ('mixed:bits_map={"0":8,"3":2}')."""

    name, _, opts = text.partition(":")
    raw = {}
    for part in filter(None, (p.strip() for p in split_top_level(opts))):
        key, eq, value = part.partition("=")
        if not eq:
            raise UserError(key="errors.option_form", part=repr(part))
        raw[key.strip()] = value.strip()
    return make_method_spec(name.strip(), raw)


def split_top_level(text: str) -> list[str]:
    """`text` split at the commas that are not inside {...} or [...]."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch in "{[":
            depth += 1
        elif ch in "}]":
            depth = max(depth - 1, 0)
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def make_method_spec(name: str, raw: dict):
    """Validate options against the method's config and keep every field (defaults included),
    so that `rtn` and `rtn:bits=4` (the default) are one spec and one cache key."""
    from dataclasses import asdict

    from qcompare.core.specs import MethodSpec

    cls = get(name)
    config = cls.config_cls.parse(raw)
    return MethodSpec.of(name, **asdict(config))


def method_variants(name: str, chosen: dict[str, list]):
    """The cartesian product of the values chosen for each option, each validated."""
    keys = sorted(chosen)
    return [make_method_spec(name, dict(zip(keys, combo)))
            for combo in itertools.product(*(chosen[k] for k in keys))]
