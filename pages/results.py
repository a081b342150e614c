"""Results: filter the measured rows, see the trade-off with its Pareto frontier, the change of
each metric against the baseline, the table, and download rows and charts."""
import io
import json

import pandas as pd
import streamlit as st

from qcompare import bootstrap, charts, noisefloor, published, ranking, report
from qcompare.comparability import differing, latest_group
from qcompare.methods.sequential import DIAGNOSTIC_HELP
from qcompare.metrics import roofline, table
from qcompare.metrics.table import label
from qcompare.registry import BASELINE
from qcompare.tokenscores import TokenScores
from qcompare.ui import presenter
from qcompare.ui.data import ranked as data_ranked
from qcompare.ui.data import results, state_dir, token_kl
from qcompare.ui.navigation import ensure_navigation
from qcompare.ui.recipe_offer import offer

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
                       ("tokens", "Evaluated tokens"), ("window", "Window"), ("effort", "Effort"),
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
X_CHOICES = sorted(table.names(axis="cost"), key=lambda c: c != "weights_mib")   # size first
Y_CHOICES = table.names(axis="quality")
c = st.columns(2)
x = c[0].selectbox("x axis", X_CHOICES, format_func=label)
y = c[1].selectbox("y axis", Y_CHOICES, format_func=label)
c = st.columns(4)
show_pub = c[3].toggle("published layer", value=False, key="results.published",
                       help="Published figures (the source guide, the meetup talk, the AWQ paper) "
                            "as hollow markers where they have values on both axes: not measured "
                            "here, never on the frontier, listed in the table below when on.")
show_all = c[2].toggle("all on one scale", value=False, key="show_collapsed",
                       help="Runs whose quality collapsed (e.g. perplexity over 10x the baseline) "
                            "are drawn in a strip at the top with their value, so the others "
                            "keep a readable scale. On: every point on one axis.")


def _wide(col: str) -> bool:
    """A positive range spanning more than 50x reads better on a log axis."""
    rows = view if show_all or col not in Y_CHOICES else view[~charts.collapsed(view, col)]
    v = rows[col].dropna()
    return bool(len(v) and v.min() > 0 and v.max() / v.min() > 50)


log_x = c[0].toggle("log x", value=_wide(x), key=f"logx.{x}")
log_y = c[1].toggle("log y", value=_wide(y), key=f"logy.{y}")
layer = published.load() if show_pub else None
ranked = data_ranked(view, str(state_dir())) if not mixed else pd.DataFrame()
ties = ([(r["key"], ranked.loc[i + 1, "key"]) for i, r in ranked.iterrows()
         if r["verdict"] == "indistinguishable"] if not ranked.empty else [])
refs = view["reference_key"].dropna().unique()
noise = noisefloor.read(state_dir(), refs[0]) if len(refs) == 1 else None
fig = charts.tradeoff(view, x, y, log_x=log_x, log_y=log_y, show_collapsed=show_all,
                      published=layer, ties=ties, noise=noise)
presenter.chart(fig, key="tradeoff")
if layer is not None:
    drawn = len(published.on_axes(layer, x, y))
    st.caption(f"Published layer: {drawn} of {len(layer)} published figures have values on "
               "these axes (hollow markers; 7B models, a different scale from the measured "
               "rows: log axes help). The published figures give weights size, perplexity and "
               "decode speed: pick those axes to see them.")
meta = fig.layout.meta or {}
if meta.get("numbered"):
    st.caption("Numbered points: " + " · ".join(f"**{i}** {t}" for i, t in
                                                enumerate(meta["numbered"], 1)))
if meta.get("collapsed"):
    st.caption(f"{len(meta['collapsed'])} collapsed run(s) drawn in the strip at the top, their "
               "values written out; switch on 'all on one scale' to plot them too.")
if meta.get("wide_spread"):
    st.warning("Speed repeats spread wider than ±25 % for " + ", ".join(meta["wide_spread"])
               + ": the machine was busy while they ran; the error bars show min and max.")
front = charts.frontier(view, x, y)
if not front.empty:
    st.caption("On the Pareto frontier (nothing else is better on both axes): "
               + ", ".join(front["method_label"]))


def export_figure():
    """Built anew for the file: the shown figure carries Streamlit's rewritten template."""
    return charts.tradeoff(view, x, y, log_x=log_x, log_y=log_y, show_collapsed=show_all,
                           export=True, published=layer, ties=ties, noise=noise)


with st.expander("Mixed precision: the best recipe within a size"):
    offer(view, float(view["weights_mib"].median()) if view["weights_mib"].notna().any() else None,
          "results.recipe")

# --- precision: which differences are real ----------------------------------------------------
st.subheader("Ranking by KL divergence, with its noise")
if mixed:
    st.info("The rows differ in " + ", ".join(mixed) + ": narrow the filters to rank them.")
else:
    if len(ranked) > 1:
        st.caption(f"{ranking.summary(ranked)}. A gap is the paired difference of two methods' "
                   "KL divergence on the same tokens, with its 95 % interval from a bootstrap "
                   "over windows (tokens inside a window are not independent; "
                   "`qcompare.bootstrap`); it counts as real when the interval excludes 0, and "
                   "'tokens to separate' says how many evaluated tokens would make it so. The "
                   "PPL ratio is the next row's perplexity over this row's, with its interval. "
                   "KLD ± is one standard error.")

        def sig(v) -> str:
            return "—" if v != v else f"{v:.2g}"

        def interval(lo, hi, fmt="{:.2g}") -> list[str]:
            return ["—" if a != a else f"[{fmt.format(a)}, {fmt.format(b)}]" for a, b in zip(lo, hi)]

        def tokens(v) -> str:
            return "—" if v != v else ("∞" if v == float("inf") else f"{v:,.0f}")

        shown = pd.DataFrame({
            "rank": ranked["rank"], "method": ranked["method_label"],
            "KLD": ranked["kld_mean"].map(lambda v: f"{v:.4f}"), "± se": ranked["kld_se"].map(sig),
            "gap to next": ranked["gap_to_next"].map(sig),
            "gap 95 % interval": interval(ranked["ci_lo"], ranked["ci_hi"]),
            "PPL ratio (next / this)": ["—" if r != r else f"{r:.4f} {i}" for r, i in zip(
                ranked["ppl_ratio"], interval(ranked["ppl_lo"], ranked["ppl_hi"], "{:.4f}"))],
            "verdict": ranked["verdict"].replace({"indistinguishable": "not distinguishable "
                                                                       "at this sample size"}),
            "tokens to separate": ranked["tokens_to_separate"].map(tokens),
            "vs noise floor": ranked["kld_mean"].map(lambda v: noisefloor.versus(v, noise))})
        st.dataframe(shown, hide_index=True)
    else:
        st.caption("Fewer than two methods with a KL divergence here.")
    pairable = view[view["kld_mean"].notna()]
    if not mixed and len(pairable) > 1:
        with st.expander("Any two rows: the paired interval of their difference"):
            keys = dict(zip(pairable["method_label"], pairable["key"]))   # one row per label
            c2 = st.columns(2)
            a = keys[c2[0].selectbox("A", list(keys), key="pair.a")]
            b = keys[c2[1].selectbox("B", list(keys), index=1, key="pair.b")]
            sa, sb = (TokenScores(state_dir()).read(k) for k in (a, b))
            windows = bootstrap.row_windows(pairable[pairable["key"] == a].iloc[0])
            if a == b:
                st.caption("Pick two different rows.")
            elif sa is None or sb is None or windows is None or len(windows) != len(sa["kl"]) \
                    or len(sa["kl"]) != len(sb["kl"]):
                st.caption("These two rows have no paired per-token scores (measured before "
                           "they were stored): re-run them to compare them with an interval.")
            else:
                kl = bootstrap.paired_difference(sb["kl"], sa["kl"], windows)
                ratio = bootstrap.paired_ppl_ratio(sb["nll"], sa["nll"], windows)
                st.markdown(
                    f"KLD(B) − KLD(A) = **{kl.estimate:.4g}**, 95 % interval [{kl.lo:.4g}, "
                    f"{kl.hi:.4g}]; PPL(B) / PPL(A) = **{ratio.estimate:.4f}** [{ratio.lo:.4f}, "
                    f"{ratio.hi:.4f}] — " + ("distinguishable" if kl.distinguishable else
                    "not distinguishable at this sample size (about "
                    f"{kl.tokens_to_separate():,.0f} tokens would separate them)")
                    + f". Bootstrap over {kl.windows} windows of {kl.tokens:,} paired tokens.")
    if noise is not None:
        st.caption("Noise floor of this baseline (`qcompare.noisefloor`), the fp32 baseline "
                   "rerun with numerical noise only: " + "; ".join(
                       f"{name}: KLD {v['kld_mean']:.2g}, top-1 {v['top1_agree']:.2%}"
                       for name, v in noise["variants"].items())
                   + ". A method inside it cannot be told from the baseline by these metrics.")
    elif len(refs) == 1:
        st.caption("This baseline's noise floor is not computed yet: it is measured after the "
                   "next run on this model, corpus and protocol finishes.")

# --- the whole KL distribution ---------------------------------------------------------------
st.subheader("KL divergence: the whole distribution, not only the mean")
dist_rows = view[view["method"] != BASELINE].dropna(subset=["kld_mean"])
have = dist_rows.dropna(subset=["kld_p50"]) if "kld_p50" in dist_rows else dist_rows.iloc[:0]
old_rows = dist_rows[~dist_rows["key"].isin(have["key"])]
if have.empty:
    st.caption("No row here has its KL distribution: these rows were measured before it was "
               "stored. Re-run them (Compare) for the distribution.")
else:
    st.caption("Per-token KL divergence from the baseline on the evaluated tokens "
               "(`qcompare.kldist`): percentiles, the share of tokens past 0.1 and 1 nat, and "
               "the mean by how confident the baseline was. A heavy tail means rare but large "
               "errors that the mean hides.")
    st.dataframe(have[["method_label", "kld_mean", "kld_p50", "kld_p90", "kld_p99", "kld_p999",
                       "kld_max", "kld_share_01", "kld_share_1"]].sort_values("kld_mean"),
                 hide_index=True, column_config={
                     "method_label": "method",
                     **{c: st.column_config.NumberColumn(name, format="%.4f") for c, name in
                        (("kld_mean", "mean"), ("kld_p50", "median"), ("kld_p90", "p90"),
                         ("kld_p99", "p99"), ("kld_p999", "p99.9"), ("kld_max", "max"))},
                     "kld_share_01": st.column_config.NumberColumn("KL > 0.1", format="percent"),
                     "kld_share_1": st.column_config.NumberColumn("KL > 1", format="percent")})
    curves = token_kl(tuple(have["key"]), tuple(have["method_label"]), str(state_dir()))
    if curves:
        presenter.chart(charts.kl_survival(curves), key="kl_survival")
    conf = have.dropna(subset=["kld_by_confidence_json"])
    if not conf.empty:
        presenter.chart(charts.kl_by_confidence(conf), key="kl_confidence")
if not old_rows.empty and not have.empty:
    st.caption("Re-run for the distribution: " + ", ".join(old_rows["method_label"])
               + " (measured before it was stored).")

# --- roofline ---------------------------------------------------------------------------------
st.subheader("How close each speed is to the hardware's limit")
roof = view.dropna(subset=["decode_roofline_pct"]) if "decode_roofline_pct" in view else view.iloc[:0]
if roof.empty:
    st.caption("No row here has roofline figures (rows measured before they existed, or "
               "without a speed measurement).")
else:
    st.caption("Decode roofline % = bytes read per token (the weights it touches as the runtime "
               "holds them, plus the KV cache) x decode tok/s / this machine's measured memory "
               "bandwidth. Prefill % = FLOPs per token x prefill tok/s / the measured matmul "
               "peak. Low (say 12 %): the runtime is slow. High (say 80 %): limited by memory "
               "or arithmetic; only fewer bytes help. Formulas: `qcompare.metrics.roofline`.")
    st.dataframe(roof[["method_label", "decode_tok_s", "decode_roofline_pct", "decode_read_mib",
                       "prefill_tok_s", "prefill_roofline_pct", "prefill_gflop", "backend"]]
                 .sort_values("decode_roofline_pct", ascending=False),
                 hide_index=True, column_config={
                     "method_label": "method",
                     "decode_read_mib": st.column_config.NumberColumn("MiB read / token", format="%.1f"),
                     "decode_roofline_pct": st.column_config.NumberColumn("decode % of roofline", format="%.0f"),
                     "prefill_gflop": st.column_config.NumberColumn("GFLOP / token", format="%.3f"),
                     "prefill_roofline_pct": st.column_config.NumberColumn("prefill % of peak", format="%.0f"),
                     "decode_tok_s": st.column_config.NumberColumn("decode tok/s", format="%.1f"),
                     "prefill_tok_s": st.column_config.NumberColumn("prefill tok/s", format="%.0f")})
profiles = roofline.cached_profiles(state_dir())
if profiles:
    st.caption("Measured on this machine: " + " · ".join(
        f"{p['device']} ({p['device_name']}, {p['threads']} threads): memory bandwidth "
        f"{p['bandwidth_gbs']:.1f} GB/s (large copy), matmul "
        + ", ".join(f"{v:.0f} GFLOP/s in {k}" for k, v in p["matmul_gflops"].items())
        + f", measured {p['measured_at']}" for p in profiles)
        + ". Delete the state folder's machine/ to measure again.")

# --- change vs baseline -----------------------------------------------------------------------
st.subheader(f"Change against the {BASELINE} baseline")
# metrics measured against the baseline itself (KL, top-1) have no meaningful change in %
BAR_CHOICES = [c for c in X_CHOICES + Y_CHOICES if not table.BY_NAME[c].vs_baseline]
metric = st.selectbox("metric", BAR_CHOICES, format_func=label)
bars = charts.delta_bars(view, metric)
if bars.data and len(bars.data[0].x):
    presenter.chart(bars, key="bars")
else:
    st.info(f"No {BASELINE} baseline row under the same model, corpus and protocol: run "
            f"{BASELINE} to see changes.")

# --- table and downloads ----------------------------------------------------------------------
st.subheader("Rows")
TABLE = table.names(table=True)
rows = view[TABLE].copy()
# the spread of the speed repeats beside the median: over +-25 % the machine was busy
spread = (100 * charts.speed_spread(view, "decode_tok_s")).round(0).to_numpy()
rows.insert(rows.columns.get_loc("decode_tok_s") + 1, "decode ± %", spread)
st.dataframe(rows, hide_index=True, column_config={"method_label": "method"})
if layer is not None:
    st.caption("Published figures (the layer is on): not measured here; each with its source "
               "and what it did not state.")
    st.dataframe(layer[["label", "where", "hardware", "bits", "weights_gb", "memory_gb",
                        "decode_tok_s", "ppl", "ppl_text", "note"]], hide_index=True)
if (spread > 100 * charts.SPREAD_WARN).any():
    st.warning("Some rows' decode speed repeats spread wider than ±25 % (column 'decode ± %'): "
               "measure them again on an idle machine before comparing speeds.")
with st.expander("Per-layer diagnostics of one row"):
    which = st.selectbox("row", view["method_label"].tolist(), key="layers_row")
    raw = view[view["method_label"] == which]["layers_json"].iloc[0]
    layers = json.loads(raw) if isinstance(raw, str) and raw else []     # null in old rows
    if layers:
        metrics = charts.layer_metrics(layers)
        metric = st.selectbox("heatmap of", metrics, key="layers_metric",
                              help="; ".join(f"{k}: {DIAGNOSTIC_HELP[k]}" for k in metrics
                                             if k in DIAGNOSTIC_HELP))
        presenter.chart(charts.layer_heatmap(layers, metric), key="layers_heatmap")
        st.dataframe(layers, hide_index=True)
    else:
        st.caption("This method records no per-layer diagnostics.")

d = st.columns(5)
d[0].download_button("Rows as CSV", view.to_csv(index=False), "qcompare-results.csv", "text/csv")
buf = io.BytesIO()
view.to_parquet(buf, index=False)
d[1].download_button("Rows as Parquet", buf.getvalue(), "qcompare-results.parquet",
                     "application/octet-stream")
d[2].download_button("Chart as HTML", lambda: charts.to_html(export_figure()),
                     "qcompare-tradeoff.html", "text/html", on_click="ignore",
                     help="a standalone page with plotly.js inside: it opens offline")
png_reason = charts.png_unavailable_reason()
if png_reason is None:
    d[3].download_button("Chart as PNG", lambda: charts.to_png(export_figure()),
                         "qcompare-tradeoff.png", "image/png", on_click="ignore")
else:
    d[3].caption(f"{png_reason} The camera icon in the chart's toolbar also saves a PNG.")
d[4].download_button("Report as HTML", lambda: report.build(
    view, title=f"qcompare report: {', '.join(sorted(set(view['model'])))}", published=layer,
    machine=profiles), "qcompare-report.html", "text/html", on_click="ignore",
    help="one file with the charts (plotly.js inside: it opens offline), the rows, every "
         "row's spec, the environment and the notes; the published layer when it is on")
