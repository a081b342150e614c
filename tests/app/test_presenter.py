"""Presenter mode under AppTest: `?present=1` turns it on, restyles the charts for a projector,
and shows the demo script with where each step's numbers come from."""
import json

import plotly.graph_objects as go

from qcompare.ui import presenter
from tests.app.pagetest import page_on


def test_the_theme_is_large_and_high_contrast():
    fig = go.Figure(go.Scatter(x=[1, 2], y=[3, 4], mode="lines+markers", marker={"size": 8}))
    out = presenter.theme(fig)
    assert out.layout.font.size == 22 and out.layout.plot_bgcolor == "#FFFFFF"
    assert out.data[0].marker.size == 16 and out.data[0].line.width == 4
    assert out.layout.xaxis.linewidth == 2


def test_the_theme_fits_a_1024_projector_legend_below_labels_inwards_long_titles_smaller():
    fig = go.Figure([go.Scatter(x=[1, 5, 10], y=[1, 5, 9.8], mode="markers+text", name="a",
                                text=["left", "middle", "right"], textposition="top right")])
    fig.update_layout(xaxis={"range": [0, 10.5]}, yaxis={"range": [0, 10]},
                      title="A long title " * 8)
    out = presenter.theme(fig)
    assert out.layout.legend.orientation == "h" and out.layout.legend.y < 0     # under the plot
    assert list(out.data[0].textposition) == ["top right", "top right", "bottom left"]
    assert out.layout.title.font.size < 22                    # 104 characters: smaller type
    import numpy as np  # labels as a numpy array too
    arr = go.Figure(go.Scatter(x=np.array([1.0, 9.9]), y=np.array([1.0, 2.0]), mode="markers+text",
                               text=np.array(["a", "b"])))
    arr.update_layout(xaxis={"range": [0, 10]}, yaxis={"range": [0, 10]})
    assert list(presenter.theme(arr).data[0].textposition) == ["top right", "top left"]


def _open(tmp_path, monkeypatch, page=None):
    return page_on(tmp_path, page, monkeypatch, query={"present": "1"})


def test_present_1_turns_it_on_with_the_demo_script(tmp_path, monkeypatch):
    at = _open(tmp_path, monkeypatch)
    assert at.toggle(key="present").value is True
    assert any("font-size: 22px" in h.proto.body for h in at.get("html"))
    script = [m.value for m in at.markdown if m.value.startswith("**1. The default comparison**")]
    assert script and "runs stored" in script[0]           # says what is cached, never a number made up
    assert any(m.value.startswith("**4. The playground**") for m in at.markdown)
    # the rehearsal check, in the script's title line: on an empty state every step is live
    (script_box,) = [e for e in at.expander if e.label.startswith("Demo script")]
    assert script_box.label.endswith("rehearsal: step 1, 2, 3, 4 would measure live")


def test_charts_use_the_presenter_theme_and_it_switches_off(tmp_path, monkeypatch, tiny_model_dir):
    from qcompare.core.registry import parse_method_arg
    from qcompare.core.specs import CorpusSpec, EvalSpec
    from qcompare.jobs import worker
    from qcompare.jobs.submit import build_specs
    from qcompare.sources.models import model_from_arg

    ev = EvalSpec(tokens=256, window=64, speed_prompt=16, speed_new_tokens=4, speed_repeats=1)
    for spec in build_specs(model_from_arg(str(tiny_model_dir)), [parse_method_arg("fp32"),
                            parse_method_arg("rtn:bits=8")], CorpusSpec(), ev):
        worker.run(spec, tmp_path)
    at = _open(tmp_path, monkeypatch, "pages/results.py")
    layout = json.loads(at.get("plotly_chart")[0].proto.spec)["layout"]
    assert layout["font"]["size"] == 22
    at.session_state["present"] = False            # what the sidebar toggle sets
    at.run()
    assert not any("font-size: 22px" in h.proto.body for h in at.get("html"))
    layout = json.loads(at.get("plotly_chart")[0].proto.spec)["layout"]
    assert layout.get("font", {}).get("size") != 22
