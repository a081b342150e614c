"""The playground's figures (NumPy in, plotly out, no Streamlit): a tensor's value histogram
with one block's quantization grid and clipped range over it, and the scales per block."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from qcompare import playground as pg

HIST_BINS = 400
MAX_HEAT_ROWS = 192


def widest_block(q: pg.Quantized) -> tuple[int, int]:
    """(row, block) of the block with the widest range: the coarsest grid of the tensor."""
    width = (q.hi - q.lo).ravel()
    i = int(np.argmax(width))
    return divmod(i, q.scale.shape[1])


def histogram(x: np.ndarray, q: pg.Quantized, s: pg.Setting, title: str = "") -> go.Figure:
    """Counts of the tensor's values (log y) with the grid of its coarsest block drawn over
    them (every level for up to 4 bits, every 8th above) and that block's clipped range."""
    lo_all, hi_all = float(x.min()), float(x.max())
    counts, edges = np.histogram(x, bins=HIST_BINS, range=(lo_all, hi_all))
    mids = (edges[:-1] + edges[1:]) / 2
    fig = go.Figure(go.Bar(x=mids, y=np.maximum(counts, 0.9), width=edges[1] - edges[0],
                           marker_color="#778AAE", name="values",
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
                             name=f"grid of the coarsest block ({len(levels)} levels"
                                  + (f", every {step}th drawn)" if step > 1 else ")"),
                             hoverinfo="skip"))
    for v, name in ((float(q.lo[r, b]), "clip low"), (float(q.hi[r, b]), "clip high")):
        fig.add_vline(x=v, line_dash="dash", line_color="#FB0D0D", annotation_text=name)
    fig.update_layout(title=title or f"Values and the {s.label} grid", yaxis_type="log",
                      xaxis_title="weight value", yaxis_title="count (log)", height=380,
                      margin={"t": 50}, legend={"orientation": "h", "y": -0.25}, bargap=0)
    return fig


def scales(q: pg.Quantized, title: str = "") -> go.Figure:
    """Scale of every block: output rows x groups (rows subsampled evenly past MAX_HEAT_ROWS)."""
    z = q.scale
    rows = np.arange(z.shape[0])
    if z.shape[0] > MAX_HEAT_ROWS:
        rows = np.linspace(0, z.shape[0] - 1, MAX_HEAT_ROWS).round().astype(int)
        z = z[rows]
    fig = go.Figure(go.Heatmap(z=z, y=rows, colorscale="Viridis", colorbar={"title": {"text": "scale"}},
                               hovertemplate="row %{y}, block %{x}: scale %{z:.3g}<extra></extra>"))
    fig.update_layout(title=title or "Scale per block", xaxis_title="block (group of inputs)",
                      yaxis_title="output row", yaxis={"autorange": "reversed"}, height=380,
                      margin={"t": 50})
    return fig


def outliers(x: np.ndarray, q: pg.Quantized, n: int = 10) -> list[dict]:
    """The n largest |x|, where they are, and what quantization made of them."""
    flat = np.abs(x).ravel()
    idx = np.argpartition(flat, -n)[-n:]
    idx = idx[np.argsort(-flat[idx])]
    rows, cols = np.unravel_index(idx, x.shape)
    return [{"row": int(r), "column": int(c), "value": float(x[r, c]), "quantized": float(q.x_hat[r, c]),
             "error": float(q.x_hat[r, c] - x[r, c]),
             "× median |x|": float(abs(x[r, c]) / max(np.median(flat), 1e-30))}
            for r, c in zip(rows, cols)]


def channel_peaks(x: np.ndarray, title: str = "") -> go.Figure:
    """max |x| of every input channel over the tokens (activations [tokens, channels]), with
    the median channel's level: outlier channels stand out as spikes."""
    peaks = np.abs(x).max(axis=0)
    med = float(np.median(peaks))
    fig = go.Figure(go.Bar(x=np.arange(len(peaks)), y=peaks, marker_color="#2E91E5",
                           hovertemplate="channel %{x}: max |x| %{y:.3g}<extra></extra>"))
    fig.add_hline(y=med, line_dash="dash", line_color="#FB0D0D",
                  annotation_text=f"median channel {med:.3g}")
    fig.update_layout(title=title or "Largest |activation| of each input channel",
                      xaxis_title="input channel", yaxis_title="max |x| over the tokens",
                      height=380, margin={"t": 50}, bargap=0)
    return fig
