"""Results: filter the measured rows, see the trade-off with its Pareto frontier, the change of
each metric against the baseline, the table, and download rows and charts."""
import io
import json

import streamlit as st

from qcompare import charts
from qcompare.comparability import differing, latest_group
from qcompare.methods.sequential import DIAGNOSTIC_HELP
from qcompare.metrics import table
from qcompare.metrics.table import label
from qcompare.registry import BASELINE
from qcompare.ui.data import results
from qcompare.ui.navigation import ensure_navigation

ensure_navigation("pages/results.py")
st.title("Results")
df, errors = results()
for name, msg in errors:
    st.warning(f"Skipped unreadable result file `{name}` ({msg}); the other results are shown.")
if df.empty:
    st.info("No results yet — run the default comparison on the Home page.")
    st.page_link("pages/home.py", label="Go to Home", icon="🏠")
    st.stop()

# --- filters (default: the newest comparable group) -------------------------------------------
newest = latest_group(df)
with st.sidebar:
    st.markdown("**Filters**")
    picked = {}
    for col, title in (("model", "Model"), ("corpus", "Corpus"), ("protocol", "Protocol"),
                       ("tokens", "Evaluated tokens"), ("window", "Window"),
                       ("device", "Device"), ("family", "Method family")):
        options = sorted(df[col].dropna().unique().tolist())
        default = sorted(newest[col].dropna().unique().tolist()) if col != "family" else options
        picked[col] = st.multiselect(title, options, default=default, key=f"f.{col}")
view = df
for col, values in picked.items():
    view = view[view[col].isin(values)]
if view.empty:
    st.info("No rows match these filters: widen them in the sidebar.")
    st.stop()
mixed = differing(view)
if mixed:
    st.warning("These rows differ in " + ", ".join(mixed) + ": their quality numbers are not "
               "comparable with each other (perplexity depends on the protocol and text). "
               "Narrow the filters in the sidebar to one value of each.")
if (view["model_source"] == "embedded").any():
    st.caption("ℹ️ The embedded model's weights were Q4_1 (4-bit, blocks of 32; its token "
               "embedding, shared with the LM head, Q8_0) before dequantization: 4-bit methods "
               "start from already-4-bit weights.")

# --- trade-off --------------------------------------------------------------------------------
X_CHOICES = table.names(axis="cost")
Y_CHOICES = table.names(axis="quality")
c = st.columns([2, 2, 1, 1])
x = c[0].selectbox("x axis", X_CHOICES, format_func=label)
y = c[1].selectbox("y axis", Y_CHOICES, format_func=label)


def _wide(col: str) -> bool:
    """A positive range spanning more than 50x reads better on a log axis."""
    v = view[col].dropna()
    return bool(len(v) and v.min() > 0 and v.max() / v.min() > 50)


log_x = c[2].toggle("log x", value=_wide(x), key=f"logx.{x}")
log_y = c[3].toggle("log y", value=_wide(y), key=f"logy.{y}")
fig = charts.tradeoff(view, x, y, log_x=log_x, log_y=log_y)
st.plotly_chart(fig, key="tradeoff")
front = charts.frontier(view, x, y)
if not front.empty:
    st.caption("On the Pareto frontier (nothing else is better on both axes): "
               + ", ".join(front["method_label"]))

# --- change vs baseline -----------------------------------------------------------------------
st.subheader(f"Change against the {BASELINE} baseline")
# metrics measured against the baseline itself (KL, top-1) have no meaningful change in %
BAR_CHOICES = [c for c in X_CHOICES + Y_CHOICES if not table.BY_NAME[c].vs_baseline]
metric = st.selectbox("metric", BAR_CHOICES, format_func=label)
bars = charts.delta_bars(view, metric)
if bars.data and len(bars.data[0].x):
    st.plotly_chart(bars, key="bars")
else:
    st.info(f"No {BASELINE} baseline row under the same model, corpus and protocol: run "
            f"{BASELINE} to see changes.")

# --- table and downloads ----------------------------------------------------------------------
st.subheader("Rows")
TABLE = table.names(table=True)
st.dataframe(view[TABLE], hide_index=True, column_config={"method_label": "method"})
with st.expander("Per-layer diagnostics of one row"):
    which = st.selectbox("row", view["method_label"].tolist(), key="layers_row")
    layers = json.loads(view[view["method_label"] == which]["layers_json"].iloc[0] or "[]")
    if layers:
        metrics = charts.layer_metrics(layers)
        metric = st.selectbox("heatmap of", metrics, key="layers_metric",
                              help="; ".join(f"{k}: {DIAGNOSTIC_HELP[k]}" for k in metrics
                                             if k in DIAGNOSTIC_HELP))
        st.plotly_chart(charts.layer_heatmap(layers, metric), key="layers_heatmap")
        st.dataframe(layers, hide_index=True)
    else:
        st.caption("This method records no per-layer diagnostics.")

d = st.columns(4)
d[0].download_button("Rows as CSV", view.to_csv(index=False), "qcompare-results.csv", "text/csv")
buf = io.BytesIO()
view.to_parquet(buf, index=False)
d[1].download_button("Rows as Parquet", buf.getvalue(), "qcompare-results.parquet",
                     "application/octet-stream")
d[2].download_button("Chart as HTML", fig.to_html(include_plotlyjs="cdn"), "qcompare-tradeoff.html",
                     "text/html")
png_reason = charts.png_unavailable_reason()
if png_reason is None:
    d[3].download_button("Chart as PNG", lambda: charts.to_png(fig), "qcompare-tradeoff.png", "image/png",
                         on_click="ignore")
else:
    d[3].caption(f"{png_reason} The camera icon in the chart's toolbar also saves a PNG.")
