"""Prefill, decode and time to first token on this CPU, per runtime, against transformers fp32.

    python bench/cpu_speed.py                   # prompt 128, 64 new tokens, 5 repeats

Each row is a fresh worker run (the cache is bypassed, so every number comes from this run):
one untimed warm-up generation, then R repeats of the speed protocol of
`qcompare.metrics.speed` (batch 1, greedy, EOS ignored); the table shows the median over the
repeats and its ratio to the fp32 row measured in the same run. Every runtime uses the same
number of CPU threads. Quality is evaluated on a short text only to fill the row (512 tokens).
Each row's roofline columns (`qcompare.metrics.roofline`) say how close its decode is to this
machine's measured memory bandwidth and its prefill to the measured matmul peak.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.report import write_section
from qcompare.core import registry
from qcompare.core.registry import parse_method_arg
from qcompare.core.specs import CorpusSpec, EvalSpec, ModelSpec
from qcompare.core.statedir import default_state_dir
from qcompare.jobs import submit as submitting
from qcompare.jobs import worker
from qcompare.metrics import roofline

METHODS = ["fp32", "bf16", "torchao-int8wo", "torchao-int8dq", "torchao-int4wo",
           "torch-dynamic-int8", "hqq:bits=4",
           "bnb-int8", "bnb-nf4", "gguf:type=F32", "gguf:type=Q8_0", "gguf:type=Q4_0",
           "gguf:type=Q4_K_M"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompt", type=int, default=128)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--home", dest="state_dir", default=None)
    args = ap.parse_args()
    home_dir = Path(args.state_dir) if args.state_dir else default_state_dir()
    ev = EvalSpec(tokens=512, window=512, speed_prompt=args.prompt,
                  speed_new_tokens=args.new_tokens, speed_repeats=args.repeats)
    methods = [m for m in METHODS if registry.get(m.split(":")[0]).unavailable_reason("cpu") is None]
    skipped = [m for m in METHODS if m not in methods]
    specs = submitting.build_specs(ModelSpec(), [parse_method_arg(m) for m in methods], CorpusSpec(), ev)
    rows = {}
    for m, spec in zip(methods, specs):
        t0 = time.perf_counter()
        rows[m] = worker.run(spec, home_dir)
        r = rows[m]
        print(f"{m:18s} prefill {r['prefill_tok_s']:8.1f} decode {r['decode_tok_s']:6.1f} "
              f"ttft {r['ttft_ms']:7.1f} ms ({time.perf_counter() - t0:.0f} s)", flush=True)
    base = rows["fp32"]
    lines = [f"{base['model']} on {base['device_name']}, {base['cpu_threads']} threads for every "
             f"runtime; batch 1, a {args.prompt}-token prompt, {args.new_tokens} greedy new tokens, "
             f"median of {args.repeats} repeats after a warm-up (min–max in brackets). Ratios are "
             f"against transformers fp32 measured in the same run. Command: `python "
             f"bench/cpu_speed.py --prompt {args.prompt} --new-tokens {args.new_tokens} "
             f"--repeats {args.repeats}`.", "",
             "| method | runtime | weights MiB | prefill tok/s | × fp32 | decode tok/s | × fp32 | "
             "TTFT ms | MiB read / token | decode % of roofline | prefill % of matmul peak |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows.values():
        runtime = {"llama_cpp_python": "llama.cpp", "torch": "transformers"}.get(
            r["library"], f"transformers + {r['library']}")
        lines.append(
            f"| {r['method_label']} | {runtime} | {r['weights_mib']:.1f} | {r['prefill_tok_s']:.0f} "
            f"[{r['prefill_tok_s_min']:.0f}–{r['prefill_tok_s_max']:.0f}] | "
            f"{r['prefill_tok_s'] / base['prefill_tok_s']:.2f} | {r['decode_tok_s']:.1f} "
            f"[{r['decode_tok_s_min']:.1f}–{r['decode_tok_s_max']:.1f}] | "
            f"{r['decode_tok_s'] / base['decode_tok_s']:.2f} | {r['ttft_ms']:.0f} | "
            f"{r.get('decode_read_mib', float('nan')):.1f} | {r.get('decode_roofline_pct', float('nan')):.0f} | "
            f"{r.get('prefill_roofline_pct', float('nan')):.0f} |")
    lines += ["", f"Roofline: memory bandwidth {base['mem_bandwidth_gbs']:.1f} GB/s (the better of a "
              f"copy and a dot product on two {roofline.BANDWIDTH_MIB} MiB buffers, the best of "
              f"{roofline.BANDWIDTH_REPEATS} in each of {roofline.BANDWIDTH_PROCESSES} fresh "
              f"processes, measured {base['machine_measured_at']}); prefill is held against "
              "the matmul peak measured in each row's compute dtype for torch's own float kernels, "
              "else in float32: over 100 % says a kernel (integer, a library's bf16, llama.cpp's) "
              "beats torch's float32 matmul. Bytes per decoded token are the weights as each runtime "
              "holds them (one embedding row, the tied head whole) plus the KV cache at the mean "
              "decode position.", "", "gguf F32 and fp32 hold the same weights, so the gap between their decode "
              "rates is the runtime (llama.cpp against transformers' generate), not quantization. "
              "Rows with `kernel: dequantized` in their result (torchao int4, HQQ) rebuild float "
              "weights for every matmul on this CPU, a cost paid again at every decode step."]
    if skipped:
        lines += ["", "Not available here, so not measured: " + ", ".join(skipped) + "."]
    write_section("Speed on this CPU: transformers, torchao, HQQ, bitsandbytes and llama.cpp",
                  "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
