"""Choosing the next token from a runtime's logits, the same way for every column of the
generation page, so the only difference between columns is the model.

* repetition penalty r (as in the CTRL paper and transformers): for every token id already in
  the prompt or the output, a positive logit is divided by r and a negative one multiplied;
* greedy: the arg max (ties to the lowest id);
* sampling: softmax(logits / temperature), restricted to the smallest set of tokens whose
  probability reaches top_p, drawn with a torch.Generator seeded once per column with the shared
  seed, so two identical models draw identical text.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Decoding:
    max_new_tokens: int = 48
    sample: bool = False
    temperature: float = 0.8
    top_p: float = 0.95
    seed: int = 0
    repetition_penalty: float = 1.0

    def __post_init__(self):
        if not 1 <= self.max_new_tokens <= 512:
            raise ValueError("max new tokens must be 1 to 512")
        if self.temperature <= 0 or not 0 < self.top_p <= 1 or self.repetition_penalty < 1:
            raise ValueError("temperature > 0, top_p in (0, 1] and repetition penalty >= 1")


def penalise(logits, seen: list[int], r: float):
    """The logits with the repetition penalty applied to the ids in `seen`."""
    import torch

    if r == 1.0 or not seen:
        return logits
    out = logits.clone()
    ids = torch.as_tensor(sorted(set(seen)), dtype=torch.long)
    vals = out[ids]
    out[ids] = torch.where(vals > 0, vals / r, vals * r)
    return out


def pick(logits, seen: list[int], d: Decoding, generator=None) -> int:
    """The next token id (module doc)."""
    import torch

    z = penalise(logits.float(), seen, d.repetition_penalty)
    if not d.sample:
        return int(torch.argmax(z))
    p = torch.softmax(z / d.temperature, dim=-1)
    sorted_p, order = torch.sort(p, descending=True)
    keep = torch.cumsum(sorted_p, 0) - sorted_p < d.top_p       # always keeps the first
    sorted_p = torch.where(keep, sorted_p, torch.zeros_like(sorted_p))
    choice = torch.multinomial(sorted_p / sorted_p.sum(), 1, generator=generator)
    return int(order[choice])
