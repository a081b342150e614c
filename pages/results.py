"""Results: filter the measured rows, see the trade-off with its Pareto frontier, the change of
each metric against the baseline, the table, and download rows and charts."""
import io
import json

import pandas as pd
import streamlit as st

from qcompare.charts import report
from qcompare.charts import tradeoff as charts
from qcompare.core import columns as table
from qcompare.core.columns import label
from qcompare.core.registry import BASELINE
from qcompare.i18n import catalogue as i18n
from qcompare.methods.kernels.sequential import DIAGNOSTIC_HELP
from qcompare.metrics import roofline
from qcompare.sources import published
from qcompare.stats import bootstrap, noisefloor, ranking
from qcompare.stats.comparability import differing, latest_group
from qcompare.store.tokenscores import TokenScores
from qcompare.ui import presenter
from qcompare.ui.data import ranked as data_ranked
from qcompare.ui.data import results, state_dir, token_kl
from qcompare.ui.lang import current, t
from qcompare.ui.navigation import ensure_navigation
from qcompare.ui.recipe_offer import offer

ensure_navigation("pages/results.py")
st.title(t("results.title"))
lang = current()
df, errors = results()
for name, msg in errors:
    st.warning(t("results.skipped", name=name, msg=msg))
if df.empty:
    st.info(t("results.empty"))
    st.page_link("pages/home.py", label=t("results.go_home"), icon="🏠")
    st.stop()

# --- filters (default: the newest comparable group) -------------------------------------------
newest = latest_group(df)
with st.sidebar:
    st.markdown(t("results.filters"))
    picked = {}
    for col in ("model", "corpus", "protocol", "tokens", "window", "effort", "device", "family"):
        options = sorted(df[col].dropna().unique().tolist())
        default = sorted(newest[col].dropna().unique().tolist()) if col != "family" else options
        picked[col] = st.multiselect(t(f"results.f_{col}"), options, default=default, key=f"f.{col}",
                                     format_func=(lambda f: i18n.family(f, lang)) if col == "family" else str)
view = df
for col, values in picked.items():
    view = view[view[col].isin(values)]
if view.empty:
    st.info(t("results.no_match"))
    st.stop()
mixed = differing(view)
if mixed:
    st.warning(t("results.differ", cols=", ".join(mixed)))
if (view["model_source"] == "embedded").any():
    st.caption(t("results.q4_note"))

# --- trade-off --------------------------------------------------------------------------------
X_CHOICES = sorted(table.names(axis="cost"), key=lambda c: c != "weights_mib")   # size first
Y_CHOICES = table.names(axis="quality")
c = st.columns(2)
x = c[0].selectbox(t("results.x_axis"), X_CHOICES, format_func=lambda m: label(m, lang))
y = c[1].selectbox(t("results.y_axis"), Y_CHOICES, format_func=lambda m: label(m, lang))
c = st.columns(4)
show_pub = c[3].toggle(t("results.published"), value=False, key="results.published",
                       help=t("results.published_help"))
show_all = c[2].toggle(t("results.all_scale"), value=False, key="show_collapsed",
                       help=t("results.all_scale_help"))


def _wide(col: str) -> bool:
    """A positive range spanning more than 50x reads better on a log axis."""
    rows = view if show_all or col not in Y_CHOICES else view[~charts.collapsed(view, col)]
    v = rows[col].dropna()
    return bool(len(v) and v.min() > 0 and v.max() / v.min() > 50)


log_x = c[0].toggle(t("results.log_x"), value=_wide(x), key=f"logx.{x}")
log_y = c[1].toggle(t("results.log_y"), value=_wide(y), key=f"logy.{y}")
layer = published.load() if show_pub else None
ranked = data_ranked(view, str(state_dir())) if not mixed else pd.DataFrame()
ties = ([(r["key"], ranked.loc[i + 1, "key"]) for i, r in ranked.iterrows()
         if r["verdict"] == "indistinguishable"] if not ranked.empty else [])
refs = view["reference_key"].dropna().unique()
noise = noisefloor.read(state_dir(), refs[0]) if len(refs) == 1 else None
fig = charts.tradeoff(view, x, y, log_x=log_x, log_y=log_y, show_collapsed=show_all,
                      published=layer, ties=ties, noise=noise, lang=lang,
                      noise_pending=noise is None and len(refs) == 1)
presenter.chart(fig, key="tradeoff")
if layer is not None:
    drawn = len(published.on_axes(layer, x, y))
    st.caption(t("results.published_drawn", drawn=drawn, n=len(layer)))
meta = fig.layout.meta or {}
if meta.get("numbered"):
    st.caption(t("results.numbered", points=" · ".join(f"**{i}** {p}" for i, p in
                                                        enumerate(meta["numbered"], 1))))
if meta.get("collapsed"):
    st.caption(t("results.collapsed", n=len(meta["collapsed"])))
if meta.get("wide_spread"):
    st.warning(t("results.wide_spread", names=", ".join(meta["wide_spread"])))
front = charts.frontier(view, x, y)
if not front.empty:
    st.caption(t("results.frontier", names=", ".join(front["method_label"])))


def export_figure():
    """Built anew for the file: the shown figure carries Streamlit's rewritten template."""
    return charts.tradeoff(view, x, y, log_x=log_x, log_y=log_y, show_collapsed=show_all,
                           export=True, published=layer, ties=ties, noise=noise, lang=lang,
                           noise_pending=noise is None and len(refs) == 1)


with st.expander(t("results.recipe")):
    offer(view, float(view["weights_mib"].median()) if view["weights_mib"].notna().any() else None,
          "results.recipe")

# --- precision: which differences are real ----------------------------------------------------
st.subheader(t("results.ranking_title"))
if mixed:
    st.info(t("results.ranking_mixed", cols=", ".join(mixed)))
else:
    if len(ranked) > 1:
        st.caption(t("results.ranking_note", summary=ranking.summary(ranked, lang)))

        def sig(v) -> str:
            return "—" if v != v else f"{v:.2g}"

        def interval(lo, hi, fmt="{:.2g}") -> list[str]:
            return ["—" if a != a else f"[{fmt.format(a)}, {fmt.format(b)}]" for a, b in zip(lo, hi)]

        def tokens(v) -> str:
            return "—" if v != v else ("∞" if v == float("inf") else f"{v:,.0f}")

        shown = pd.DataFrame({
            t("rtable.rank"): ranked["rank"], t("rtable.method"): ranked["method_label"],
            "KLD": ranked["kld_mean"].map(lambda v: f"{v:.4f}"), "± se": ranked["kld_se"].map(sig),
            t("rtable.gap"): ranked["gap_to_next"].map(sig),
            t("rtable.gap_ci"): interval(ranked["ci_lo"], ranked["ci_hi"]),
            t("rtable.ratio"): ["—" if r != r else f"{r:.4f} {i}" for r, i in zip(
                ranked["ppl_ratio"], interval(ranked["ppl_lo"], ranked["ppl_hi"], "{:.4f}"))],
            t("rtable.verdict"): ranked["verdict"].replace({"indistinguishable": t("rtable.indistinguishable")}),
            t("rtable.separate"): ranked["tokens_to_separate"].map(tokens),
            t("rtable.vs_noise"): ranked["kld_mean"].map(lambda v: noisefloor.versus(v, noise, lang=lang))})
        st.dataframe(shown, hide_index=True)
    else:
        st.caption(t("results.few"))
    pairable = view[view["kld_mean"].notna()]
    if not mixed and len(pairable) > 1:
        with st.expander(t("results.pair")):
            keys = dict(zip(pairable["method_label"], pairable["key"]))   # one row per label
            c2 = st.columns(2)
            a = keys[c2[0].selectbox("A", list(keys), key="pair.a")]
            b = keys[c2[1].selectbox("B", list(keys), index=1, key="pair.b")]
            sa, sb = (TokenScores(state_dir()).read(k) for k in (a, b))
            windows = bootstrap.row_windows(pairable[pairable["key"] == a].iloc[0])
            if a == b:
                st.caption(t("results.pick_two"))
            elif sa is None or sb is None or windows is None or len(windows) != len(sa["kl"]) \
                    or len(sa["kl"]) != len(sb["kl"]):
                st.caption(t("results.no_pair"))
            else:
                kl = bootstrap.paired_difference(sb["kl"], sa["kl"], windows)
                ratio = bootstrap.paired_ppl_ratio(sb["nll"], sa["nll"], windows)
                verdict = (t("results.distinguishable") if kl.distinguishable else
                           t("results.not_distinguishable", n=kl.tokens_to_separate()))
                st.markdown(t("results.pair_result", kl=kl.estimate, lo=kl.lo, hi=kl.hi, r=ratio.estimate,
                              rlo=ratio.lo, rhi=ratio.hi, verdict=verdict, windows=kl.windows,
                              tokens=kl.tokens))
    if noise is not None:
        st.caption(t("results.noise", parts="; ".join(
            t("results.noise_part", name=name, kld=v["kld_mean"], top1=v["top1_agree"])
            for name, v in noise["variants"].items()),
            **{k: noise.get(k, "?") for k in ("tokens", "of_tokens")}))
    elif len(refs) == 1:
        st.caption(t("results.noise_pending"))

# --- the whole KL distribution ---------------------------------------------------------------
st.subheader(t("results.dist_title"))
dist_rows = view[view["method"] != BASELINE].dropna(subset=["kld_mean"])
have = dist_rows.dropna(subset=["kld_p50"]) if "kld_p50" in dist_rows else dist_rows.iloc[:0]
old_rows = dist_rows[~dist_rows["key"].isin(have["key"])]
if have.empty:
    st.caption(t("results.dist_none"))
else:
    st.caption(t("results.dist_note"))
    st.dataframe(have[["method_label", "kld_mean", "kld_p50", "kld_p90", "kld_p99", "kld_p999",
                       "kld_max", "kld_share_01", "kld_share_1"]].sort_values("kld_mean"),
                 hide_index=True, column_config={
                     "method_label": t("rtable.method"),
                     **{c: st.column_config.NumberColumn(name, format="%.4f") for c, name in
                        (("kld_mean", "mean"), ("kld_p50", "median"), ("kld_p90", "p90"),
                         ("kld_p99", "p99"), ("kld_p999", "p99.9"), ("kld_max", "max"))},
                     "kld_share_01": st.column_config.NumberColumn("KL > 0.1", format="percent"),
                     "kld_share_1": st.column_config.NumberColumn("KL > 1", format="percent")})
    curves = token_kl(tuple(have["key"]), tuple(have["method_label"]), str(state_dir()))
    if curves:
        presenter.chart(charts.kl_survival(curves, lang=lang), key="kl_survival")
    conf = have.dropna(subset=["kld_by_confidence_json"])
    if not conf.empty:
        presenter.chart(charts.kl_by_confidence(conf, lang), key="kl_confidence")
if not old_rows.empty and not have.empty:
    st.caption(t("results.dist_rerun", names=", ".join(old_rows["method_label"])))

# --- roofline ---------------------------------------------------------------------------------
st.subheader(t("results.roof_title"))
roof = view.dropna(subset=["decode_roofline_pct"]) if "decode_roofline_pct" in view else view.iloc[:0]
if roof.empty:
    st.caption(t("results.roof_none"))
else:
    st.caption(t("results.roof_note"))
    st.dataframe(roof[["method_label", "decode_tok_s", "decode_roofline_pct", "decode_read_mib",
                       "prefill_tok_s", "prefill_roofline_pct", "prefill_gflop", "backend"]]
                 .sort_values("decode_roofline_pct", ascending=False),
                 hide_index=True, column_config={
                     "method_label": t("rtable.method"),
                     "decode_read_mib": st.column_config.NumberColumn(t("results.roof_read"), format="%.1f"),
                     "decode_roofline_pct": st.column_config.NumberColumn(t("results.roof_decode_pct"), format="%.0f"),
                     "prefill_gflop": st.column_config.NumberColumn(t("results.roof_gflop"), format="%.3f"),
                     "prefill_roofline_pct": st.column_config.NumberColumn(t("results.roof_prefill_pct"), format="%.0f"),
                     "decode_tok_s": st.column_config.NumberColumn(t("results.roof_decode"), format="%.1f"),
                     "prefill_tok_s": st.column_config.NumberColumn(t("results.roof_prefill"), format="%.0f")})
profiles = roofline.cached_profiles(state_dir())
if profiles:
    st.caption(t("results.machine", profiles=" · ".join(
        t("results.profile", device=p["device"], name=p["device_name"], threads=p["threads"],
          bw=p["bandwidth_gbs"], at=p["measured_at"],
          matmul=", ".join(t("results.matmul", v=v, k=k) for k, v in p["matmul_gflops"].items()))
        for p in profiles)))

# --- change vs baseline -----------------------------------------------------------------------
st.subheader(t("results.change_title", baseline=BASELINE))
# metrics measured against the baseline itself (KL, top-1) have no meaningful change in %
BAR_CHOICES = [c for c in X_CHOICES + Y_CHOICES if not table.BY_NAME[c].vs_baseline]
metric = st.selectbox(t("results.metric"), BAR_CHOICES, format_func=lambda m: label(m, lang))
bars = charts.delta_bars(view, metric, lang)
if bars.data and len(bars.data[0].x):
    presenter.chart(bars, key="bars")
else:
    st.info(t("results.no_baseline", baseline=BASELINE))

# --- table and downloads ----------------------------------------------------------------------
st.subheader(t("results.rows"))
TABLE = table.names(table=True)
rows = view[TABLE].copy()
# the spread of the speed repeats beside the median: over +-25 % the machine was busy
spread = (100 * charts.speed_spread(view, "decode_tok_s")).round(0).to_numpy()
rows.insert(rows.columns.get_loc("decode_tok_s") + 1, "decode ± %", spread)
st.dataframe(rows, hide_index=True, column_config={"method_label": t("rtable.method"),
                                                  "decode ± %": t("results.spread_col")})
if layer is not None:
    st.caption(t("results.published_rows"))
    st.dataframe(layer[["label", "where", "hardware", "bits", "weights_gb", "memory_gb",
                        "decode_tok_s", "ppl", "ppl_text", "note"]], hide_index=True)
if (spread > 100 * charts.SPREAD_WARN).any():
    st.warning(t("results.spread"))
with st.expander(t("results.layers")):
    which = st.selectbox(t("results.row"), view["method_label"].tolist(), key="layers_row")
    raw = view[view["method_label"] == which]["layers_json"].iloc[0]
    layers = json.loads(raw) if isinstance(raw, str) and raw else []     # null in old rows
    if layers:
        metrics = charts.layer_metrics(layers)
        metric = st.selectbox(t("results.heatmap_of"), metrics, key="layers_metric",
                              help="; ".join(f"{k}: {DIAGNOSTIC_HELP[k]}" for k in metrics
                                             if k in DIAGNOSTIC_HELP))
        presenter.chart(charts.layer_heatmap(layers, metric, lang=lang), key="layers_heatmap")
        st.dataframe(layers, hide_index=True)
    else:
        st.caption(t("results.no_layers"))

d = st.columns(5)
d[0].download_button(t("results.csv"), view.to_csv(index=False), "qcompare-results.csv", "text/csv")
buf = io.BytesIO()
view.to_parquet(buf, index=False)
d[1].download_button(t("results.parquet"), buf.getvalue(), "qcompare-results.parquet",
                     "application/octet-stream")
d[2].download_button(t("results.chart_html"), lambda: charts.to_html(export_figure()),
                     "qcompare-tradeoff.html", "text/html", on_click="ignore",
                     help=t("results.chart_html_help"))
png_reason = charts.png_unavailable_reason()
if png_reason is None:
    d[3].download_button(t("results.chart_png"), lambda: charts.to_png(export_figure()),
                         "qcompare-tradeoff.png", "image/png", on_click="ignore")
else:
    d[3].caption(t("results.camera", reason=png_reason))
d[4].download_button(t("results.report"), lambda: report.build(
    view, title=t("results.report_title", models=", ".join(sorted(set(view["model"])))), published=layer,
    machine=profiles, lang=lang), "qcompare-report.html", "text/html", on_click="ignore",
    help=t("results.report_help"))
