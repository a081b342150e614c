"""PyTorch's eager-mode dynamic int8 quantization (`torch.ao.quantization.quantize_dynamic`).

The older path that torchao replaces, kept while PyTorch still ships it (deprecated in 2.13):
each Linear becomes a `DynamicQuantizedLinear` holding int8 weights (per tensor or per output
row) packed for the CPU backend (fbgemm / x86 / oneDNN); at run time each activation tensor is
quantized with one scale from its own min/max — to 7 bits, as the module calls the kernel with
`reduce_range=True` — the matmul runs in int8 with int32 accumulation, and the result is
rescaled to float. CPU only. One scale per activation tensor is what LLM.int8 and SmoothQuant
show failing on outlier features: expect it to be far worse than per-token W8A8 on LLMs. The LM
head is left in float, like the other methods here. `weights_mib` counts the int8 codes, the
quantization parameters as PyTorch reports them, the biases and every layer left in float.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from qcompare.core.method import BuildContext, Built, Method, MethodConfig, Needs
from qcompare.methods.kernels.linears import set_module
from qcompare.runtime.storage import stored_bytes
from qcompare.runtime.torch_model import TorchRuntime


@dataclass(frozen=True)
class TorchDynamicConfig(MethodConfig):
    per_channel: bool = field(default=True, metadata={
        "help": "a weight scale per output row (else one per tensor)"})


class TorchDynamicInt8(Method):
    name = "torch-dynamic-int8"
    family = "PyTorch (torch.ao)"
    summary = ("PyTorch eager dynamic int8 (torch.ao quantize_dynamic, deprecated): int8 weights, "
               "7-bit per-tensor activations, int8 GEMM on CPU")
    config_cls = TorchDynamicConfig
    needs = Needs(devices=("cpu",))

    @classmethod
    def stored_bits(cls, options: dict, tensor, shape) -> float:
        """int8 codes and, per row or per tensor, torch.ao's float64 scale and int64 zero
        point (`storage.packed_module_bytes`); the rest stays float32."""
        if tensor.kind != "linear":
            return 32.0 * tensor.numel
        per_channel = cls.config_cls.parse(options).per_channel
        return 8.0 * tensor.numel + 128.0 * (tensor.rows if per_channel else 1)

    def build(self, ctx: BuildContext) -> Built:
        import warnings

        import torch
        from torch.ao.quantization import (
            default_dynamic_qconfig,
            per_channel_dynamic_qconfig,
            quantize_dynamic,
        )

        ctx.progress("loading", 0.0)
        model = ctx.load_model("float32")
        head = model.get_output_embeddings()
        names = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and m is not head]
        qconfig = per_channel_dynamic_qconfig if self.config.per_channel else default_dynamic_qconfig
        ctx.progress("quantize_dynamic", 0.5)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")                      # its deprecation notices
            for name in names:
                wrapper = torch.nn.Sequential(model.get_submodule(name))
                q = quantize_dynamic(wrapper, {torch.nn.Linear: qconfig}, dtype=torch.qint8)[0]
                set_module(model, name, q)
        runtime = TorchRuntime(
            model, ctx.device, f"torch.ao quantize_dynamic, {torch.backends.quantized.engine} engine")
        return Built(runtime=runtime, weights_bytes=stored_bytes(model), kernel="real", storage="real",
                     compute_dtype="float32 (int8 matmuls)", library="torch",
                     notes=("activations quantized per tensor at run time, to 7 bits "
                            "(reduce_range, fixed by the module); weights "
                            f"{'per output row' if self.config.per_channel else 'per tensor'}; "
                            "LM head and embeddings in float32"))
