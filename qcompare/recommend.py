"""Constraints + measured results -> ranked, explained choices; rules of thumb where nothing was
measured, labelled as such. Pure (no Streamlit, no torch): the Choose page and
`python -m qcompare recommend` call `recommend`.

Protocol, for the measured rows of one model (its largest comparable group, the newest on a
tie, so every quality number is on the same text, protocol and weights):

1. Each row's memory is `qcompare.sizing.estimate` for the chosen context, batch, device and
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
   paired KL gap of `qcompare.ranking` within Z standard errors.

Rules of thumb (`rules`) come from the source guide, computed with the calculator for the
model's size; they are never mixed with measured rows: each says "rule of thumb, not measured
here" and lists the method variants that would measure it.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import pandas as pd

from qcompare import registry, sizing
from qcompare.sizing import GIB, MIB, ModelShape, Setting

PRIORITIES = ("quality", "speed", "size")
RULE_NOTE = "rule of thumb (the source guide), not measured here"
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
    note: str = RULE_NOTE


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
    from qcompare.charts import with_baseline_delta

    d = with_baseline_delta(group, "ppl")
    return pd.Series(d["delta_pct"].to_numpy(), index=group.index)


def _limits(row, est: sizing.Estimate, ppl_inc, c: Constraints) -> tuple[str, str] | None:
    """(limit, detail) of the first constraint the row breaks (protocol step 2), or None."""
    cls = registry.get(row["method"])
    if c.device not in cls.needs.devices:
        return "device", f"{cls.name} runs on {' or '.join(cls.needs.devices)} here, not {c.device}"
    if c.memory_gib is not None and not sizing.fits(est, c.memory_gib):
        per = " per GPU" if est.gpus > 1 else ""
        return "memory", (f"needs {_gib(est.per_gpu)}{per} for a {_ctx(c.context)} context, "
                          f"has {c.memory_gib:g} GiB")
    if c.max_memory_gib is not None and est.total > c.max_memory_gib * GIB:
        return "max memory", f"{_gib(est.total)} > {c.max_memory_gib:g} GiB"
    kld = _num(row.get("kld_mean"))
    if c.max_kld is not None and (kld is None or kld > c.max_kld):
        return "max KLD", ("no KL divergence measured" if kld is None
                           else f"KLD {kld:.4f} > {c.max_kld:g}")
    if c.max_ppl_increase_pct is not None and (ppl_inc is None or ppl_inc > c.max_ppl_increase_pct):
        return "max PPL increase", ("no baseline row to compare with" if ppl_inc is None
                                    else f"+{ppl_inc:.1f} % > {c.max_ppl_increase_pct:g} %")
    if c.min_decode_tok_s is not None:
        tok = _num(row.get("decode_tok_s"))
        if row.get("device") != c.device or tok is None:
            return "min decode", f"speed not measured on {c.device}"
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


def _reason(row, est, ppl_inc, c: Constraints, on_front: bool, tie: str) -> str:
    parts = []
    if c.memory_gib is not None:
        room = c.memory_gib * GIB - est.per_gpu
        parts.append(f"fits in {_gib(est.per_gpu)}{' per GPU' if est.gpus > 1 else ''} with a "
                     f"{_ctx(c.context)} context ({_gib(room)} to spare)")
    else:
        parts.append(f"{_gib(est.total)} with a {_ctx(c.context)} context")
    if row["method"] == registry.BASELINE:
        parts.append("the unquantized reference")
    else:
        if ppl_inc is not None:
            parts.append(f"{ppl_inc:+.1f} % perplexity")
        kld = _num(row.get("kld_mean"))
        if kld is not None:
            parts.append(f"KLD {kld:.4f}")
    tok = _num(row.get("decode_tok_s"))
    if tok is not None:
        parts.append(f"{tok:.0f} tok/s decode on {row.get('device')}")
    if on_front:
        parts.append("on the size–KLD Pareto frontier")
    if tie:
        parts.append(f"not distinguishable from {tie} at this sample size")
    return "; ".join(parts)


def _ties(group: pd.DataFrame, state_dir) -> dict[str, str]:
    """key -> 'label' (and the tokens that would separate them) of the next-ranked row it
    cannot be told apart from (`qcompare.ranking`: paired window bootstrap, else paired se)."""
    if state_dir is None:
        return {}
    from qcompare import ranking

    ranked = ranking.rank(group, state_dir)
    out = {}
    for _, r in ranked.iterrows():
        if r["verdict"] == "indistinguishable":
            need = r.get("tokens_to_separate", float("nan"))
            out[r["key"]] = r["next_label"] + (f" (about {need:,.0f} tokens would separate them)"
                                               if need == need and need != float("inf") else "")
    return out


def recommend_measured(group: pd.DataFrame, shape: ModelShape | None, c: Constraints,
                       state_dir=None) -> tuple[list[Choice], list[Excluded]]:
    """Protocol steps 1-4 over one comparable group of rows."""
    from qcompare.charts import frontier

    if group.empty:
        return [], []
    inc = _ppl_increase(group)
    front = set(frontier(group, "weights_mib", "kld_mean")["key"]) if "kld_mean" in group else set()
    ties = _ties(group, state_dir) if c.priority == "quality" else {}
    kept, excluded = [], []
    from qcompare.errors import UserError

    for idx, row in group.iterrows():
        try:
            est = memory_of(row, shape, c)
            ppl_inc = _num(inc.get(idx))
            broken = _limits(row, est, ppl_inc, c)
        except UserError as e:                   # a row of a method this version does not know
            excluded.append(Excluded(str(row["method_label"]), str(row["key"]), "method", str(e)))
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
                          _reason(row, est, ppl_inc, c, on, tie)))
    return out, excluded


def _size(method: str, options: dict, shape: ModelShape, c: Constraints) -> sizing.Estimate:
    return sizing.estimate(registry.get(method), options, shape, c.setting())


def rules(shape: ModelShape | None, c: Constraints) -> list[Rule]:
    """The source guide's rules of thumb for this model size and device (module doc)."""
    out: list[Rule] = []
    if c.finetune:
        out.append(Rule("Fine-tuning: load in bitsandbytes NF4 and train LoRA adapters (QLoRA).",
                        ["bnb-nf4:double_quant=true"],
                        "QLoRA keeps the frozen base in 4-bit NF4 and trains 16-bit adapters."))
    if c.device == "cpu":
        why = "llama.cpp's K-quant mix is the usual CPU choice"
        if shape is not None:
            try:
                e = _size("gguf", {"type": "Q4_K_M"}, shape, c)
                why += f"; for this model about {_gib(e.total)} with a {_ctx(c.context)} context"
            except ValueError as err:             # rows llama.cpp's blocks cannot hold
                why += f"; this model cannot be sized for it ({err})"
        out.append(Rule("CPU only: GGUF Q4_K_M through llama.cpp.", ["gguf:type=Q4_K_M"], why))
        return out
    if shape is None or c.memory_gib is None:
        out.append(Rule("GPU: FP16 if the model fits in 80 % of GPU memory; otherwise AWQ int4 "
                        "for serving, GPTQ int4 for the best int4 quality.",
                        ["fp16", "awq:bits=4,group_size=128", "gptq:bits=4,group_size=128"],
                        "give the model and the GPU memory to size it"))
        return out
    total = c.memory_gib * GIB * (c.gpus if c.device == "cuda" else 1)
    fp16 = _size("fp16", {}, shape, c)
    int4 = _size("awq", {"bits": 4, "group_size": 128}, shape, c)
    params = shape.param_count() / 1e9
    if fp16.total <= FP16_FRACTION * total:
        out.append(Rule("FP16: the model fits in 80 % of the GPU memory, so do not quantize.",
                        ["fp16"], f"{_gib(fp16.total)} of {_gib(total)} "
                                  f"({fp16.total / total:.0%}) with a {_ctx(c.context)} context"
                                  + ("; the guide's example puts a 7B-class model at int4 on one "
                                     "24 GB GPU, but by the calculator FP16 fits here"
                                     if 5 < params < 9 and c.memory_gib <= 24 else "")))
    elif sizing.fits(int4, c.memory_gib):
        out.append(Rule("AWQ int4 for serving (fast kernels); GPTQ int4 for the best int4 "
                        "quality.", ["awq:bits=4,group_size=128", "gptq:bits=4,group_size=128"],
                        f"FP16 needs {_gib(fp16.total)}, over 80 % of {_gib(total)}; int4 "
                        f"g128 needs about {_gib(int4.per_gpu)}"
                        + (" per GPU" if int4.gpus > 1 else "")
                        + ("; the guide's example: a 7B-class model on one 24 GB GPU at int4"
                           if 5 < params < 9 else "")))
    else:
        need = int4.weights / GIB
        out.append(Rule(f"Too large for this memory even at int4 ({need:.0f} GiB of weights): "
                        "use int4 on an 80 GB GPU or split it over several GPUs.",
                        [], f"int4 needs {_gib(int4.per_gpu)} per GPU here; a 70B model takes "
                            "about 35 GiB at int4"))
    return out


def recommend(rows: pd.DataFrame, shape: ModelShape | None, c: Constraints,
              state_dir=None) -> Recommendation:
    """Measured choices for the largest comparable group of `rows` (one model's rows), plus
    the rules of thumb, always labelled as such."""
    from qcompare.comparability import largest_group

    group = largest_group(rows) if not rows.empty else rows
    measured, excluded = recommend_measured(group, shape, c, state_dir)
    basis = (f"{len(group)} measured row(s) of {group['model'].iloc[0]} on {group['device'].iloc[0]}"
             if not group.empty else "no measured rows for this model")
    return Recommendation(measured, excluded, rules(shape, c), basis)
