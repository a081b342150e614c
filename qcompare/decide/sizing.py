"""Memory calculator: what a model takes under each method, for a context, a batch and a device,
without building anything. Pure arithmetic (no torch); the bits come from each method.

For a decoder-only transformer of the Llama family (its config: L layers, hidden size h, H
attention heads and K key/value heads of size d = h / H unless the config says, intermediate
size i, vocabulary V, tied or separate LM head; optional q/k/v biases) the stored tensors are,
per layer, q [H d x h], k and v [K d x h], o [h x H d], gate and up [i x h], down [h x i] and two
norms [h]; then the final norm [h], the embedding [V x h] and, unless tied, the LM head [V x h].

A method's stored size is the sum over these tensors of `Method.stored_bits(options, tensor)`,
the method's own accounting of codes, scales, zero points, sparse outliers and the tensors it
leaves unquantized (the same rules its `build` counts `weights_bytes` with; tests check the
two agree on real builds). Then, for a context of T tokens and a batch of B sequences:

    kv cache     = 2 (k and v) x L x K x d x T x B x kv bytes per value
    activations  = B x T x (4 h + 3 i) x act bytes  +  B x V x 4
                   (one layer's live tensors while the prompt is processed at once: the residual
                   stream, the normed input, attention output and the MLP's gate, up and product;
                   attention through SDPA / flash kernels, so no T x T score matrix; the last
                   position's logits in fp32)
    overhead     = the runtime's fixed cost per process or GPU (`OVERHEAD_MIB`: CUDA context
                   and library workspaces, or the Python interpreter and torch on a CPU):
                   an assumption, labelled as one, unless measured rows give it
    total        = weights + kv cache + activations + overhead (x number of GPUs for the
                   overhead; weights and cache split evenly across GPUs)

Sizes are bytes; pages show MiB / GiB (2^20 / 2^30 bytes) and say GB (10^9) where a published
figure is in GB. A GPU's memory is its nominal size in GiB (an "80 GB" A100 holds 80 GiB).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace

from qcompare.core.errors import Message
from qcompare.core.shape import ModelShape

MIB, GIB, GB = 2 ** 20, 2 ** 30, 10 ** 9

# the runtime's fixed memory per process (CPU) or per GPU (CUDA), assumed where not measured:
# a CUDA context with cuBLAS / cuDNN workspaces is typically 300-600 MiB; CPython with torch
# and transformers imported holds about 400-600 MiB of RSS before any weight
OVERHEAD_MIB = {"cuda": 400.0, "cpu": 500.0}
KV_BYTES = {"16-bit": 2, "fp32": 4, "8-bit": 1}
ACT_BYTES = {"cuda": 2, "cpu": 4}


def shape_from_params(n_params: float, presets: dict[str, ModelShape]) -> ModelShape:
    """A Llama-like shape for a bare parameter count: the preset nearest in size with its
    layer count scaled so the total matches (the KV cache then follows that preset's heads)."""
    best = min(presets.values(), key=lambda s: abs(math.log(s.param_count() / n_params)))
    fixed = sum(t.numel for t in best.tensors() if t.layer < 0)
    per_layer = (best.param_count() - fixed) / best.layers
    layers = max(1, round((n_params - fixed) / per_layer))
    return replace(best, name=f"{n_params / 1e9:.3g}B parameters", layers=layers,
                   basis=f"guessed from the parameter count: {best.name}'s shape with "
                         f"{layers} layers")


def basis_text(shape: ModelShape, lang: str = "en") -> str:
    """Where a shape came from (`ModelShape.basis`), in `lang`."""
    from qcompare.i18n import catalogue as i18n

    guess = re.fullmatch(r"guessed from the parameter count: (.+)'s shape with (\d+) layers",
                         shape.basis)
    if guess:
        return i18n.t("choose.basis_guess", lang, preset=guess[1], layers=guess[2])
    key = {"public config.json": "choose.basis_public", "config.json": "choose.basis_config",
           "config": "choose.basis_config",
           "the GGUF file's header": "choose.basis_gguf"}.get(shape.basis)
    return i18n.t(key, lang) if key else shape.basis


@dataclass(frozen=True)
class Setting:
    """Where the model will run and on what: device, GPUs, context, batch, KV dtype."""
    device: str = "cuda"                   # cuda | cpu
    gpus: int = 1
    context: int = 4096
    batch: int = 1
    kv: str = "16-bit"
    overhead_mib: float | None = None      # None: OVERHEAD_MIB for the device (assumed)


@dataclass
class Estimate:
    """A method's memory for one model and setting, with how each part was obtained."""
    method_label: str
    weights: float
    kv_cache: float
    activations: float
    overhead: float
    weights_source: str                    # "calculated" | "measured"
    overhead_source: str                   # "assumed" | "measured"
    per_tensor_bits: dict[str, float] = field(default_factory=dict)
    gpus: int = 1

    @property
    def total(self) -> float:
        return self.weights + self.kv_cache + self.activations + self.overhead

    @property
    def per_gpu(self) -> float:
        """On each of `gpus` GPUs: weights and cache split evenly, activations and the
        runtime's overhead on each."""
        g = max(1, self.gpus)
        return (self.weights + self.kv_cache) / g + self.activations + self.overhead / g

    def bits_per_weight(self, shape: ModelShape) -> float:
        return 8 * self.weights / shape.param_count()


def kv_cache_bytes(shape: ModelShape, s: Setting) -> float:
    return 2.0 * shape.layers * shape.kv_heads * shape.dim * s.context * s.batch * KV_BYTES[s.kv]


def activation_bytes(shape: ModelShape, s: Setting) -> float:
    act = ACT_BYTES.get(s.device, 2)
    return float(s.batch * s.context * (4 * shape.hidden + 3 * shape.intermediate) * act
                 + s.batch * shape.vocab * 4)


class NoSizeRule(ValueError):
    """The method has no stored-size rule for some tensor (it cannot say without building)."""


def weight_bits(method_cls, options: dict, shape: ModelShape) -> dict[str, float]:
    """Bits per stored tensor name under the method's own accounting."""
    out = {}
    for t in method_cls.sizing_tensors(options, shape):
        bits = method_cls.stored_bits(options, t, shape)
        if bits is None:
            raise NoSizeRule(Message("errors.no_size_rule", name=method_cls.name, tensor=t.name))
        out[t.name] = float(bits)
    return out


def estimate(method_cls, options: dict, shape: ModelShape, setting: Setting,
             label: str = "", measured_weights_mib: float | None = None,
             measured_overhead_mib: float | None = None) -> Estimate:
    """The memory of one method variant (module doc); a measured `weights_mib` for this very
    model and variant replaces the calculated weights, and a measured overhead the assumed."""
    if measured_weights_mib is not None and measured_weights_mib == measured_weights_mib:
        bits, weights, source = {}, measured_weights_mib * MIB, "measured"
    else:
        bits = weight_bits(method_cls, options, shape)
        weights, source = sum(bits.values()) / 8, "calculated"
    overhead_mib = setting.overhead_mib
    o_source = "given"
    if overhead_mib is None:
        overhead_mib, o_source = ((measured_overhead_mib, "measured")
                                  if measured_overhead_mib is not None
                                  else (OVERHEAD_MIB.get(setting.device, 500.0), "assumed"))
    gpus = setting.gpus if setting.device == "cuda" else 1
    return Estimate(label or method_cls.name, weights, kv_cache_bytes(shape, setting),
                    activation_bytes(shape, setting), overhead_mib * MIB * gpus, source, o_source,
                    bits, gpus)


def fits(e: Estimate, memory_gib: float) -> bool:
    """Whether the estimate fits a device of `memory_gib` (per GPU for several GPUs)."""
    return e.per_gpu <= memory_gib * GIB
