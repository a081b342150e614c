"""Result tables -> plotly figures: the trade-off scatter with its Pareto frontier, and bars of
each method's change against the baseline. Pure functions: no Streamlit, no torch. Figures for
files (PNG, HTML) are built anew with `export=True`, never taken from a page: Streamlit rewrites
the template of a figure it shows."""
from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go

from qcompare.charts.style import colour_of, place_labels, point_label, symbol_of
from qcompare.core.columns import METRICS, SPEED_SPREAD, label, pareto_mask
from qcompare.core.registry import BASELINE
from qcompare.i18n import catalogue as i18n
from qcompare.stats import noisefloor
from qcompare.stats.comparability import COMPARABLE

HOVER_COLUMNS = ["method_label", "effort", "options_json", "model", "corpus", "protocol", "tokens", "window",
                 "device", "device_name", "kernel", "storage", "compute_dtype", "notes", "key"]


def _num(row: pd.Series, col: str) -> float | None:
    v = row.get(col)
    return float(v) if isinstance(v, (int, float)) and v == v else None


def precision_lines(row: pd.Series) -> list[str]:
    """How precise the row's numbers are, in words for a hover: PPL and KLD with their
    standard errors, decode speed with its spread and repeats, the decode roofline."""
    out = []
    if _num(row, "ppl") is not None:
        se = _num(row, "ppl_se")
        out.append(f"PPL {row['ppl']:.3f}" + (f" ± {se:.3f} (se)" if se is not None else ""))
    if _num(row, "kld_mean") is not None:
        se = _num(row, "kld_se")
        out.append(f"KLD {row['kld_mean']:.4f}" + (f" ± {se:.4f} (se)" if se is not None else ""))
    if _num(row, "decode_tok_s") is not None:
        lo, hi, n = _num(row, "decode_tok_s_min"), _num(row, "decode_tok_s_max"), _num(row, "speed_runs")
        text = f"decode {row['decode_tok_s']:.1f} tok/s"
        if lo is not None and hi is not None:
            text += f" [{lo:.1f}–{hi:.1f}]"
        if n is not None:
            text += f", {n:.0f} repeats"
        out.append(text)
    if _num(row, "decode_roofline_pct") is not None:
        out.append(f"decode at {row['decode_roofline_pct']:.0f} % of the memory-bandwidth roofline")
    return out


def _hover(row: pd.Series) -> str:
    parts = [f"<b>{row.get('method_label', '')}</b>"] + precision_lines(row)
    for col in HOVER_COLUMNS[1:]:
        value = row.get(col)
        if value is not None and value == value and value != "":
            parts.append(f"{col}: {value}")
    return "<br>".join(parts)


SPREAD_WARN = 0.25        # speed repeats spread wider than +-25 % of the median: a busy machine


def _not_finite_rows(df: pd.DataFrame, x: str, y: str) -> pd.DataFrame:
    """Rows that are no measurement to draw: an infinite value on either axis or in the
    perplexity or divergence, or a NaN perplexity (every run has one; NaN means the run broke).
    A value merely absent (a column an older row never had, a speed not measured) is not one
    of them."""
    bad = pd.Series(False, index=df.index)
    for col in dict.fromkeys((x, y, "ppl", "kld_mean")):
        if col in df:
            v = pd.to_numeric(df[col], errors="coerce")
            bad |= v.isin([math.inf, -math.inf])
    if "ppl" in df:
        bad |= pd.to_numeric(df["ppl"], errors="coerce").isna()
    return df[bad]


def frontier(df: pd.DataFrame, x: str, y: str) -> pd.DataFrame:
    """The rows on the Pareto frontier of (x, y), sorted by x, using each metric's direction.
    For a metric measured against the baseline (KL, top-1) the baseline scores trivially, so
    it is left off the frontier (it is drawn as the reference it is)."""
    d = df.dropna(subset=[x, y])
    if METRICS[x].vs_baseline or METRICS[y].vs_baseline:
        d = d[d["method"] != BASELINE]
    if d.empty:
        return d
    mask = pareto_mask(d[x].tolist(), d[y].tolist(),
                       METRICS[x].higher_is_better, METRICS[y].higher_is_better)
    return d[mask].sort_values(x)


def collapsed(df: pd.DataFrame, metric: str) -> pd.Series:
    """True for rows whose `metric` marks a collapsed run (metrics.table): beyond
    `collapse_ratio` times the comparable baseline's value, or past `collapse_value`, in the
    metric's bad direction."""
    col = METRICS[metric]
    v = df[metric]
    out = pd.Series(False, index=df.index)
    bad = (lambda a, b: a < b) if col.higher_is_better else (lambda a, b: a > b)
    if col.collapse_value is not None:
        out |= bad(v, col.collapse_value)
    if col.collapse_ratio is not None and (df["method"] == BASELINE).any():
        base = with_baseline_delta(df, metric)["delta_pct"].to_numpy()
        limit = 100.0 * (col.collapse_ratio - 1) if not col.higher_is_better else \
            100.0 * (1 / col.collapse_ratio - 1)
        out |= pd.Series(bad(base, limit), index=df.index).fillna(False)
    return out & df["method"].ne(BASELINE)


def speed_spread(df: pd.DataFrame, metric: str) -> pd.Series:
    """Half the min-max range of the speed repeats over their median (NaN where not measured)."""
    if f"{metric}_min" not in df:
        return pd.Series(float("nan"), index=df.index)
    return (df[f"{metric}_max"] - df[f"{metric}_min"]) / 2 / df[metric]


def _axis_range(values: pd.Series, log: bool) -> tuple[float, float]:
    import math

    v = values[values > 0] if log else values
    if v.empty:
        return (0.0, 1.0)
    lo, hi = float(v.min()), float(v.max())
    if log:
        lo, hi = math.log10(lo), math.log10(hi)
    pad = (hi - lo) * 0.12 or (abs(hi) * 0.1 if not log else 0.1) or 1.0
    return (lo - pad, hi + pad)


def _error_bars(part: pd.DataFrame, metric: str) -> dict | None:
    if metric not in SPEED_SPREAD or f"{metric}_min" not in part or part[f"{metric}_min"].isna().all():
        return None
    return {"type": "data", "symmetric": False, "color": "rgba(80,80,80,0.6)", "thickness": 1.5,
            "array": (part[f"{metric}_max"] - part[metric]).fillna(0).tolist(),
            "arrayminus": (part[metric] - part[f"{metric}_min"]).fillna(0).tolist()}


def tradeoff(df: pd.DataFrame, x: str = "weights_mib", y: str = "ppl", log_x: bool = False,
             log_y: bool = False, title: str = "", show_collapsed: bool = False,
             export: bool = False, published: pd.DataFrame | None = None,
             ties: list[tuple[str, str]] | None = None, noise: dict | None = None,
             lang: str = "en", noise_pending: bool = False) -> go.Figure:
    """Scatter of every measured row with the Pareto frontier (its words in `lang`).

    Every point is labelled (chartstyle.point_label) where its label fits without collisions,
    else numbered, the numbers listed in `fig.layout.meta["numbered"]`; each method variant
    keeps one colour on every chart and each family one marker shape. Collapsed runs
    (`collapsed`) are drawn in a strip at the chart's top edge with their value written out,
    and the axis is fitted to the others, unless `show_collapsed`. A metric measured against
    the baseline leaves the baseline off the plot: it is a reference line at its x. Speed axes
    get min-max error bars over the repeats. `export` builds the figure for a file: its own
    light theme and margins that fit the tick labels and titles. `published` rows
    (`qcompare.sources.published.load`) with values on both axes are drawn as hollow markers named
    "published: <source>", after the frontier is computed from the measured rows alone.
    `ties` (pairs of row keys, e.g. neighbours of `qcompare.stats.ranking` whose interval covers 0)
    are joined by a dotted grey line: not distinguishable at this sample size. `noise`
    (`qcompare.stats.noisefloor.read`) shades the baseline's noise floor on a KL or top-1 axis;
    with `noise_pending` (its job has not run yet) such an axis says "noise floor: coming"."""
    fig = go.Figure()
    unfit = _not_finite_rows(df, x, y)
    d = df.drop(index=unfit.index).dropna(subset=[x, y]).copy()
    base = d[d["method"] == BASELINE]
    if METRICS[y].vs_baseline:
        d = d[d["method"] != BASELINE]
    flat = collapsed(d, y) if not show_collapsed else pd.Series(False, index=d.index)
    ok, broken = d[~flat], d[flat]
    log_y = log_y and (ok[y] > 0).all()
    pub = published.dropna(subset=[x, y]) if published is not None and x in published \
        and y in published else None
    xs, ys = d[x], ok[y] if not ok.empty else d[y]
    if pub is not None and not pub.empty:
        xs, ys = pd.concat([xs, pub[x]]), pd.concat([ys, pub[y]])
    x_range = _axis_range(xs, log_x)
    y_range = _axis_range(ys, log_y)
    strip_y, band = None, None
    if not broken.empty:               # collapsed runs get a band of their own past the others
        span = y_range[1] - y_range[0]
        if METRICS[y].higher_is_better:
            band = (y_range[0] - 0.2 * span, y_range[0])
            y_range = (band[0], y_range[1])
            top = y_range[0] + 0.07 * span
        else:
            band = (y_range[1], y_range[1] + 0.2 * span)
            y_range = (y_range[0], band[1])
            top = y_range[1] - 0.07 * span
        strip_y = 10 ** top if log_y else top
        band = tuple(10 ** b for b in band) if log_y else band
    floor = None                        # the noise floor, with the axis taking its edge in
    noise_edge = noisefloor.band(noise, y)
    higher = bool(METRICS[y].higher_is_better)
    if noise_edge is not None and not higher and noise_edge > 0:
        edge = math.log10(noise_edge) if log_y else noise_edge
        y_range = (min(y_range[0], edge - 0.1 * abs(edge) if log_y else 0.0), max(y_range[1], edge))
        floor = (10 ** y_range[0] if log_y else y_range[0], noise_edge)
    elif noise_edge is not None and higher:      # a fraction whose best value is 1
        y_range = (min(y_range[0], noise_edge), max(y_range[1], 1.0 + 0.02 * (1 - y_range[0])))
        floor = (noise_edge, 1.0)
    labels = [point_label(r) for _, r in ok.iterrows()]
    spots = place_labels(ok[x].tolist(), ok[y].tolist(), labels, x_range, y_range, log_x, log_y)
    numbered = []
    for (_, r), text, pos in zip(ok.iterrows(), labels, spots):
        if pos is None:
            numbered.append(text)
            text, pos = str(len(numbered)), "middle center"
        one = ok.loc[[r.name]]
        fig.add_trace(go.Scatter(
            x=one[x], y=one[y], mode="markers+text", name=point_label(r), text=[text],
            textposition=pos, legendgroup=str(r["family"]),
            legendgrouptitle_text=i18n.family(str(r["family"]), lang),
            marker={"size": 13, "color": colour_of(str(r["method_label"])),
                    "symbol": symbol_of(str(r["family"])), "line": {"width": 1, "color": "white"}},
            error_x=_error_bars(one, x), error_y=_error_bars(one, y),
            hovertext=[_hover(r)], hoverinfo="text", customdata=[r["key"]]))
    if not broken.empty:
        fig.add_trace(go.Scatter(
            x=broken[x], y=[strip_y] * len(broken), mode="markers+text", name=i18n.t("chart.collapsed", lang),
            marker={"size": 13, "symbol": "triangle-up" if not METRICS[y].higher_is_better
                    else "triangle-down", "color": "#888888"},
            text=[f"{point_label(r)}: {r[y]:.3g}" for _, r in broken.iterrows()],
            textposition=[("bottom " if not METRICS[y].higher_is_better else "top ")
                          + _toward_middle(v, x_range, log_x) for v in broken[x]],
            hovertext=[_hover(r) for _, r in broken.iterrows()], hoverinfo="text"))
        fig.add_hrect(y0=band[0], y1=band[1], fillcolor="rgba(120,120,120,0.10)", line_width=0,
                      layer="below")
        fig.add_annotation(text=i18n.t("chart.collapsed_note", lang, label=label(y, lang)),
                           xref="paper", yref="paper", x=1, y=1.0, xanchor="right",
                           yanchor="bottom", showarrow=False, font={"size": 11, "color": "#666"})
    f = frontier(ok, x, y)
    if len(f) > 1:
        fig.add_trace(go.Scatter(x=f[x], y=f[y], mode="lines", name=i18n.t("chart.frontier", lang),
                                 line={"dash": "dot", "color": "grey"}, hoverinfo="skip"))
    if pub is not None and not pub.empty:
        add_published(fig, pub, x, y, lang, measured=d)
    where = {r["key"]: (r[x], r[y]) for _, r in ok.iterrows()}
    first = True
    for a, b in ties or []:
        if a in where and b in where:
            fig.add_trace(go.Scatter(
                x=[where[a][0], where[b][0]], y=[where[a][1], where[b][1]], mode="lines",
                line={"dash": "dot", "color": "#999", "width": 2}, hoverinfo="skip",
                name=i18n.t("chart.ties", lang), legendgroup="ties",
                showlegend=first))
            first = False
    if floor is not None and floor[1] > floor[0]:
        fig.add_hrect(y0=floor[0], y1=floor[1], fillcolor="rgba(31,119,180,0.10)", line_width=0,
                      layer="below")
        fig.add_annotation(text=i18n.t("chart.noise", lang), xref="paper",
                           x=0, y=math.log10(floor[0] if higher else floor[1]) if log_y
                           else (floor[0] if higher else floor[1]),
                           xanchor="left", yanchor="top" if higher else "bottom",
                           showarrow=False, font={"size": 11, "color": "#1f77b4"})
    elif noise is None and noise_pending and METRICS[y].noise_band:
        fig.add_annotation(text=i18n.t("chart.noise_pending", lang), xref="paper", yref="paper",
                           x=0, y=0 if higher else 1, xanchor="left",
                           yanchor="bottom" if higher else "top", showarrow=False,
                           font={"size": 11, "color": "#1f77b4"})
    if METRICS[y].vs_baseline and not base.empty:
        fig.add_vline(x=float(base[x].iloc[0]), line={"color": "#555", "dash": "dash"},
                      annotation_text=f"{BASELINE} baseline (the reference)",
                      annotation_position="top left")
    wide = [r for (_, r), s in zip(d.iterrows(), _worst_spread(d, x, y)) if s > SPREAD_WARN]
    better_x = i18n.t("chart.better_right" if METRICS[x].higher_is_better else "chart.better_left", lang)
    better_y = i18n.t("chart.better_up" if METRICS[y].higher_is_better else "chart.better_down", lang)
    fig.update_layout(
        title=title or i18n.t("chart.vs", lang, y=label(y, lang), x=label(x, lang)),
        xaxis={"title": f"{label(x, lang)}  ({better_x})", "type": "log" if log_x else "linear",
               "range": list(x_range), "automargin": True},
        yaxis={"title": f"{label(y, lang)}  ({better_y})", "type": "log" if log_y else "linear",
               "range": list(y_range), "automargin": True},
        legend={"title": i18n.t("chart.method", lang), "groupclick": "toggleitem"}, height=560,
        margin={"t": 70, "l": 70, "r": 20, "b": 60},
        meta={"numbered": numbered, "collapsed": broken["key"].tolist(),
              "wide_spread": [point_label(r) for r in wide],
              "not_finite": unfit["key"].tolist() if "key" in unfit else []})
    if not unfit.empty:
        fig.add_annotation(text=i18n.t("chart.not_finite", lang, n=len(unfit), labels=", ".join(
                               point_label(r) for _, r in unfit.iterrows())),
                           xref="paper", yref="paper", x=1, y=-0.16, xanchor="right",
                           showarrow=False, font={"size": 11, "color": "#b00020"})
    if wide:
        fig.add_annotation(text=i18n.t("chart.spread_warn", lang, spread=SPREAD_WARN,
                                       labels=", ".join(point_label(r) for r in wide)),
                           xref="paper", yref="paper", x=0, y=-0.16, xanchor="left",
                           showarrow=False, font={"size": 11, "color": "#b35900"})
    if export:
        # a file has no scrolling legend: it goes under the plot, four entries a row, and the
        # figure grows to hold every entry
        entries = sum(1 for tr in fig.data if tr.showlegend is not False)
        rows = -(-entries // 4)
        fig.update_layout(template="plotly_white", width=1200, height=650 + 26 * rows,
                          margin={"t": 90, "l": 100, "r": 40, "b": 130 + 26 * rows},
                          font={"size": 14},
                          legend={"orientation": "h", "x": 0, "xanchor": "left", "y": -0.14,
                                  "yanchor": "top", "groupclick": "toggleitem"})
    return fig


PUBLISHED_SYMBOLS = {"seed guide": "circle-open", "seed meetup talk": "diamond-open",
                     "AWQ paper": "square-open"}


def add_published(fig: go.Figure, pub: pd.DataFrame, x: str, y: str, lang: str = "en",
                  measured: pd.DataFrame | None = None) -> None:
    """Hollow markers, one trace per source, legend 'published: <source>'; hover says what the
    source did not state. Never part of a frontier (they are added after it). Where the
    published figures are of other models than the `measured` rows' (a 7B beside the 135M
    embedded model), the chart says so above the plot."""
    from qcompare.sources.published import short_source

    if measured is not None and "model" in measured and "model" in pub and not pub.empty:
        ours = {str(m) for m in measured["model"].dropna()}
        theirs = sorted({str(m) for m in pub["model"].dropna()} - ours)
        if theirs and ours:
            fig.add_annotation(text=i18n.t("chart.published_other_model", lang,
                                           models=", ".join(theirs)),
                               xref="paper", yref="paper", x=0, y=1.0, xanchor="left",
                               yanchor="bottom", showarrow=False,
                               font={"size": 12, "color": "#444"})

    for source, part in pub.groupby("source", sort=False):
        short = short_source(str(source))
        fig.add_trace(go.Scatter(
            x=part[x], y=part[y], mode="markers", name=i18n.t("chart.published", lang, source=short),
            legendgroup="published", legendgrouptitle_text=i18n.t("chart.published_group", lang),
            marker={"size": 12, "symbol": PUBLISHED_SYMBOLS.get(short, "circle-open"),
                    "color": "#444", "line": {"width": 2}},
            hovertext=[f"<b>{r['label']}</b><br>{r['where']}; {r['hardware']}<br>"
                       f"{i18n.t('chart.ppl_text', lang)}: {r['ppl_text']}<br>{r['note']}"
                       for _, r in part.iterrows()], hoverinfo="text"))


def choice_chart(points: pd.DataFrame, x: str, y: str, x_label: str, y_label: str,
                 x_limit: float | None = None, y_limit: float | None = None,
                 published: pd.DataFrame | None = None, lang: str = "en") -> go.Figure:
    """The Choose page's trade-off: candidate rows (columns method_label, label, family,
    feasible, reason, x, y) with the feasible region (x <= x_limit, y <= y_limit) shaded;
    excluded rows in grey; published rows as hollow markers where they have both values. The
    axes fit the points (a limit beyond them is written at the edge); labels that do not fit
    are numbered, the numbers in `fig.layout.meta["numbered"]`."""
    fig = go.Figure()
    d = points.dropna(subset=[x, y])
    pub = published.dropna(subset=[x, y]) if published is not None and x in published \
        and y in published else None
    xs = pd.concat([d[x]] + ([pub[x]] if pub is not None else []))
    ys = pd.concat([d[y]] + ([pub[y]] if pub is not None else []))
    x_range, y_range = _axis_range(xs, False), _axis_range(ys, False)
    labels = d["label"].tolist() if "label" in d else d["method_label"].tolist()
    spots = place_labels(d[x].tolist(), d[y].tolist(), labels, x_range, y_range)
    numbered = []
    texts, positions = [], []
    for text, pos in zip(labels, spots):
        if pos is None:
            numbered.append(text)
            text, pos = str(len(numbered)), "middle center"
        texts.append(text)
        positions.append(pos)
    d = d.assign(_text=texts, _pos=positions)
    for feasible, part in d.groupby("feasible", sort=False):
        fig.add_trace(go.Scatter(
            x=part[x], y=part[y], mode="markers+text", text=part["_text"],
            textposition=part["_pos"].tolist(),
            name=i18n.t("chart.feasible" if feasible else "chart.excluded", lang),
            marker={"size": 12, "color": "#1f77b4" if feasible else "#bbbbbb",
                    "symbol": [symbol_of(str(f)) for f in part["family"]]},
            hovertext=part["reason"] if "reason" in part else part["method_label"],
            hoverinfo="text"))
    if pub is not None and not pub.empty:
        add_published(fig, pub, x, y, lang, measured=d)
    if x_limit is not None or y_limit is not None:
        x1 = min(x_limit, x_range[1]) if x_limit is not None else x_range[1]
        y1 = min(y_limit, y_range[1]) if y_limit is not None else y_range[1]
        fig.add_shape(type="rect", x0=x_range[0], x1=x1, y0=y_range[0], y1=y1, layer="below",
                      fillcolor="rgba(44,160,44,0.10)", line={"width": 0})
        edge = [f"{_short(x_label, lang)} ≤ {x_limit:g}" if x_limit is not None else "",
                f"{_short(y_label, lang)} ≤ {y_limit:g}" if y_limit is not None else ""]
        fig.add_annotation(x=x1, y=y1, text=i18n.t("chart.feasible_region", lang,
                                                   limits=", ".join(e for e in edge if e)),
                           showarrow=False, xanchor="right", yanchor="bottom",
                           font={"color": "#2c7a2c"}, bgcolor="rgba(255,255,255,0.8)")
    fig.update_layout(xaxis={"title": f"{x_label}  ({i18n.t('chart.better_left', lang)})",
                             "range": list(x_range)},
                      yaxis={"title": f"{y_label}  ({i18n.t('chart.better_down', lang)})",
                             "range": list(y_range)},
                      height=520, margin={"t": 40, "l": 70, "r": 20, "b": 60},
                      legend={"title": ""}, meta={"numbered": numbered})
    return fig


def _short(axis_label: str, lang: str) -> str:
    """An axis title without its unit, for the feasible region's note ('Memory needed (GiB)'
    -> 'memory needed'; Japanese has no case, and its unit is in full-width brackets)."""
    head = axis_label.split(" (")[0].split("（")[0]
    return head.lower() if lang == "en" else head


def _toward_middle(v: float, x_range: tuple[float, float], log: bool) -> str:
    """'left' for a point in the right half of the axis, else 'right': text stays inside."""
    import math

    t = math.log10(v) if log and v > 0 else v
    return "left" if t > (x_range[0] + x_range[1]) / 2 else "right"


def _worst_spread(d: pd.DataFrame, x: str, y: str) -> list[float]:
    spreads = [speed_spread(d, m) for m in (x, y) if m in SPEED_SPREAD]
    if not spreads:
        return [0.0] * len(d)
    return pd.concat(spreads, axis=1).max(axis=1).fillna(0).tolist()


def to_html(fig: go.Figure) -> str:
    """A standalone page with plotly.js embedded: it draws offline (no CDN)."""
    return fig.to_html(include_plotlyjs=True, full_html=True)


def with_baseline_delta(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Adds `delta_pct`: 100 * (value / baseline value - 1), the baseline being the baseline
    method's row comparable with it (qcompare.stats.comparability; NaN without one)."""
    d = df.copy()
    group = list(COMPARABLE)
    base = (d[d["method"] == BASELINE]
            .drop_duplicates(group)[group + [metric]]
            .rename(columns={metric: "_base"}))
    d = d.merge(base, on=group, how="left")
    d["delta_pct"] = 100.0 * (d[metric] / d["_base"] - 1.0)
    return d.drop(columns="_base")


BAR_CAP_PCT = 1000.0


def delta_bars(df: pd.DataFrame, metric: str, lang: str = "en") -> go.Figure:
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
    cut = i18n.t("kl.delta_cut", lang) if (d["delta_pct"].abs() > BAR_CAP_PCT).any() else ""
    fig.update_layout(title=i18n.t("kl.delta_title", lang, label=label(metric, lang), baseline=BASELINE, cut=cut),
                      xaxis_title=i18n.t("kl.delta_x", lang), margin={"t": 60, "l": 10, "r": 10, "b": 10},
                      yaxis={"automargin": True},        # method labels are never clipped
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


def to_png(fig: go.Figure, width: int | None = None, height: int | None = None) -> bytes:
    """PNG of a figure built with export=True (kaleido, through a local Chromium), at the
    figure's own size (an exported trade-off grows with its legend)."""
    return fig.to_image(format="png", width=width or fig.layout.width or 1200,
                        height=height or fig.layout.height or 650, scale=2)


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


def layer_heatmap(layers: list[dict], metric: str, title: str = "", lang: str = "en") -> go.Figure:
    """Heatmap of `metric` over decoder layers (y) and Linear kinds (x)."""
    grid = layer_grid(layers, metric)
    fig = go.Figure(go.Heatmap(z=grid.values, x=list(grid.columns), y=list(grid.index),
                               colorscale="Viridis", colorbar={"title": metric}))
    fig.update_layout(title=title, xaxis_title="Linear", yaxis_title=i18n.t("schart.layer", lang),
                      yaxis_autorange="reversed", height=max(300, 18 * len(grid) + 120))
    return fig


def kl_survival(curves: dict[str, "object"], points: int = 200, lang: str = "en") -> go.Figure:
    """For each method (label -> its per-token KL values), the share of tokens whose KL exceeds
    x, on log axes: the whole distribution at a glance, its tail on the right."""
    import numpy as np

    fig = go.Figure()
    positive = [np.asarray(v)[np.asarray(v) > 0] for v in curves.values()]
    lo = min((float(np.percentile(v, 1)) for v in positive if v.size), default=1e-6)
    hi = max((float(v.max()) for v in positive if v.size), default=1.0)
    xs = np.logspace(np.log10(max(lo, 1e-8)), np.log10(hi), points)
    for name, v in curves.items():
        v = np.sort(np.asarray(v, np.float64))
        share = 1.0 - np.searchsorted(v, xs, side="right") / v.size
        fig.add_trace(go.Scatter(x=xs, y=np.where(share > 0, share, np.nan), mode="lines",
                                 name=name, line={"color": colour_of(name), "width": 2},
                                 hovertemplate=f"{name}<br>KL > %{{x:.3g}}: %{{y:.2%}}<extra></extra>"))
    for t in (0.1, 1.0):
        if xs[0] <= t <= xs[-1]:
            fig.add_vline(x=t, line={"color": "#bbb", "dash": "dot"})
            # annotations on a log axis take log10 of the position (plotly's convention)
            fig.add_annotation(x=np.log10(t), y=1, yref="paper", text=f"KL {t:g}",
                               showarrow=False, yanchor="bottom", font={"color": "#888"})
    fig.update_layout(title=i18n.t("kl.survival_title", lang),
                      xaxis={"title": i18n.t("kl.survival_x", lang), "type": "log"},
                      yaxis={"title": i18n.t("kl.survival_y", lang), "type": "log", "tickformat": ".2~%"},
                      height=460, margin={"t": 60, "l": 70, "r": 20, "b": 60})
    return fig


def kl_by_confidence(rows: pd.DataFrame, lang: str = "en") -> go.Figure:
    """Mean KL per bucket of the baseline's top-token probability, one bar group per method,
    from each row's `kld_by_confidence_json`; the token count of each bucket on hover."""
    import json

    fig = go.Figure()
    for _, r in rows.iterrows():
        b = json.loads(r["kld_by_confidence_json"])
        fig.add_trace(go.Bar(
            x=[f"{e['lo']:.2f}–{e['hi']:.2f}" for e in b], y=[e["kld_mean"] for e in b],
            name=str(r["method_label"]), marker_color=colour_of(str(r["method_label"])),
            customdata=[e["tokens"] for e in b],
            hovertemplate=f"{r['method_label']}<br>baseline p(top) %{{x}}<br>mean KL %{{y:.4f}}"
                          "<br>%{customdata} tokens<extra></extra>"))
    fig.update_layout(title=i18n.t("kl.conf_title", lang), xaxis_title=i18n.t("kl.conf_x", lang),
                      yaxis={"title": i18n.t("kl.conf_y", lang), "type": "log"},
                      barmode="group", height=420, margin={"t": 60, "l": 70, "r": 20, "b": 60})
    return fig
