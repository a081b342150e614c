"""bitsandbytes through transformers' BitsAndBytesConfig: LLM.int8 (arXiv:2208.07339) and the
4-bit NF4 / FP4 data types of QLoRA (arXiv:2305.14314).

* LLM.int8: int8 weights with one absmax scale per output row; at inference, activation
  columns whose magnitude exceeds `threshold` are multiplied in 16-bit (mixed decomposition).
* NF4 / FP4: 4-bit codes in blocks of 64 weights with an absmax scale per block; with
  `double_quant` those scales are themselves quantized to 8 bits in blocks of 256.

The LM head is left unquantized (transformers' default). The library's own kernels run on CUDA,
and its CPU backend on CPU (bitsandbytes >= 0.49); the row's backend names which ran.
`weights_mib` counts the packed tensors and their quantization state as stored.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from qcompare.core.method import BuildContext, Built, Method, MethodConfig, Needs
from qcompare.runtime.storage import stored_bytes
from qcompare.runtime.torch_model import TorchRuntime

BLOCK = 64                                 # bitsandbytes' 4-bit block size (transformers' default)

COMPUTE_DTYPES = ("bfloat16", "float16", "float32")


@dataclass(frozen=True)
class BnbInt8Config(MethodConfig):
    threshold: float = field(default=6.0, metadata={
        "help": "outlier threshold: activation columns above it are computed in 16-bit "
                "(0 turns the mixed decomposition off)", "min": 0.0, "max": 1000.0})


@dataclass(frozen=True)
class Bnb4bitConfig(MethodConfig):
    double_quant: bool = field(default=False, metadata={
        "help": "quantize the per-block scales too (saves about 0.4 bits per weight)",
        "choices": (False, True)})
    compute_dtype: str = field(default="bfloat16", metadata={
        "help": "dtype the 4-bit weights are dequantized to for each matmul",
        "choices": COMPUTE_DTYPES})


class _Bnb(Method):
    cpu_cost = 2                           # slow CPU kernels (decode at a few tok/s)
    family = "bitsandbytes"
    needs = Needs(packages=("bitsandbytes",), devices=("cpu", "cuda"))
    key_options: tuple[str, ...] = ()

    def quantization_config(self):
        raise NotImplementedError

    def compute_dtype(self) -> str:
        return "float16"

    @classmethod
    def kept_bits(cls, options: dict) -> int:
        """Tensors bitsandbytes leaves alone are held in the compute dtype."""
        dtype = options.get("compute_dtype", "float16")
        return 32 if dtype == "float32" else 16

    @classmethod
    def linear_bits(cls, options: dict, rows: int, cols: int) -> float:
        raise NotImplementedError

    @classmethod
    def stored_bits(cls, options: dict, tensor, shape) -> float:
        if tensor.kind == "linear":
            return cls.linear_bits(options, tensor.rows, tensor.cols)
        return float(cls.kept_bits(options) * tensor.numel)

    def build(self, ctx: BuildContext) -> Built:
        import bitsandbytes

        ctx.progress("loading and quantizing with bitsandbytes", 0.0)
        model = ctx.load_model(self.compute_dtype(), quantization_config=self.quantization_config())
        ctx.progress("quantized", 1.0)
        runtime = TorchRuntime(
            model, ctx.device, f"bitsandbytes {bitsandbytes.__version__} {ctx.device} backend via transformers")
        return Built(runtime=runtime, weights_bytes=stored_bytes(model), kernel="real", storage="real",
                     compute_dtype=self.compute_dtype(), library="bitsandbytes",
                     notes="LM head and embeddings unquantized (transformers' default)")


class BnbInt8(_Bnb):
    name = "bnb-int8"
    summary = "bitsandbytes LLM.int8: int8 weights, 16-bit outlier columns"
    config_cls = BnbInt8Config
    key_options = ("threshold",)

    def quantization_config(self):
        from transformers import BitsAndBytesConfig

        return BitsAndBytesConfig(load_in_8bit=True, llm_int8_threshold=self.config.threshold)

    @classmethod
    def linear_bits(cls, options: dict, rows: int, cols: int) -> float:
        """int8 codes and a float32 scale per row (`SCB`)."""
        return 8.0 * rows * cols + 32.0 * rows


class _Bnb4bit(_Bnb):
    config_cls = Bnb4bitConfig
    quant_type = ""

    def compute_dtype(self) -> str:
        return self.config.compute_dtype

    @classmethod
    def linear_bits(cls, options: dict, rows: int, cols: int) -> float:
        """Two codes a byte, a float32 absmax per block of 64; with double quantization an
        int8 absmax per block, plus a float32 absmax per 256 blocks, the 256-entry float32
        code book and one float32 offset."""
        blocks = -(-rows * cols // BLOCK)
        if cls.config_cls.parse(options).double_quant:
            stats = 8.0 * blocks + 32.0 * -(-blocks // 256) + 32.0 * 256 + 32.0
        else:
            stats = 32.0 * blocks
        return 8.0 * -(-rows * cols // 2) + stats

    def quantization_config(self):
        import torch
        from transformers import BitsAndBytesConfig

        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=self.quant_type,
                                  bnb_4bit_use_double_quant=self.config.double_quant,
                                  bnb_4bit_compute_dtype=getattr(torch, self.config.compute_dtype))


class BnbNF4(_Bnb4bit):
    name = "bnb-nf4"
    summary = "bitsandbytes NF4: 4-bit normal-float codes, blocks of 64"
    quant_type = "nf4"


class BnbFP4(_Bnb4bit):
    name = "bnb-fp4"
    summary = "bitsandbytes FP4: 4-bit float codes, blocks of 64"
    quant_type = "fp4"
