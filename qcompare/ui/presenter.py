"""Presenter mode, for projectors at meetups: large type, a high-contrast chart theme with big
markers, the sidebar collapsed, and a demo script that walks through prepared steps, each
saying whether its numbers are already stored (answered from the cache) or will be measured.
On with the sidebar toggle or `?present=1`; kept per session."""
from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

from qcompare.ui.lang import t

KEY = "present"
CSS = """
<style>
html, body, [data-testid="stAppViewContainer"] { font-size: 22px; }
[data-testid="stMarkdownContainer"] p, [data-testid="stMarkdownContainer"] li { font-size: 1.15rem; }
h1 { font-size: 3rem !important; } h2, h3 { font-size: 2.1rem !important; }
[data-testid="stMetricValue"] { font-size: 2.6rem !important; }
[data-testid="stCaptionContainer"] { font-size: 1rem !important; }
[data-testid="stMainBlockContainer"] { max-width: 96vw; padding-top: 4.2rem; }
</style>
"""
FONT = {"size": 22, "color": "#000000"}
AXIS = {"linecolor": "#000000", "linewidth": 2, "gridcolor": "#B0B0B0", "zerolinecolor": "#000000",
        "tickfont": {"size": 20}, "title": {"font": {"size": 24}}, "showline": True}


def active() -> bool:
    """Whether this session presents: the toggle, first set from `?present=1`."""
    if KEY not in st.session_state:
        st.session_state[KEY] = st.query_params.get(KEY) == "1"
    return bool(st.session_state[KEY])


def toggle() -> None:
    """The sidebar switch; the URL follows it, so a reload keeps the mode."""
    on = st.toggle(t("presenter.toggle"), key=KEY, help=t("presenter.toggle_help"))
    if on:
        st.query_params[KEY] = "1"
    elif KEY in st.query_params:
        del st.query_params[KEY]


def apply() -> None:
    if active():
        st.html(CSS)


def theme(fig: go.Figure) -> go.Figure:
    """The figure restyled for the back of a room: black on white, thick axes, large fonts,
    markers at least 16 px and lines at least 4 px; and laid out for a 1024-px projector: the
    legend under the plot (a side legend took half the width and scrolled), a long title in
    smaller type rather than cut, and point labels turned inwards near the plot's edges so they
    stay inside it."""
    title = fig.layout.title.text or ""
    entries = sum(1 for tr in fig.data if tr.showlegend is not False and tr.name)
    rows = -(-entries // 3)
    height = (fig.layout.height or 450) + 34 * rows
    fig.update_layout(font=FONT, paper_bgcolor="#FFFFFF", plot_bgcolor="#FFFFFF",
                      title_font={"size": max(16, min(28, 1500 // max(len(title), 1)))},
                      legend={"orientation": "h", "x": 0, "xanchor": "left", "y": -0.18,
                              "yanchor": "top", "font": {"size": 18}, "title": {"text": ""}},
                      height=height, margin={"b": 110 + 34 * rows})
    fig.update_xaxes(**AXIS)
    fig.update_yaxes(**AXIS)
    for trace in fig.data:
        if trace.type == "scatter":
            if trace.marker is not None:
                size = trace.marker.size
                if size is None or isinstance(size, (int, float)):
                    trace.marker.size = max(size or 0, 16)
            if trace.line is not None:
                trace.line.width = max(trace.line.width or 0, 4)
            if trace.textfont is not None:
                trace.textfont.size = 20
            _labels_inwards(fig, trace)
    return fig


def _share(value, axis) -> float | None:
    """Where `value` sits across `axis`'s range, 0 (start) to 1 (end); None without a range."""
    import math

    rng = axis.range
    if not rng or value is None or not isinstance(value, (int, float)):
        return None
    lo, hi = rng
    if axis.type == "log":
        if value <= 0:
            return None
        value = math.log10(value)
    return (value - lo) / (hi - lo) if hi != lo else None


def _labels_inwards(fig: go.Figure, trace) -> None:
    """Point labels near the plot's left or right quarter, or its top tenth, are placed on the
    side facing the plot's middle (presenter type is large: outward labels ran off the plot)."""
    text = trace.text
    if text is None or isinstance(text, str) or len(text) == 0 or "text" not in (trace.mode or "") \
            or trace.x is None or trace.y is None:         # (text may be a numpy array)
        return
    xs, ys = list(trace.x), list(trace.y)
    given = trace.textposition
    positions = list(given) if isinstance(given, (list, tuple)) else [given or "top center"] * len(xs)
    for i, (x, y) in enumerate(zip(xs, ys)):
        if i >= len(positions):
            break
        sx, sy = _share(x, fig.layout.xaxis), _share(y, fig.layout.yaxis)
        vertical, _, horizontal = (positions[i] or "top center").partition(" ")
        if sx is not None and sx > 0.75:
            horizontal = "left"
        elif sx is not None and sx < 0.25:
            horizontal = "right"
        if sy is not None and sy > 0.9:
            vertical = "bottom"
        positions[i] = f"{vertical} {horizontal or 'center'}"
    trace.textposition = positions


def chart(fig: go.Figure, where=None, **kw) -> None:
    """st.plotly_chart, in presenter mode with the presenter theme (and no Streamlit theme on
    top of it) at full width."""
    where = where if where is not None else st
    if active():
        kw.pop("width", None)
        where.plotly_chart(theme(go.Figure(fig)), theme=None, width="stretch", **kw)
    else:
        where.plotly_chart(fig, **kw)


def demo_script(steps: list[dict], expanded: bool) -> None:
    """The prepared steps: title, what it shows, where its numbers come from, a link."""
    live = [str(i) for i, s in enumerate(steps, 1) if s.get("live")]
    with st.expander(t("presenter.script") + "  ·  " + (
            t("presenter.rehearsal_live", n=len(live), steps=", ".join(live)) if live
            else t("presenter.rehearsal_ready")), expanded=expanded, icon="⏱️" if live else "✅"):
        for i, s in enumerate(steps, 1):
            c = st.columns([4, 2])
            c[0].markdown(f"**{i}. {s['title']}** — {s['what']}  \n{s['source']}")
            c[1].page_link(s["page"], label=s["link"], icon=s.get("icon"))


def steps() -> list[dict]:
    """The demo's steps with where their numbers come from right now (the stored rows, or what
    the step will measure): never a prepared figure. `live`: the step would measure in front of
    the audience (rows missing, the model not yet converted), which the rehearsal check names."""
    from qcompare.core.errors import UserError
    from qcompare.explore import generation
    from qcompare.ui.data import embedded_state, preset_plan, results, state_dir

    df, _ = results()
    stored = set(df["key"]) if not df.empty else set()
    try:
        plan = preset_plan("default", "quick")
        have = sum(s.key() in stored for s in plan)
        comparison = (t("presenter.s1_all", n=len(plan)) if have == len(plan) else
                      t("presenter.s1_some", have=have, n=len(plan), missing=len(plan) - have))
        missing = have < len(plan)
    except UserError as e:
        comparison, missing = t("presenter.s1_refused", error=e), True
    done = list((generation.folder(state_dir()) / "requests").glob("*.json"))
    state, _ = embedded_state(str(state_dir()))
    return [
        {"title": t("presenter.s1_title"), "page": "pages/home.py", "link": t("nav.home"),
         "icon": "🏠", "what": t("presenter.s1_what"), "source": comparison, "live": missing},
        {"title": t("presenter.s2_title"), "page": "pages/results.py", "link": t("nav.results"),
         "icon": "📈", "what": t("presenter.s2_what"),
         "source": t("presenter.s2_rows", n=len(df)) if len(df) else t("presenter.s2_none"),
         "live": not len(df)},
        {"title": t("presenter.s3_title"), "page": "pages/generate.py", "link": t("nav.generate"),
         "icon": "✍️", "what": t("presenter.s3_what"),
         "source": t("presenter.s3_source") + (t("presenter.s3_count", n=len(done)) if done else ""),
         "live": state != "ready"},
        {"title": t("presenter.s4_title"), "page": "pages/playground.py", "link": t("nav.playground"),
         "icon": "🎛️", "what": t("presenter.s4_what"),
         "source": t("presenter.s4_ready") if state == "ready" else t("presenter.s4_waiting"),
         "live": state != "ready"},
    ]
