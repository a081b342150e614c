"""The recommender on hand-made rows with known answers: ranking by each priority, exclusion
by each limit, ties, and the rules-of-thumb path when nothing was measured."""
import json

import pandas as pd
import pytest

from qcompare.core.shape import ModelShape
from qcompare.decide import recommend
from qcompare.decide.catalog import MODELS
from qcompare.decide.recommend import Constraints

SHAPE = ModelShape("m", layers=2, hidden=64, heads=4, kv_heads=2, intermediate=128, vocab=384,
                   tied=True)


def _row(method, label, weights_mib, ppl, kld, tok, device="cpu", options=None, key=None):
    return {"method": method, "method_label": label, "key": key or label, "family": method,
            "weights_mib": weights_mib, "ppl": ppl, "kld_mean": kld, "decode_tok_s": tok,
            "device": device, "options_json": json.dumps(options or {}), "model": "m",
            "model_fingerprint": "f", "corpus_sha256": "c", "protocol": "disjoint",
            "tokens": 1024, "window": 512, "stride": 0, "reference_key": "r",
            "finished_at": pd.Timestamp("2026-12-01")}


ROWS = pd.DataFrame([
    _row("fp32", "fp32", 500.0, 10.0, 0.0, 20.0),
    _row("bf16", "bf16", 250.0, 10.01, 0.001, 30.0),
    _row("rtn", "rtn 8b", 140.0, 10.1, 0.01, 40.0, options={"bits": 8}),
    _row("rtn", "rtn 4b", 80.0, 11.0, 0.2, 60.0, options={"bits": 4}),
    _row("rtn", "rtn 2b", 40.0, 40.0, 2.5, 70.0, options={"bits": 2}),
])


def _labels(choices):
    return [c.method_label for c in choices]


def test_quality_priority_ranks_by_kld_with_the_baseline_first():
    rec = recommend.recommend(ROWS, SHAPE, Constraints(device="cpu", context=64))
    assert _labels(rec.measured) == ["fp32", "bf16", "rtn 8b", "rtn 4b", "rtn 2b"]
    assert rec.excluded == [] and "5 measured row(s)" in rec.basis


def test_speed_and_size_priorities():
    speed = recommend.recommend(ROWS, SHAPE, Constraints(device="cpu", priority="speed", context=64))
    assert _labels(speed.measured)[:2] == ["rtn 2b", "rtn 4b"]
    size = recommend.recommend(ROWS, SHAPE, Constraints(device="cpu", priority="size", context=64))
    assert _labels(size.measured) == ["rtn 2b", "rtn 4b", "rtn 8b", "bf16", "fp32"]


def test_each_hard_limit_excludes_with_its_reason():
    c = Constraints(device="cpu", context=64, max_ppl_increase_pct=5, min_decode_tok_s=25,
                    memory_gib=0.8)
    rec = recommend.recommend(ROWS, SHAPE, c)
    assert _labels(rec.measured) == ["bf16", "rtn 8b"]
    why = {e.method_label: (e.limit, e.detail) for e in rec.excluded}
    assert why["rtn 4b"][0] == "max PPL increase" and "+10.0 %" in why["rtn 4b"][1]
    assert why["rtn 2b"][0] == "max PPL increase"
    assert why["fp32"][0] == "memory" and "0.8 GiB" in why["fp32"][1]   # 500 MiB + overhead
    kld = recommend.recommend(ROWS, SHAPE, Constraints(device="cpu", context=64, max_kld=0.05))
    assert {e.method_label for e in kld.excluded} == {"rtn 4b", "rtn 2b"}


def test_a_speed_limit_needs_a_speed_measured_on_that_device():
    rec = recommend.recommend(ROWS, SHAPE, Constraints(device="cuda", min_decode_tok_s=1))
    assert rec.measured == []
    assert {e.detail for e in rec.excluded} == {"speed not measured on cuda"}


def test_a_method_that_cannot_run_on_the_device_is_excluded():
    rows = pd.concat([ROWS, pd.DataFrame([_row("gguf", "Q4_K_M", 90.0, 10.5, 0.05, 80.0,
                                               options={"type": "Q4_K_M", "imatrix": False})])])
    rec = recommend.recommend(rows, SHAPE, Constraints(device="cuda", memory_gib=24))
    assert [e.limit for e in rec.excluded if e.method_label == "Q4_K_M"] == ["device"]
    assert "Q4_K_M" not in _labels(rec.measured)


def test_ties_break_on_size_and_the_reason_names_the_frontier():
    rows = pd.concat([ROWS, pd.DataFrame([_row("rtn", "rtn 8b big", 150.0, 10.1, 0.01, 40.0,
                                               options={"bits": 8}, key="k2")])])
    rec = recommend.recommend(rows, SHAPE, Constraints(device="cpu", context=64))
    order = _labels(rec.measured)
    assert order.index("rtn 8b") == order.index("rtn 8b big") - 1      # same KLD: smaller first
    r8 = next(c for c in rec.measured if c.method_label == "rtn 8b")
    assert r8.on_frontier and "Pareto frontier" in r8.reason and "+1.0 % perplexity" in r8.reason


def test_no_measured_rows_gives_labelled_rules():
    llama = MODELS["Llama-2-7B"]
    cpu = recommend.recommend(pd.DataFrame(), llama, Constraints(device="cpu", memory_gib=16))
    assert cpu.measured == [] and cpu.basis == "no measured rows for this model"
    # 16 GiB of RAM holds Q8_0 (about 7 GiB with a 4k context) within 80 %: the 8-bit choice
    assert cpu.rules[0].methods == ["gguf:type=Q8_0", "gguf:type=Q4_K_M"] and "not measured here" in cpu.rules[0].note
    assert "it leaves" in cpu.rules[0].why
    eight = recommend.rules(llama, Constraints(device="cpu", memory_gib=8))       # 8 GiB: 4 bits
    assert eight[0].methods == ["gguf:type=Q4_K_M"] and "of 8.00 GiB" in eight[0].why
    assert "Q8_0 would need" in eight[0].why
    tiny_ram = recommend.rules(llama, Constraints(device="cpu", memory_gib=2))
    assert tiny_ram[0].methods == ["gguf:type=Q4_K_M"] and "does not fit" in tiny_ram[0].why
    big = recommend.rules(llama, Constraints(device="cuda", memory_gib=80))
    assert big[0].methods == ["fp16"]                                    # 13.5 GB in 80 GB
    # FP16 (12.6 GiB of weights) fits in 80 % of 24 GiB by the calculator; not of 16 GiB
    assert recommend.rules(llama, Constraints(memory_gib=24, context=2048))[0].methods == ["fp16"]
    small = recommend.rules(llama, Constraints(device="cuda", memory_gib=16, context=2048))
    assert small[0].methods[0].startswith("awq") and "7B-class" in small[0].why
    huge = recommend.rules(MODELS["Llama-2-70B"], Constraints(device="cuda", memory_gib=24))
    assert huge[0].methods == [] and "several GPUs" in huge[0].text
    two = recommend.rules(MODELS["Llama-2-70B"], Constraints(device="cuda", memory_gib=24, gpus=2))
    assert two[0].methods and two[0].methods[0].startswith("awq")
    tune = recommend.rules(llama, Constraints(finetune=True, memory_gib=24))
    assert tune[0].methods == ["bnb-nf4:double_quant=true"]


def test_bad_constraints_are_refused():
    with pytest.raises(ValueError, match="priority"):
        Constraints(priority="cheap")


def test_a_shape_llama_cpp_cannot_hold_is_said_not_raised():
    odd = ModelShape("odd", 2, 100, 4, 4, 200, 50)             # rows of 100: no GGML block fits
    (rule,) = recommend.rules(odd, Constraints(device="cpu", memory_gib=8))
    assert "cannot be sized" in rule.why and rule.methods == ["gguf:type=Q4_K_M"]


def test_a_row_of_an_unknown_method_is_excluded_with_why():
    rows = pd.concat([ROWS, pd.DataFrame([_row("retired-method", "old", 10.0, 11.0, 0.1, 1.0)])])
    rec = recommend.recommend(rows, SHAPE, Constraints(device="cpu", context=64))
    (old,) = [e for e in rec.excluded if e.method_label == "old"]
    assert old.limit == "method" and "unknown method" in old.detail and len(rec.measured) == 5


def test_every_sentence_comes_in_japanese_and_the_limit_stays_an_identifier():
    c = Constraints(device="cpu", context=64, max_ppl_increase_pct=5, min_decode_tok_s=25,
                    memory_gib=0.8)
    en, ja = recommend.recommend(ROWS, SHAPE, c), recommend.recommend(ROWS, SHAPE, c, lang="ja")
    assert [x.method_label for x in ja.measured] == [x.method_label for x in en.measured]
    assert [(e.method_label, e.limit) for e in ja.excluded] == [(e.method_label, e.limit)
                                                                for e in en.excluded]
    fp32 = next(e for e in ja.excluded if e.method_label == "fp32")
    assert "しかありません" in fp32.detail and "0.8 GiB" in fp32.detail
    assert recommend.limit_name(fp32.limit, "ja") == "メモリ"
    assert recommend.limit_name(fp32.limit) == "memory"
    assert "収まる" in ja.measured[0].reason and "fits in" in en.measured[0].reason
    assert ja.basis.endswith("（cpu）") and ja.rules[0].note.startswith("経験則")
    for rule in recommend.rules(MODELS["Llama-2-7B"], Constraints(memory_gib=16, context=2048),
                                "ja"):
        assert "7B クラス" in rule.why and "GiB" in rule.why and "fits" not in rule.why


@pytest.mark.parametrize("priority", ["quality", "speed", "size"])
def test_a_row_with_a_non_finite_number_is_excluded_and_says_so(priority):
    """A NaN perplexity (smoothquant alpha=nan stored one before options were checked) ranked
    first by size; it is excluded, with the values, whatever the priority."""
    rows = pd.concat([ROWS, pd.DataFrame([
        _row("smoothquant", "smoothquant nan", 30.0, float("nan"), float("nan"), 80.0),
        _row("rtn", "rtn inf", 35.0, 12.0, float("inf"), 80.0, options={"bits": 3})])],
        ignore_index=True)
    rec = recommend.recommend(rows, SHAPE, Constraints(device="cpu", context=64, priority=priority))
    assert not {"smoothquant nan", "rtn inf"} & set(_labels(rec.measured))
    out = {e.method_label: e for e in rec.excluded}
    assert out["smoothquant nan"].limit == out["rtn inf"].limit == "not_finite"
    assert "ppl=nan" in out["smoothquant nan"].detail and "kld_mean=inf" in out["rtn inf"].detail
    assert recommend.limit_name("not_finite", "ja") != "not_finite"
