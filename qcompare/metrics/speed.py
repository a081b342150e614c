"""Speed metrics (in the spirit of LLM-Perf: batch 1, a P-token prompt, N greedy new tokens).

Protocol of `measure_speed`: one untimed warm-up generation; then R repeats, each of
  1. prefill: generate 1 new token from the prompt; its wall time is the time to first token
     (TTFT) and prefill_tok_s = P / TTFT;
  2. decode: generate exactly N new tokens (greedy, EOS ignored); with T its wall time,
     decode_tok_s = (N - 1) / (T - TTFT of the same repeat), the first token being prefill's.
Median, min and max over the R repeats are reported. On CUDA the device is synchronised
before each clock read.
"""
from __future__ import annotations

import statistics
import time


def _timed_generate(model, input_ids, new_tokens: int, sync) -> float:
    import torch

    mask = torch.ones_like(input_ids)
    sync()
    t0 = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(input_ids=input_ids, attention_mask=mask, do_sample=False,
                             min_new_tokens=new_tokens, max_new_tokens=new_tokens,
                             pad_token_id=0, num_beams=1)
    sync()
    elapsed = time.perf_counter() - t0
    produced = out.shape[1] - input_ids.shape[1]
    if produced != new_tokens:
        raise RuntimeError(f"generate produced {produced} tokens, asked for {new_tokens}")
    return elapsed


def _stats(name: str, values: list[float]) -> dict[str, float]:
    return {name: statistics.median(values), f"{name}_min": min(values), f"{name}_max": max(values)}


def measure_speed(model, prompt_ids, new_tokens: int, repeats: int, device: str) -> dict[str, float]:
    """prefill_tok_s, decode_tok_s and ttft_ms (median, _min, _max) per the module protocol."""
    import torch

    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    x = torch.as_tensor(prompt_ids, dtype=torch.long).unsqueeze(0).to(device)
    prompt = x.shape[1]
    _timed_generate(model, x, new_tokens, sync)
    ttft, decode, prefill = [], [], []
    for _ in range(repeats):
        t_first = _timed_generate(model, x, 1, sync)
        t_all = _timed_generate(model, x, new_tokens, sync)
        ttft.append(t_first * 1000)
        prefill.append(prompt / t_first)
        decode.append((new_tokens - 1) / max(t_all - t_first, 1e-9))
    out = {}
    out.update(_stats("prefill_tok_s", prefill))
    out.update(_stats("decode_tok_s", decode))
    out.update(_stats("ttft_ms", ttft))
    return out
