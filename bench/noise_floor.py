"""The embedded model's noise floor under the quick and the default (thorough) protocol.

    python bench/noise_floor.py          # writes its section of BENCHMARKS.md

Runs fp32 and bf16 through the worker (real rows, in the state folder), then the noise-floor
job of their baseline (`qcompare.jobs.noise_job`; on this CPU bf16 and fp16 compute simulated in
fp32, on the first sixteenth of the scored tokens), and reads what it stored
(`qcompare.stats.noisefloor`). To check the simulation, the same tokens are then scored with the
model really computing in bf16 and fp16 (the CUDA variants, which a CPU emulates slowly), in the
same run.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.report import write_section
from qcompare.core import effort
from qcompare.core.registry import parse_method_arg
from qcompare.core.specs import CorpusSpec, EvalSpec, ModelSpec
from qcompare.core.statedir import default_state_dir
from qcompare.jobs import noise_job, prepare, worker
from qcompare.jobs.submit import build_specs
from qcompare.stats import noisefloor
from qcompare.store.reference import ReferenceStore


def main() -> None:
    state_dir = default_state_dir()
    lines = ["| effort (scored tokens used) | variant | KLD | KLD p99 | top-1 agreement | PPL | seconds |",
             "|---|---|---|---|---|---|---|"]
    verdicts = []
    for name in ("quick", "thorough"):
        ev = effort.eval_spec(name, EvalSpec(speed_repeats=0))
        fp32, bf16 = build_specs(ModelSpec(), [parse_method_arg("fp32"), parse_method_arg("bf16")],
                                 CorpusSpec(), ev)
        base = worker.run(fp32, state_dir)
        row = worker.run(bf16, state_dir)
        if noisefloor.read(state_dir, fp32.reference_key()) is None:
            worker.run_noise_floor(noise_job.to_json(fp32), state_dir)
        noise = noisefloor.read(state_dir, fp32.reference_key())
        opened = prepare.open_spec(noise_job.baseline_spec(fp32), state_dir)
        ids, nbytes, windows = worker.evaluation_tokens(opened)
        real = worker.noise_floor_compute(opened, ids, nbytes, windows, opened.tokenizer.bos_token_id,
                                 ReferenceStore(state_dir).read(fp32.reference_key()),
                                 variants={f"{k} (real, emulated here)": v for k, v in
                                           noisefloor.CUDA_VARIANTS.items() if not v[1]})
        for variant, v in [*noise["variants"].items(), *real["variants"].items()]:
            lines.append(f"| {name} ({noise['tokens']} of {noise['of_tokens']}) | {variant} | "
                         f"{v['kld_mean']:.3g} | {v['kld_p99']:.3g} | {v['top1_agree']:.4f} | "
                         f"{v['ppl']:.4f} | {v['seconds']:.1f} |")
        verdicts.append(f"- {name}: fp32 baseline PPL {base['ppl']:.4f}; band KLD ≤ "
                        f"{noise['kld_band']:.3g}, top-1 ≥ {noise['top1_band']:.4f}; the bf16 "
                        f"method's row: KLD {row['kld_mean']:.3g} — "
                        f"{noisefloor.versus(row['kld_mean'], noise)}.")
        print(lines[-1], flush=True)
    body = ("`bench/noise_floor.py`. The embedded model's fp32 baseline rerun with numerical "
            "noise only, scored against itself like a method (`qcompare.stats.noisefloor`); the band "
            "drawn on KL and top-1 charts is the worst of the three stored variants. The rows "
            "marked real compute the same tokens in bf16 / fp16 for real (emulated, slowly, on "
            "this CPU): the check of the simulation, not part of the floor.\n\n"
            + "\n".join(lines) + "\n\n" + "\n".join(verdicts) + "\n")
    write_section("Noise floor of the embedded model", body)


if __name__ == "__main__":
    main()
