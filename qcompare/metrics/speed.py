"""Speed metrics (in the spirit of LLM-Perf: batch 1, a P-token prompt, N greedy new tokens).

Protocol of `measure_speed`: one untimed warm-up generation of min(N, WARMUP_TOKENS) tokens
(it runs the prefill and decode code paths once, so first-call costs such as allocation and
lazy initialisation are not timed); then up to R repeats, each of
  1. prefill: generate 1 new token from the prompt; its wall time is the time to first token
     (TTFT) and prefill_tok_s = P / TTFT;
  2. decode: generate exactly N new tokens (greedy, EOS ignored); with T its wall time,
     decode_tok_s = (N - 1) / (T - TTFT of the same repeat), the first token being prefill's.
With a target spread s > 0, repeating stops early once at least MIN_REPEATS repeats are done
and decode's relative spread (max - min) / median is at most s: more repeats would not say
more. Median, min and max over the repeats made are reported, with their number
(`speed_runs`). The runtime synchronises its device before each clock read.
"""
from __future__ import annotations

import statistics
import time

WARMUP_TOKENS = 8
MIN_REPEATS = 2


def _timed_generate(runtime, prompt_ids, new_tokens: int) -> float:
    runtime.synchronize()
    t0 = time.perf_counter()
    out = runtime.generate(prompt_ids, new_tokens)
    runtime.synchronize()
    elapsed = time.perf_counter() - t0
    if len(out) != new_tokens:
        raise RuntimeError(f"generate produced {len(out)} tokens, asked for {new_tokens}")
    return elapsed


def _stats(name: str, values: list[float]) -> dict[str, float]:
    return {name: statistics.median(values), f"{name}_min": min(values), f"{name}_max": max(values)}


def relative_spread(values: list[float]) -> float:
    """(max - min) / median; 0 for fewer than two values."""
    if len(values) < 2:
        return 0.0
    med = statistics.median(values)
    return (max(values) - min(values)) / med if med > 0 else float("inf")


def measure_speed(runtime, prompt_ids, new_tokens: int, repeats: int,
                  spread: float = 0.0) -> dict[str, float]:
    """prefill_tok_s, decode_tok_s and ttft_ms (median, _min, _max) and speed_runs, per the
    module protocol, through a runtime's `generate` (qcompare.runtime)."""
    prompt = [int(t) for t in prompt_ids]
    _timed_generate(runtime, prompt, min(new_tokens, WARMUP_TOKENS))
    ttft, decode, prefill = [], [], []
    for _ in range(repeats):
        t_first = _timed_generate(runtime, prompt, 1)
        t_all = _timed_generate(runtime, prompt, new_tokens)
        ttft.append(t_first * 1000)
        prefill.append(len(prompt) / t_first)
        decode.append((new_tokens - 1) / max(t_all - t_first, 1e-9))
        if spread > 0 and len(decode) >= MIN_REPEATS and relative_spread(decode) <= spread:
            break
    out = {"speed_runs": len(decode)}
    out.update(_stats("prefill_tok_s", prefill))
    out.update(_stats("decode_tok_s", decode))
    out.update(_stats("ttft_ms", ttft))
    return out
