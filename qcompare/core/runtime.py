"""The runtime contract: the few calls the worker makes on a built model, whatever runs it.

In the spirit of lm-eval's `LM` interface, a runtime answers exactly what the measurements
need and nothing else, so a method can hand the worker a transformers model, a llama.cpp file
or anything else that can score and generate:

* `logits(ids, keep)`: one window of token ids (a 1-D LongTensor, fed alone from an empty
  cache); returns the fp32 logits of its last `keep` positions, a tensor [keep, vocab_size].
  Scoring needs no more (`metrics.quality.window_logits` picks the rows that predict scored
  tokens).
* `generate(prompt_ids, new_tokens)`: greedy decoding from the prompt, end-of-sequence ignored,
  exactly `new_tokens` new ids returned as a list (the speed protocol of `metrics.speed` times
  these calls).
* `start(prompt_ids)` then `advance(token_id)`: step-by-step decoding for the generation page;
  each returns the fp32 logits [vocab_size] of the next token. The default re-scores the whole
  sequence every step (right for any runtime, slow); runtimes with a KV cache override both.
* `synchronize()`: waits for queued device work, before a clock is read.
* `memory_phase()`: a context manager measuring peak memory while the runtime works
  (`metrics.memory.PhasePeak` on the runtime's device).
* `vocab_size`, `device`, and `backend`: a sentence naming what ran, stored on the row.
* `cost_model()`: what one token costs it in bytes read and FLOPs
  (`runtime.cost.CostModel`), for the roofline columns; None where it cannot say.
"""
from __future__ import annotations

from abc import ABC, abstractmethod


class Runtime(ABC):
    device: str = "cpu"

    @property
    @abstractmethod
    def vocab_size(self) -> int: ...

    @property
    @abstractmethod
    def backend(self) -> str: ...

    @abstractmethod
    def logits(self, ids, keep: int):
        """fp32 logits [keep, vocab_size] of the last `keep` positions of window `ids`."""

    @abstractmethod
    def generate(self, prompt_ids, new_tokens: int) -> list[int]:
        """Exactly `new_tokens` greedy new ids after `prompt_ids` (EOS ignored)."""

    def start(self, prompt_ids):
        """Begin step-by-step decoding: logits [vocab] of the token after the prompt."""
        import torch

        self._sequence = [int(t) for t in prompt_ids]
        return self.logits(torch.as_tensor(self._sequence, dtype=torch.long), 1)[-1]

    def advance(self, token_id: int):
        """Append one token: logits [vocab] of the token after it."""
        import torch

        self._sequence.append(int(token_id))
        return self.logits(torch.as_tensor(self._sequence, dtype=torch.long), 1)[-1]

    def synchronize(self) -> None:  # noqa: B027 - optional hook: a CPU has nothing to wait for
        """Wait for queued device work (nothing to wait for on a CPU)."""

    def cost_model(self):
        """A runtime.cost.CostModel, or None (no roofline columns)."""
        return None

    @abstractmethod
    def memory_phase(self):
        """A context manager measuring peak memory while the runtime works (module doc)."""
