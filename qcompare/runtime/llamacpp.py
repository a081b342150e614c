"""The llama.cpp runtime: a GGUF file run by llama.cpp itself, through llama-cpp-python's
public API (`Llama.eval`, `Llama.scores`, `Llama.generate`).

Two llama.cpp contexts on the same file: `scorer` keeps the logits of every position
(`logits_all=True`, what PPL and KL divergence need); `runner` computes only what serving
computes, so prefill and decode speed do not pay for scoring. Token ids are fed to llama.cpp
directly: both runtimes score exactly the same ids.
"""
from __future__ import annotations

import numpy as np

from qcompare.core.runtime import Runtime


class LlamaCppRuntime(Runtime):
    device = "cpu"

    def __init__(self, scorer, runner=None, backend: str = "llama.cpp"):
        self.scorer = scorer
        self.runner = runner if runner is not None else scorer
        self._backend = backend

    @property
    def vocab_size(self) -> int:
        return int(self.scorer.n_vocab())

    @property
    def backend(self) -> str:
        return self._backend

    def cost_model(self):
        from qcompare.runtime.cost import gguf_cost_model

        path = getattr(self.runner, "model_path", None)
        return gguf_cost_model(path) if path else None

    def logits(self, ids, keep: int):
        import torch

        tokens = [int(t) for t in ids]
        self.scorer.reset()
        self.scorer.eval(tokens)
        rows = np.array(self.scorer.scores[len(tokens) - keep:len(tokens)], dtype=np.float32)
        return torch.from_numpy(rows)

    def start(self, prompt_ids):
        """The prompt evaluated by the scoring context (it keeps every position's logits);
        llama.cpp's KV cache then carries the sequence for `advance`."""
        import torch

        self.scorer.reset()
        self.scorer.eval([int(t) for t in prompt_ids])
        return torch.from_numpy(np.array(self.scorer.scores[self.scorer.n_tokens - 1], dtype=np.float32))

    def advance(self, token_id: int):
        import torch

        self.scorer.eval([int(token_id)])
        return torch.from_numpy(np.array(self.scorer.scores[self.scorer.n_tokens - 1], dtype=np.float32))

    def generate(self, prompt_ids, new_tokens: int) -> list[int]:
        """Greedy (temperature 0), EOS ignored: llama.cpp's own sampling loop, stopped after
        exactly `new_tokens` tokens. `reset()` first, so no KV cache of an earlier call is
        reused and every call pays its full prefill."""
        self.runner.reset()
        out: list[int] = []
        for token in self.runner.generate([int(t) for t in prompt_ids], temp=0.0, top_k=1,
                                          reset=True):
            out.append(int(token))
            if len(out) == new_tokens:
                break
        return out

    def memory_phase(self):
        from qcompare.metrics.memory import PhasePeak

        return PhasePeak(self.device)
