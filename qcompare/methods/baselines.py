"""Unquantized baselines: the model's weights in fp32, bf16 or fp16, computed in that dtype."""
from __future__ import annotations

from qcompare.methods.base import (
    BuildContext,
    Built,
    Method,
    MethodConfig,
    weights_bytes_of,
)


class _Dtype(Method):
    family = "baseline"
    config_cls = MethodConfig

    def build(self, ctx: BuildContext) -> Built:
        ctx.progress("loading weights", 0.0)
        model = ctx.load_model(self.fixed_dtype)
        return Built(model=model, weights_bytes=weights_bytes_of(model), kernel="real",
                     storage="real", compute_dtype=self.fixed_dtype,
                     notes=f"unquantized, stored and computed in {self.fixed_dtype}")


class FP32(_Dtype):
    name = "fp32"
    summary = "32-bit float weights: the reference every other method is measured against"
    fixed_dtype = "float32"


class BF16(_Dtype):
    name = "bf16"
    summary = "bfloat16 weights and compute"
    fixed_dtype = "bfloat16"


class FP16(_Dtype):
    name = "fp16"
    summary = "float16 weights and compute"
    fixed_dtype = "float16"
