import math

import pandas as pd
import pytest

from qcompare.charts import tradeoff as charts
from qcompare.core.columns import pareto_mask


def _df():
    base = {"model_fingerprint": "m", "corpus_sha256": "c", "protocol": "disjoint", "tokens": 10,
            "window": 5, "stride": 5, "device": "cpu", "family": "f", "options_json": "{}",
            "key": "k"}
    rows = [("fp32", 500.0, 10.0), ("a", 100.0, 12.0), ("b", 150.0, 11.0), ("c", 200.0, 13.0)]
    return pd.DataFrame([{**base, "method": m, "method_label": m, "weights_mib": w, "ppl": p,
                          "key": m} for m, w, p in rows])


def test_pareto_mask_uses_each_axis_direction():
    # lower x and lower y better: (1,3) and (2,2) and (3,1) trade off; (3,3) is beaten
    assert pareto_mask([1, 2, 3, 3], [3, 2, 1, 3], False, False) == [True, True, True, False]
    # higher y better flips which points survive
    assert pareto_mask([1, 2], [1, 2], False, True) == [True, True]
    assert pareto_mask([1, 2], [2, 1], False, True) == [True, False]


def test_frontier_drops_dominated_methods():
    f = charts.frontier(_df(), "weights_mib", "ppl")
    assert f["method_label"].tolist() == ["a", "b", "fp32"]       # c is bigger and worse than b


def test_tradeoff_figure_has_every_point_and_a_frontier_line():
    fig = charts.tradeoff(_df(), "weights_mib", "ppl")
    markers = [t for t in fig.data if "markers" in t.mode]
    assert sum(len(t.x) for t in markers) == 4
    assert any(t.name == "Pareto frontier" for t in fig.data)
    labels = [t for tr in markers for t in tr.text if t]
    assert sorted(labels) == ["a", "b", "c", "fp32"]                # every point is labelled


def test_delta_bars_cut_outliers_but_keep_their_value_in_text():
    df = _df()
    df.loc[df.method == "c", "ppl"] = 10.0 * 500                    # +49900%
    bars = charts.delta_bars(df, "ppl")
    assert max(bars.data[0].x) == charts.BAR_CAP_PCT and "+49900.0%" in bars.data[0].text


def test_delta_against_the_matching_baseline_only():
    df = _df()
    other = df.iloc[[1]].assign(protocol="strided", key="z", method_label="a-strided")
    d = charts.with_baseline_delta(pd.concat([df, other]), "ppl").set_index("method_label")
    assert d.loc["a", "delta_pct"] == pytest.approx(20.0)
    assert math.isnan(d.loc["a-strided", "delta_pct"])           # no strided baseline: no delta
    bars = charts.delta_bars(df, "ppl")
    assert list(bars.data[0].y) == ["b", "a", "c"]


def test_layer_grid_places_each_linear_by_layer_index_and_kind():
    from qcompare.charts.tradeoff import layer_grid, layer_heatmap

    layers = [{"layer": f"model.layers.{i}.self_attn.{k}", "output_rel_err": i + j / 10}
              for i in range(3) for j, k in enumerate(("q_proj", "k_proj"))]
    layers.append({"layer": "model.layers.0.mlp.down_proj", "weight_rel_err": 1.0})  # other metric
    grid = layer_grid(layers, "output_rel_err")
    assert list(grid.columns) == ["q_proj", "k_proj"] and list(grid.index) == [0, 1, 2]
    assert grid.loc[2, "k_proj"] == 2.1
    fig = layer_heatmap(layers, "output_rel_err")
    assert fig.data[0].z.shape == (3, 2)
    assert layer_grid(layers, "missing").empty


def _rows(points, **extra):
    """Rows of real methods: (method, options, weights_mib, ppl[, kld])."""
    import json

    from qcompare.core import registry

    base = {"model_fingerprint": "m", "corpus_sha256": "c", "protocol": "disjoint", "tokens": 10,
            "window": 5, "stride": 5, "device": "cpu"}
    out = []
    for i, (method, opts, w, p, *rest) in enumerate(points):
        cls = registry.get(method)
        out.append({**base, "method": method, "options_json": json.dumps(opts), "family": cls.family,
                    "method_label": cls.short_label(opts), "weights_mib": w, "ppl": p,
                    "kld_mean": rest[0] if rest else 0.1, "key": f"k{i}", **extra})
    return pd.DataFrame(out)


def test_a_collapsed_run_goes_to_a_strip_and_the_axis_fits_the_others():
    df = _rows([("fp32", {}, 500.0, 15.0, 0.0), ("rtn", {"bits": 8}, 140.0, 15.1),
                ("rtn", {"bits": 4}, 80.0, 17.0), ("rtn", {"bits": 2}, 45.0, 9.1e6, 9.0)])
    fig = charts.tradeoff(df, "weights_mib", "ppl")
    lo, hi = fig.layout.yaxis.range
    assert hi < 30 and lo > 5                                     # fitted to 15 ... 17
    strip = next(t for t in fig.data if t.name == "collapsed")
    assert 17 < strip.y[0] < hi and "9.1e+06" in strip.text[0]      # in a band above the rest
    assert fig.layout.meta["collapsed"] == ["k3"]
    everything = charts.tradeoff(df, "weights_mib", "ppl", show_collapsed=True)
    assert everything.layout.yaxis.range[1] > 9e6 and not any(t.name == "collapsed" for t in everything.data)


def test_kl_on_y_leaves_the_baseline_off_the_frontier_and_draws_it_as_a_reference():
    df = _rows([("fp32", {}, 500.0, 15.0, 0.0), ("rtn", {"bits": 8}, 140.0, 15.1, 0.01),
                ("rtn", {"bits": 4}, 80.0, 17.0, 0.2)])
    front = charts.frontier(df, "weights_mib", "kld_mean")
    assert front["method"].tolist() == ["rtn", "rtn"]              # fp32 alone was the frontier
    fig = charts.tradeoff(df, "weights_mib", "kld_mean", log_y=True)
    assert all("fp32" not in (t.name or "") for t in fig.data)
    assert any("baseline" in (a.text or "") for a in fig.layout.annotations)
    assert any(s.type == "line" and s.x0 == 500.0 for s in fig.layout.shapes)


def test_each_method_keeps_its_colour_and_each_family_its_shape():
    a = _rows([("gptq", {"bits": 4, "group_size": 128}, 80.0, 16.0),
               ("awq", {"bits": 4, "group_size": 128}, 81.0, 16.2)])
    b = _rows([("rtn", {"bits": 8}, 140.0, 15.1), ("awq", {"bits": 4, "group_size": 128}, 81.0, 16.2),
               ("gptq", {"bits": 4, "group_size": 128}, 80.0, 16.0)])
    def style(fig):
        return {t.name: (t.marker.color, t.marker.symbol) for t in fig.data if t.mode == "markers+text"}
    sa, sb = style(charts.tradeoff(a)), style(charts.tradeoff(b))
    assert sa["gptq 4b g128"] == sb["gptq 4b g128"] and sa["awq 4b g128"] == sb["awq 4b g128"]
    assert sa["gptq 4b g128"][0] != sa["awq 4b g128"][0]       # one family, two colours
    assert sa["gptq 4b g128"][1] == sa["awq 4b g128"][1]       # one family, one shape
    assert sb["rtn 8b"][1] != sb["gptq 4b g128"][1]


def test_labels_never_overlap_and_crowded_points_are_numbered():
    from qcompare.charts.style import _boxes, _overlap, place_labels

    xs, ys = [1.0, 2.0, 3.0, 4.0], [1.0, 4.0, 2.0, 3.0]
    labels = ["gptq 4b g128", "awq 4b g128", "Q4_K_M", "bnb-nf4"]
    spots = place_labels(xs, ys, labels, (0, 5), (0, 5))
    assert None not in spots
    boxes = [dict(_boxes(800 * x / 5, 440 * (1 - y / 5), t))[p] for x, y, t, p in zip(xs, ys, labels, spots)]
    assert not any(_overlap(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
    crowd = place_labels([1.0] * 12, [1.0 + i * 1e-4 for i in range(12)], ["a long label"] * 12,
                         (0, 2), (0, 2))
    assert crowd.count(None) >= 8                                  # no room: numbered instead
    df = _rows([("rtn", {"bits": 8, "group_size": g}, 100.0, 15.0 + g * 1e-6) for g in
                (16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192)])
    fig = charts.tradeoff(df)
    numbered = fig.layout.meta["numbered"]
    assert numbered and all(any(t.text[0] == str(i) for t in fig.data) for i in range(1, len(numbered) + 1))


def test_speed_axes_have_min_max_error_bars_and_a_wide_spread_is_flagged():
    df = _rows([("fp32", {}, 500.0, 15.0), ("rtn", {"bits": 8}, 140.0, 15.1)])
    df["decode_tok_s"], df["decode_tok_s_min"], df["decode_tok_s_max"] = [10.0, 20.0], [5.8, 19.0], [14.6, 21.0]
    fig = charts.tradeoff(df, "decode_tok_s", "ppl")
    bars = {t.name: t.error_x for t in fig.data if t.mode == "markers+text"}
    assert list(bars["fp32"].array) == pytest.approx([4.6]) and list(bars["fp32"].arrayminus) == pytest.approx([4.2])
    assert fig.layout.meta["wide_spread"] == ["fp32"]              # 5.8-14.6 around 10: +-44 %
    assert charts.speed_spread(df, "decode_tok_s").round(3).tolist() == [0.44, 0.05]


def test_the_html_export_embeds_plotly_and_carries_real_colours():
    html = charts.to_html(charts.tradeoff(_df(), export=True))
    import re

    assert not re.findall(r"<script[^>]*\bsrc=", html)             # nothing loaded from anywhere
    assert len(html) > 1_000_000                                   # plotly.js itself is inside
    assert "#000001" not in html                                   # Streamlit's placeholder colours


@pytest.mark.skipif(charts.png_unavailable_reason() is not None,
                    reason=str(charts.png_unavailable_reason()))
def test_the_png_export_has_coloured_markers_and_nothing_cut_at_its_edges():
    import io

    from PIL import Image

    df = _rows([("fp32", {}, 500.0, 15.0), ("rtn", {"bits": 8}, 140.0, 15.1),
                ("rtn", {"bits": 4}, 80.0, 17.0), ("gptq", {"bits": 4}, 82.0, 16.0)])
    img = Image.open(io.BytesIO(charts.to_png(charts.tradeoff(df, export=True)))).convert("RGB")
    w, h = img.size
    px = img.load()
    saturated = {px[x, y] for x in range(0, w, 2) for y in range(0, h, 2)
                 if max(px[x, y]) - min(px[x, y]) > 80}
    hues = {(r // 48, g // 48, b // 48) for r, g, b in saturated}
    assert len(hues) >= 3                                          # several marker colours
    edge = [px[x, y] for x in range(w) for y in (0, 1, h - 2, h - 1)] + \
           [px[x, y] for y in range(h) for x in (0, 1, w - 2, w - 1)]
    assert all(min(p) > 240 for p in edge)                         # no text runs off the edges


def test_published_points_are_hollow_labelled_and_never_on_the_frontier():
    pub = pd.DataFrame([{"source": "AWQ paper (arXiv)", "label": "published: AWQ paper — x",
                         "where": "T4", "hardware": "A100", "ppl_text": "wiki", "note": "n",
                         "weights_mib": 1.0, "ppl": 1.0}])             # would dominate everything
    fig = charts.tradeoff(_df(), "weights_mib", "ppl", published=pub)
    line = next(t for t in fig.data if t.name == "Pareto frontier")
    assert list(line.x) == [100.0, 150.0, 500.0]                      # the measured frontier
    (layer,) = [t for t in fig.data if t.name.startswith("published")]
    assert layer.name == "published: AWQ paper" and layer.marker.symbol.endswith("-open")
    assert fig.layout.xaxis.range[0] < 1.0                             # the axis takes it in
    # of another model than the measured rows': said on the chart, in the page's language
    measured = _df().assign(model="embedded SmolLM2-135M-Instruct")
    other = charts.tradeoff(measured, "weights_mib", "ppl", published=pub.assign(model="Llama-2-7B"),
                            lang="ja")
    assert any("Llama-2-7B の公表値" in (a.text or "") for a in other.layout.annotations)
    same = charts.tradeoff(measured, "weights_mib", "ppl",
                           published=pub.assign(model="embedded SmolLM2-135M-Instruct"))
    assert not any("another model" in (a.text or "") for a in same.layout.annotations)


def test_choice_chart_shades_the_feasible_region_and_greys_the_excluded():
    pts = pd.DataFrame({"method_label": ["a", "b"], "family": ["f", "f"], "feasible": [True, False],
                        "reason": ["ok", "excluded: too big"], "mem": [1.0, 3.0], "inc": [2.0, 1.0]})
    fig = charts.choice_chart(pts, "mem", "inc", "Memory (GiB)", "PPL increase (%)", 2.0, 5.0)
    assert {t.name for t in fig.data} == {"fits every limit", "excluded"}
    (rect,) = fig.layout.shapes
    assert rect.x1 == 2.0 and "feasible" in fig.layout.annotations[0].text


def test_pairs_that_cannot_be_told_apart_are_joined_on_the_chart():
    fig = charts.tradeoff(_df(), "weights_mib", "ppl", ties=[("a", "b"), ("a", "missing")])
    joined = [t for t in fig.data if t.name == "not distinguishable at this sample size"]
    assert len(joined) == 1 and list(joined[0].x) == [100.0, 150.0]


def test_kl_survival_is_the_share_above_each_x_and_buckets_group_by_method():
    import json

    import numpy as np

    fig = charts.kl_survival({"m": np.array([0.01, 0.1, 1.0, 10.0])}, points=50)
    (trace,) = fig.data
    x, y = np.asarray(trace.x), np.asarray(trace.y, dtype=float)
    i = int(np.argmin(abs(x - 0.5)))
    assert y[i] == pytest.approx(0.5)                      # two of four tokens above 0.5
    assert fig.layout.xaxis.type == "log" and np.isnan(y[-1])      # none above the max
    rows = pd.DataFrame({"method_label": ["a", "b"], "kld_by_confidence_json": [
        json.dumps([{"lo": 0.0, "hi": 0.5, "tokens": 3, "kld_mean": 0.2}])] * 2})
    bars = charts.kl_by_confidence(rows)
    assert [t.name for t in bars.data] == ["a", "b"] and bars.layout.barmode == "group"


@pytest.mark.parametrize("y", ["ppl", "kld_mean"])
def test_rows_with_non_finite_numbers_are_left_out_and_named(y):
    df = _rows([("fp32", {}, 500.0, 15.0, 0.0), ("rtn", {"bits": 8}, 140.0, 15.1, 0.01),
                ("smoothquant", {}, 130.0, float("nan"), float("nan")),
                ("rtn", {"bits": 4}, 80.0, 17.0, float("inf"))])
    fig = charts.tradeoff(df, "weights_mib", y)
    assert fig.layout.meta["not_finite"] == ["k2", "k3"]
    drawn = {t.customdata[0] for t in fig.data if t.customdata is not None}
    assert not drawn & {"k2", "k3"}
    assert all(math.isfinite(v) for v in fig.layout.yaxis.range)
    note = [a.text for a in fig.layout.annotations if "not a finite" in a.text]
    assert note and "smoothquant" in note[0] and "(2)" in note[0]


def test_an_exported_chart_speaks_the_pages_language_and_holds_its_whole_legend():
    points = [("fp32", {}, 500.0, 15.0)] + [("rtn", {"bits": b}, 60.0 * b, 15 + 1 / b) for b in range(2, 9)] \
        + [("gptq", {"bits": b}, 61.0 * b, 15 + 0.5 / b) for b in (2, 3, 4, 8)]
    df = _rows(points)
    ja = charts.tradeoff(df, export=True, lang="ja")
    en = charts.tradeoff(df, export=True)
    assert ja.layout.xaxis.title.text != en.layout.xaxis.title.text
    assert any("\u3040" <= ch <= "\u30ff" or "\u4e00" <= ch <= "\u9fff" for ch in ja.layout.title.text)
    assert ja.layout.legend.orientation == "h"                  # under the plot, not scrolling
    entries = sum(1 for t in ja.data if t.showlegend is not False)
    assert ja.layout.height >= 650 + 26 * -(-entries // 4)
    bars = charts.delta_bars(df, "ppl", "ja")
    assert bars.layout.yaxis.automargin is True                 # labels never clipped
