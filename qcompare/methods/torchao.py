"""torchao through transformers' TorchAoConfig: PyTorch's own quantization path.

* int8 weight-only: int8 weights with a scale per output row; activations stay in the compute
  dtype and weights are dequantized inside the matmul.
* int8 dynamic: int8 weights as above, and activations quantized to int8 per token at run
  time (W8A8), so the matmul itself runs in int8.

* int4 weight-only: 4-bit codes with a scale and zero point per group of columns, in torchao's
  portable layout (`IntxUnpackedToInt8Tensor`: one code per int8 byte, dequantized for the
  matmul), the int4 path that runs on any CPU. torchao's packed int4 layouts need CUDA or the
  `mslk` kernel package, which does not install here.

The LM head is left unquantized (transformers' default). `weights_mib` sums the inner tensors of
torchao's tensor subclasses (codes, scales, zero points) as stored.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from qcompare.core.method import BuildContext, Built, Method, MethodConfig, Needs
from qcompare.methods.kernels.linears import check_group_size, group_size_problem
from qcompare.runtime.storage import stored_bytes
from qcompare.runtime.torch_model import TorchRuntime


@dataclass(frozen=True)
class TorchAoInt8Config(MethodConfig):
    compute_dtype: str = field(default="float32", metadata={
        "help": "dtype of activations and of the unquantized layers",
        "choices": ("float32", "bfloat16")})


class _TorchAo(Method):
    family = "torchao"
    needs = Needs(packages=("torchao",), devices=("cpu", "cuda"))
    config_cls = TorchAoInt8Config
    key_options = ()

    kernel = "real"
    layout_note = ""

    def ao_config(self):
        raise NotImplementedError

    @classmethod
    def scales_per_row(cls, c, cols: int) -> int:
        return 1

    @classmethod
    def scale_bits(cls, dtype_bits: int) -> int:
        """int8 tensors keep float32 scales whatever the compute dtype."""
        return 32

    @classmethod
    def stored_bits(cls, options: dict, tensor, shape) -> float:
        """Codes one per int8 byte; per row (or group) a scale and an int8 zero point; the LM
        head, embeddings and norms in the compute dtype."""
        c = cls.config_cls.parse(options)
        dtype_bits = 32 if c.compute_dtype == "float32" else 16
        if tensor.kind != "linear":
            return float(dtype_bits * tensor.numel)
        scales = tensor.rows * cls.scales_per_row(c, tensor.cols)
        return 8.0 * tensor.numel + scales * (cls.scale_bits(dtype_bits) + 8)

    def build(self, ctx: BuildContext) -> Built:
        from transformers import TorchAoConfig

        ctx.progress("loading and quantizing with torchao", 0.0)
        model = ctx.load_model(self.config.compute_dtype,
                               quantization_config=TorchAoConfig(quant_type=self.ao_config()))
        ctx.progress("quantized", 1.0)
        return self.built(model, ctx)

    def built(self, model, ctx: BuildContext) -> Built:
        import torchao

        runtime = TorchRuntime(model, ctx.device, f"torchao {torchao.__version__} {ctx.device} via transformers")
        return Built(runtime=runtime, weights_bytes=stored_bytes(model), kernel=self.kernel,
                     storage="real", compute_dtype=self.config.compute_dtype, library="torchao",
                     notes="; ".join(filter(None, ["LM head and embeddings unquantized "
                                                   "(transformers' default)", self.layout_note])))


class TorchAoInt8WeightOnly(_TorchAo):
    name = "torchao-int8wo"
    summary = "torchao int8 weight-only, a scale per output row"

    def ao_config(self):
        from torchao.quantization import Int8WeightOnlyConfig

        return Int8WeightOnlyConfig()


class TorchAoInt8Dynamic(_TorchAo):
    name = "torchao-int8dq"
    summary = "torchao W8A8: int8 weights and per-token dynamic int8 activations"

    def ao_config(self):
        from torchao.quantization import Int8DynamicActivationInt8WeightConfig

        return Int8DynamicActivationInt8WeightConfig()


@dataclass(frozen=True)
class TorchAoInt4Config(TorchAoInt8Config):
    group_size: int = field(default=32, metadata={
        "help": "columns sharing one scale and zero point (must divide every Linear's input "
                "size: 32 or 64 for the embedded model)",
        "choices": (32, 64, 128, 256)})
    symmetric: bool = field(default=False, metadata={
        "help": "symmetric codes around zero (no zero point) instead of asymmetric min-max"})


class TorchAoInt4WeightOnly(_TorchAo):
    name = "torchao-int4wo"
    summary = "torchao int4 weight-only, groups of columns (portable layout: dequantized matmul)"
    config_cls = TorchAoInt4Config

    @classmethod
    def scales_per_row(cls, c, cols: int) -> int:
        return -(-cols // c.group_size)

    @classmethod
    def scale_bits(cls, dtype_bits: int) -> int:
        """Group scales in the compute dtype."""
        return dtype_bits
    key_options = ("group_size",)
    kernel = "dequantized"
    layout_note = ("int4 codes held one per int8 byte (torchao's portable "
                   "IntxUnpackedToInt8Tensor), dequantized for each matmul")

    @classmethod
    def request_problem(cls, spec) -> str | None:
        """A group size that does not divide the model's Linear inputs, refused at submission."""
        from qcompare.sources import models

        c = cls.config_cls.parse(spec.method.options_dict)
        return group_size_problem(models.linear_input_sizes(spec.model), c.group_size,
                                  "torchao int4")

    def build(self, ctx: BuildContext) -> Built:
        """Quantized after loading with torchao's `quantize_` (the LM head left out, as
        TorchAoConfig does), so that a group size that does not divide a layer is refused up
        front with the sizes that work, not as a conversion error deep in loading."""
        import torch
        from torchao.quantization import quantize_

        ctx.progress("loading", 0.0)
        model = ctx.load_model(self.config.compute_dtype)
        check_group_size(model, self.config.group_size, "torchao int4")
        head = model.get_output_embeddings()
        ctx.progress("quantizing with torchao", 0.5)
        quantize_(model, self.ao_config(),
                  filter_fn=lambda m, _name: isinstance(m, torch.nn.Linear) and m is not head)
        ctx.progress("quantized", 1.0)
        return self.built(model, ctx)

    def ao_config(self):
        import torch
        from torchao.quantization import IntxWeightOnlyConfig
        from torchao.quantization.granularity import PerGroup
        from torchao.quantization.quant_primitives import MappingType

        mapping = MappingType.SYMMETRIC if self.config.symmetric else MappingType.ASYMMETRIC
        return IntxWeightOnlyConfig(weight_dtype=torch.int4, granularity=PerGroup(self.config.group_size),
                                    mapping_type=mapping)
