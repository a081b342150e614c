"""torchao through transformers' TorchAoConfig: PyTorch's own quantization path.

* int8 weight-only: int8 weights with a scale per output row; activations stay in the compute
  dtype and weights are dequantized inside the matmul.
* int8 dynamic: int8 weights as above, and activations quantized to int8 per token at run
  time (W8A8), so the matmul itself runs in int8.

The LM head is left unquantized (transformers' default). torchao's int4 weight-only path needs an
extra kernel package that does not install here; it is not offered yet. `weights_mib` sums the
inner tensors of torchao's tensor subclasses (codes, scales, zero points) as stored.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from qcompare.methods.base import BuildContext, Built, Method, MethodConfig, Needs


@dataclass(frozen=True)
class TorchAoInt8Config(MethodConfig):
    compute_dtype: str = field(default="float32", metadata={
        "help": "dtype of activations and of the unquantized layers",
        "choices": ("float32", "bfloat16")})


def tensor_bytes(t) -> int:
    """Bytes of a tensor as stored; a tensor subclass counts its inner tensors (recursively)."""
    flatten = getattr(type(t), "__tensor_flatten__", None)
    if flatten is not None:
        names, _ = t.__tensor_flatten__()
        return sum(tensor_bytes(getattr(t, n)) for n in names)
    return t.numel() * t.element_size()


def storage_bytes(model) -> int:
    seen, total = set(), 0
    for _, p in model.named_parameters():
        t = p.data if type(p).__name__ == "Parameter" else p
        key = id(t) if getattr(type(t), "__tensor_flatten__", None) else t.data_ptr()
        if key in seen:
            continue
        seen.add(key)
        total += tensor_bytes(t)
    return total


class _TorchAo(Method):
    family = "torchao"
    needs = Needs(packages=("torchao",), devices=("cpu", "cuda"))
    config_cls = TorchAoInt8Config
    key_options = ()

    def ao_config(self):
        raise NotImplementedError

    def build(self, ctx: BuildContext) -> Built:
        import torchao
        from transformers import TorchAoConfig

        ctx.progress("loading and quantizing with torchao", 0.0)
        model = ctx.load_model(self.config.compute_dtype,
                               quantization_config=TorchAoConfig(quant_type=self.ao_config()))
        ctx.progress("quantized", 1.0)
        return Built(model=model, weights_bytes=storage_bytes(model), kernel="real", storage="real",
                     compute_dtype=self.config.compute_dtype, library="torchao",
                     backend=f"torchao {torchao.__version__} {ctx.device} via transformers",
                     notes="LM head and embeddings unquantized (transformers' default)")


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
