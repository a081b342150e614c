import json
import time

import pytest
import torch

from qcompare.core.registry import parse_method_arg
from qcompare.core.specs import CorpusSpec, EvalSpec
from qcompare.explore import generation
from qcompare.explore import generation_worker as gw
from qcompare.explore.decoding import Decoding, penalise, pick
from qcompare.jobs.submit import build_specs
from qcompare.sources.models import model_from_arg

TINY = EvalSpec(tokens=256, window=64, speed_prompt=16, speed_new_tokens=4, speed_repeats=1)


def _columns(folder, *methods):
    specs = build_specs(model_from_arg(str(folder)), [parse_method_arg(m) for m in methods],
                        CorpusSpec(), TINY)
    return [(m, s.to_json()) for m, s in zip(methods, specs)]


def test_first_divergence_and_colouring_by_hand():
    assert generation.first_divergence([1, 2, 3, 4], [1, 2, 9, 4]) == 2
    assert generation.first_divergence([1, 2, 3], [1, 2, 3, 4]) is None
    assert generation.first_divergence([5], [6]) == 0
    html = generation.html_tokens(["a", "<b>", "c"], [0.0, 0.5, 2.0], 1, 1.0)
    assert html.index("▍") < html.index("&lt;b&gt;")             # marker before the departing token
    assert "rgba(251,13,13,0.50)" in html and "rgba(251,13,13,1.00)" in html
    assert "<b>" not in html                                     # text is escaped


def test_penalty_and_sampling_follow_their_definitions():
    z = torch.tensor([2.0, -1.0, 0.5, 3.0])
    assert torch.equal(penalise(z, [0, 1], 2.0), torch.tensor([1.0, -2.0, 0.5, 3.0]))
    assert pick(z, [], Decoding()) == 3
    assert pick(z, [3], Decoding(repetition_penalty=2.0)) == 0   # 3/2 < 2
    d = Decoding(sample=True, seed=5, top_p=0.5)
    draws = {pick(z, [], d, torch.Generator().manual_seed(i)) for i in range(20)}
    assert draws == {3}                                          # top-p 0.5 keeps the top token only
    a = [pick(z, [], Decoding(sample=True), torch.Generator().manual_seed(7)) for _ in range(1)]
    b = [pick(z, [], Decoding(sample=True), torch.Generator().manual_seed(7)) for _ in range(1)]
    assert a == b


def test_the_worker_generates_what_transformers_generates(tiny_model_dir, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cols = _columns(tiny_model_dir, "fp32", "rtn:bits=2,granularity=channel")
    rid = generation.submit(tmp_path, "def main():", Decoding(max_new_tokens=12), cols)
    server = gw.Server(tmp_path)
    server.handle(generation.pending(tmp_path)[0])
    st = generation.read_state(tmp_path, rid)
    assert st["status"] == "done" and not generation.pending(tmp_path)
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    x = tok("def main():", return_tensors="pt")
    want = model.generate(**x, do_sample=False, max_new_tokens=12)[0, x["input_ids"].shape[1]:].tolist()
    base, quant = st["columns"]
    assert base["tokens"] == want
    assert base["kl"] == [0.0] * len(want) and "".join(base["pieces"]) == base["text"]
    assert len(quant["kl"]) == len(quant["tokens"]) and min(quant["kl"]) >= -1e-12
    assert quant["first_divergence"] == generation.first_divergence(base["tokens"], quant["tokens"])
    assert base["ttft_ms"] > 0 and base["weights_mib"] > quant["weights_mib"]
    # the second prompt reuses the loaded models
    t0 = time.perf_counter()
    rid2 = generation.submit(tmp_path, "class A:", Decoding(max_new_tokens=4), cols)
    server.handle(generation.pending(tmp_path)[0])
    assert generation.read_state(tmp_path, rid2)["columns"][1]["load_s"] < 0.05
    assert time.perf_counter() - t0 < 2.0


def test_cancel_stops_a_request_mid_generation(tiny_model_dir, tmp_path, monkeypatch):
    cols = _columns(tiny_model_dir, "fp32")
    rid = generation.submit(tmp_path, "def f(x):", Decoding(max_new_tokens=200), cols)
    real = gw.pick

    def slow_pick(*a, **k):                         # cancel after the fifth token
        out = real(*a, **k)
        if len(generation.read_state(tmp_path, rid)["columns"][0]["tokens"]) == 4:
            generation.cancel(tmp_path, rid)
        return out
    monkeypatch.setattr(gw, "pick", slow_pick)
    server = gw.Server(tmp_path)
    server.handle(generation.pending(tmp_path)[0])
    st = generation.read_state(tmp_path, rid)
    assert st["status"] == "cancelled" and len(st["columns"][0]["tokens"]) == 5
    assert not generation.pending(tmp_path)


def test_a_spawned_worker_serves_requests_and_exits_when_idle(tiny_model_dir, tmp_path):
    cols = _columns(tiny_model_dir, "fp32")
    rid = generation.submit(tmp_path, "import os", Decoding(max_new_tokens=3), cols)
    assert gw.ensure_worker(tmp_path, idle_exit=2)
    deadline = time.monotonic() + 120
    while (generation.read_state(tmp_path, rid) or {}).get("status") != "done":
        assert time.monotonic() < deadline, (tmp_path / "generation" / "worker.log").read_text()
        time.sleep(0.2)
    while gw.running(tmp_path):
        assert time.monotonic() < deadline + 30
        time.sleep(0.2)
    assert len(json.loads((tmp_path / "generation" / rid / "state.json").read_text())["columns"][0]["tokens"]) == 3


def test_bad_requests_are_refused_with_a_reason(tmp_path, tiny_model_dir):
    with pytest.raises(ValueError, match="prompt"):
        generation.submit(tmp_path, "  ", Decoding(), _columns(tiny_model_dir, "fp32"))
    with pytest.raises(ValueError, match="at most 3 variants"):
        generation.submit(tmp_path, "x", Decoding(), _columns(tiny_model_dir, "fp32") * 5)


def test_the_default_step_api_rescores_and_agrees_with_the_kv_cache(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    from qcompare.core.runtime import Runtime
    from qcompare.runtime.torch_model import TorchRuntime

    rt = TorchRuntime(AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval())
    a = [rt.start([5, 6, 7])] + [rt.advance(t) for t in (8, 9)]
    b = [Runtime.start(rt, [5, 6, 7])] + [Runtime.advance(rt, t) for t in (8, 9)]
    for x, y in zip(a, b):
        assert torch.allclose(x, y, atol=1e-4)


def test_a_capture_stores_what_the_linear_receives(tiny_model_dir, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    (_, spec_json), = _columns(tiny_model_dir, "fp32")
    rid = generation.submit_activations(tmp_path, "def main(): return 1", spec_json,
                                        "model.layers.1.mlp.down_proj")
    gw.Server(tmp_path).handle(generation.pending(tmp_path)[0])
    st = generation.read_state(tmp_path, rid)
    x = generation.activations(tmp_path, rid)
    assert st["status"] == "done" and list(x.shape) == st["shape"]
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    ids = AutoTokenizer.from_pretrained(tiny_model_dir)("def main(): return 1", return_tensors="pt")
    seen = []
    model.model.layers[1].mlp.down_proj.register_forward_pre_hook(lambda m, a: seen.append(a[0]))
    with torch.no_grad():
        model(**ids)
    assert x.shape == (ids["input_ids"].shape[1], 128)
    assert torch.allclose(torch.from_numpy(x), seen[0][0], atol=1e-5)
