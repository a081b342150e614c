"""The Linear layers methods quantize, and the module surgery they share: which Linears, the
LM head untied from the embedding, a submodule replaced, group sizes checked up front."""
from __future__ import annotations

from qcompare.core.errors import Message, UserError


def quantizable_linears(model, include_lm_head: bool):
    """(name, module) of each nn.Linear RTN-style methods quantize; the LM head only if asked."""
    import torch

    head = model.get_output_embeddings()
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and (include_lm_head or module is not head):
            yield name, module


def untie_lm_head(model) -> None:
    """Give the LM head its own copy of a weight it shares with the input embedding."""
    import torch

    head, emb = model.get_output_embeddings(), model.get_input_embeddings()
    if head is not None and head.weight.data_ptr() == emb.weight.data_ptr():
        head.weight = torch.nn.Parameter(emb.weight.detach().clone())
        model.config.tie_word_embeddings = False


def set_module(root, name: str, module) -> None:
    """Replace the submodule at dotted `name` (e.g. model.layers.0.mlp.up_proj)."""
    parent, _, child = name.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, child, module)


def group_size_problem(sizes, group_size: int, library: str) -> Message | None:
    """Why `group_size` does not fit Linears with these input sizes (each must be a multiple of
    it), with the sizes that would, largest first; None when it fits, when there are no groups
    (0) or when the sizes are unknown (None)."""
    import math

    if not group_size or not sizes:
        return None
    sizes = sorted(set(sizes))
    bad = [n for n in sizes if n % group_size]
    if not bad:
        return None
    g = math.gcd(*sizes)
    ok = [d for d in (256, 128, 64, 32, 16) if g % d == 0]
    return Message("errors.group_divisible", library=library, group_size=group_size,
                   bad=", ".join(map(str, bad)), ok=" / ".join(map(str, ok + [0])))


def check_group_size(model, group_size: int, library: str) -> None:
    """Libraries that quantize groups of input columns need every quantized Linear's input size
    divisible by the group size, and some fail late or silently otherwise: say so before any
    work, with the sizes that would work. (Submission checks the same from the model's config,
    `group_size_problem`; this catches architectures the config reading does not model.)"""
    import torch

    head = model.get_output_embeddings()
    problem = group_size_problem([m.in_features for m in model.modules()
                                  if isinstance(m, torch.nn.Linear) and m is not head],
                                 group_size, library)
    if problem:
        raise UserError(key=problem.key, **problem.values)
