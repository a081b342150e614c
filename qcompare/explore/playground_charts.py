"""The playground's figures (NumPy in, plotly out, no Streamlit): a tensor's value histogram
with one block's quantization grid and clipped range over it, and the scales per block."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from qcompare.explore import playground as pg
from qcompare.i18n import catalogue as i18n

HIST_BINS = 400
MAX_HEAT_ROWS = 192


def widest_block(q: pg.Quantized) -> tuple[int, int]:
    """(row, block) of the block with the widest range: the coarsest grid of the tensor."""
    width = (q.hi - q.lo).ravel()
    i = int(np.argmax(width))
    return divmod(i, q.scale.shape[1])


def histogram(x: np.ndarray, q: pg.Quantized, s: pg.Setting, lang: str = "en",
              label: str | None = None) -> go.Figure:
    """Counts of the tensor's values (log y) with the grid of its coarsest block drawn over
    them (every level for up to 4 bits, every 8th above) and that block's clipped range."""
    lo_all, hi_all = float(x.min()), float(x.max())
    counts, edges = np.histogram(x, bins=HIST_BINS, range=(lo_all, hi_all))
    mids = (edges[:-1] + edges[1:]) / 2
    fig = go.Figure(go.Bar(x=mids, y=np.maximum(counts, 0.9), width=edges[1] - edges[0],
                           marker_color="#778AAE", name=i18n.t("charts.values", lang),
                           hovertemplate="%{x:.4g}: %{y:.0f}<extra></extra>"))
    r, b = widest_block(q)
    levels = pg.grid_levels(float(q.scale[r, b]), float(q.zero[r, b]), s.bits, s.symmetric)
    step = 1 if len(levels) <= 16 else 8
    ys = []
    xs = []
    for v in levels[::step]:
        xs += [v, v, None]
        ys += [0.9, max(counts.max(), 1), None]
    fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line={"color": "#E15F99", "width": 1},
                             name=i18n.t("charts.grid_every", lang, n=len(levels), step=step) if step > 1
                             else i18n.t("charts.grid", lang, n=len(levels)),
                             hoverinfo="skip"))
    for v, name in ((float(q.lo[r, b]), i18n.t("charts.clip_low", lang)),
                    (float(q.hi[r, b]), i18n.t("charts.clip_high", lang))):
        fig.add_vline(x=v, line_dash="dash", line_color="#FB0D0D", annotation_text=name)
    fig.update_layout(title=i18n.t("charts.hist_title", lang, label=label or s.label), yaxis_type="log",
                      xaxis_title=i18n.t("charts.weight_value", lang),
                      yaxis_title=i18n.t("charts.count_log", lang), height=380,
                      margin={"t": 50}, legend={"orientation": "h", "y": -0.25}, bargap=0)
    return fig


def scales(q: pg.Quantized, lang: str = "en") -> go.Figure:
    """Scale of every block: output rows x groups (rows subsampled evenly past MAX_HEAT_ROWS)."""
    z = q.scale
    rows = np.arange(z.shape[0])
    if z.shape[0] > MAX_HEAT_ROWS:
        rows = np.linspace(0, z.shape[0] - 1, MAX_HEAT_ROWS).round().astype(int)
        z = z[rows]
    fig = go.Figure(go.Heatmap(z=z, y=rows, colorscale="Viridis",
                               colorbar={"title": {"text": i18n.t("charts.scale", lang)}},
                               hovertemplate="%{y}, %{x}: %{z:.3g}<extra></extra>"))
    fig.update_layout(title=i18n.t("charts.scales_title", lang), xaxis_title=i18n.t("charts.block_axis", lang),
                      yaxis_title=i18n.t("charts.output_row", lang), yaxis={"autorange": "reversed"}, height=380,
                      margin={"t": 50})
    return fig


def outliers(x: np.ndarray, q: pg.Quantized, n: int = 10, lang: str = "en") -> list[dict]:
    """The n largest |x|, where they are, and what quantization made of them."""
    flat = np.abs(x).ravel()
    idx = np.argpartition(flat, -n)[-n:]
    idx = idx[np.argsort(-flat[idx])]
    rows, cols = np.unravel_index(idx, x.shape)
    k = {c: i18n.t(f"charts.col_{c}", lang) for c in ("row", "column", "value", "quantized", "error", "times")}
    return [{k["row"]: int(r), k["column"]: int(c), k["value"]: float(x[r, c]),
             k["quantized"]: float(q.x_hat[r, c]), k["error"]: float(q.x_hat[r, c] - x[r, c]),
             k["times"]: float(abs(x[r, c]) / max(np.median(flat), 1e-30))}
            for r, c in zip(rows, cols)]


def channel_peaks(x: np.ndarray, lang: str = "en") -> go.Figure:
    """max |x| of every input channel over the tokens (activations [tokens, channels]), with
    the median channel's level: outlier channels stand out as spikes."""
    peaks = np.abs(x).max(axis=0)
    med = float(np.median(peaks))
    fig = go.Figure(go.Bar(x=np.arange(len(peaks)), y=peaks, marker_color="#2E91E5",
                           hovertemplate="%{x}: max |x| %{y:.3g}<extra></extra>"))
    fig.add_hline(y=med, line_dash="dash", line_color="#FB0D0D",
                  annotation_text=i18n.t("charts.median_channel", lang, v=med))
    fig.update_layout(title=i18n.t("charts.peaks_title", lang),
                      xaxis_title=i18n.t("charts.input_channel", lang), yaxis_title=i18n.t("charts.peak_axis", lang),
                      height=380, margin={"t": 50}, bargap=0)
    return fig
