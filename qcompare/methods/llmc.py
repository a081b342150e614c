"""GPTQ and AWQ through llm-compressor (vLLM project), the maintained successor of AutoGPTQ and
AutoAWQ, saved as a compressed-tensors checkpoint and loaded back the way a user deploys it.

Protocol of `build`: the fp32 model and qcompare's calibration set (the same sequences the
built-in methods use, never overlapping the evaluation text) go to `llmcompressor.oneshot` with
a recipe (GPTQModifier; or AWQModifier followed by QuantizationModifier) quantizing every Linear
but the LM head. The result is saved with `save_compressed=True` (format pack-quantized: int4 /
int8 codes packed into int32, plus scales and zero points) under the job's work folder, the
in-memory model is dropped, and the checkpoint is loaded back with transformers for evaluation.

`weights_mib` is the byte count of the tensors in the saved checkpoint (storage: real). Its
scales are in the calibration model's dtype (fp32 here; a bf16 model would halve them). On
load, transformers decompresses the packed weights into dense ones for compute (kernel:
dequantized); if a packed weight is still present after the first forward, the row says real.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path

from qcompare.core.method import BuildContext, Built, Method, MethodConfig, Needs
from qcompare.methods.kernels.linears import check_group_size, group_size_problem
from qcompare.runtime.torch_model import TorchRuntime


def checkpoint_bytes(folder: Path) -> int:
    """Bytes of all tensors in the folder's safetensors files (headers excluded)."""
    from safetensors import safe_open

    total = 0
    for f in sorted(Path(folder).glob("*.safetensors")):
        with safe_open(str(f), "pt") as st:
            for k in st.keys():
                sl = st.get_slice(k)
                n = 1
                for d in sl.get_shape():
                    n *= d
                total += n * _dtype_bytes(sl.get_dtype())
    return total


def _dtype_bytes(name: str) -> float:
    return {"F64": 8, "I64": 8, "F32": 4, "I32": 4, "U32": 4, "F16": 2, "BF16": 2, "I16": 2,
            "U16": 2, "I8": 1, "U8": 1, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1}[name]


def weight_args(bits: int, group_size: int, symmetric: bool, actorder: str | None = None) -> dict:
    args = {"num_bits": bits, "type": "int", "symmetric": symmetric,
            "strategy": "group" if group_size else "channel"}
    if group_size:
        args["group_size"] = group_size
    if actorder:
        args["actorder"] = actorder
    return args


def scheme(c, actorder: str | None = None) -> dict:
    """The modifier arguments both recipes share: every Linear's weights, the LM head left out."""
    return {"config_groups": {"group_0": {"targets": ["Linear"], "weights": weight_args(
                c.bits, c.group_size, c.symmetric, actorder)}},
            "ignore": ["lm_head"]}


@contextlib.contextmanager
def _no_pinning_without_cuda():
    """llm-compressor 0.14's AWQ pins its cached activations in page-locked memory before each
    scale search, unconditionally, and pinning needs CUDA: on a CPU-only machine it raises
    'Cannot access accelerator device'. Pinning only speeds up host-to-GPU copies, so without
    CUDA it is skipped for the duration of the call (nothing else changes)."""
    import torch

    if torch.cuda.is_available():
        yield
        return
    from llmcompressor.pipelines.cache import IntermediatesCache

    original = IntermediatesCache.pin_memory
    IntermediatesCache.pin_memory = lambda self, *a, **k: None
    try:
        yield
    finally:
        IntermediatesCache.pin_memory = original


class _LlmCompressorMethod(Method):
    stages = (   # its progress lines, for the Jobs page in the page's language
        (r"llm-compressor oneshot \(calibrating and quantizing\)", "stage.llmc_oneshot"),
        (r"saving the compressed checkpoint", "stage.llmc_save"),
        (r"loading the checkpoint back", "stage.llmc_load"),
    )
    cpu_cost = 3                           # runs a whole library pipeline
    family = "llm-compressor"
    needs = Needs(packages=("llmcompressor",), calibration=True)
    key_options = ("bits", "group_size")

    def recipe(self):
        raise NotImplementedError

    @classmethod
    def request_problem(cls, spec) -> str | None:
        """A group size that does not divide the model's Linear inputs (128 does not divide the
        embedded model's 576): refused at submission with the sizes that fit."""
        from qcompare.sources import models

        c = cls.config_cls.parse(spec.method.options_dict)
        return group_size_problem(models.linear_input_sizes(spec.model),
                                  getattr(c, "group_size", 0), "llm-compressor")

    @classmethod
    def stored_bits(cls, options: dict, tensor, shape) -> float:
        """compressed-tensors' pack-quantized checkpoint: codes packed into int32 along each
        row, a float32 scale per group (per row without groups), for zero points the codes'
        packing down the rows, the int64 [2] original shape; the rest float32 as saved."""
        if tensor.kind != "linear":
            return 32.0 * tensor.numel
        c = cls.config_cls.parse(options)
        groups = -(-tensor.cols // c.group_size) if c.group_size else 1
        bits = 32.0 * tensor.rows * -(-tensor.cols * c.bits // 32) + 32.0 * tensor.rows * groups + 128
        if not c.symmetric:
            bits += 32.0 * -(-tensor.rows * c.bits // 32) * groups
        return bits

    def settings_text(self) -> str:
        c = self.config
        return (f"int{c.bits} {'sym' if c.symmetric else 'asym'} "
                + (f"g{c.group_size}" if c.group_size else "per-channel"))

    def build(self, ctx: BuildContext) -> Built:
        import gc

        import torch
        from datasets import Dataset
        from llmcompressor import oneshot
        from transformers import AutoModelForCausalLM

        ctx.progress("loading weights", 0.0)
        model = ctx.load_model("float32")
        check_group_size(model, getattr(self.config, "group_size", 0), "llm-compressor")
        calib = ctx.calibration_ids()
        data = Dataset.from_dict({"input_ids": calib.tolist(),
                                  "attention_mask": torch.ones_like(calib).tolist()})
        ctx.progress("llm-compressor oneshot (calibrating and quantizing)", 0.05)
        with _no_pinning_without_cuda():
            model = oneshot(model=model, dataset=data, recipe=self.recipe(),
                            num_calibration_samples=len(calib), max_seq_length=calib.shape[1],
                            shuffle_calibration_samples=False)
        folder = Path(ctx.workdir) / "checkpoint"
        folder.mkdir(parents=True, exist_ok=True)
        ctx.progress("saving the compressed checkpoint", 0.8)
        model.save_pretrained(folder, save_compressed=True)
        if ctx.tokenizer is not None:
            ctx.tokenizer.save_pretrained(folder)
        del model
        gc.collect()
        ctx.progress("loading the checkpoint back", 0.9)
        loaded = AutoModelForCausalLM.from_pretrained(folder, dtype=getattr(torch, ctx.dtype))
        loaded.to(ctx.device).eval()
        with torch.no_grad():                    # decompression happens on the first forward
            loaded(input_ids=calib[:1, :8].to(ctx.device), use_cache=False)
        packed = any(n.endswith("weight_packed") for n, _ in loaded.named_parameters())
        import llmcompressor

        runtime = TorchRuntime(loaded, ctx.device, (
            f"llm-compressor {llmcompressor.__version__} -> compressed-tensors pack-quantized "
            "checkpoint -> transformers" + ("" if packed else f" (decompressed to {ctx.dtype})")))
        return Built(runtime=runtime, weights_bytes=checkpoint_bytes(folder),
                     kernel="real" if packed else "dequantized", storage="real",
                     compute_dtype=ctx.dtype, library="llmcompressor",
                     notes=(f"{self.settings_text()}; checkpoint {folder}; calibration "
                            f"{ctx.calibration_label}; unquantized tensors and scales saved in fp32, the "
                            "calibration dtype"))


@dataclass(frozen=True)
class LlmcGPTQConfig(MethodConfig):
    bits: int = field(default=4, metadata={"help": "bits per weight code", "choices": (8, 4)})
    group_size: int = field(default=128, metadata={
        "help": "input columns per scale; 0 = one scale per output channel", "min": 0})
    symmetric: bool = field(default=True, metadata={"help": "symmetric or with zero points",
                                                    "choices": (True, False)})
    act_order: str = field(default="none", metadata={
        "help": "column order: none, or weight (static act-order: columns by decreasing Hessian "
                "diagonal, groups kept contiguous, no runtime cost)", "choices": ("none", "weight")})
    damp: float = field(default=0.01, metadata={"help": "dampening_frac", "min": 0.0,
                                                 "max": 10.0})
    block_size: int = field(default=128, metadata={"help": "lazy-batch block of columns", "min": 1})


class LlmcGPTQ(_LlmCompressorMethod):
    name = "llmc-gptq"
    summary = "GPTQ through llm-compressor, saved as compressed-tensors and loaded back"
    config_cls = LlmcGPTQConfig

    def recipe(self):
        from llmcompressor.modifiers.quantization import GPTQModifier

        c = self.config
        order = None if c.act_order == "none" else c.act_order
        return GPTQModifier(**scheme(c, order), block_size=c.block_size, dampening_frac=c.damp,
                            actorder=order)


@dataclass(frozen=True)
class LlmcAWQConfig(MethodConfig):
    bits: int = field(default=4, metadata={"help": "bits per weight code", "choices": (8, 4)})
    group_size: int = field(default=128, metadata={"help": "input columns per scale", "min": 1})
    symmetric: bool = field(default=False, metadata={"help": "symmetric or with zero points",
                                                     "choices": (True, False)})
    duo_scaling: bool = field(default=True, metadata={
        "help": "scales from activations and weights (library default); false: activations only, "
                "as in the paper", "choices": (True, False)})
    n_grid: int = field(default=20, metadata={"help": "grid points of the scale search", "min": 1})


class LlmcAWQ(_LlmCompressorMethod):
    name = "llmc-awq"
    summary = "AWQ through llm-compressor, saved as compressed-tensors and loaded back"
    config_cls = LlmcAWQConfig

    def recipe(self):
        from llmcompressor.modifiers.quantization import QuantizationModifier
        from llmcompressor.modifiers.transform.awq import AWQModifier

        c = self.config
        return [AWQModifier(duo_scaling=c.duo_scaling, n_grid=c.n_grid),
                QuantizationModifier(**scheme(c))]
