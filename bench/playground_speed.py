"""How long one change in the quantization playground takes on the embedded model.

    python bench/playground_speed.py          # writes its section of BENCHMARKS.md

For the largest Linear weight of the embedded model (the playground's choices: layer x
projection), each calibrator at each granularity, 4-bit symmetric and asymmetric: the time of
what the page does per change (`playground.quantize` and both figures), median of 7 repeats
after one warm-up, against the project's torch RTN on the same tensor in the same run (the
reference; min-max only, which is all it does).
"""
from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.report import write_section
from qcompare.core.statedir import default_state_dir
from qcompare.explore import playground as pg
from qcompare.explore import playground_charts
from qcompare.sources import models

REPEATS = 7
TARGET_MS = 300


def _median_ms(fn) -> float:
    fn()
    times = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def main() -> None:
    import torch

    from qcompare.methods import rtn

    gguf = models.embedded_gguf()
    folder = models.converted_dir(default_state_dir(), gguf, models._file_sha256(gguf))
    weights = pg.weight_tensors(folder)
    name = max(weights, key=lambda n: weights[n][1][0] * weights[n][1][1])
    x = pg.read_tensor(weights[name][0], name)
    read_ms = _median_ms(lambda: pg.read_tensor(weights[name][0], name))
    xt = torch.from_numpy(x)
    ref_ms = _median_ms(lambda: rtn.fake_quantize(xt, 4, True, "group", 128))
    lines = ["| setting | quantize + both figures (ms) | × torch RTN g128 |", "|---|---|---|"]
    worst = 0.0
    for sym in (True, False):
        for cal in pg.CALIBRATORS:
            for gran in pg.GRANULARITIES:
                s = pg.Setting(bits=4, symmetric=sym, granularity=gran, calibrator=cal)

                def change(s=s):
                    q = pg.quantize(x, s)
                    playground_charts.histogram(x, q, s)
                    playground_charts.scales(q)
                ms = _median_ms(change)
                worst = max(worst, ms)
                lines.append(f"| {s.label} | {ms:.0f} | {ms / ref_ms:.1f} |")
                print(lines[-1], flush=True)
    body = (f"`bench/playground_speed.py`. `{name}` ({x.shape[0]} × {x.shape[1]} = {x.size:,} "
            f"values, the largest Linear weight of the embedded model), on this machine's CPU; "
            f"median of {REPEATS} repeats. Reading it from safetensors: {read_ms:.1f} ms. "
            f"The reference, the project's torch RTN (4-bit symmetric g128, the tensor only): "
            f"{ref_ms:.1f} ms.\n\n" + "\n".join(lines) + f"\n\nSlowest change: {worst:.0f} ms "
            f"(target < {TARGET_MS} ms: {'met' if worst < TARGET_MS else 'NOT met'}). Streamlit's "
            "own rerun and the browser's drawing come on top and are not in these numbers.\n")
    write_section("Quantization playground latency", body)


if __name__ == "__main__":
    main()
