"""Perplexity-evaluation throughput: qcompare's window loop against a plain transformers loop.

Both evaluate the embedded model (fp32, CPU) on the same tokens and windows (disjoint protocol):
the plain loop calls `model(x, labels=x).loss` per window, the way the transformers perplexity
guide does. Each is timed R times, alternating, after one warm-up window; the table gives the
median scored tokens per second and the ratio qcompare / plain measured in this run. A third line
times qcompare with the KL-divergence path on (reading the cached baseline), for its cost.

    python bench/ppl_throughput.py [--tokens 4096] [--repeats 3]
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.report import write_section  # noqa: E402


def plain_loop(model, ids, windows):
    import torch

    total_nll, n = 0.0, 0
    with torch.inference_mode():
        for w in windows:
            x = torch.as_tensor(ids[w.start:w.end]).unsqueeze(0)
            loss = model(x, labels=x).loss            # mean NLL over W-1 shifted positions
            total_nll += float(loss) * (w.end - w.start - 1)
            n += w.end - w.start - 1
    return math.exp(total_nll / n), n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=4096)
    ap.add_argument("--window", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    import torch

    from qcompare import corpora, models
    from qcompare.jobs.worker import _evaluate
    from qcompare.metrics import quality as q
    from qcompare.reference import ReferenceStore
    from qcompare.specs import ModelSpec
    from qcompare.statedir import default_state_dir

    torch.set_num_threads(torch.get_num_threads())
    spec = models.resolve(ModelSpec())
    folder = models.local_folder(spec, default_state_dir())
    tok = models.load_tokenizer(folder, spec)
    model = models.load_model(folder, spec, "float32", "cpu")
    ids, nbytes = q.tokenize_stream(tok, corpora.embedded_text(), args.tokens)
    windows = q.plan_windows(len(ids), args.window, "disjoint")
    quiet = lambda s, f: None  # noqa: E731

    with tempfile.TemporaryDirectory() as tmp:
        refs = ReferenceStore(tmp)
        n_scored = sum(w.n_scored for w in windows)
        with refs.write("bench", n_scored, model.config.vocab_size, {}) as writer:
            _evaluate(model, ids, nbytes, windows, None, "cpu", quiet, writer=writer)
        reader = refs.read("bench")
        _evaluate(model, ids, nbytes, windows[:1], None, "cpu", quiet)      # warm-up
        times = {"plain": [], "qcompare": [], "qcompare+kld": []}
        ppl = {}
        for _ in range(args.repeats):
            t = time.perf_counter()
            ppl["plain"], n = plain_loop(model, ids, windows)
            times["plain"].append(time.perf_counter() - t)
            t = time.perf_counter()
            ppl["qcompare"] = _evaluate(model, ids, nbytes, windows, None, "cpu", quiet)["ppl"]
            times["qcompare"].append(time.perf_counter() - t)
            t = time.perf_counter()
            _evaluate(model, ids, nbytes, windows, None, "cpu", quiet, reference=reader)
            times["qcompare+kld"].append(time.perf_counter() - t)
        del reader

    med = {k: statistics.median(v) for k, v in times.items()}
    rate = {k: n / v for k, v in med.items()}
    same = f"{ppl['plain']:.4g}" == f"{ppl['qcompare']:.4g}"
    lines = [
        f"Embedded SmolLM2-135M (fp32, CPU, {torch.get_num_threads()} threads), {len(ids)} tokens of the "
        f"embedded corpus, disjoint windows of {args.window}, {n} scored tokens; median of "
        f"{args.repeats} alternating runs. Command: `python bench/ppl_throughput.py --tokens "
        f"{args.tokens} --repeats {args.repeats}`.",
        "",
        "| loop | median s | scored tok/s | vs plain | PPL |",
        "|---|---|---|---|---|",
        f"| plain transformers (`labels=` loss) | {med['plain']:.2f} | {rate['plain']:.0f} | 1.00× | {ppl['plain']:.6g} |",
        f"| qcompare (PPL, bytes) | {med['qcompare']:.2f} | {rate['qcompare']:.0f} | "
        f"{rate['qcompare'] / rate['plain']:.2f}× | {ppl['qcompare']:.6g} |",
        f"| qcompare + KLD/top-1 vs cached baseline | {med['qcompare+kld']:.2f} | "
        f"{rate['qcompare+kld']:.0f} | {rate['qcompare+kld'] / rate['plain']:.2f}× | — |",
        "",
        f"PPL identical to 4 significant digits: {'yes' if same else 'NO'}. "
        f"Target ≥ 1.0× for the PPL loop: {'met' if rate['qcompare'] >= rate['plain'] else 'not met'}.",
    ]
    write_section("Perplexity-evaluation throughput", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
