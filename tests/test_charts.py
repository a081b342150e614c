import math

import pandas as pd
import pytest

from qcompare import charts
from qcompare.metrics.table import pareto_mask


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
    assert sorted(labels) == ["a", "b", "fp32"]                     # only the frontier is labelled


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
    from qcompare.charts import layer_grid, layer_heatmap

    layers = [{"layer": f"model.layers.{i}.self_attn.{k}", "output_rel_err": i + j / 10}
              for i in range(3) for j, k in enumerate(("q_proj", "k_proj"))]
    layers.append({"layer": "model.layers.0.mlp.down_proj", "weight_rel_err": 1.0})  # other metric
    grid = layer_grid(layers, "output_rel_err")
    assert list(grid.columns) == ["q_proj", "k_proj"] and list(grid.index) == [0, 1, 2]
    assert grid.loc[2, "k_proj"] == 2.1
    fig = layer_heatmap(layers, "output_rel_err")
    assert fig.data[0].z.shape == (3, 2)
    assert layer_grid(layers, "missing").empty
