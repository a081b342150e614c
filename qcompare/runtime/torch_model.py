"""The transformers runtime: any torch causal LM with transformers' forward and `generate`."""
from __future__ import annotations

from qcompare.runtime.base import Runtime


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

    def cost_model(self):
        from qcompare.metrics.roofline import torch_cost_model

        return torch_cost_model(self.model)

    def synchronize(self) -> None:
        if self.device == "cuda":
            import torch

            torch.cuda.synchronize()
