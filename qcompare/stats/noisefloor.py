"""The noise floor: how far the baseline drifts from itself with only numerical noise added.

Computed once per baseline pass (model, corpus, protocol, device) by its own low-priority job
(`qcompare.jobs.noise_job`, which runs when no other job waits): the fp32 baseline run again

* in bf16 compute (weights and activations in bfloat16),
* in fp16 compute (float16),
* with its weights rounded to bf16 but computed in fp32,

each scored against the stored fp32 baseline exactly like a method (KL divergence, top-1
agreement, `metrics.quality.score_window`). On CUDA the first two compute in the dtype; on a CPU,
where fp16 arithmetic is emulated and slow, they are simulated in fp32 with every stored value
rounded to the dtype (`noise_job.rounded_compute`), and named so (`variants`). The floor is
computed on the baseline's first sixteenth of scored tokens (at least 128; `scope`) and says
so. The band is the largest KL and the lowest top-1 agreement among the variants: a method
inside it cannot be told from the baseline by these metrics, whatever its ranking says. An fp32
rerun gives exactly 0 (tests check it). Kept as `noise.json` beside the baseline
(`<state_dir>/baselines/<reference_key>/`).
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from qcompare.core.columns import METRICS

# name -> (dtype, weights only, simulated in fp32)
CUDA_VARIANTS = {"bf16 compute": ("bfloat16", False, False),
                 "fp16 compute": ("float16", False, False),
                 "bf16-rounded weights, fp32 compute": ("bfloat16", True, False)}
CPU_VARIANTS = {"bf16 compute (simulated)": ("bfloat16", False, True),
                "fp16 compute (simulated)": ("float16", False, True),
                "bf16-rounded weights, fp32 compute": ("bfloat16", True, False)}


def variants(device: str) -> dict[str, tuple[str, bool, bool]]:
    return CUDA_VARIANTS if device == "cuda" else CPU_VARIANTS


SHARE, MIN_TOKENS = 16, 128


def scope(windows: list) -> list:
    """The part of the baseline's windows (`metrics.quality.Window`) the noise floor scores:
    its first scored tokens, a sixteenth of them but at least MIN_TOKENS (all, when fewer). A
    window cut short keeps its start and context and ends after its last kept scored token, so
    its scores line up with the stored baseline's first rows."""
    from dataclasses import replace

    total = sum(w.n_scored for w in windows)
    want, out = min(total, max(MIN_TOKENS, total // SHARE)), []
    for w in windows:
        if want <= 0:
            break
        k = min(w.n_scored, want)
        out.append(replace(w, end=w.start + w.score_from + k))
        want -= k
    return out


def path(state_dir: str | os.PathLike, reference_key: str) -> Path:
    return Path(state_dir) / "baselines" / reference_key / "noise.json"


def read(state_dir: str | os.PathLike, reference_key: str) -> dict | None:
    """{"variants": {name: {kld_mean, kld_p99, top1_agree, ppl, seconds}}, "kld_band",
    "top1_band", "tokens", "of_tokens"}, or None when not computed (yet)."""
    try:
        return json.loads(path(state_dir, reference_key).read_text())
    except (OSError, ValueError):
        return None


def write(state_dir: str | os.PathLike, reference_key: str, variants: dict,
          part: dict | None = None) -> dict:
    """Store the floor; `part`: {"tokens", "of_tokens"} it was computed on."""
    data = {"variants": variants, **(part or {}),
            "kld_band": max(v["kld_mean"] for v in variants.values()),
            "top1_band": min(v["top1_agree"] for v in variants.values())}
    target = path(state_dir, reference_key)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".noise-pid{os.getpid()}-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return data


def band(noise: dict | None, metric: str) -> float | None:
    """The noise floor's edge for `metric` (its column's `noise_band`), or None when the metric
    has no band or the floor is not computed: a value on the good side of it (below for a
    lower-is-better metric, above for a higher-is-better one) is within what the reference's
    own precision changes."""
    col = METRICS.get(metric)
    if noise is None or col is None or not col.noise_band:
        return None
    return noise.get(col.noise_band)


def versus(value: float, noise: dict | None, metric: str = "kld_mean", lang: str = "en") -> str:
    """'inside the noise floor' or '12x the noise floor' for a row's value of `metric`: for a
    lower-is-better metric the ratio value / band; for a higher-is-better fraction (top-1
    agreement) the ratio of what is missing, (1 - value) / (1 - band)."""
    from qcompare.i18n import catalogue as i18n

    edge = band(noise, metric)
    if edge is None or value != value:
        return "—"
    if METRICS[metric].higher_is_better:
        return (i18n.t("noisefloor.inside", lang) if value >= edge else
                i18n.t("noisefloor.times_top1", lang, x=(1 - value) / max(1 - edge, 1e-12)))
    if value <= edge:
        return i18n.t("noisefloor.inside", lang)
    return i18n.t("noisefloor.times", lang, x=value / edge) if edge > 0 else i18n.t("noisefloor.zero", lang)
