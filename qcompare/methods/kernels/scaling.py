"""Per-channel scales folded into a model without changing its function (AWQ, SmoothQuant):
which Linears share an input and what produces it, and the fold itself."""
from __future__ import annotations

from qcompare.core.errors import UserError


def scale_groups(layer) -> list[tuple[str, object, list[str]]]:
    """(producer name, producer module, names of the Linears it feeds) of a Llama-style layer;
    the producer is None where no scale can be folded into it."""
    try:
        attn, mlp = layer.self_attn, layer.mlp
        groups = [("input_layernorm", layer.input_layernorm,
                   ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"])]
        foldable = attn.v_proj.weight.shape[0] == attn.o_proj.weight.shape[1]
        groups.append(("self_attn.v_proj", attn.v_proj if foldable else None, ["self_attn.o_proj"]))
        groups += [("post_attention_layernorm", layer.post_attention_layernorm,
                    ["mlp.gate_proj", "mlp.up_proj"]),
                   ("mlp.up_proj", mlp.up_proj, ["mlp.down_proj"])]
    except AttributeError as e:
        raise UserError(key="errors.scale_folding", error=e) from None
    return groups


def fold_scale(producer, linears, s) -> None:
    """W_k <- W_k * s (input columns) and the producer's output channels / s (a norm's weight,
    or a Linear's rows and bias): the full-precision function is unchanged."""
    import torch

    with torch.no_grad():
        if isinstance(producer, torch.nn.Linear):
            producer.weight.div_(s.unsqueeze(1))
            if producer.bias is not None:
                producer.bias.div_(s)
        else:
            producer.weight.div_(s)
        for lin in linears:
            lin.weight.mul_(s.unsqueeze(0))
