"""Constraints + measured results -> ranked, explained choices; rules of thumb where nothing was
measured, labelled as such. Pure (no Streamlit, no torch): the Choose page and
`python -m qcompare recommend` call `recommend`.

Protocol, for the measured rows of one model (its largest comparable group, the newest on a
tie, so every quality number is on the same text, protocol and weights):

1. Each row's memory is `qcompare.decide.sizing.estimate` for the chosen context, batch, device and
   GPU count, with the row's *measured* weights_mib, and the model's shape for the KV cache and
   activations (weights only, plus the overhead, where the shape cannot be read).
2. A row is excluded, with the first limit it breaks, when: its method cannot run on the chosen
   device here; it does not fit the memory (per GPU); it breaks a hard limit (max KL
   divergence, max perplexity increase in % over the baseline row of its group, max total
   memory, min decode tok/s: a speed limit needs a speed measured on the chosen device, else
   the row is excluded for "speed not measured on <device>").
3. The rest are ranked by the priority: quality = KL divergence against the baseline, lowest
   first (the baseline itself scores 0 and ranks first when it fits); speed = decode tok/s,
   highest first; size = total memory, smallest first. Ties break on the other two, in the
   order quality, size, speed.
4. Quality ranks say when two neighbours are not distinguishable at this sample size: the
   paired KL gap of `qcompare.stats.ranking` within Z standard errors.

Rules of thumb (`rules`) come from the source guide, computed with the calculator for the
model's size; they are never mixed with measured rows: each says "rule of thumb, not measured
here" and lists the method variants that would measure it.

Every sentence (reasons, exclusions, rules, the basis) is written in the `lang` given, from the
message catalogue (`qcompare.i18n.catalogue`, section `rec`); `Excluded.limit` stays an English identifier
(`LIMITS` holds each one's catalogue key), so `--json` output does not change with the language.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field

import pandas as pd

from qcompare.core import registry
from qcompare.core.presets import RULES_OF_THUMB
from qcompare.core.shape import ModelShape
from qcompare.decide import sizing
from qcompare.decide.sizing import GIB, MIB, Setting
from qcompare.i18n import catalogue as i18n

PRIORITIES = ("quality", "speed", "size")
# Excluded.limit (an identifier, English in --json) -> the key of its name in the catalogue
LIMITS = {"device": "rec.limit_device", "memory": "rec.limit_memory",
          "max memory": "rec.limit_max_memory", "max KLD": "rec.limit_max_kld",
          "max PPL increase": "rec.limit_max_ppl", "min decode": "rec.limit_min_decode",
          "method": "rec.limit_method",
          "not_finite": "rec.limit_not_finite"}
FP16_FRACTION = 0.8                         # the guide: FP16 when it fits in 80 % of the GPU


@dataclass(frozen=True)
class Constraints:
    memory_gib: float | None = None         # memory per device (each GPU, or the CPU's RAM)
    device: str = "cuda"                    # cuda | cpu
    gpus: int = 1
    context: int = 4096
    batch: int = 1
    finetune: bool = False                  # will be fine-tuned (QLoRA)
    priority: str = "quality"
    max_kld: float | None = None
    max_ppl_increase_pct: float | None = None
    min_decode_tok_s: float | None = None
    max_memory_gib: float | None = None     # hard limit on the total

    def __post_init__(self):
        if self.priority not in PRIORITIES:
            raise ValueError(f"priority must be one of {', '.join(PRIORITIES)}")
        if self.device not in ("cuda", "cpu"):
            raise ValueError("device must be cuda or cpu")
        if self.gpus < 1 or self.context < 1 or self.batch < 1:
            raise ValueError("GPUs, context and batch must be at least 1")

    def setting(self) -> Setting:
        return Setting(device=self.device, gpus=self.gpus if self.device == "cuda" else 1,
                       context=self.context, batch=self.batch)


@dataclass
class Choice:
    rank: int
    method_label: str
    key: str
    memory_gib: float
    weights_mib: float
    kld: float | None
    ppl_increase_pct: float | None
    decode_tok_s: float | None
    on_frontier: bool
    tie_with_next: bool
    reason: str


@dataclass
class Excluded:
    method_label: str
    key: str
    limit: str
    detail: str


@dataclass
class Rule:
    text: str
    methods: list[str]                      # method arguments that would measure it here
    why: str
    note: str = ""


@dataclass
class Recommendation:
    measured: list[Choice] = field(default_factory=list)
    excluded: list[Excluded] = field(default_factory=list)
    rules: list[Rule] = field(default_factory=list)
    basis: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def _num(v) -> float | None:
    return float(v) if isinstance(v, (int, float)) and v == v else None


def _gib(b: float) -> str:
    return f"{b / GIB:.2f} GiB" if b < 10 * GIB else f"{b / GIB:.1f} GiB"


def _ctx(n: int) -> str:
    return f"{n // 1024}k" if n >= 1024 and n % 1024 == 0 else str(n)


def limit_name(limit: str, lang: str = "en") -> str:
    """An exclusion's limit (`Excluded.limit`) in words, in `lang`."""
    return i18n.t(LIMITS[limit], lang) if limit in LIMITS else limit


def memory_of(row: pd.Series, shape: ModelShape | None, c: Constraints) -> sizing.Estimate:
    """The row's memory for the constraints, from its measured weights (protocol step 1)."""
    cls = registry.get(row["method"])
    s = c.setting()
    weights = _num(row.get("weights_mib")) or 0.0
    if shape is None:
        overhead = sizing.OVERHEAD_MIB[c.device] * MIB * s.gpus
        return sizing.Estimate(str(row["method_label"]), weights * MIB, 0.0, 0.0, overhead,
                               "measured", "assumed", gpus=s.gpus)
    options = json.loads(row["options_json"]) if row.get("options_json") else {}
    return sizing.estimate(cls, options, shape, s, str(row["method_label"]),
                           measured_weights_mib=weights)


def _ppl_increase(group: pd.DataFrame) -> pd.Series:
    from qcompare.charts.tradeoff import with_baseline_delta

    d = with_baseline_delta(group, "ppl")
    return pd.Series(d["delta_pct"].to_numpy(), index=group.index)


def _limits(row, est: sizing.Estimate, ppl_inc, c: Constraints,
            lang: str = "en") -> tuple[str, str] | None:
    """(limit, detail) of the first constraint the row breaks (protocol step 2), or None."""
    def t(key, **v):
        return i18n.t(f"rec.{key}", lang, **v)

    cls = registry.get(row["method"])
    if c.device not in cls.needs.devices:
        return "device", t("x_device", name=cls.name, devices=t("or").join(cls.needs.devices),
                           device=c.device)
    if c.memory_gib is not None and not sizing.fits(est, c.memory_gib):
        return "memory", t("x_memory_per_gpu" if est.gpus > 1 else "x_memory",
                           need=_gib(est.per_gpu), ctx=_ctx(c.context), have=f"{c.memory_gib:g}")
    if c.max_memory_gib is not None and est.total > c.max_memory_gib * GIB:
        return "max memory", f"{_gib(est.total)} > {c.max_memory_gib:g} GiB"
    kld = _num(row.get("kld_mean"))
    if c.max_kld is not None and (kld is None or kld > c.max_kld):
        return "max KLD", (t("x_no_kld") if kld is None else f"KLD {kld:.4f} > {c.max_kld:g}")
    if c.max_ppl_increase_pct is not None and (ppl_inc is None or ppl_inc > c.max_ppl_increase_pct):
        return "max PPL increase", (t("x_no_baseline") if ppl_inc is None
                                    else f"+{ppl_inc:.1f} % > {c.max_ppl_increase_pct:g} %")
    if c.min_decode_tok_s is not None:
        tok = _num(row.get("decode_tok_s"))
        if row.get("device") != c.device or tok is None:
            return "min decode", t("x_no_speed", device=c.device)
        if tok < c.min_decode_tok_s:
            return "min decode", f"{tok:.1f} tok/s < {c.min_decode_tok_s:g}"
    return None


def _sort_key(c: Constraints):
    def key(item):
        _, row, est, _ = item
        kld = _num(row.get("kld_mean"))
        kld = 0.0 if row["method"] == registry.BASELINE else (kld if kld is not None else float("inf"))
        tok = -(_num(row.get("decode_tok_s")) or 0.0)
        size = est.total
        return {"quality": (kld, size, tok), "speed": (tok, kld, size),
                "size": (size, kld, tok)}[c.priority]
    return key


def _reason(row, est, ppl_inc, c: Constraints, on_front: bool, tie: str,
            lang: str = "en") -> str:
    def t(key, **v):
        return i18n.t(f"rec.{key}", lang, **v)

    parts = []
    if c.memory_gib is not None:
        room = c.memory_gib * GIB - est.per_gpu
        parts.append(t("r_fits_per_gpu" if est.gpus > 1 else "r_fits", need=_gib(est.per_gpu),
                       ctx=_ctx(c.context), room=_gib(room)))
    else:
        parts.append(t("r_total", need=_gib(est.total), ctx=_ctx(c.context)))
    if row["method"] == registry.BASELINE:
        parts.append(t("r_reference"))
    else:
        if ppl_inc is not None:
            parts.append(t("r_ppl", pct=f"{ppl_inc:+.1f}"))
        kld = _num(row.get("kld_mean"))
        if kld is not None:
            parts.append(f"KLD {kld:.4f}")
    tok = _num(row.get("decode_tok_s"))
    if tok is not None:
        parts.append(t("r_decode", tok=f"{tok:.0f}", device=row.get("device")))
    if on_front:
        parts.append(t("r_frontier"))
    if tie:
        parts.append(t("r_tie", name=tie))
    return t("sep").join(parts)


def _ties(group: pd.DataFrame, state_dir, lang: str = "en") -> dict[str, str]:
    """key -> 'label' (and the tokens that would separate them) of the next-ranked row it
    cannot be told apart from (`qcompare.stats.ranking`: paired window bootstrap, else paired se)."""
    if state_dir is None:
        return {}
    from qcompare.stats import ranking

    ranked = ranking.rank(group, state_dir)
    out = {}
    for _, r in ranked.iterrows():
        if r["verdict"] == "indistinguishable":
            need = r.get("tokens_to_separate", float("nan"))
            out[r["key"]] = r["next_label"] + (
                i18n.t("rec.r_separate", lang, tokens=f"{need:,.0f}")
                if need == need and need != float("inf") else "")
    return out


def recommend_measured(group: pd.DataFrame, shape: ModelShape | None, c: Constraints,
                       state_dir=None, lang: str = "en") -> tuple[list[Choice], list[Excluded]]:
    """Protocol steps 1-4 over one comparable group of rows."""
    from qcompare.charts.tradeoff import frontier
    from qcompare.core.errors import UserError

    if group.empty:
        return [], []
    inc = _ppl_increase(group)
    front = set(frontier(group, "weights_mib", "kld_mean")["key"]) if "kld_mean" in group else set()
    ties = _ties(group, state_dir, lang) if c.priority == "quality" else {}
    kept, excluded = [], []
    for idx, row in group.iterrows():
        bad = [k for k in ("ppl", "kld_mean", "weights_mib") if _not_finite(k, row.get(k))]
        if bad:                 # a stored NaN or infinite number is no measurement to rank
            excluded.append(Excluded(str(row["method_label"]), str(row["key"]), "not_finite",
                                     ", ".join(f"{k}={row.get(k)}" for k in bad)))
            continue
        try:
            est = memory_of(row, shape, c)
            ppl_inc = _num(inc.get(idx))
            broken = _limits(row, est, ppl_inc, c, lang)
        except UserError as e:                   # a row of a method this version does not know
            excluded.append(Excluded(str(row["method_label"]), str(row["key"]), "method",
                                     e.text(lang)))
            continue
        if broken:
            excluded.append(Excluded(str(row["method_label"]), str(row["key"]), *broken))
        else:
            kept.append((idx, row, est, ppl_inc))
    kept.sort(key=_sort_key(c))
    out = []
    for n, (_, row, est, ppl_inc) in enumerate(kept, 1):
        tie = ties.get(row["key"], "")
        on = row["key"] in front
        out.append(Choice(n, str(row["method_label"]), str(row["key"]), est.total / GIB,
                          float(row.get("weights_mib") or 0), _num(row.get("kld_mean")), ppl_inc,
                          _num(row.get("decode_tok_s")), on, bool(tie),
                          _reason(row, est, ppl_inc, c, on, tie, lang)))
    return out, excluded


def _not_finite(column: str, value) -> bool:
    """An infinite number, or a NaN perplexity or weight size (a NaN KL alone is a row that
    never had the column, left to the limits that need it)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return column != "kld_mean"
    return math.isinf(v) or (math.isnan(v) and column != "kld_mean")


def _size(arg: str, shape: ModelShape, c: Constraints) -> sizing.Estimate:
    """The calculator's estimate for a `method:options` argument."""
    m = registry.parse_method_arg(arg)
    return sizing.estimate(registry.get(m.name), m.options_dict, shape, c.setting())


def rules(shape: ModelShape | None, c: Constraints, lang: str = "en") -> list[Rule]:
    """The source guide's rules of thumb for this model size and device (module doc)."""
    def t(key, **v):
        return i18n.t(f"rec.{key}", lang, **v)

    def rule(text, methods, why):
        return Rule(text, methods, why, t("rule_note"))

    out: list[Rule] = []
    if c.finetune:
        out.append(rule(t("qlora"), list(RULES_OF_THUMB["qlora"]), t("qlora_why")))
    if c.device == "cpu":
        why = t("cpu_why")
        if shape is not None:
            try:
                e = _size(RULES_OF_THUMB["cpu"][0], shape, c)
                q8 = _size(RULES_OF_THUMB["cpu_roomy"][0], shape, c)
            except ValueError as err:             # rows llama.cpp's blocks cannot hold
                out.append(rule(t("cpu"), list(RULES_OF_THUMB["cpu"]), why + t("cpu_unsized", error=err)))
                return out
            ram = None if c.memory_gib is None else c.memory_gib * GIB
            if ram is not None and q8.total <= FP16_FRACTION * ram:      # room for 8 bits
                out.append(rule(t("cpu_roomy"), list(RULES_OF_THUMB["cpu_roomy"]),
                                t("cpu_roomy_why", q8=_gib(q8.total), q4=_gib(e.total),
                                  ram=_gib(ram), room=_gib(ram - q8.total), ctx=_ctx(c.context))))
                return out
            why += t("cpu_size", need=_gib(e.total), ctx=_ctx(c.context))
            if ram is not None:
                why += (t("cpu_room", room=_gib(ram - e.total), ram=_gib(ram), q8=_gib(q8.total))
                        if e.total <= ram else t("cpu_no_room", ram=_gib(ram)))
        out.append(rule(t("cpu"), list(RULES_OF_THUMB["cpu"]), why))
        return out
    if shape is None or c.memory_gib is None:
        out.append(rule(t("gpu_generic"), list(RULES_OF_THUMB["gpu_generic"]),
                        t("gpu_generic_why")))
        return out
    total = c.memory_gib * GIB * (c.gpus if c.device == "cuda" else 1)
    fp16 = _size(RULES_OF_THUMB["fp16"][0], shape, c)
    int4 = _size(RULES_OF_THUMB["int4"][0], shape, c)
    params = shape.param_count() / 1e9
    seven_b = 5 < params < 9
    if fp16.total <= FP16_FRACTION * total:
        out.append(rule(t("fp16"), list(RULES_OF_THUMB["fp16"]),
                        t("fp16_why", need=_gib(fp16.total), total=_gib(total),
                          share=f"{fp16.total / total:.0%}", ctx=_ctx(c.context))
                        + (t("fp16_7b") if seven_b and c.memory_gib <= 24 else "")))
    elif sizing.fits(int4, c.memory_gib):
        out.append(rule(t("int4"), list(RULES_OF_THUMB["int4"]),
                        t("int4_why_per_gpu" if int4.gpus > 1 else "int4_why",
                          fp16=_gib(fp16.total), total=_gib(total), int4=_gib(int4.per_gpu))
                        + (t("int4_7b") if seven_b else "")))
    else:
        out.append(rule(t("too_large", need=f"{int4.weights / GIB:.0f}"), [],
                        t("too_large_why", need=_gib(int4.per_gpu))))
    return out


def recommend(rows: pd.DataFrame, shape: ModelShape | None, c: Constraints,
              state_dir=None, lang: str = "en") -> Recommendation:
    """Measured choices for the largest comparable group of `rows` (one model's rows), plus
    the rules of thumb, always labelled as such; every sentence in `lang`."""
    from qcompare.stats.comparability import largest_group

    group = largest_group(rows) if not rows.empty else rows
    measured, excluded = recommend_measured(group, shape, c, state_dir, lang)
    basis = (i18n.t("rec.basis", lang, n=len(group), model=group["model"].iloc[0],
                    device=group["device"].iloc[0])
             if not group.empty else i18n.t("rec.no_basis", lang))
    return Recommendation(measured, excluded, rules(shape, c, lang), basis)
