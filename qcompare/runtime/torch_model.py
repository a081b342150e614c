"""The transformers runtime: any torch causal LM with transformers' forward and `generate`."""
from __future__ import annotations

from qcompare.core.runtime import Runtime


class TorchRuntime(Runtime):
    """Runs `model` (a transformers CausalLM, quantized or not) on `device`."""

    def __init__(self, model, device: str = "cpu", backend: str = ""):
        self.model = model
        self.device = device
        self._backend = backend

    @property
    def vocab_size(self) -> int:
        return int(self.model.get_output_embeddings().weight.shape[0])

    @property
    def backend(self) -> str:
        return self._backend or f"transformers {type(self.model).__name__} on torch/{self.device}"

    def logits(self, ids, keep: int):
        import torch

        with torch.inference_mode():
            out = self.model(ids.unsqueeze(0).to(self.device), logits_to_keep=keep).logits[0]
        return out[-keep:].float()

    def generate(self, prompt_ids, new_tokens: int) -> list[int]:
        import torch

        x = torch.as_tensor(prompt_ids, dtype=torch.long).reshape(1, -1).to(self.device)
        with torch.inference_mode():
            out = self.model.generate(input_ids=x, attention_mask=torch.ones_like(x),
                                      do_sample=False, min_new_tokens=new_tokens,
                                      max_new_tokens=new_tokens, pad_token_id=0, num_beams=1)
        return out[0, x.shape[1]:].tolist()

    def start(self, prompt_ids):
        """The prompt through the model once, its KV cache kept for `advance`."""
        import torch

        x = torch.as_tensor([int(t) for t in prompt_ids], dtype=torch.long).reshape(1, -1)
        with torch.inference_mode():
            out = self.model(input_ids=x.to(self.device), use_cache=True, logits_to_keep=1)
        self._cache = out.past_key_values
        return out.logits[0, -1].float()

    def advance(self, token_id: int):
        import torch

        x = torch.tensor([[int(token_id)]], dtype=torch.long, device=self.device)
        with torch.inference_mode():
            out = self.model(input_ids=x, past_key_values=self._cache, use_cache=True)
        self._cache = out.past_key_values
        return out.logits[0, -1].float()

    def cost_model(self):
        from qcompare.runtime.cost import torch_cost_model

        return torch_cost_model(self.model)

    def synchronize(self) -> None:
        if self.device == "cuda":
            import torch

            torch.cuda.synchronize()

    def memory_phase(self):
        from qcompare.metrics.memory import PhasePeak

        return PhasePeak(self.device)
