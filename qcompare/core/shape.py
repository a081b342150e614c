"""The shape of a Llama-family model for sizing: its stored tensors from its config, without
torch and without building anything (`qcompare.decide.sizing` states the layout and adds them
up; each method's `stored_bits` prices one `Tensor`)."""
from __future__ import annotations

from dataclasses import dataclass, replace

from qcompare.core.errors import Message


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
