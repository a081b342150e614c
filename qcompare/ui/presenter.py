"""Presenter mode, for projectors at meetups: large type, a high-contrast chart theme with big
markers, the sidebar collapsed, and a demo script that walks through prepared steps, each
saying whether its numbers are already stored (answered from the cache) or will be measured.
On with the sidebar toggle or `?present=1`; kept per session."""
from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

KEY = "present"
CSS = """
<style>
html, body, [data-testid="stAppViewContainer"] { font-size: 22px; }
[data-testid="stMarkdownContainer"] p, [data-testid="stMarkdownContainer"] li { font-size: 1.15rem; }
h1 { font-size: 3rem !important; } h2, h3 { font-size: 2.1rem !important; }
[data-testid="stMetricValue"] { font-size: 2.6rem !important; }
[data-testid="stCaptionContainer"] { font-size: 1rem !important; }
[data-testid="stMainBlockContainer"] { max-width: 96vw; padding-top: 2rem; }
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
    on = st.toggle("Presenter mode", key=KEY, help="large type and charts for a projector; "
                                                   "?present=1 in the address does the same")
    if on:
        st.query_params[KEY] = "1"
    elif KEY in st.query_params:
        del st.query_params[KEY]


def apply() -> None:
    if active():
        st.html(CSS)


def theme(fig: go.Figure) -> go.Figure:
    """The figure restyled for the back of a room: black on white, thick axes, large fonts,
    markers at least 16 px and lines at least 4 px."""
    fig.update_layout(font=FONT, paper_bgcolor="#FFFFFF", plot_bgcolor="#FFFFFF",
                      title_font={"size": 28}, legend_font={"size": 20})
    fig.update_xaxes(**AXIS)
    fig.update_yaxes(**AXIS)
    for t in fig.data:
        if t.type == "scatter":
            if t.marker is not None:
                size = t.marker.size
                if size is None or isinstance(size, (int, float)):
                    t.marker.size = max(size or 0, 16)
            if t.line is not None:
                t.line.width = max(t.line.width or 0, 4)
            if t.textfont is not None:
                t.textfont.size = 20
    return fig


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
    with st.expander("Demo script", expanded=expanded):
        for i, s in enumerate(steps, 1):
            c = st.columns([4, 2])
            c[0].markdown(f"**{i}. {s['title']}** — {s['what']}  \n{s['source']}")
            c[1].page_link(s["page"], label=s["link"], icon=s.get("icon"))


def steps() -> list[dict]:
    """The demo's steps with where their numbers come from right now (the stored rows, or what
    the step will measure): never a prepared figure."""
    from qcompare import generation
    from qcompare.errors import UserError
    from qcompare.ui.data import embedded_state, preset_plan, results, state_dir

    df, _ = results()
    stored = set(df["key"]) if not df.empty else set()
    try:
        plan = preset_plan("default", "quick")
        have = sum(s.key() in stored for s in plan)
        comparison = (f"answered from the cache: all {len(plan)} runs are stored" if have == len(plan)
                      else f"{have} of {len(plan)} runs stored; the button measures the other "
                           f"{len(plan) - have} live")
    except UserError as e:
        comparison = f"cannot run here: {e}"
    rows = len(df)
    done = list((generation.folder(state_dir()) / "requests").glob("*.json"))
    state, _ = embedded_state(str(state_dir()))
    return [
        {"title": "The default comparison", "page": "pages/home.py", "link": "Home", "icon": "🏠",
         "what": "one click: the baseline and one method of each family on the embedded model",
         "source": comparison},
        {"title": "The trade-off", "page": "pages/results.py", "link": "Results", "icon": "📈",
         "what": "quality against size and speed, the Pareto frontier, which gaps are real",
         "source": f"from {rows} stored rows" if rows else "nothing stored yet: run step 1 first"},
        {"title": "Generation side by side", "page": "pages/generate.py", "link": "Generate", "icon": "✍️",
         "what": "「昔々、あるところに」 continued by the baseline and quantized models, coloured by KL",
         "source": ("generated live; models stay loaded between prompts"
                    + (f" ({len(done)} prompts so far)" if done else ""))},
        {"title": "The playground", "page": "pages/playground.py", "link": "Playground", "icon": "🎛️",
         "what": "scale, zero point and group size on a real weight tensor",
         "source": "computed live from the model's own tensors" if state == "ready"
         else "needs the embedded model converted (step 1 does it)"},
    ]
