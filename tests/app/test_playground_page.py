"""The playground page under AppTest, on a model folder in the state folder's models/."""
import shutil

from qcompare.explore import playground as pg
from tests.app.pagetest import page_on


def _open(state, monkeypatch):
    return page_on(state, "pages/playground.py", monkeypatch)


def test_two_settings_side_by_side_on_a_real_tensor(tmp_path, monkeypatch, tiny_model_dir):
    shutil.copytree(tiny_model_dir, tmp_path / "models" / "tiny")
    at = _open(tmp_path, monkeypatch)
    assert at.selectbox(key="pg.model").value == "tiny"
    at.selectbox(key="pg.layer").set_value(1).run()
    assert at.selectbox(key="pg.proj").value.startswith("mlp.")      # a largest Linear first
    at.selectbox(key="pg.proj").set_value("mlp.up_proj").run()
    at.select_slider(key="pg.A.bits").set_value(3).run()
    at.radio(key="pg.B.cal").set_value("kl").run()
    assert not at.exception
    x = pg.read_tensor(tmp_path / "models" / "tiny" / "model.safetensors", "model.layers.1.mlp.up_proj.weight")
    want_a = pg.quantize(x, pg.Setting(bits=3))
    want_b = pg.quantize(x, pg.Setting(bits=4, calibrator="kl"))
    sqnr = [m.value for m in at.metric if m.label == "SQNR"]
    assert sqnr == [f"{want_a.sqnr_db:.2f} dB", f"{want_b.sqnr_db:.2f} dB"]
    assert len(at.get("plotly_chart")) == 4          # a histogram and the scales per side
    assert any("3-bit sym g128 minmax" in c.value for c in at.caption)


def test_without_a_model_folder_it_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setattr("qcompare.sources.models.embedded_gguf", lambda: tmp_path / "missing.gguf")
    at = _open(tmp_path, monkeypatch)
    assert any("No model folder with safetensors yet" in i.value for i in at.info)


def test_the_activation_view_shows_outlier_channels_and_int8_per_tensor_vs_per_token(
        tmp_path, monkeypatch, tiny_model_dir):
    from qcompare.explore import generation
    from qcompare.explore import generation_worker as gw

    shutil.copytree(tiny_model_dir, tmp_path / "models" / "tiny")
    at = _open(tmp_path, monkeypatch)
    at.button(key="pg.act.go").click().run()
    (req,) = generation.pending(tmp_path)
    assert req["kind"] == "activations" and req["module"].startswith("model.layers.0.mlp.")
    gw.Server(tmp_path).handle(req)
    at.run()
    assert not at.exception
    titles = [c.proto.spec for c in at.get("plotly_chart")]
    assert any("Largest |activation| of each input channel" in t for t in titles)
    table = at.dataframe[-1].value
    assert list(table["tensor"]) == ["activations", "activations", "weight", "weight"]
    assert any("peaks at" in c.value and "median channel" in c.value for c in at.caption)
