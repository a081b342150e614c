"""A job's stage line in the page's language. Workers report their stage in English (it is also
the job's log, read by people and scripts); the pages show it through `text`, which matches the
line against the stages qcompare reports (`STAGES`: a pattern and its catalogue key, the
pattern's named groups filling the message; a method's own stages come from its class,
`Method.stages`, gathered by `core.registry.stage_patterns` and passed in as `extra`) and
leaves anything else as written (a library's own words, file and tensor names). A stage may nest another ("baseline: loading weights"):
the inner part is translated the same way."""
from __future__ import annotations

import re
from functools import lru_cache

from qcompare.i18n import catalogue as i18n

NESTED = {"baseline", "hessians"}          # groups that hold another stage line
STAGES: tuple[tuple[str, str], ...] = (
    (r"perplexity window (?P<i>\d+)/(?P<n>\d+)", "stage.ppl_window"),
    (r"baseline: (?P<baseline>.+)", "stage.baseline_of"),
    (r"baseline ready \(PPL (?P<ppl>[\d.]+)\)", "stage.baseline_ready"),
    (r"loading fp32 reference", "stage.loading_reference"),
    (r"preparing model", "stage.preparing"),
    (r"drawing calibration text", "stage.calibration"),
    (r"speed: prefill and decode", "stage.speed"),
    (r"roofline: this machine's bandwidth and matmul peak", "stage.roofline"),
    (r"writing result", "stage.writing"),
    (r"noise floor: baseline in (?P<name>.+)", "stage.noise_floor"),
    (r"done", "stage.done"),
    (r"cache hit", "stage.cache_hit"),
    (r"calibration inputs of every Linear \(baseline\)", "stage.linear_inputs"),
    (r"Hessians: (?P<hessians>.+)", "stage.hessians_of"),
    (r"baseline pass on the scoring slice", "stage.scoring_baseline"),
    (r"unit (?P<unit>\S+) at (?P<bits>\d+) bits \((?P<i>\d+)/(?P<n>\d+)\)", "stage.unit"),
    (r"every unit at (?P<bits>\d+) bits at once \(additivity check\)", "stage.additivity"),
    (r"loading weights", "stage.loading_weights"),
    (r"loading", "stage.loading"),
    (r"quantized", "stage.quantized"),
    (r"quantized (?P<i>\d+)/(?P<n>\d+)", "stage.quantized_of"),
    (r"quantizing (?P<name>\S+)", "stage.quantizing"),
    (r"loading and quantizing with (?P<library>\S+)", "stage.load_quantize_with"),
    (r"quantizing with (?P<library>\S+)", "stage.quantize_with"),
    (r"layer (?P<i>\d+)/(?P<n>\d+)", "stage.layer"),
    (r"converting GGUF to safetensors \(once\)", "stage.gguf_to_st"),
    (r"converted", "stage.converted"),
)


@lru_cache(maxsize=None)
def _compiled(extra: tuple[tuple[str, str], ...] = ()):
    return [(re.compile(p), key) for p, key in STAGES + tuple(extra)]


def text(stage: str | None, lang: str = "en", extra: tuple[tuple[str, str], ...] = ()) -> str:
    """The stage line in `lang` (as written where no pattern matches it, and in English);
    `extra`: more (pattern, key) pairs, the methods' own stages."""
    if not stage or lang == "en":
        return stage or ""
    for pattern, key in _compiled(tuple(extra)):
        m = pattern.fullmatch(stage)
        if m:
            values = {k: text(v, lang, extra) if k in NESTED else v
                      for k, v in m.groupdict().items()}
            return i18n.t(key, lang, **values)
    return stage
