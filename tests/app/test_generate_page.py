"""The generation page under AppTest: a request from the page, served by the worker's code
inline (the page starts no worker in tests), then drawn side by side."""
from qcompare.core.registry import parse_method_arg
from qcompare.core.specs import CorpusSpec, EvalSpec
from qcompare.explore import generation
from qcompare.explore import generation_worker as gw
from qcompare.jobs import worker
from qcompare.jobs.submit import build_specs
from qcompare.sources.models import model_from_arg
from tests.app.pagetest import page_on

TINY = EvalSpec(tokens=256, window=64, speed_prompt=16, speed_new_tokens=4, speed_repeats=1)


def test_generate_streams_columns_and_colours_the_variant(tmp_path, monkeypatch, tiny_model_dir):
    model = model_from_arg(str(tiny_model_dir))
    for spec in build_specs(model, [parse_method_arg("fp32"), parse_method_arg("rtn:bits=2,granularity=channel")],
                            CorpusSpec(), TINY):
        worker.run(spec, tmp_path)
    at = page_on(tmp_path, "pages/generate.py", monkeypatch)
    assert at.radio(key="gen.prompt_choice").value.startswith("Once upon a time")
    at.radio(key="gen.prompt_choice").set_value("昔々、あるところに").run()   # multi-byte text
    assert len(at.multiselect(key="gen.variants").value) == 1
    at.number_input(key="gen.max").set_value(8).run()
    at.button(key="gen.go").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    (req,) = generation.pending(tmp_path)
    assert req["prompt"] == "昔々、あるところに" and len(req["columns"]) == 2
    assert req["decoding"]["max_new_tokens"] == 8 and not req["decoding"]["sample"]
    gw.Server(tmp_path).handle(req)
    at.run()
    assert not at.exception
    texts = [h.proto.body for h in at.get("html")]
    assert len(texts) == 2 and all("昔々、あるところに" in t for t in texts)
    assert not any("\ufffd" in t for t in texts)
    assert "rgba(251,13,13" in texts[1]                          # the variant, coloured by KL
    assert any(m.label == "tok/s" and m.value != "—" for m in at.metric)
    assert any("done." in c.value for c in at.caption)


def test_the_chosen_variants_stay_as_new_rows_arrive(tmp_path, monkeypatch, tiny_model_dir):
    model = model_from_arg(str(tiny_model_dir))
    methods = [parse_method_arg(m) for m in ("fp32", "rtn:bits=8", "rtn:bits=4")]
    for spec in build_specs(model, methods, CorpusSpec(), TINY):
        worker.run(spec, tmp_path)
    at = page_on(tmp_path, "pages/generate.py", monkeypatch)
    first = list(at.multiselect(key="gen.variants").value)
    assert len(first) == 2
    at.multiselect(key="gen.variants").set_value(first[:1]).run()
    (newer,) = build_specs(model, [parse_method_arg("rtn:bits=2,granularity=channel")], CorpusSpec(), TINY)
    worker.run(newer, tmp_path)                         # a new row lands: the newest
    at.run()
    assert not at.exception
    assert list(at.multiselect(key="gen.variants").value) == first[:1]
    assert len(at.multiselect(key="gen.variants").options) == 3


def test_streamed_text_never_ends_inside_a_character(tiny_model_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    ids = tok("昔々、あるところに")["input_ids"]
    partial = [tok.decode(ids[:i], skip_special_tokens=True) for i in range(1, len(ids) + 1)]
    assert any(p.endswith("\ufffd") for p in partial)          # byte tokens split characters
    shown = [gw.visible_text(tok, ids[:i]) for i in range(1, len(ids) + 1)]
    assert not any("\ufffd" in p for p in shown) and shown[-1] == "昔々、あるところに"
    assert all(shown[i + 1].startswith(shown[i]) for i in range(len(shown) - 1))


def test_a_typed_method_beyond_three_variants_is_refused(tmp_path, monkeypatch, tiny_model_dir):
    model = model_from_arg(str(tiny_model_dir))
    methods = ["fp32", "rtn:bits=8", "rtn:bits=4,group_size=32", "rtn:bits=2,granularity=channel"]
    for spec in build_specs(model, [parse_method_arg(m) for m in methods], CorpusSpec(), TINY):
        worker.run(spec, tmp_path)
    at = page_on(tmp_path, "pages/generate.py", monkeypatch)
    at.multiselect(key="gen.variants").set_value(at.multiselect(key="gen.variants").options[:3]).run()
    at.text_input(key="gen.typed").input("rtn:bits=3").run()
    at.button(key="gen.go").click().run()
    assert any("at most 3 variants" in e.value for e in at.error)
    assert not generation.pending(tmp_path)
