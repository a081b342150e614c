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

from qcompare.errors import Message

MIB, GIB, GB = 2 ** 20, 2 ** 30, 10 ** 9

# the runtime's fixed memory per process (CPU) or per GPU (CUDA), assumed where not measured:
# a CUDA context with cuBLAS / cuDNN workspaces is typically 300-600 MiB; CPython with torch
# and transformers imported holds about 400-600 MiB of RSS before any weight
OVERHEAD_MIB = {"cuda": 400.0, "cpu": 500.0}
KV_BYTES = {"16-bit": 2, "fp32": 4, "8-bit": 1}
ACT_BYTES = {"cuda": 2, "cpu": 4}


@dataclass(frozen=True)
class Tensor:
    """One stored tensor: `kind` is linear | embedding | lm_head | norm | bias; a linear's
    `rows` x `cols` are its out x in features (an embedding's: vocabulary x hidden)."""
    name: str
    kind: str
    rows: int
    cols: int = 1
    layer: int = -1
    role: str = ""                         # q_proj, k_proj, ..., down_proj for linears
    tied: bool = False                     # the embedding doubles as the LM head

    @property
    def numel(self) -> int:
        return self.rows * self.cols


@dataclass(frozen=True)
class ModelShape:
    """What the calculator needs of a model's config (module doc)."""
    name: str
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    intermediate: int
    vocab: int
    tied: bool = False
    head_dim: int = 0                      # 0: hidden / heads
    attention_bias: bool = False
    basis: str = "config"                  # where the shape came from, in words
    gguf_metadata_bytes: int | None = None  # a GGUF file's header, tokenizer and tensor table

    def __post_init__(self):
        for f in ("layers", "hidden", "heads", "kv_heads", "intermediate", "vocab"):
            if getattr(self, f) <= 0:
                raise ValueError(f"{f} must be positive")

    @property
    def dim(self) -> int:
        return self.head_dim or self.hidden // self.heads

    @classmethod
    def from_config(cls, config: dict, name: str = "") -> ModelShape:
        """From a Hugging Face config.json dict (Llama, Mistral, Qwen2, SmolLM, Gemma-style
        names); refuses what is not a plain dense decoder with a clear reason."""
        if config.get("num_local_experts") or config.get("num_experts"):
            raise ValueError(Message("errors.config_moe"))
        try:
            heads = int(config["num_attention_heads"])
            return cls(
                name=name or str(config.get("_name_or_path") or config.get("model_type", "model")),
                layers=int(config["num_hidden_layers"]), hidden=int(config["hidden_size"]),
                heads=heads, kv_heads=int(config.get("num_key_value_heads") or heads),
                intermediate=int(config["intermediate_size"]), vocab=int(config["vocab_size"]),
                tied=bool(config.get("tie_word_embeddings", False)),
                head_dim=int(config.get("head_dim") or 0),
                attention_bias=bool(config.get("attention_bias", config.get("model_type") == "qwen2")),
                basis="config.json")
        except KeyError as e:
            raise ValueError(Message("errors.config_field", field=repr(e.args[0]))) from None

    def tensors(self) -> list[Tensor]:
        h, i, q, kv = self.hidden, self.intermediate, self.heads * self.dim, self.kv_heads * self.dim
        out: list[Tensor] = [Tensor("model.embed_tokens.weight", "embedding", self.vocab, h,
                                    tied=self.tied)]
        for n in range(self.layers):
            p = f"model.layers.{n}."
            out.append(Tensor(p + "input_layernorm.weight", "norm", h, layer=n))
            for role, rows, cols, sub in (("q_proj", q, h, "self_attn"), ("k_proj", kv, h, "self_attn"),
                                          ("v_proj", kv, h, "self_attn"), ("o_proj", h, q, "self_attn"),
                                          ("gate_proj", i, h, "mlp"), ("up_proj", i, h, "mlp"),
                                          ("down_proj", h, i, "mlp")):
                out.append(Tensor(f"{p}{sub}.{role}.weight", "linear", rows, cols, n, role))
                if self.attention_bias and role in ("q_proj", "k_proj", "v_proj"):
                    out.append(Tensor(f"{p}{sub}.{role}.bias", "bias", rows, layer=n, role=role))
            out.append(Tensor(p + "post_attention_layernorm.weight", "norm", h, layer=n))
        out.append(Tensor("model.norm.weight", "norm", h))
        if not self.tied:
            out.append(Tensor("lm_head.weight", "lm_head", self.vocab, h))
        return out

    def param_count(self) -> int:
        return sum(t.numel for t in self.tensors())


def untied(tensors: list[Tensor]) -> list[Tensor]:
    """The tensors once a tied LM head is given its own copy (methods that quantize it)."""
    out = [replace(t, tied=False) for t in tensors]
    emb = next((t for t in tensors if t.kind == "embedding" and t.tied), None)
    if emb is not None:
        out.append(Tensor("lm_head.weight", "lm_head", emb.rows, emb.cols))
    return out


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
    from qcompare import i18n

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
