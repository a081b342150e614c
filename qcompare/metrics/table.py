"""What each result column means: its label, unit and direction (lm-eval's higher_is_better),
so charts draw Pareto frontiers and colour deltas without special cases."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    column: str
    label: str
    unit: str
    higher_is_better: bool
    log_scale: bool = False


METRICS: dict[str, Metric] = {m.column: m for m in (
    Metric("ppl", "Perplexity", "", False, log_scale=True),
    Metric("bits_per_byte", "Bits per byte", "bits", False),
    Metric("byte_ppl", "Byte perplexity", "", False),
    Metric("kld_mean", "KL divergence vs baseline", "nats/token", False, log_scale=True),
    Metric("kld_p99", "KL divergence, 99th pct", "nats/token", False, log_scale=True),
    Metric("top1_agree", "Top-1 agreement with baseline", "fraction", True),
    Metric("delta_p_mean", "Mean change of correct-token prob.", "", True),
    Metric("prefill_tok_s", "Prefill speed", "tok/s", True),
    Metric("decode_tok_s", "Decode speed", "tok/s", True),
    Metric("ttft_ms", "Time to first token", "ms", False),
    Metric("weights_mib", "Weights size", "MiB", False),
    Metric("peak_rss_mib", "Peak RAM (inference)", "MiB", False),
    Metric("load_peak_rss_mib", "Peak RAM (load + quantize)", "MiB", False),
    Metric("cuda_peak_alloc_mib", "Peak GPU allocated (inference)", "MiB", False),
    Metric("nvml_used_peak_mib", "Peak GPU used, NVML (inference)", "MiB", False),
    Metric("quant_s", "Load + quantize time", "s", False),
)}


def label(column: str) -> str:
    m = METRICS.get(column)
    if m is None:
        return column
    return f"{m.label} ({m.unit})" if m.unit else m.label


def pareto_mask(xs, ys, x_higher_better: bool, y_higher_better: bool) -> list[bool]:
    """True for points no other point beats on both axes (ties on both count as not beaten)."""
    sx = 1 if x_higher_better else -1
    sy = 1 if y_higher_better else -1
    pts = [(sx * x, sy * y) for x, y in zip(xs, ys)]
    out = []
    for i, (xi, yi) in enumerate(pts):
        dominated = any((xj >= xi and yj >= yi) and (xj > xi or yj > yi)
                        for j, (xj, yj) in enumerate(pts) if j != i)
        out.append(not dominated)
    return out
