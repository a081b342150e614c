"""Result tables -> plotly figures: the trade-off scatter with its Pareto frontier, and bars of
each method's change against the baseline. Pure functions: no Streamlit, no torch."""
from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from qcompare.comparability import COMPARABLE
from qcompare.metrics.table import METRICS, label, pareto_mask
from qcompare.registry import BASELINE

HOVER_COLUMNS = ["method_label", "options_json", "model", "corpus", "protocol", "tokens", "window",
                 "device", "device_name", "kernel", "storage", "compute_dtype", "notes", "key"]


def _hover(row: pd.Series) -> str:
    parts = [f"<b>{row.get('method_label', '')}</b>"]
    for col in HOVER_COLUMNS[1:]:
        value = row.get(col)
        if value is not None and value == value and value != "":
            parts.append(f"{col}: {value}")
    return "<br>".join(parts)


def frontier(df: pd.DataFrame, x: str, y: str) -> pd.DataFrame:
    """The rows on the Pareto frontier of (x, y), sorted by x, using each metric's direction."""
    d = df.dropna(subset=[x, y])
    if d.empty:
        return d
    mask = pareto_mask(d[x].tolist(), d[y].tolist(),
                       METRICS[x].higher_is_better, METRICS[y].higher_is_better)
    return d[mask].sort_values(x)


def tradeoff(df: pd.DataFrame, x: str = "weights_mib", y: str = "ppl", log_x: bool = False,
             log_y: bool = False, title: str = "") -> go.Figure:
    """Scatter of every measured row, one colour per method family, frontier as a line."""
    fig = go.Figure()
    d = df.dropna(subset=[x, y])
    on_front = set(frontier(d, x, y)["key"])
    for family, part in d.groupby("family", sort=True):
        # only frontier points are labelled on the chart: every point has its label on hover
        fig.add_trace(go.Scatter(
            x=part[x], y=part[y], mode="markers+text", name=str(family),
            text=[lbl if k in on_front else "" for lbl, k in zip(part["method_label"], part["key"])],
            textposition="top center", marker={"size": 12},
            hovertext=[_hover(r) for _, r in part.iterrows()], hoverinfo="text",
            customdata=part["key"]))
    f = frontier(d, x, y)
    if len(f) > 1:
        fig.add_trace(go.Scatter(x=f[x], y=f[y], mode="lines", name="Pareto frontier",
                                 line={"dash": "dot", "color": "grey"}, hoverinfo="skip"))
    better_x = "→ better" if METRICS[x].higher_is_better else "← better"
    better_y = "↑ better" if METRICS[y].higher_is_better else "↓ better"
    fig.update_layout(
        title=title or f"{label(y)} vs {label(x)}",
        xaxis_title=f"{label(x)}  ({better_x})", yaxis_title=f"{label(y)}  ({better_y})",
        xaxis_type="log" if log_x else "linear", yaxis_type="log" if log_y else "linear",
        legend_title="family", margin={"t": 60, "l": 10, "r": 10, "b": 10}, height=520)
    return fig


def with_baseline_delta(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Adds `delta_pct`: 100 * (value / baseline value - 1), the baseline being the baseline
    method's row comparable with it (qcompare.comparability; NaN without one)."""
    d = df.copy()
    group = list(COMPARABLE)
    base = (d[d["method"] == BASELINE]
            .drop_duplicates(group)[group + [metric]]
            .rename(columns={metric: "_base"}))
    d = d.merge(base, on=group, how="left")
    d["delta_pct"] = 100.0 * (d[metric] / d["_base"] - 1.0)
    return d.drop(columns="_base")


BAR_CAP_PCT = 1000.0


def delta_bars(df: pd.DataFrame, metric: str) -> go.Figure:
    """Bars of each row's change vs the baseline in %, green where the change is better.
    Bars are cut at ±BAR_CAP_PCT so one collapsed method does not flatten the rest; their
    text keeps the true value."""
    d = with_baseline_delta(df, metric).dropna(subset=["delta_pct"])
    d = d[d["method"] != BASELINE].sort_values("delta_pct")
    hib = METRICS[metric].higher_is_better if metric in METRICS else False
    good = (d["delta_pct"] > 0) == hib
    fig = go.Figure(go.Bar(
        x=d["delta_pct"].clip(-BAR_CAP_PCT, BAR_CAP_PCT), y=d["method_label"], orientation="h",
        marker_color=["#2ca02c" if g else "#d62728" for g in good],
        text=[f"{v:+.1f}%" for v in d["delta_pct"]], textposition="auto",
        hovertext=[_hover(r) for _, r in d.iterrows()], hoverinfo="text"))
    cut = " (bars cut at ±1000%)" if (d["delta_pct"].abs() > BAR_CAP_PCT).any() else ""
    fig.update_layout(title=f"{label(metric)}: change vs {BASELINE} baseline (%){cut}",
                      xaxis_title="% change", margin={"t": 60, "l": 10, "r": 10, "b": 10},
                      height=max(240, 60 + 36 * len(d)))
    return fig


BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome")


def png_unavailable_reason() -> str | None:
    """Why a chart cannot be exported as PNG here (kaleido renders through a local Chrome)."""
    import importlib.util
    import shutil

    if importlib.util.find_spec("kaleido") is None:
        return "PNG export needs kaleido: pip install kaleido."
    if not any(shutil.which(b) for b in BROWSERS):
        return "PNG export needs Chrome or Chromium installed (apt-get install chromium)."
    return None


def to_png(fig: go.Figure, width: int = 1200, height: int = 600) -> bytes:
    return fig.to_image(format="png", width=width, height=height, scale=2)


def layer_metrics(layers: list[dict]) -> list[str]:
    """The numeric diagnostics the per-layer records hold, in order of first appearance."""
    keys: dict[str, None] = {}
    for entry in layers:
        for k, v in entry.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                keys.setdefault(k, None)
    return list(keys)


def layer_grid(layers: list[dict], metric: str) -> pd.DataFrame:
    """Per-layer diagnostics as a table: one row per decoder layer index, one column per Linear
    kind (q_proj, ..., down_proj), values of `metric`; layers without an index go in row -1."""
    import re

    cells = []
    for entry in layers:
        if metric not in entry:
            continue
        name = entry.get("layer", "")
        m = re.search(r"layers\.(\d+)\.", name)
        cells.append({"index": int(m.group(1)) if m else -1, "linear": name.rsplit(".", 1)[-1],
                      "value": entry[metric]})
    if not cells:
        return pd.DataFrame()
    d = pd.DataFrame(cells)
    order = list(dict.fromkeys(d["linear"]))
    return d.pivot_table(index="index", columns="linear", values="value", aggfunc="mean")[order]


def layer_heatmap(layers: list[dict], metric: str, title: str = "") -> go.Figure:
    """Heatmap of `metric` over decoder layers (y) and Linear kinds (x)."""
    grid = layer_grid(layers, metric)
    fig = go.Figure(go.Heatmap(z=grid.values, x=list(grid.columns), y=list(grid.index),
                               colorscale="Viridis", colorbar={"title": metric}))
    fig.update_layout(title=title, xaxis_title="Linear", yaxis_title="decoder layer",
                      yaxis_autorange="reversed", height=max(300, 18 * len(grid) + 120))
    return fig
