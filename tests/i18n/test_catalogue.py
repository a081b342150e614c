"""The message catalogue: the same keys and placeholders in both languages, no key unused, and
the translated pages render in Japanese without English-only text outside technical names."""
import re
import string
from pathlib import Path

import pytest

from qcompare.i18n import catalogue as i18n

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [ROOT / "app.py", *sorted((ROOT / "pages").glob("*.py")), *sorted((ROOT / "qcompare").rglob("*.py"))]


def _fields(text: str) -> set[str]:
    return {f for _, f, _, _ in string.Formatter().parse(text) if f}


def _code_english(key: str) -> bool:
    return key.split(".", 1)[0] in i18n.CODE_ENGLISH


def test_both_catalogues_have_the_same_keys_and_placeholders():
    en, ja = i18n.catalogue("en"), i18n.catalogue("ja")
    assert set(en) == {k for k in ja if not _code_english(k)}, sorted(set(en) ^ set(ja))
    for key in en:
        assert _fields(en[key]) == _fields(ja[key]), key
        assert ja[key].strip(), key


def test_english_that_lives_in_the_code_is_not_copied_into_the_catalogue():
    """Method summaries, option labels and help, metric labels and family names are written in
    English once, in the code; the catalogue holds their Japanese only."""
    assert not [k for k in i18n.catalogue("en") if _code_english(k)]


def test_every_key_is_used_and_every_used_key_exists():
    code = "\n".join(p.read_text(encoding="utf-8") for p in SOURCES)
    literal = set(re.findall(r"""\bt\(\s*["']([a-z0-9_]+\.[a-z0-9_]+)["']""", code))
    quoted = set(re.findall(r"""["']([a-z0-9_]+\.[a-z0-9_]+)["']""", code))
    prefixes = set(re.findall(r"""(?:\bt\(\s*|\bkey=)f["']([a-z0-9_]+\.[a-z0-9_]*)\{""", code))
    keys = set(i18n.catalogue("en"))
    assert literal <= keys, sorted(literal - keys)
    # option help is looked up by its English text (i18n.option_help): checked by the next test
    unused = {k for k in keys - literal - quoted
              if not any(k.startswith(p) for p in prefixes) and not k.startswith("help.")}
    assert not unused, sorted(unused)


def test_locale_and_fallback():
    assert i18n.from_locale("ja-JP") == "ja" and i18n.from_locale("en-US") == "en"
    assert i18n.from_locale(None) == "en"
    assert i18n.t("nav.home", "ja") == "ホーム" and i18n.t("nav.home", "xx") == "Home"
    assert "3" in i18n.t("generate.too_many", "ja", n=3)


# words that stay in English in Japanese text: technical names, units, symbols of the field
TECHNICAL = {
    "gptq", "awq", "rtn", "nf4", "fp4", "fp32", "fp16", "bf16", "int8", "int4", "kl", "kld", "sqnr",
    "mse", "ppl", "linear", "llm", "smoothquant", "tensorrt", "minmax", "percentile", "torch",
    "mib", "gib", "nats", "rss", "safetensors", "smollm2", "ray", "gpu", "cpu", "cuda", "q4_1",
    "ms", "dB", "db", "tok", "bits", "group_size", "present", "log10", "clamp", "round", "scale",
    "zero_point", "q_min", "q_max", "max", "min", "mean", "median", "models", "int",
    "ttft", "qcompare", "embedded", "baseline", "module", "input", "proj", "layers", "model",
    # names of models, corpora, libraries and formats
    "smollm", "instruct", "cpython", "docs", "gguf", "hqq", "llama", "cpp", "torchao",
    "bitsandbytes", "compressor", "pytorch", "k_m", "k_s", "iq4_nl", "iq4_xs", "spqr", "qat",
    "disjoint", "strided", "llamacpp", "quick", "thorough", "custom", "asym", "sym", "bnb", "dynamic",
    "top",                                                   # top-1 agreement
    "nat", "flops", "gflop", "float", "utc", "amd", "epyc", "intel", "xeon", "granularity", "group",
    "gemm", "ptq", "alpha", "bfloat", "compressed", "tensors", "dtype", "eager", "llmc", "mixed",
    "pickle", "quant", "quantize_dynamic", "hub", "ids", "block",
    "python", "qlora", "lora", "ram", "config", "json", "nvidia", "smi", "kib",
}


def english_words(text: str) -> set[str]:
    text = re.sub(r"`[^`]*`", " ", text)                    # code spans: names, paths, specs
    text = re.sub(r"\S*[/\\]\S*", " ", text)                 # paths
    words = set(re.findall(r"[A-Za-z][A-Za-z_]{2,}", text))
    return {w for w in words if w.lower() not in TECHNICAL and not re.search(r"\d", w)}


def test_the_detector_finds_english_and_spares_technical_names():
    assert english_words("Run the default comparison") == {"Run", "the", "default", "comparison"}
    assert english_words("GPTQ と NF4 の KL を SQNR で比べる `model.layers.0.mlp`") == set()


def _visible(at) -> list[str]:
    """Static texts a person reads: titles, prose, captions, notices, widget and metric labels."""
    out = [e.value for kind in ("title", "subheader", "markdown", "caption", "info", "error",
                                "warning", "success") for e in at.get(kind)]
    for kind in ("selectbox", "multiselect", "radio", "text_input", "text_area", "number_input",
                 "button", "select_slider", "toggle", "checkbox"):
        out += [w.label for w in at.get(kind)]
    out += [m.label for m in at.metric]
    out += [e.label for e in at.get("expander")]
    out += [h for d in at.dataframe for h in _headers(d)]
    return out


def _headers(frame) -> list[str]:
    """A table's column headers as shown (a column_config label over the column's name); a
    bare snake_case name is a field of the results schema, shown as stored (as exported)."""
    import json

    config = json.loads(frame.proto.columns or "{}")
    shown = [config.get(str(c), {}).get("label") or str(c) for c in frame.value.columns]
    return [h for h in shown if not re.fullmatch(r"[a-z0-9_]+", h)]


@pytest.mark.parametrize("page", ["pages/home.py", "pages/compare.py", "pages/results.py", "pages/jobs.py",
                                  "pages/drift.py", "pages/recipe.py", "pages/choose.py",
                                  "pages/generate.py",
                                  "pages/playground.py"])
def test_translated_pages_render_in_japanese(page, tmp_path, monkeypatch, tiny_model_dir):
    import json
    import shutil

    from qcompare.core.registry import parse_method_arg
    from qcompare.core.specs import CorpusSpec, EvalSpec
    from qcompare.jobs import worker
    from qcompare.jobs.submit import build_specs
    from qcompare.sources.models import model_from_arg
    from tests.app.pagetest import page_on

    ev = EvalSpec(tokens=256, window=64, speed_prompt=16, speed_new_tokens=4, speed_repeats=1)
    for spec in build_specs(model_from_arg(str(tiny_model_dir)), [parse_method_arg("fp32"),
                            parse_method_arg("rtn:bits=8")], CorpusSpec(), ev):
        worker.run(spec, tmp_path)
    shutil.copytree(tiny_model_dir, tmp_path / "models" / "tiny")
    at = page_on(tmp_path, None, monkeypatch)
    at.session_state["lang"] = "ja"
    at.run()
    at.switch_page(page)
    at.run()
    assert not at.exception, at.exception
    leftovers = {w for text in _visible(at) for w in english_words(text)}
    assert not leftovers, [x for x in _visible(at) if english_words(x)]
    words = [w for c in at.get("plotly_chart") for w in _chart_words(json.loads(c.proto.spec))]
    assert all(not english_words(x) for x in words), [x for x in words if english_words(x)]


def _chart_words(spec: dict) -> list[str]:
    """A chart's own words: its title, axis titles, annotations and legend entries."""
    layout = spec.get("layout", {})

    def text(v):
        return v.get("text", "") if isinstance(v, dict) else (v or "")
    out = [text(layout.get("title"))]
    out += [text(v.get("title")) for k, v in layout.items() if k.startswith(("xaxis", "yaxis"))
            and isinstance(v, dict)]
    out += [a.get("text", "") for a in layout.get("annotations", [])]
    out += [str(tr.get("name", "")) for tr in spec.get("data", [])]
    out += [text(tr.get("legendgrouptitle")) for tr in spec.get("data", [])]
    return [re.sub(r"<[^>]+>", " ", x) for x in out if x]


def test_every_method_summary_option_label_help_and_family_has_its_japanese():
    from qcompare.core import registry
    from qcompare.core.columns import BY_NAME

    ja = i18n.catalogue("ja")
    wanted = set()
    for cls in registry.all_methods():
        wanted |= {f"method.{cls.name}", f"family.{cls.family}"}
        assert i18n.method_summary(cls, "ja") != cls.summary, cls.name
        assert i18n.method_summary(cls, "en") == cls.summary
        for o in cls.config_cls.option_table():
            wanted |= {f"option.{o['name']}", f"help.{o['help']}"}
            assert i18n.option_help(o["help"], "ja") != o["help"], (cls.name, o["name"])
            assert i18n.option_label(o["name"], o["label"], "en") == o["label"]
    missing = sorted(k for k in wanted if k not in ja)
    assert not missing, missing
    stale = sorted(k for k in ja if _code_english(k) and not k.startswith("metric.") and k not in wanted)
    assert not stale, stale                      # a renamed option or reworded help leaves none
    for key in (k for k in ja if k.startswith("metric.")):
        assert BY_NAME[key.removeprefix("metric.")].label, key
        assert BY_NAME[key.removeprefix("metric.")].label != ja[key], key


def test_every_user_error_of_the_package_comes_from_the_catalogue():
    """A UserError can reach a page (a form, a failed job), so the package raises each by its
    key; only the CLI's own modules (English for scripts) write theirs inline."""
    inline = []
    for path in sorted((ROOT / "qcompare").rglob("*.py")):
        if path.relative_to(ROOT / "qcompare").parts[0] == "cli":
            continue
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if re.search(r"""UserError\(\s*f?["']""", line):
                inline.append(f"{path.relative_to(ROOT)}:{n}")
    assert not inline, inline


def test_a_keyed_error_says_the_same_in_both_languages_and_stores_both():
    import json

    from qcompare.core import registry
    from qcompare.core.errors import Message, UserError, stored_text

    with pytest.raises(UserError) as e:
        registry.get("rnt")
    assert "Did you mean rtn?" in str(e.value) and "rtn のことですか" in e.value.text("ja")
    stored = json.loads(e.value.translations())
    assert stored["en"] == str(e.value) and stored["ja"] == e.value.text("ja")
    assert stored_text(str(e.value), e.value.translations(), "ja") == stored["ja"]
    assert stored_text("as stored", None, "ja") == "as stored"
    reason = Message("errors.no_gguf_source", reason=Message("errors.no_cuda"))  # nested: same language
    assert isinstance(reason, str) and reason.endswith("visible on this machine.")
    assert reason.text("ja").endswith("見当たりません。")
    assert UserError(reason).text("ja") == reason.text("ja")
