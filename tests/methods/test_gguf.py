"""GGUF through llama.cpp: the adapter and checks without llama.cpp; the real thing on the
embedded model when llama-cpp-python is installed (marked slow)."""
import math

import numpy as np
import pytest
import torch

from qcompare.errors import UserError
from qcompare.methods import gguf
from qcompare.methods.base import BuildContext


class FakeLlama:
    """Stands in for llama_cpp.Llama: logits_all scores where row i favours token (id_i + 1)."""

    def __init__(self, vocab=10):
        self.vocab, self.scores, self.n_tokens = vocab, np.zeros((64, vocab), np.float32), 0

    def reset(self):
        self.n_tokens = 0

    def eval(self, ids):
        for t in ids:
            self.scores[self.n_tokens] = 0
            self.scores[self.n_tokens, (t + 1) % self.vocab] = 5.0
            self.n_tokens += 1

    def tokenize(self, data, add_bos=False, special=False):
        return [int(b) for b in data]


def test_adapter_returns_the_kept_logits_and_greedy_continuations():
    m = gguf.LlamaCppModel(FakeLlama())
    out = m(torch.tensor([[1, 2, 3, 4]]), logits_to_keep=2).logits
    assert out.shape == (1, 2, 10) and out[0, 0].argmax() == 4 and out[0, 1].argmax() == 5
    gen = m.generate(torch.tensor([[1, 2]]), max_new_tokens=3)
    assert gen.tolist() == [[1, 2, 3, 4, 5]]


def test_tokenizer_agreement_reports_the_first_difference():
    class Tok:
        bos_token_id = None

        def __init__(self, shift):
            self.shift = shift

        def __call__(self, text):
            ids = [int(b) for b in text.encode()]
            if self.shift:
                ids[3] += 1
            return {"input_ids": ids}

    llm = FakeLlama()
    assert "same 5 ids" in gguf.tokenizer_agreement(llm, Tok(False), "hello")
    assert "differs from transformers at token 3" in gguf.tokenizer_agreement(llm, Tok(True), "hello")


def test_a_hugging_face_folder_is_refused_with_the_reason():
    ctx = BuildContext(load_model=None, tokenizer=None, device="cpu", progress=lambda s, f: None)
    with pytest.raises(UserError, match="convert_hf_to_gguf"):
        gguf.source_gguf(ctx)


@pytest.mark.slow
def test_llama_cpp_on_the_embedded_model(tmp_path):
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")
    from qcompare import submit as submitting
    from qcompare.jobs import worker
    from qcompare.registry import parse_method_arg
    from qcompare.specs import CorpusSpec, EvalSpec, ModelSpec

    ev = EvalSpec(tokens=1024, window=512, speed_repeats=1, speed_new_tokens=8, speed_prompt=32)
    methods = ["fp32", "gguf:type=F32", "gguf:type=Q8_0", "gguf:type=Q4_K_M", "gguf:type=Q2_K"]
    specs = submitting.build_specs(ModelSpec(), [parse_method_arg(m) for m in methods], CorpusSpec(), ev)
    rows = {m: worker.run(s, tmp_path) for m, s in zip(methods, specs)}
    f32, q8, q4, q2 = (rows[f"gguf:type={t}"] for t in ("F32", "Q8_0", "Q4_K_M", "Q2_K"))
    # llama.cpp's F32 and transformers' fp32 see the same model and tokens: near-zero divergence
    assert f32["ppl"] == pytest.approx(rows["fp32"]["ppl"], rel=0.01) and f32["kld_mean"] < 1e-3
    assert "same" in f32["notes"] and f32["kernel"] == "real"
    assert q8["ppl"] < q4["ppl"] < q2["ppl"] and 0 <= q8["kld_mean"] < q4["kld_mean"] < q2["kld_mean"]
    assert q2["weights_mib"] < q4["weights_mib"] < q8["weights_mib"] < f32["weights_mib"]
    assert all(math.isfinite(r["decode_tok_s"]) and r["decode_tok_s"] > 0 for r in (f32, q8, q4, q2))
