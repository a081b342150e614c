"""Every result column in one table: its type, and for metrics their label, unit and direction
(lm-eval's higher_is_better), so the Parquet schema, charts, Pareto frontiers, pages and the CLI
all derive from one list. Adding a column touches this table (and its test), nothing else.

A quality column may say when a value means the run collapsed (`collapse_ratio` against the
baseline, or `collapse_value`): charts then draw such points in a strip at their edge, with the
value written out, and fit the axis to the rest, so one broken run does not flatten the others.

A column's `axis` says where pages offer it: "quality" metrics go on a chart's y axis, "cost"
metrics (size, speed, memory, time) on its x axis. `vs_baseline` marks metrics measured
against the baseline itself (KL divergence, top-1 agreement, Delta-p): the baseline scores
them trivially, and a change in % against it means nothing.
"""
from __future__ import annotations

from dataclasses import dataclass

KINDS = ("str", "int", "float", "time")


@dataclass(frozen=True)
class Column:
    name: str
    kind: str                               # str | int | float | time
    label: str = ""
    unit: str = ""
    higher_is_better: bool | None = None    # set for metrics only
    log_scale: bool = False
    axis: str = ""                          # quality | cost | "" (not offered on charts)
    vs_baseline: bool = False
    table: bool = False                     # shown in the Results page's rows table
    brief: bool = False                     # shown in the CLI's table
    cuda_only: bool = False                 # measured only on CUDA
    # a quality value this far off is a collapsed run, drawn in a strip at the chart's edge:
    # `collapse_ratio` times the baseline's value in the bad direction, or past `collapse_value`
    collapse_ratio: float | None = None
    collapse_value: float | None = None
    # which band of the baseline's noise floor (`stats.noisefloor`) this metric is read against:
    # the worst value the reference's own precision gives, on the metric's bad side
    noise_band: str = ""

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"column {self.name}: kind must be one of {KINDS}")
        if self.axis and self.higher_is_better is None:
            raise ValueError(f"column {self.name}: a chart axis needs a direction")


def _s(name, **kw):
    return Column(name, "str", **kw)


def _i(name, **kw):
    return Column(name, "int", **kw)


def _f(name, label="", unit="", hib=None, **kw):
    return Column(name, "float", label, unit, hib, **kw)


COLUMNS: tuple[Column, ...] = (
    _s("key"), _s("spec_json"), _s("reference_key"), _s("model", table=True),
    _s("model_source"), _s("model_fingerprint"), _s("model_note"), _s("method"),
    _s("method_label", table=True, brief=True), _s("family", table=True),
    _s("effort", table=True, brief=True), _s("options_json"),
    _s("corpus", table=True), _s("corpus_sha256"), _s("protocol", table=True, brief=True),
    _s("device", table=True, brief=True), _s("device_name"), _s("runner"), _s("node"),
    _s("compute_dtype", table=True), _s("kernel", table=True, brief=True),
    _s("storage", table=True), _s("backend"), _s("library"), _s("library_version"), _s("notes"),
    _s("python_version"), _s("torch_version"), _s("transformers_version"),
    _s("qcompare_version"), _s("layers_json"), _s("calibration", table=True),
    _i("tokens", table=True), _i("window", table=True), _i("stride"), _i("n_scored"),
    _i("n_bytes"), _i("speed_prompt"), _i("speed_new_tokens"), _i("speed_repeats"),
    _i("speed_runs"), _i("cpu_threads"), _i("protocol_version"),
    _f("ppl", "Perplexity", "", False, log_scale=True, axis="quality", table=True, brief=True,
       collapse_ratio=10.0),
    _f("ppl_se", "Perplexity, standard error", "", table=True),
    _f("nll_mean", "Mean NLL", "nats/token", False),
    _f("bits_per_byte", "Bits per byte", "bits", False, axis="quality", table=True,
       collapse_ratio=3.0),
    _f("byte_ppl", "Byte perplexity", "", False),
    _f("kld_mean", "KL divergence vs baseline", "nats/token", False, log_scale=True,
       axis="quality", vs_baseline=True, table=True, brief=True, collapse_value=2.0,
       noise_band="kld_band"),
    _f("kld_se", "KL divergence, standard error", "nats/token"),
    _f("kld_p99", "KL divergence, 99th pct", "nats/token", False, log_scale=True,
       axis="quality", vs_baseline=True, table=True, collapse_value=20.0,
       noise_band="kld_band"),
    _f("kld_p50", "KL divergence, median", "nats/token", False, vs_baseline=True),
    _f("kld_p90", "KL divergence, 90th pct", "nats/token", False, vs_baseline=True),
    _f("kld_p999", "KL divergence, 99.9th pct", "nats/token", False, log_scale=True,
       axis="quality", vs_baseline=True, collapse_value=50.0,
       noise_band="kld_band"),
    _f("kld_max", "KL divergence, max", "nats/token", False, vs_baseline=True),
    _f("kld_share_01", "Share of tokens with KL > 0.1", "fraction", False, axis="quality",
       vs_baseline=True),
    _f("kld_share_1", "Share of tokens with KL > 1", "fraction", False, vs_baseline=True),
    _s("kld_by_confidence_json"),
    _f("top1_agree", "Top-1 agreement with baseline", "fraction", True, axis="quality",
       vs_baseline=True, table=True, brief=True, collapse_value=0.2,
       noise_band="top1_band"),
    _f("delta_p_mean", "Mean change of correct-token prob.", "", True, vs_baseline=True,
       table=True),
    _f("prefill_tok_s", "Prefill speed", "tok/s", True, axis="cost", table=True, brief=True),
    _f("prefill_tok_s_min"), _f("prefill_tok_s_max"),
    _f("decode_tok_s", "Decode speed", "tok/s", True, axis="cost", table=True, brief=True),
    _f("decode_tok_s_min"), _f("decode_tok_s_max"),
    _f("ttft_ms", "Time to first token", "ms", False, axis="cost", table=True, brief=True),
    _f("ttft_ms_min"), _f("ttft_ms_max"),
    _f("decode_roofline_pct", "Decode, % of memory-bandwidth roofline", "%", True, axis="cost",
       table=True),
    _f("prefill_roofline_pct", "Prefill, % of matmul peak", "%", True, axis="cost", table=True),
    _f("decode_read_mib", "Bytes read per decoded token", "MiB"),
    _f("prefill_gflop", "FLOPs per prefill token", "GFLOP"),
    _f("mem_bandwidth_gbs", "Measured memory bandwidth", "GB/s"),
    _f("matmul_gflops", "Measured matmul peak", "GFLOP/s"), _s("machine_measured_at"),
    _f("weights_mib", "Weights size", "MiB", False, axis="cost", table=True, brief=True),
    _f("load_peak_rss_mib", "Peak RAM (load + quantize)", "MiB", False),
    _f("peak_rss_mib", "Peak RAM (inference)", "MiB", False, axis="cost", table=True,
       brief=True),
    _f("load_cuda_peak_alloc_mib", "Peak GPU allocated (load + quantize)", "MiB", False,
       cuda_only=True),
    _f("cuda_peak_alloc_mib", "Peak GPU allocated (inference)", "MiB", False, cuda_only=True),
    _f("load_nvml_used_peak_mib", "Peak GPU used, NVML (load + quantize)", "MiB", False,
       cuda_only=True),
    _f("nvml_used_peak_mib", "Peak GPU used, NVML (inference)", "MiB", False, cuda_only=True),
    _f("quant_s", "Load + quantize time", "s", False, axis="cost", table=True, brief=True),
    _f("eval_s", "Quality evaluation time", "s"), _f("speed_s", "Speed measurement time", "s"),
    _s("phases_json"),
    Column("started_at", "time"), Column("finished_at", "time", table=True),
)
BY_NAME: dict[str, Column] = {c.name: c for c in COLUMNS}
SPEED_SPREAD = ("prefill_tok_s", "decode_tok_s", "ttft_ms")   # have _min and _max beside them
# Columns with a direction: what charts, frontiers and deltas work on.
METRICS: dict[str, Column] = {c.name: c for c in COLUMNS if c.higher_is_better is not None}


def names(**flags) -> list[str]:
    """Column names, in table order, whose attributes equal `flags` (e.g. axis="cost")."""
    return [c.name for c in COLUMNS if all(getattr(c, k) == v for k, v in flags.items())]


def label(column: str, lang: str = "en") -> str:
    """'Weights size (MiB)': the column's label (in `lang` where the catalogue has it) and unit."""
    from qcompare.i18n import catalogue as i18n

    m = BY_NAME.get(column)
    if m is None or not m.label:
        return column
    text = i18n.in_code(f"metric.{column}", m.label, lang)
    return f"{text} ({m.unit})" if m.unit else text


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
