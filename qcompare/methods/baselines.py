"""Unquantized baselines: the model's weights in fp32, bf16 or fp16, computed in that dtype."""
from __future__ import annotations

from qcompare.core.method import BuildContext, Built, Method, MethodConfig
from qcompare.runtime.storage import stored_bytes
from qcompare.runtime.torch_model import TorchRuntime


class _Dtype(Method):
    family = "baseline"
    config_cls = MethodConfig

    @classmethod
    def stored_bits(cls, options: dict, tensor, shape) -> float:
        """Every tensor in the baseline's dtype (a tied LM head counted once)."""
        return float(tensor.numel * (32 if cls.fixed_dtype == "float32" else 16))

    def build(self, ctx: BuildContext) -> Built:
        ctx.progress("loading weights", 0.0)
        model = ctx.load_model(self.fixed_dtype)
        return Built(runtime=TorchRuntime(model, ctx.device), weights_bytes=stored_bytes(model), kernel="real",
                     storage="real", compute_dtype=self.fixed_dtype,
                     notes=f"unquantized, stored and computed in {self.fixed_dtype}")


class FP32(_Dtype):
    name = "fp32"
    summary = "32-bit float weights: the reference every other method is measured against"
    fixed_dtype = "float32"
    is_reference = True          # the worker's baseline pass loads this same model


class BF16(_Dtype):
    name = "bf16"
    summary = "bfloat16 weights and compute"
    fixed_dtype = "bfloat16"


class FP16(_Dtype):
    name = "fp16"
    summary = "float16 weights and compute"
    fixed_dtype = "float16"
