"""The method contract: a config of documented options, what the method needs, and `build`.

A method turns a model source into a model ready to evaluate, and reports how it is stored
(`weights_bytes`), what ran (`kernel`: real | dequantized | simulated) and per-layer notes.
Modules under qcompare.methods import their heavy libraries inside methods, never at import
time, so listing methods stays cheap.
"""
from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

from qcompare.errors import UserError


@dataclass(frozen=True)
class MethodConfig:
    """Options of a method: each field has metadata `help` and, where fixed, `choices`."""

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            choices = f.metadata.get("choices")
            if choices is not None and value not in choices:
                raise UserError(f"option {f.name} must be one of {', '.join(map(str, choices))}; "
                                f"got {value!r}.")
            low = f.metadata.get("min")
            if low is not None and value < low:
                raise UserError(f"option {f.name} must be at least {low}; got {value!r}.")

    @classmethod
    def describe(cls) -> list[dict]:
        """One dict per option: name, type, default, help, choices (for forms and `methods`)."""
        out = []
        for f in fields(cls):
            default = f.default if f.default is not MISSING else None
            out.append({"name": f.name, "type": type(default).__name__, "default": default,
                        "help": f.metadata.get("help", ""), "choices": f.metadata.get("choices")})
        return out

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> MethodConfig:
        """Build from strings or values, coercing each to its field's type; unknown keys refused."""
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(raw) - set(known))
        if unknown:
            listed = ", ".join(known) or "none"
            raise UserError(f"unknown option(s) {', '.join(unknown)}; this method takes: {listed}.")
        values = {}
        for name, value in raw.items():
            values[name] = _coerce(name, value, type(known[name].default))
        return cls(**values)


def _coerce(name: str, value: Any, typ: type) -> Any:
    if isinstance(value, typ) and not (typ is int and isinstance(value, bool)):
        return value
    text = str(value).strip()
    try:
        if typ is bool:
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if typ is int:
            return int(text)
        if typ is float:
            return float(text)
    except ValueError:
        raise UserError(f"option {name} needs a {typ.__name__}; got {value!r}.") from None
    return text


@dataclass(frozen=True)
class Needs:
    packages: tuple[str, ...] = ()          # import names that must be installed
    calibration: bool = False               # needs calibration text
    devices: tuple[str, ...] = ("cpu", "cuda")
    install: str = ""                       # what to pip install, when not the import name


@dataclass
class Built:
    """A model ready for evaluation, with the facts the result row reports about it."""

    model: Any                               # callable like a transformers CausalLM
    weights_bytes: int                       # bytes the stored format takes
    kernel: str                              # real | dequantized | simulated
    storage: str                             # real | simulated
    compute_dtype: str
    library: str = "torch"
    backend: str = ""                        # what ran, when not plain transformers + torch
    notes: str = ""
    layers: list[dict] = field(default_factory=list)   # per-layer diagnostics


@dataclass
class BuildContext:
    """What the worker hands a method: loaders and a progress callback, no globals."""

    load_model: Callable[..., Any]           # (dtype name, **from_pretrained) -> model on the device
    tokenizer: Any
    device: str
    progress: Callable[[str, float], None]
    dtype: str = "float32"                   # compute dtype for methods that dequantize
    workdir: str = ""
    calibration: Callable[[], Any] | None = None   # () -> LongTensor [samples, seq_len]
    calibration_label: str = ""
    source_gguf: str = ""                    # the .gguf the model comes from, if any
    threads: int = 0                         # CPU threads asked for (0: all)
    max_context: int = 512                   # longest sequence the evaluation feeds at once
    text: str = ""                           # the evaluation corpus text (tokenizer checks)

    def calibration_ids(self):
        """The calibration token ids; a clear error when the job carries no calibration spec."""
        if self.calibration is None:
            raise UserError("this method calibrates, but the run has no calibration spec: "
                            "submit it through qcompare (the CLI or the dashboard).")
        return self.calibration()


class Method:
    """Base class: subclasses set the class attributes and implement `build`."""

    name: str = ""
    family: str = ""
    summary: str = ""
    config_cls: type[MethodConfig] = MethodConfig
    needs: Needs = Needs()
    fixed_dtype: str | None = None           # methods that are a dtype (fp32/bf16/fp16)
    key_options: tuple[str, ...] = ()        # options always shown in short labels

    @classmethod
    def short_label(cls, options: dict) -> str:
        """'rtn 4-bit…'-style label: the key options, then any option not at its default."""
        defaults = {o["name"]: o["default"] for o in cls.config_cls.describe()}
        shown = [f"{k}={options[k]}" for k in cls.key_options if k in options]
        shown += [f"{k}={v}" for k, v in sorted(options.items())
                  if k not in cls.key_options and defaults.get(k) != v]
        return " ".join([cls.name] + shown)

    @classmethod
    def calibrates(cls, options: dict) -> bool:
        """Whether a run with these options draws calibration text (a method whose calibration
        is an option overrides this; the spec then carries calibration only when it is used)."""
        return cls.needs.calibration

    def __init__(self, config: MethodConfig | None = None):
        self.config = config if config is not None else self.config_cls()

    @classmethod
    def unavailable_reason(cls, device: str = "cpu") -> str | None:
        """A sentence a person can act on, or None when the method can run on `device`."""
        if device not in cls.needs.devices:
            return f"{cls.name} runs on {' or '.join(cls.needs.devices)} only, not {device}."
        for pkg in cls.needs.packages:
            if importlib.util.find_spec(pkg) is None:
                return f"{cls.name} needs the '{pkg}' package: pip install {cls.needs.install or pkg}."
        if device == "cuda" and not _cuda_visible():
            return "needs CUDA, and no NVIDIA GPU is visible on this machine."
        return None

    def build(self, ctx: BuildContext) -> Built:
        raise NotImplementedError


def _cuda_visible() -> bool:
    """True when an NVIDIA driver is present, checked without importing torch."""
    import os
    return os.path.exists("/proc/driver/nvidia/version")


def set_module(root, name: str, module) -> None:
    """Replace the submodule at dotted `name` (e.g. model.layers.0.mlp.up_proj)."""
    parent, _, child = name.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, child, module)


def check_group_size(model, group_size: int, library: str) -> None:
    """Libraries that quantize groups of input columns need every quantized Linear's input size
    divisible by the group size, and some fail late or silently otherwise: say so before any
    work, with the sizes that would work."""
    import math

    import torch

    if not group_size:
        return
    head = model.get_output_embeddings()
    sizes = sorted({m.in_features for m in model.modules()
                    if isinstance(m, torch.nn.Linear) and m is not head})
    bad = [n for n in sizes if n % group_size]
    if bad:
        g = math.gcd(*sizes)
        ok = [d for d in (256, 128, 64, 32, 16) if g % d == 0]
        raise UserError(f"{library} needs every Linear's input size divisible by group_size "
                        f"{group_size}; this model has {', '.join(map(str, bad))}. Use group_size "
                        f"{' or '.join(map(str, ok)) or '0 (per channel)'}.")


def weights_bytes_of(model, bits_of: Callable[[str, Any], float] | None = None) -> int:
    """Bytes of every distinct parameter and buffer tensor (tied weights counted once).

    `bits_of(name, tensor)` may return the storage bits per element; default: the tensor's dtype.
    """
    seen: set[int] = set()
    total_bits = 0.0
    named = list(model.named_parameters(remove_duplicate=False))
    for name, t in named:
        ptr = t.data_ptr()
        if ptr in seen:
            continue
        seen.add(ptr)
        bits = bits_of(name, t) if bits_of else t.element_size() * 8
        total_bits += bits * t.numel()
    return int(round(total_bits / 8))
