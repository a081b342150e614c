"""The question a run answers, as frozen, hashable specs.

A RunSpec names a model, a method with its options, a corpus and an evaluation protocol. Its
canonical JSON (sorted keys, no whitespace) includes PROTOCOL_VERSION, and its sha256 is the
cache key: the same question is never computed twice, and a change in how a metric is computed
(bump PROTOCOL_VERSION) never mixes with old rows. A field added later is marked `omit_default`
and left out of the JSON while it holds its default, so the keys of every earlier question stay
what they were.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from qcompare.core.errors import UserError

# Bump when any metric's definition or the evaluation protocol changes.
PROTOCOL_VERSION = 1

MODEL_SOURCES = ("embedded", "local", "hub", "gguf")
CORPUS_SOURCES = ("embedded", "file", "hf")
PROTOCOLS = ("disjoint", "llamacpp", "strided")
DEVICES = ("cpu", "cuda")
DTYPES = ("float32", "bfloat16", "float16")


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no whitespace: one text per value."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _check_choice(what: str, value: Any, choices: tuple) -> None:
    if value not in choices:
        raise UserError(key="errors.choice", what=what, choices=", ".join(map(str, choices)),
                        value=repr(value))


@dataclass(frozen=True)
class ModelSpec:
    """Which weights. `fingerprint` identifies their content (resolved by qcompare.sources.models)."""

    source: str = field(default="embedded", metadata={"help": "embedded | local | hub | gguf"})
    ref: str = field(default="", metadata={"help": "folder, hub id or .gguf path ('' for embedded)"})
    fingerprint: str = field(default="", metadata={"help": "content hash or revision of the weights"})
    trust_remote_code: bool = field(default=False, metadata={"help": "allow the model's own code to run"})
    allow_pickle: bool = field(default=False, metadata={"help": "allow pickle (.bin/.pt) checkpoints"})

    def __post_init__(self):
        _check_choice("model source", self.source, MODEL_SOURCES)
        if self.source != "embedded" and not self.ref:
            raise UserError(key="errors.model_ref", source=self.source)

    @property
    def label(self) -> str:
        return "embedded SmolLM2-135M-Instruct" if self.source == "embedded" else self.ref


@dataclass(frozen=True)
class MethodSpec:
    """A registered method name and its options (validated against the method's config)."""

    name: str
    options: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self):
        if not self.name:
            raise UserError(key="errors.method_name")
        keys = [k for k, _ in self.options]
        if keys != sorted(set(keys)):
            raise UserError(key="errors.options_sorted")

    @classmethod
    def of(cls, name: str, **options: Any) -> "MethodSpec":
        return cls(name=name, options=tuple(sorted(options.items())))

    @property
    def options_dict(self) -> dict[str, Any]:
        return dict(self.options)

    @property
    def label(self) -> str:
        opts = ",".join(f"{k}={v}" for k, v in self.options)
        return f"{self.name}:{opts}" if opts else self.name


@dataclass(frozen=True)
class CorpusSpec:
    """Evaluation text. `content_sha256` is the hash of the exact text (resolved by qcompare.sources.corpora)."""

    source: str = field(default="embedded", metadata={"help": "embedded | file | hf"})
    ref: str = field(default="", metadata={"help": "file path or NAME:CONFIG:SPLIT"})
    content_sha256: str = field(default="", metadata={"help": "sha256 of the UTF-8 text"})

    def __post_init__(self):
        _check_choice("corpus source", self.source, CORPUS_SOURCES)
        if self.source != "embedded" and not self.ref:
            raise UserError(key="errors.corpus_ref", source=self.source)

    @property
    def label(self) -> str:
        return "embedded (CPython docs)" if self.source == "embedded" else self.ref


@dataclass(frozen=True)
class EvalSpec:
    """How quality and speed are measured (see qcompare.metrics for the exact math)."""

    tokens: int = field(default=8192, metadata={"help": "first N corpus tokens evaluated"})
    window: int = field(default=512, metadata={"help": "tokens per window (context length)"})
    stride: int = field(default=0, metadata={"help": "strided protocol step; 0 means window // 2"})
    protocol: str = field(default="disjoint", metadata={"help": "disjoint | llamacpp | strided"})
    device: str = field(default="cpu", metadata={"help": "cpu | cuda"})
    dtype: str = field(default="float32", metadata={"help": "compute dtype of dequantizing methods"})
    speed_prompt: int = field(default=256, metadata={"help": "prompt tokens for prefill / TTFT"})
    speed_new_tokens: int = field(default=64, metadata={"help": "greedy new tokens for decode speed"})
    speed_repeats: int = field(default=3, metadata={"help": "timed repeats after one warm-up; 0 skips speed"})
    speed_spread: float = field(default=0.0, metadata={
        "help": "stop repeating once 2 repeats agree: decode's (max - min) / median at most this; "
                "0 runs every repeat", "omit_default": True})
    threads: int = field(default=0, metadata={"help": "CPU threads for torch; 0 means all cores"})
    # derived from `protocol`, never set: the llamacpp protocol's stream starts with BOS, as
    # llama-perplexity's does (metrics.quality); rows measured before (without it) keep their
    # own keys and baselines and are never ranked against these
    bos_stream: bool = field(default=False, metadata={
        "help": "the evaluated stream starts with BOS (the llamacpp protocol)", "omit_default": True})

    def __post_init__(self):
        object.__setattr__(self, "bos_stream", self.protocol == "llamacpp")
        _check_choice("protocol", self.protocol, PROTOCOLS)
        _check_choice("device", self.device, DEVICES)
        _check_choice("dtype", self.dtype, DTYPES)
        if self.window < 8:
            raise UserError(key="errors.window_min", window=self.window)
        if self.tokens < self.window:
            raise UserError(key="errors.tokens_window", tokens=self.tokens, window=self.window)
        if self.protocol == "llamacpp" and self.window % 2:
            raise UserError(key="errors.llamacpp_even")
        if self.stride < 0 or self.stride > self.window:
            raise UserError(key="errors.stride", window=self.window)
        for name in ("speed_prompt", "speed_new_tokens"):
            if getattr(self, name) < 2:
                raise UserError(key="errors.at_least_2", name=name)
        if self.speed_repeats < 0 or self.threads < 0:
            raise UserError(key="errors.negative")
        if not 0 <= self.speed_spread < 1:
            raise UserError(key="errors.spread", value=self.speed_spread)

    @classmethod
    def field_help(cls) -> dict[str, tuple]:
        """Field -> (default, help), for forms."""
        d = cls()
        return {f.name: (getattr(d, f.name), f.metadata.get("help", "")) for f in fields(cls)}

    @property
    def effective_stride(self) -> int:
        return self.stride or self.window // 2

    @property
    def longest_sequence(self) -> int:
        """The most tokens the evaluation feeds a model at once: a window, or a speed prompt
        with its new tokens."""
        return max(self.window, self.speed_prompt + self.speed_new_tokens + 1)

    def reference(self) -> "EvalSpec":
        """The fields that determine the baseline's log-probabilities (speed settings zeroed)."""
        return replace(self, dtype="float32", speed_prompt=256, speed_new_tokens=64,
                       speed_repeats=0, speed_spread=0.0, threads=0)

    def to_dict(self) -> dict:
        """The fields as a dict, without `omit_default` fields that hold their default."""
        return _without_omitted(self)


@dataclass(frozen=True)
class CalibSpec:
    """Calibration text for methods that need it (GPTQ, AWQ, SmoothQuant, QAT, ...).

    `samples` sequences of `seq_len` tokens drawn (seeded) from `corpus`. When that is the
    evaluation corpus, only tokens after the evaluated ones are used, and any sequence sharing
    a 32-token run with the evaluated text is dropped (qcompare.sources.calibration), so calibration
    and evaluation text never overlap.
    """

    corpus: CorpusSpec = CorpusSpec()
    samples: int = field(default=32, metadata={"help": "calibration sequences"})
    seq_len: int = field(default=512, metadata={"help": "tokens per calibration sequence"})
    seed: int = field(default=0, metadata={"help": "seed of the draw"})

    def __post_init__(self):
        if self.samples < 1 or self.seq_len < 8:
            raise UserError(key="errors.calib_min")

    @property
    def label(self) -> str:
        return f"{self.samples}x{self.seq_len} tokens of {self.corpus.label} (seed {self.seed})"


@dataclass(frozen=True)
class RunSpec:
    model: ModelSpec
    method: MethodSpec
    corpus: CorpusSpec = CorpusSpec()
    eval: EvalSpec = EvalSpec()
    calib: CalibSpec | None = None           # only for methods that calibrate

    def to_dict(self) -> dict:
        d = asdict(self)
        d["eval"] = self.eval.to_dict()
        d["method"]["options"] = {k: v for k, v in self.method.options}
        if self.calib is None:               # keys of calibration-free specs stay as they were
            del d["calib"]
        d["protocol_version"] = PROTOCOL_VERSION
        return d

    def to_json(self) -> str:
        return canonical_json(self.to_dict())

    def key(self) -> str:
        return hashlib.sha256(self.to_json().encode()).hexdigest()

    @classmethod
    def from_json(cls, text: str) -> "RunSpec":
        d = json.loads(text)
        if d.get("protocol_version") != PROTOCOL_VERSION:
            raise UserError(key="errors.protocol", theirs=d.get("protocol_version"),
                            ours=PROTOCOL_VERSION)
        m = d["method"]
        return cls(model=ModelSpec(**d["model"]),
                   method=MethodSpec.of(m["name"], **m["options"]),
                   corpus=CorpusSpec(**d["corpus"]),
                   eval=EvalSpec(**d["eval"]),
                   calib=_calib_from_dict(d["calib"]) if d.get("calib") else None)

    def reference_key(self) -> str:
        """Key of the fp32 baseline whose log-probabilities KL divergence is measured against."""
        d = {"model": asdict(self.model), "corpus": asdict(self.corpus),
             "eval": self.eval.reference().to_dict(), "protocol_version": PROTOCOL_VERSION}
        return hashlib.sha256(canonical_json(d).encode()).hexdigest()

    @property
    def label(self) -> str:
        return f"{self.method.label} on {self.model.label}"


def _without_omitted(obj) -> dict:
    d = asdict(obj)
    for f in fields(obj):
        if f.metadata.get("omit_default") and d[f.name] == f.default:
            del d[f.name]
    return d


def _calib_from_dict(d: dict) -> CalibSpec:
    return CalibSpec(corpus=CorpusSpec(**d["corpus"]), samples=d["samples"],
                     seq_len=d["seq_len"], seed=d["seed"])

