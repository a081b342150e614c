"""GGUF quantization types through llama.cpp itself (llama-cpp-python), evaluated by llama.cpp.

Build protocol:

1. Source: the model's own .gguf file (the embedded model, or a `--model file.gguf`). A
   Hugging Face folder has no GGUF to start from: converting one needs llama.cpp's
   convert_hf_to_gguf.py, which is not installable from a package registry, so it is refused
   with that reason.
2. `llama_model_quantize` (llama-quantize's own code) writes `<type>.gguf` in the job's work
   folder. When the source is already quantized (the embedded model is Q4_1), requantization
   is allowed: llama.cpp dequantizes each tensor to fp32 and quantizes that, which is exactly
   quantizing the fp32 baseline qcompare compares against (the baseline is that same
   dequantization). `F32` dequantizes every tensor: the llama.cpp counterpart of the fp32
   baseline, a check that both runtimes see the same model and tokens.
3. The file is loaded with llama.cpp (`Llama`, logits for every position) and wrapped so the
   worker evaluates it like any model: the same token ids and windows as every other row (the
   ids are fed to llama.cpp directly, no second tokenization); llama.cpp computes the logits,
   from which PPL, KLD and top-1 are measured; speed is llama.cpp's prefill and greedy decode.
   `weights_mib` is the GGUF file's size. As a check, llama.cpp's own tokenizer is run on the
   evaluated text and compared with the transformers token ids; the row's notes say whether
   they agree.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from qcompare.errors import UserError
from qcompare.methods.base import BuildContext, Built, Method, MethodConfig, Needs

# llama_ftype values (llama.h), by the names llama-quantize takes
FTYPES = {"F32": 0, "F16": 1, "Q8_0": 7, "Q6_K": 18, "Q5_K_M": 17, "Q5_K_S": 16, "Q5_0": 8,
          "Q4_K_M": 15, "Q4_K_S": 14, "Q4_0": 2, "Q3_K_L": 13, "Q3_K_M": 12, "Q3_K_S": 11,
          "Q2_K": 10, "IQ4_NL": 25, "IQ4_XS": 30}
TOKENIZER_CHECK_CHARS = 20_000


@dataclass(frozen=True)
class GGUFConfig(MethodConfig):
    type: str = field(default="Q4_K_M", metadata={
        "help": "llama-quantize type (K-quant mixes _S/_M/_L choose higher types for sensitive "
                "tensors); F32 evaluates the unquantized model in llama.cpp",
        "choices": tuple(FTYPES)})


class LlamaCppModel:
    """A llama.cpp model behind the two calls the worker makes on a transformers model:
    `model(input_ids, logits_to_keep=k).logits` and greedy `model.generate(...)`."""

    def __init__(self, llm):
        self.llm = llm

    def __call__(self, input_ids, logits_to_keep: int = 0, **_):
        import torch

        ids = input_ids[0].tolist()
        self.llm.reset()
        self.llm.eval(ids)
        rows = np.array(self.llm.scores[: len(ids)], dtype=np.float32)
        if logits_to_keep:
            rows = rows[-logits_to_keep:]
        return SimpleNamespace(logits=torch.from_numpy(rows).unsqueeze(0))

    def generate(self, input_ids, max_new_tokens: int, **_):
        import torch

        ids = input_ids[0].tolist()
        self.llm.reset()
        self.llm.eval(ids)
        out = list(ids)
        for _step in range(max_new_tokens):           # greedy, EOS ignored (speed protocol)
            nxt = int(np.argmax(self.llm.scores[self.llm.n_tokens - 1]))
            out.append(nxt)
            if len(out) - len(ids) == max_new_tokens:
                break
            self.llm.eval([nxt])
        return torch.tensor([out], dtype=torch.long)


def source_gguf(ctx: BuildContext) -> Path:
    if not ctx.source_gguf:
        raise UserError("GGUF types start from a .gguf file: use the embedded model or --model "
                        "file.gguf. Converting a Hugging Face folder needs llama.cpp's "
                        "convert_hf_to_gguf.py, which no package registry provides.")
    return Path(ctx.source_gguf)


def quantize(src: Path, dst: Path, type_name: str, threads: int) -> None:
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = FTYPES[type_name]
    params.nthread = threads
    params.allow_requantize = True
    rc = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), params)
    if rc != 0:
        raise RuntimeError(f"llama_model_quantize({type_name}) returned {rc}")


def tokenizer_agreement(llm, tokenizer, text: str) -> str:
    """Whether llama.cpp's tokenizer gives the transformers ids on a prefix of the text."""
    sample = text[:TOKENIZER_CHECK_CHARS]
    ours = tokenizer(sample)["input_ids"]
    theirs = llm.tokenize(sample.encode("utf-8"), add_bos=False, special=False)
    if ours and ours[0] == tokenizer.bos_token_id and (not theirs or theirs[0] != ours[0]):
        ours = ours[1:]
    n = min(len(ours), len(theirs))
    first = next((i for i in range(n) if ours[i] != theirs[i]), None)
    if first is None and len(ours) == len(theirs):
        return f"llama.cpp's tokenizer gives the same {n} ids as transformers on the first {len(sample)} characters"
    where = first if first is not None else n
    return (f"llama.cpp's tokenizer differs from transformers at token {where} of the first "
            f"{len(sample)} characters; the evaluation feeds the transformers ids to both")


class GGUF(Method):
    name = "gguf"
    family = "GGUF / llama.cpp"
    summary = "llama.cpp quantization types (Q8_0 ... Q2_K, K-quant mixes), evaluated by llama.cpp"
    config_cls = GGUFConfig
    needs = Needs(packages=("llama_cpp",), devices=("cpu",),
                  install="llama-cpp-python (it compiles llama.cpp: minutes; see the README)")
    key_options = ("type",)

    def build(self, ctx: BuildContext) -> Built:
        import llama_cpp

        src = source_gguf(ctx)
        out = Path(ctx.workdir) / f"{self.config.type}.gguf"
        out.parent.mkdir(parents=True, exist_ok=True)
        threads = ctx.threads or os.cpu_count() or 1
        ctx.progress(f"llama-quantize {src.name} -> {self.config.type}", 0.1)
        t0 = time.perf_counter()
        tmp = out.with_suffix(".tmp")
        quantize(src, tmp, self.config.type, threads)
        os.replace(tmp, out)
        ctx.progress("loading with llama.cpp", 0.8)
        llm = llama_cpp.Llama(model_path=str(out), n_ctx=ctx.max_context, n_batch=ctx.max_context,
                              n_ubatch=ctx.max_context, n_threads=threads, n_threads_batch=threads,
                              logits_all=True, verbose=False, n_gpu_layers=0)
        check = tokenizer_agreement(llm, ctx.tokenizer, ctx.text) if ctx.text else ""
        return Built(model=LlamaCppModel(llm), weights_bytes=out.stat().st_size, kernel="real",
                     storage="real", compute_dtype="llama.cpp", library="llama_cpp_python",
                     backend=f"llama.cpp via llama-cpp-python {llama_cpp.__version__}, CPU, "
                             f"{threads} threads",
                     notes=(f"{self.config.type} from {src.name} (requantized: llama.cpp "
                            f"dequantizes to fp32 first) in {time.perf_counter() - t0:.1f} s; "
                            f"weights_mib is the GGUF file; {check}"))
