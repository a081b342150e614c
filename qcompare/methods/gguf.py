"""GGUF quantization types through llama.cpp itself (llama-cpp-python), evaluated by llama.cpp.

Build protocol:

1. Source: the model's own .gguf file (the embedded model, or a `--model file.gguf`). A
   Hugging Face folder (local, or a hub id in the local cache) is first converted to an F16
   GGUF by llama.cpp's own converter (`qcompare.sources.hf2gguf`: a private install, run in a child
   process), once per model fingerprint; without the converter it is refused with the
   command that installs it.
2. `llama_model_quantize` (llama-quantize's own code) writes `<type>.gguf` in the job's work
   folder. When the source is already quantized (the embedded model is Q4_1), requantization
   is allowed: llama.cpp dequantizes each tensor to fp32 and quantizes that, which is exactly
   quantizing the fp32 baseline qcompare compares against (the baseline is that same
   dequantization). `F32` dequantizes every tensor: the llama.cpp counterpart of the fp32
   baseline, a check that both runtimes see the same model and tokens.
   With `imatrix`, an importance matrix from the calibration text is handed to the quantizer
   (see `importance_matrix`).
3. The file is loaded with llama.cpp twice (`Llama`: one context with logits for every
   position, one serving-style) behind the llama.cpp runtime (`qcompare.runtime.llamacpp`),
   so the worker evaluates it through the same interface as any model: the
   same token ids and windows as every other row (the ids are fed to llama.cpp directly, no
   second tokenization); llama.cpp computes the logits, from which PPL, KLD and top-1 are
   measured; speed is llama.cpp's prefill and greedy decode. `weights_mib` is the GGUF file's
   size, and the notes list the tensor types it stores (`tensor_types`). As a check,
   llama.cpp's own tokenizer is run on the evaluated text and compared with the transformers
   token ids; the row's notes say whether they agree.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from qcompare.core import diskspace
from qcompare.core.errors import Message
from qcompare.core.method import BuildContext, Built, Method, MethodConfig, Needs
from qcompare.core.specs import RunSpec
from qcompare.runtime.llamacpp import LlamaCppRuntime
from qcompare.sources import corpora, models

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
    imatrix: bool = field(default=False, metadata={
        "help": "importance matrix (mean squared input activation per column) from the "
                "calibration text, as llama-imatrix computes it; weights the rounding error"})


def tensor_types(path: Path) -> dict[str, dict]:
    """Per GGML type in a GGUF file: how many 2-D weight tensors use it, their elements and
    bytes. llama.cpp's K-quant mixes pick types per tensor and fall back to other types where a
    row length is not a multiple of 256 (the embedded model's 576-wide rows), so the type name
    alone does not say what was stored."""
    from qcompare.sources import gguf_header

    out: dict[str, dict] = {}
    for t in gguf_header.reader(path).tensors:
        if len(t.shape) < 2:
            continue
        e = out.setdefault(t.tensor_type.name, {"tensors": 0, "elements": 0, "bytes": 0})
        e["tensors"] += 1
        e["elements"] += int(t.n_elements)
        e["bytes"] += int(t.n_bytes)
    return out


def describe_types(types: dict[str, dict]) -> str:
    """'Q5_0 ×84 (5.50 bpw), IQ4_NL ×…; 2-D weights 5.21 bits/weight'."""
    parts = [f"{name} x{e['tensors']} ({8 * e['bytes'] / e['elements']:.2f} bpw)"
             for name, e in sorted(types.items(), key=lambda kv: -kv[1]["elements"])]
    elems = sum(e["elements"] for e in types.values()) or 1
    bits = 8 * sum(e["bytes"] for e in types.values()) / elems
    return f"tensor types: {', '.join(parts)}; all 2-D weights {bits:.2f} bits/weight"


def requantized(src: Path) -> str:
    """' (requantized from Q4_1: …)' when the source file's weights are already quantized."""
    quantized = sorted(t for t in tensor_types(src) if t not in ("F32", "F16", "BF16"))
    if not quantized:
        return ""
    return (f" (requantized from {'/'.join(quantized)}: llama.cpp dequantizes each tensor to "
            "fp32 first, the same weights as the fp32 baseline)")


# transformers Linear name -> GGUF tensor name (llama architecture)
GGUF_NAMES = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
              "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
              "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}


def gguf_name(hf_name: str) -> str | None:
    """model.layers.3.mlp.up_proj -> blk.3.ffn_up.weight; lm_head -> output.weight."""
    if hf_name == "lm_head":
        return "output.weight"
    parts = hf_name.split(".")
    if len(parts) == 5 and parts[:2] == ["model", "layers"]:
        suffix = GGUF_NAMES.get(".".join(parts[3:]))
        if suffix:
            return f"blk.{parts[2]}.{suffix}.weight"
    return None


def importance_matrix(model, calibration_ids, progress=lambda frac: None) -> dict[str, np.ndarray]:
    """llama.cpp's importance matrix from calibration text, computed on the unquantized model.

    For each Linear with input activations x_t (t over all calibration tokens), the entry is
    the per-input-column mean of squares I_j = (1/T) * sum_t x_{t,j}^2 — what llama-imatrix
    stores as in_sum2 / counts and what llama-quantize divides out before use. llama.cpp's
    quantizers then minimise sum_j I_j (w_j - q_j)^2 per row instead of the plain squared error.
    Keys are GGUF tensor names.
    """
    import torch

    from qcompare.methods.kernels.sequential import run_hooked

    sums: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = {}

    def add(name, x):
        x = x.double()
        sums[name] = sums.get(name, 0) + (x * x).sum(0)
        counts[name] = counts.get(name, 0) + x.shape[0]

    def forward():
        with torch.inference_mode():
            for i, row in enumerate(calibration_ids):
                model(row.unsqueeze(0).to(model.device))
                progress((i + 1) / len(calibration_ids))

    targets = {gguf_name(n): m for n, m in model.named_modules()
               if gguf_name(n) and isinstance(m, torch.nn.Linear)}
    run_hooked(targets, add, forward)
    return {k: (sums[k] / counts[k]).float().cpu().numpy() for k in sums}





def quantize(src: Path, dst: Path, type_name: str, threads: int,
             imatrix: dict[str, np.ndarray] | None = None) -> None:
    """llama-quantize's own code (`llama_model_quantize`), optionally with an importance matrix
    handed over as llama.cpp's NULL-terminated `llama_model_imatrix_data` array."""
    import ctypes

    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = FTYPES[type_name]
    params.nthread = threads
    params.allow_requantize = True
    keep = []                                          # owns the buffers during the call
    if imatrix:
        entries = (llama_cpp.llama_model_imatrix_data * (len(imatrix) + 1))()
        for i, (name, values) in enumerate(sorted(imatrix.items())):
            arr = np.ascontiguousarray(values, dtype=np.float32)
            keep.append((name.encode(), arr))
            entries[i].name = keep[-1][0]
            entries[i].data = arr.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
            entries[i].size = arr.size
        entries[len(imatrix)].name = None
        keep.append(entries)
        params.imatrix = ctypes.cast(entries, ctypes.POINTER(llama_cpp.llama_model_imatrix_data))
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
        return (f"llama.cpp's tokenizer gives the same {n} ids as transformers on the first "
                f"{len(sample)} characters")
    where = first if first is not None else n
    return (f"llama.cpp's tokenizer differs from transformers at token {where} of the first "
            f"{len(sample)} characters; the evaluation feeds the transformers ids to both")


class GGUF(Method):
    name = "gguf"
    cpu_cost = 2                           # writes and quantizes a GGUF file first
    family = "GGUF / llama.cpp"
    summary = "llama.cpp quantization types (Q8_0 ... Q2_K, K-quant mixes), evaluated by llama.cpp"
    stages = (   # its progress lines, for the Jobs page in the page's language
        (r"converting the Hugging Face folder to F16 GGUF \(llama\.cpp's converter\)", "stage.hf_to_gguf"),
        (r"importance matrix on (?P<label>.+)", "stage.imatrix_on"),
        (r"importance matrix (?P<pct>\d+%)", "stage.imatrix"),
        (r"loading with llama\.cpp", "stage.load_llamacpp"),
    )
    config_cls = GGUFConfig
    needs = Needs(packages=("llama_cpp",), devices=("cpu",), calibration="imatrix",
                  install="llama-cpp-python (it compiles llama.cpp: minutes; see the README)")
    key_options = ("type",)

    @classmethod
    def chart_label(cls, options: dict) -> str:
        """The llama.cpp type name ('Q4_K_M'), marked when an importance matrix was used."""
        return str(options.get("type", "gguf")) + (" imatrix" if options.get("imatrix") else "")

    @classmethod
    def sizing_tensors(cls, options: dict, shape) -> list:
        """The model's tensors and the file's header, metadata and tensor table."""
        from qcompare.core.shape import Tensor
        from qcompare.methods.kernels import gguf_types

        return shape.tensors() + [Tensor("gguf header, metadata and tensor table", "file",
                                         gguf_types.metadata_bytes(shape))]

    @classmethod
    def stored_bits(cls, options: dict, tensor, shape) -> float:
        """The type llama-quantize picks for the tensor (`gguf_types.tensor_type`), at that
        type's block size, padded to the file's alignment: the file's size, as weights_mib."""
        from qcompare.methods.kernels import gguf_types

        if tensor.kind == "file":
            return 8.0 * tensor.rows
        c = cls.config_cls.parse(options)
        kind = gguf_types.tensor_type(c.type, tensor, shape, c.imatrix)
        return 8.0 * gguf_types.tensor_bytes(kind, tensor)

    @classmethod
    def request_problem(cls, spec: RunSpec) -> str | None:
        """A Hugging Face model needs llama.cpp's converter installed (`qcompare.sources.hf2gguf`)."""
        from qcompare.sources import hf2gguf

        if models.source_gguf(spec.model):
            return None
        reason = hf2gguf.unavailable_reason()
        return Message("errors.no_gguf_source", reason=reason) if reason else None

    def build(self, ctx: BuildContext) -> Built:
        import llama_cpp

        src = models.source_gguf(ctx.spec.model)
        converted = ""
        if src is None:                       # a Hugging Face folder: llama.cpp's converter
            from qcompare.sources import hf2gguf

            ctx.progress("converting the Hugging Face folder to F16 GGUF (llama.cpp's converter)", 0.0)
            folder = models.local_folder(ctx.spec.model, Path(ctx.state_dir))
            src = hf2gguf.cached_f16(ctx.state_dir, folder, ctx.spec.model.fingerprint)
            converted = (" (converted from the Hugging Face folder to F16 by llama.cpp's "
                         "convert_hf_to_gguf, so every type starts from F16-rounded weights)")
        out = Path(ctx.workdir) / f"{self.config.type}.gguf"
        out.parent.mkdir(parents=True, exist_ok=True)
        threads = ctx.spec.eval.threads or os.cpu_count() or 1
        context = ctx.spec.eval.longest_sequence
        imatrix, imatrix_note = None, "no importance matrix"
        if self.config.imatrix:
            calib = ctx.calibration_ids()
            ctx.progress(f"importance matrix on {ctx.calibration_label}", 0.0)
            model = ctx.load_model("float32")
            imatrix = importance_matrix(model, calib, lambda f: ctx.progress(
                f"importance matrix {f:.0%}", 0.05 * f))
            del model
            imatrix_note = (f"importance matrix of {len(imatrix)} tensors from "
                            f"{ctx.calibration_label}")
        per_weight = {"F32": 4, "F16": 2}.get(self.config.type, 1.1)       # Q8_0: 8.5 bits
        diskspace.require(out.parent, int(per_weight * models.gguf_param_count(src)),
                          f"the {self.config.type} GGUF file")
        ctx.progress(f"llama-quantize {src.name} -> {self.config.type}", 0.1)
        t0 = time.perf_counter()
        tmp = out.with_name(f".{out.name}.pid{os.getpid()}.tmp")     # a kill leaves it stale
        quantize(src, tmp, self.config.type, threads, imatrix)
        os.replace(tmp, out)
        quant_s = time.perf_counter() - t0
        ctx.progress("loading with llama.cpp", 0.8)
        common = dict(model_path=str(out), n_ctx=context, n_batch=context, n_ubatch=context,
                      n_threads=threads, n_threads_batch=threads, verbose=False, n_gpu_layers=0)
        scorer = llama_cpp.Llama(logits_all=True, **common)
        runner = llama_cpp.Llama(logits_all=False, **common)
        check = tokenizer_agreement(scorer, ctx.tokenizer, corpora.load_checked(ctx.spec.corpus))
        runtime = LlamaCppRuntime(scorer, runner, backend=(
            f"llama.cpp via llama-cpp-python {llama_cpp.__version__}, CPU, {threads} threads"))
        return Built(runtime=runtime, weights_bytes=out.stat().st_size,
                     kernel="real", storage="real", compute_dtype="llama.cpp",
                     library="llama_cpp_python",
                     notes=(f"{self.config.type} from {src.name}{converted}{requantized(src)} in "
                            f"{quant_s:.1f} s; {imatrix_note}; "
                            f"{describe_types(tensor_types(out))}; weights_mib is the GGUF "
                            f"file; {check}"))
