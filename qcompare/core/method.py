"""The method contract: a config of documented options, what the method needs, and `build`.

A method turns a model source into a runtime ready to evaluate (`qcompare.runtime`), and
reports how it is stored (`weights_bytes`, counted by `qcompare.runtime.storage`), what ran
(`kernel`: real | dequantized | simulated) and per-layer notes. `refusal(spec)` says before any
work whether it can take a request at all.
Modules under qcompare.methods import their heavy libraries inside methods, never at import
time, so listing methods stays cheap.
"""
from __future__ import annotations

import importlib.util
import math
from collections.abc import Callable
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

from qcompare.core.errors import Message, UserError
from qcompare.core.runtime import Runtime
from qcompare.core.specs import RunSpec


@dataclass(frozen=True)
class MethodConfig:
    """Options of a method: each field has metadata `help` and, where fixed, `choices`."""

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise UserError(key="errors.option_finite", name=f.name, value=repr(value))
            choices = _choices(f)
            if choices is not None and value not in choices:
                raise UserError(key="errors.option_choice", name=f.name,
                                choices=", ".join(map(str, choices)), value=repr(value))
            low = f.metadata.get("min")
            if low is not None and value < low:
                raise UserError(key="errors.option_min", name=f.name, low=low, value=repr(value))
            high = f.metadata.get("max")
            if high is not None and value > high:
                raise UserError(key="errors.option_max", name=f.name, high=high, value=repr(value))

    @classmethod
    def option_table(cls) -> list[dict]:
        """One dict per option: name, label (words), type, default, help, choices (for forms
        and `methods`). A boolean option always has its two values as choices."""
        out = []
        for f in fields(cls):
            default = f.default if f.default is not MISSING else None
            choices = _choices(f)
            if choices is None and isinstance(default, bool):
                choices = (False, True)
            out.append({"name": f.name, "label": f.metadata.get("label") or _words(f.name),
                        "type": type(default).__name__, "default": default,
                        "help": f.metadata.get("help", ""), "choices": choices})
        return out

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> MethodConfig:
        """Build from strings or values, coercing each to its field's type; unknown keys refused."""
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(raw) - set(known))
        if unknown:
            raise UserError(key="errors.option_unknown" if known else "errors.option_unknown_none",
                            names=", ".join(unknown), listed=", ".join(known))
        values = {}
        for name, value in raw.items():
            values[name] = _coerce(name, value, type(known[name].default))
        return cls(**values)


def _choices(f) -> tuple | None:
    """A field's fixed values: metadata `choices`, a tuple or a function returning one (for
    choices known only once the registry is loaded, such as the methods that quantize a unit)."""
    choices = f.metadata.get("choices")
    return tuple(choices()) if callable(choices) else choices


ACRONYMS = {"lm": "LM", "kd": "KD", "mse": "MSE", "qat": "QAT", "ptq": "PTQ"}


def _words(name: str) -> str:
    """'include_lm_head' -> 'Include LM head'."""
    words = [ACRONYMS.get(w, w) for w in name.split("_")]
    return " ".join([words[0][:1].upper() + words[0][1:]] + words[1:])


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
        raise UserError(key=f"errors.option_type_{typ.__name__}", name=name,
                        value=repr(value)) from None
    return text


@dataclass(frozen=True)
class Needs:
    packages: tuple[str, ...] = ()          # import names that must be installed
    calibration: bool | str = False         # True: always calibrates; "option": when it is on
    devices: tuple[str, ...] = ("cpu", "cuda")
    install: str = ""                       # what to pip install, when not the import name


@dataclass
class Built:
    """A model ready for evaluation, with the facts the result row reports about it."""

    runtime: Runtime                         # what the worker scores and generates through
    weights_bytes: int                       # bytes the stored format takes
    kernel: str                              # real | dequantized | simulated
    storage: str                             # real | simulated
    compute_dtype: str
    library: str = "torch"
    notes: str = ""
    layers: list[dict] = field(default_factory=list)   # per-layer diagnostics


@dataclass
class BuildContext:
    """What the worker hands every method, the same for all: the whole request (`spec`), the
    loaders and a progress callback. A method derives anything else it needs from the spec."""

    spec: RunSpec
    load_model: Callable[..., Any]           # (dtype name, **from_pretrained) -> model on the device
    tokenizer: Any
    progress: Callable[[str, float], None] = lambda stage, fraction: None
    workdir: str = ""                        # this run's own scratch folder
    state_dir: str = ""                      # the state folder (shared, cached artefacts)
    calibration: Callable[[], Any] | None = None   # () -> LongTensor [samples, seq_len]
    calibration_label: str = ""

    @property
    def device(self) -> str:
        return self.spec.eval.device

    @property
    def dtype(self) -> str:
        """Compute dtype for methods that dequantize."""
        return self.spec.eval.dtype

    def calibration_ids(self):
        """The calibration token ids; a clear error when the job carries no calibration spec."""
        if self.calibration is None:
            raise UserError(key="errors.no_calibration_spec")
        return self.calibration()


class Method:
    """Base class: subclasses set the class attributes and implement `build`."""

    name: str = ""
    family: str = ""
    summary: str = ""
    config_cls: type[MethodConfig] = MethodConfig
    needs: Needs = Needs()
    fixed_dtype: str | None = None           # methods that are a dtype (fp32/bf16/fp16)
    is_reference: bool = False               # builds exactly the baseline pass's model
    key_options: tuple[str, ...] = ()        # options always shown in short labels
    # how slow a run is on a CPU beside the others, for the queue order (cheap first):
    # 1 = a few seconds to build and plain kernels; methods with slow builds or kernels say more
    cpu_cost: int = 1
    # Can this method quantize one Linear alone, outside a model? Mixed precision and the
    # sensitivity sweep ask this instead of naming methods; a unit quantizer implements
    # `unit_options`, `quantize_unit` and `unit_storage_bits`.
    unit_quantizer: bool = False
    # (regex, catalogue key) of the progress lines this method's build reports beyond the
    # shared ones (`i18n.stages.STAGES`), so the Jobs page shows them in the page's language
    stages: tuple[tuple[str, str], ...] = ()

    @classmethod
    def unit_options(cls, bits: int, symmetric: bool, group_size: int, damp: float) -> dict:
        """This method's own options for one unit setting (group_size 0: per output channel);
        the method built with them quantizes every Linear as `quantize_unit` does."""
        raise NotImplementedError(f"{cls.name} does not quantize a Linear alone")

    @classmethod
    def quantize_unit(cls, W, H, bits: int, symmetric: bool, group_size: int, damp: float):
        """W_hat (W's shape, fp32, dequantized) of one Linear's weight W [out, in]; H is the
        Hessian of its inputs (2/N sum x x^T) for methods that calibrate, else unused. W is
        not changed."""
        raise NotImplementedError(f"{cls.name} does not quantize a Linear alone")

    @classmethod
    def unit_storage_bits(cls, rows: int, cols: int, bits: int, symmetric: bool,
                          group_size: int) -> int:
        """Stored bits of one [rows x cols] Linear at this setting (codes, scales, zeros)."""
        raise NotImplementedError(f"{cls.name} does not quantize a Linear alone")

    @classmethod
    def short_label(cls, options: dict) -> str:
        """'rtn 4-bit…'-style label: the key options, then any option not at its default."""
        defaults = {o["name"]: o["default"] for o in cls.config_cls.option_table()}
        shown = [f"{k}={options[k]}" for k in cls.key_options if k in options]
        shown += [f"{k}={v}" for k, v in sorted(options.items())
                  if k not in cls.key_options and defaults.get(k) != v]
        return " ".join([cls.name] + shown)

    @classmethod
    def chart_label(cls, options: dict) -> str:
        """The short label a chart puts beside a point: the name and the key options in a
        compact form ('gptq 4b g128'); methods may override it."""
        parts = [cls.name]
        for k in cls.key_options:
            if k not in options:
                continue
            v = options[k]
            if k == "bits":
                parts.append(f"{v}b")
            elif k == "group_size":
                if options.get("granularity", "group") == "group":
                    parts.append(f"g{v}" if v else "per-channel")
            elif k == "granularity":
                if v != "group":
                    parts.append(f"per-{v}")
            else:
                parts.append(str(v))
        if options.get("symmetric") is False:
            parts.append("asym")
        return " ".join(parts)

    @classmethod
    def may_calibrate(cls) -> bool:
        """Whether some run of this method draws calibration text (for listings)."""
        return bool(cls.needs.calibration)

    @classmethod
    def calibrates(cls, options: dict) -> bool:
        """Whether a run with these options draws calibration text: always, never, or when
        the option named by `needs.calibration` is on (the spec then carries calibration
        only when it is used)."""
        flag = cls.needs.calibration
        if isinstance(flag, str):
            return bool(getattr(cls.config_cls.parse(options), flag))
        return bool(flag)

    @classmethod
    def queue_rank(cls, options: dict) -> int:
        """Where a run goes in a submitted batch (lower first): the reference before all
        (every other run needs its baseline pass, and it is the chart's first point), then by
        `cpu_cost`, calibrating runs after the rest, so the chart fills in quickly."""
        if cls.is_reference:
            return 0
        return cls.cpu_cost + (2 if cls.calibrates(options) else 0)

    @classmethod
    def sizing_tensors(cls, options: dict, shape) -> list:
        """The tensors this variant stores for a model of `shape` (`qcompare.decide.sizing`); a method
        that unties the LM head from the embedding says so here."""
        return shape.tensors()

    @classmethod
    def stored_bits(cls, options: dict, tensor, shape) -> float | None:
        """Bits this variant stores for one tensor (`qcompare.core.shape.Tensor`) of a model of
        `shape`, by the same accounting `build` reports `weights_bytes` with: codes, scales,
        zero points, outliers, and tensors left unquantized at the dtype they are held in.
        Torch-free: the memory calculator adds these up for any model without building it.
        None: no rule (the calculator then says it cannot size this method)."""
        return None

    def __init__(self, config: MethodConfig | None = None):
        self.config = config if config is not None else self.config_cls()

    @classmethod
    def unavailable_reason(cls, device: str = "cpu") -> str | None:
        """A sentence a person can act on, or None when the method can run on `device`."""
        if device not in cls.needs.devices:
            return Message("errors.device_only", name=cls.name,
                           devices=" / ".join(cls.needs.devices), device=device)
        for pkg in cls.needs.packages:
            if importlib.util.find_spec(pkg) is None:
                return Message("errors.needs_package", name=cls.name, pkg=pkg,
                               install=cls.needs.install or pkg)
        if device == "cuda" and not _cuda_visible():
            return Message("errors.no_cuda")
        return None

    @classmethod
    def refusal(cls, spec: RunSpec) -> str | None:
        """Why this method cannot take this whole request (model and its source, device, dtype,
        options), or None. Cheap and torch-free: called at submission, before any job is
        queued, and again in the worker before any work. Subclasses add their own checks
        (`request_problem`) on top of the device and package checks."""
        return cls.unavailable_reason(spec.eval.device) or cls.request_problem(spec)

    @classmethod
    def request_problem(cls, spec: RunSpec) -> str | None:
        """A method's own refusal of a request it cannot serve (default: none)."""
        return None

    def build(self, ctx: BuildContext) -> Built:
        raise NotImplementedError


def _cuda_visible() -> bool:
    """True when an NVIDIA driver is present, checked without importing torch."""
    import os
    return os.path.exists("/proc/driver/nvidia/version")
