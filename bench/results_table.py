"""Writes a sweep's measured rows (an exported results Parquet) as a BENCHMARKS.md section.

    python -m qcompare sweep --device cuda --method fp32 --method rtn:bits=4 ...
    python -m qcompare results --format parquet --output sweep.parquet
    python bench/results_table.py sweep.parquet --title "..." --command "the sweep command"
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.report import write_section  # noqa: E402

COLUMNS = [("method_label", "method", "{}"), ("ppl", "PPL", "{:.3f}"), ("ppl_se", "± se", "{:.3f}"),
           ("kld_mean", "KLD mean", "{:.4f}"), ("top1_agree", "top-1", "{:.3f}"),
           ("weights_mib", "weights MiB", "{:.1f}"), ("prefill_tok_s", "prefill tok/s", "{:.0f}"),
           ("decode_tok_s", "decode tok/s (min–max)", None), ("ttft_ms", "TTFT ms", "{:.1f}"),
           ("load_cuda_peak_alloc_mib", "GPU alloc load MiB", "{:.0f}"),
           ("cuda_peak_alloc_mib", "GPU alloc infer MiB", "{:.0f}"),
           ("nvml_used_peak_mib", "NVML used MiB", "{:.0f}"), ("peak_rss_mib", "peak RSS MiB", "{:.0f}"),
           ("kernel", "kernel", "{}")]


def _cell(row, col, fmt) -> str:
    if col == "decode_tok_s":
        return f"{row.decode_tok_s:.1f} ({row.decode_tok_s_min:.1f}–{row.decode_tok_s_max:.1f})"
    value = getattr(row, col)
    return "—" if value is None or value != value else fmt.format(value)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("parquet")
    ap.add_argument("--title", required=True)
    ap.add_argument("--command", required=True, help="the sweep command that produced the rows")
    ap.add_argument("--note", default="")
    args = ap.parse_args()
    df = pd.read_parquet(args.parquet).sort_values("weights_mib", ascending=False)
    cols = [c for c in COLUMNS if c[0] in df.columns and df[c[0]].notna().any()]
    first = df.iloc[0]
    lines = [f"{first['model']} on {first['device_name']} ({first['device']}, torch "
             f"{first['torch_version']}, transformers {first['transformers_version']}); corpus "
             f"{first['corpus']}, protocol {first['protocol']}, {first['tokens']} tokens, window "
             f"{first['window']}; speed: prompt {first['speed_prompt']}, {first['speed_new_tokens']} new "
             f"tokens, median of {first['speed_repeats']} repeats after a warm-up. Command: "
             f"`{args.command}`.", ""]
    lines.append("| " + " | ".join(c[1] for c in cols) + " |")
    lines.append("|" + "---|" * len(cols))
    for row in df.itertuples():
        lines.append("| " + " | ".join(_cell(row, c, f) for c, _, f in cols) + " |")
    if args.note:
        lines += ["", args.note]
    write_section(args.title, "\n".join(lines), measured_on=str(first["device_name"]),
                  date=str(pd.Timestamp(first["finished_at"]).date()))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
