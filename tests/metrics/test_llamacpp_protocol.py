"""The llamacpp protocol cuts windows exactly as `llama-perplexity -c W` does: the text is
tokenized with BOS in front, cut into consecutive windows, each window's first token replaced by
BOS, and the second half scored. Checked against an independent re-implementation on the tiny
model (the comparison with the real binary is a benchmark: bench/llamacpp_protocol.py)."""
import numpy as np
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from qcompare.core.registry import parse_method_arg
from qcompare.core.specs import CorpusSpec, EvalSpec
from qcompare.jobs import worker
from qcompare.jobs.submit import build_specs
from qcompare.sources import corpora, models


def _llama_perplexity(model_dir, text: str, n_tokens: int, window: int) -> float:
    """Mean NLL as llama-perplexity computes it (perplexity.cpp): tokens = BOS + text; chunk j
    is tokens[j*W:(j+1)*W] with its first token set to BOS; logits at W/2 .. W-2 score the next
    tokens."""
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    stream = [tok.bos_token_id] + tok(text[:200_000])["input_ids"]
    stream = stream[:n_tokens]
    nll = []
    for j in range(len(stream) // window):
        chunk = list(stream[j * window:(j + 1) * window])
        chunk[0] = tok.bos_token_id
        with torch.no_grad():
            logp = torch.log_softmax(model(torch.tensor([chunk])).logits[0].double(), -1)
        for i in range(window // 2, window - 1):
            nll.append(-float(logp[i, chunk[i + 1]]))
    return float(np.mean(nll))


def test_the_llamacpp_protocol_is_llama_perplexitys(tiny_model_dir, state_dir):
    ev = EvalSpec(tokens=256, window=64, protocol="llamacpp", speed_repeats=0)
    (spec,) = build_specs(models.model_from_arg(str(tiny_model_dir)), [parse_method_arg("fp32")],
                          CorpusSpec(), ev)
    assert spec.eval.bos_stream and '"bos_stream":true' in spec.to_json()
    row = worker.run(spec, state_dir)
    want = _llama_perplexity(tiny_model_dir, corpora.embedded_text(), 256, 64)
    assert abs(row["nll_mean"] - want) < 1e-5
    assert row["n_scored"] == 4 * (64 // 2 - 1)

    # the other protocols' keys are as before: no bos_stream in their JSON
    plain = EvalSpec(tokens=256, window=64)
    assert not plain.bos_stream and "bos_stream" not in spec.__class__(
        model=spec.model, method=spec.method, corpus=spec.corpus, eval=plain).to_json()
