"""Which GGML type llama-quantize gives each tensor, and so a GGUF file's size, without running it.

llama.cpp's `llama_tensor_get_type` (src/llama-quant.cpp) starts from the file type's default
type (Q4_K for Q4_K_M, ...) and, for the dense Llama-family tensors qcompare models, changes it:

* the LM head (`output.weight`, or the token embedding when the head is tied to it): Q8_0 when
  its row length is not a multiple of the default type's block, else Q6_K unless the default
  is Q8_0;
* `attn_v`: Q2_K -> Q4_K with grouped-query attention of 4+ heads per KV head, else Q3_K;
  Q3_K_M -> Q5_K for the first two, then Q4_K; Q3_K_L -> Q5_K; IQ4_NL/IQ4_XS -> Q5_K with 4+
  heads per KV head; Q4_K_M and Q5_K_M -> Q6_K where `use_more_bits`; Q4_K_S -> Q5_K for the
  first four; a 70B Llama (80 layers) bumps Q3_K / Q4_K to Q5_K;
* `ffn_down`: Q2_K -> Q3_K; Q3_K_M -> Q5_K in the first 1/16 of the layers, else Q4_K;
  Q3_K_L -> Q5_K; Q4_K_M -> Q6_K where `use_more_bits`; IQ4_NL/IQ4_XS without an importance
  matrix -> Q5_K in the first 1/8; Q5_K_M -> Q6_K where `use_more_bits`; Q4_K_S -> Q5_K in the
  first 1/8; Q4_0 / Q5_0 with an importance matrix -> Q4_1 / Q5_1 in the first 1/8;
* `attn_output`: Q2_K -> Q3_K, Q3_K_M -> Q4_K, Q3_K_L -> Q5_K;

    use_more_bits(i, n) = i < n/8  or  i >= 7n/8  or  (i - n/8) mod 3 == 2   (integer n/8)

then, where a row length is not a multiple of the chosen type's block (K-quants and IQ4_XS
need 256; the embedded model's rows are 576 long), the fallback of the llama.cpp that
llama-cpp-python 0.3 bundles: Q2_K, Q3_K -> Q4_0; IQ4_XS -> IQ4_NL; Q4_K -> Q5_0; Q5_K -> Q5_1;
Q6_K -> Q8_0; and F16 if that still does not divide (newer llama.cpp sends Q2_K and Q3_K to
IQ4_NL instead: same size, 18 bytes per 32). 1-D tensors
(norms, biases) stay F32; F32 and F16 files hold every 2-D tensor in that type.

A tensor of type t takes rows x cols / block(t) x bytes(t) (gguf's GGML_QUANT_SIZES), padded to
the file's 32-byte alignment; the file adds its header, metadata (the tokenizer) and tensor
table. `tests/methods/test_gguf.py` checks the types and sizes against files llama-quantize
wrote.
"""
from __future__ import annotations

ALIGNMENT = 32
# the file type's starting type, by the names `qcompare.methods.gguf.FTYPES` takes
DEFAULT_TYPE = {"F32": "F32", "F16": "F16", "Q8_0": "Q8_0", "Q6_K": "Q6_K", "Q5_K_M": "Q5_K",
                "Q5_K_S": "Q5_K", "Q5_0": "Q5_0", "Q4_K_M": "Q4_K", "Q4_K_S": "Q4_K",
                "Q4_0": "Q4_0", "Q3_K_L": "Q3_K", "Q3_K_M": "Q3_K", "Q3_K_S": "Q3_K",
                "Q2_K": "Q2_K", "IQ4_NL": "IQ4_NL", "IQ4_XS": "IQ4_XS"}
FALLBACK = {"Q2_K": "Q4_0", "Q3_K": "Q4_0", "IQ4_XS": "IQ4_NL", "Q4_K": "Q5_0",
            "Q5_K": "Q5_1", "Q6_K": "Q8_0"}
GGUF_ROLE = {"q_proj": "attn_q", "k_proj": "attn_k", "v_proj": "attn_v", "o_proj": "attn_output",
             "gate_proj": "ffn_gate", "up_proj": "ffn_up", "down_proj": "ffn_down"}
# without a source file: the header, tensor table and a tokenizer of about 40 bytes a token
# (the token string, its score and type, and a merge rule)
METADATA_PER_TOKEN, METADATA_FIXED = 40, 64 * 1024


def block(type_name: str) -> tuple[int, int]:
    """(values per block, bytes per block) of a GGML type, from gguf's own table."""
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

    return GGML_QUANT_SIZES[GGMLQuantizationType[type_name]]


def use_more_bits(i: int, n: int) -> bool:
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


def tensor_type(ftype: str, tensor, shape, imatrix: bool = False) -> str:
    """The GGML type llama-quantize stores `tensor` (`qcompare.core.shape.Tensor`) in (module doc)."""
    default = DEFAULT_TYPE[ftype]
    if tensor.kind in ("norm", "bias") or tensor.cols == 1:
        return "F32"
    if default in ("F32", "F16"):
        return default
    t, i, n = default, tensor.layer, shape.layers
    gqa = shape.heads // shape.kv_heads
    if tensor.kind == "lm_head" or (tensor.kind == "embedding" and tensor.tied):
        t = "Q8_0" if tensor.cols % block(default)[0] else ("Q6_K" if default != "Q8_0" else t)
    elif tensor.kind == "embedding":
        pass
    elif tensor.role == "v_proj":
        if ftype == "Q2_K":
            t = "Q4_K" if gqa >= 4 else "Q3_K"
        elif ftype == "Q3_K_M":
            t = "Q5_K" if i < 2 else "Q4_K"
        elif ftype == "Q3_K_L":
            t = "Q5_K"
        elif ftype in ("IQ4_NL", "IQ4_XS") and gqa >= 4:
            t = "Q5_K"
        elif ftype in ("Q4_K_M", "Q5_K_M") and use_more_bits(i, n):
            t = "Q6_K"
        elif ftype == "Q4_K_S" and i < 4:
            t = "Q5_K"
        if shape.layers == 80 and t in ("Q3_K", "Q4_K"):       # llama.cpp's 70B Llama rule
            t = "Q5_K"
    elif tensor.role == "down_proj":
        if ftype == "Q2_K":
            t = "Q3_K"
        elif ftype == "Q3_K_M":
            t = "Q5_K" if i < n // 16 else "Q4_K"
        elif ftype == "Q3_K_L":
            t = "Q5_K"
        elif ftype == "Q4_K_M":
            t = "Q6_K" if use_more_bits(i, n) else t
        elif ftype in ("IQ4_NL", "IQ4_XS") and not imatrix and i < n // 8:
            t = "Q5_K"
        elif ftype == "Q5_K_M" and use_more_bits(i, n):
            t = "Q6_K"
        elif ftype == "Q4_K_S" and i < n // 8:
            t = "Q5_K"
        elif ftype in ("Q4_0", "Q5_0") and imatrix and i < n // 8:
            t = "Q4_1" if ftype == "Q4_0" else "Q5_1"
    elif tensor.role == "o_proj":
        t = {"Q2_K": "Q3_K", "Q3_K_M": "Q4_K", "Q3_K_L": "Q5_K"}.get(ftype, t)
    if tensor.cols % block(t)[0]:
        if t not in FALLBACK:
            raise ValueError(f"{tensor.name}: rows of {tensor.cols} do not fit {t}'s blocks")
        t = FALLBACK[t]
        if tensor.cols % block(t)[0]:
            t = "F16"
    return t


def tensor_bytes(type_name: str, tensor) -> int:
    """Bytes of one tensor in `type_name`, padded to the file's alignment."""
    per, size = block(type_name)
    raw = tensor.numel // per * size
    return -(-raw // ALIGNMENT) * ALIGNMENT


def metadata_bytes(shape) -> int:
    """The file's header, metadata and tensor table: measured from a source file where the
    shape carries it, else estimated from the vocabulary (METADATA_PER_TOKEN)."""
    if shape.gguf_metadata_bytes is not None:
        return shape.gguf_metadata_bytes
    return METADATA_FIXED + METADATA_PER_TOKEN * shape.vocab


def source_metadata_bytes(path) -> int:
    """A GGUF file's bytes outside its tensor data (header, metadata, tensor table, padding
    before the data): its data offset."""
    from qcompare.sources import gguf_header

    return int(gguf_header.reader(path).data_offset)
