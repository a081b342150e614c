"""The `sensitivity` and `recipe` commands: where a model loses quality, layer by layer, and the
bits per layer that fit a size (`qcompare.recipes.sensitivity`, `qcompare.recipes.recipe`, `qcompare.recipes.budget`).
Like the rest of the CLI, torch-free: sweeps and runs go to worker processes."""
from __future__ import annotations

import argparse
import json
import math
import sys

from qcompare.core import registry
from qcompare.core.errors import UserError


def _bits_arg(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(b) for b in text.split(",") if b.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"bits are a comma list like 2,3,4,8; got {text!r}") from None


def _sensitivity_spec(args):
    from dataclasses import replace

    from qcompare.core import effort
    from qcompare.core.specs import CalibSpec, EvalSpec
    from qcompare.recipes.sensitivity import SensitivitySpec
    from qcompare.sources import corpora, models

    ev = effort.eval_spec(args.effort, EvalSpec(device=args.device, threads=args.threads,
                                                window=args.window))
    if args.tokens:
        ev = replace(ev, tokens=args.tokens)
    corpus = corpora.corpus_from_arg(args.corpus)
    calib = effort.calib_spec(args.effort, corpus, CalibSpec(corpus=corpus))
    if args.calib_samples:
        calib = replace(calib, samples=args.calib_samples)
    return SensitivitySpec(model=models.model_from_arg(args.model), family=args.family,
                           bits=args.bits, unit=args.unit, symmetric=not args.asymmetric,
                           group_size=args.group_size, score_samples=args.score_samples,
                           corpus=corpus, eval=ev, calib=calib)


def _print_sweep(sweep, top: int) -> None:
    from qcompare.recipes import sensitivity

    m = sweep.meta
    print(f"{m['label']}: {m['units']} units x {len(m['bits'])} widths on {m['tokens']} tokens "
          f"({m['slice']}), {m['seconds']:.0f} s")
    for b in m["bits"]:
        order = sensitivity.ranked(sweep.table, b).head(top)
        cells = ", ".join(f"{r.unit} {r.kld:.3g}" for r in order.itertuples())
        print(f"  {b}-bit, most sensitive first: {cells}")
    agree = m.get("agreement", {})
    per_bits = ", ".join(f"{b}-bit {agree.get(str(b), math.nan):+.2f}" for b in m["bits"])
    print(f"  reconstruction-error estimator vs measured KLD, Spearman: all {agree.get('all', math.nan):+.2f}; "
          f"{per_bits}")
    for b, u in m.get("uniform", {}).items():
        print(f"  every unit at {b}-bit: measured {u['measured']:.4g}, sum of single units "
              f"{u['predicted']:.4g} (additive prediction x{u['predicted'] / max(u['measured'], 1e-30):.2f})")


def cmd_sensitivity(args) -> int:
    from qcompare.cli.waiting import open_store, wait
    from qcompare.decide import shapes
    from qcompare.jobs.submit import resolve_sensitivity, submit_sensitivity
    from qcompare.recipes import budget
    from qcompare.recipes.sensitivity import SensitivityStore

    spec = resolve_sensitivity(_sensitivity_spec(args))
    shape = shapes.shape_of(spec.model)
    from qcompare.store.results import ResultStore

    cost = budget.cost_for(spec, args.state_dir, shape.layers if shape else None,
                           ResultStore(args.state_dir).load().frame)
    when = (f"about {cost.seconds / 60:.1f} min" if cost.seconds else "time unknown") + f" ({cost.basis})"
    if not SensitivityStore(args.state_dir).exists(spec.key()):
        print(f"sweep: {cost.passes} forward passes of {cost.tokens_per_pass} tokens, {when}",
              file=sys.stderr)
    if args.dry_run:
        return 0
    open_store(args.state_dir)
    sub = submit_sensitivity(spec, args.state_dir)
    if not sub.cached:
        print(f"#{sub.job_id} {'queued' if sub.new else 'already queued'}: {spec.label}", file=sys.stderr)
        if args.no_wait:
            return 0
        wait(args.state_dir, [sub.job_id], args.quiet)
        job = open_store(args.state_dir).get(sub.job_id)
        if job.state != "done":
            print(f"#{job.id} {job.state}: {job.error}", file=sys.stderr)
            return 1
    sweep = budget.find(args.state_dir, key=spec.key())
    if args.json:
        print(json.dumps({"meta": sweep.meta, "table": sweep.table.to_dict("records")}, default=float))
    else:
        _print_sweep(sweep, args.top)
    return 0


def cmd_recipe(args) -> int:
    from qcompare.cli.waiting import open_store, wait
    from qcompare.jobs.submit import submit
    from qcompare.recipes import budget
    from qcompare.recipes import recipe as recipes
    from qcompare.store.results import ResultStore

    if (args.target_mib is None) == (args.target_bpw is None):
        raise UserError("give the size: --target-mib N (everything stored) or --target-bpw X "
                        "(bits per weight of the quantized Linears).")
    sweep = budget.find(args.state_dir, args.model, args.family, args.sweep)
    allow = not args.no_keep
    r = recipes.recipe_for(sweep.table, sweep.fixed_bits, args.target_mib, args.target_bpw, allow)
    if r is None:
        least = recipes.smallest_mib(sweep.table, sweep.fixed_bits)
        raise UserError(f"nothing fits: the smallest recipe of this sweep takes {least:.2f} MiB "
                        f"(every unit at {min(sweep.meta['bits'])} bits); raise the target.")
    run = budget.recipe_run(sweep, r)
    method_arg = "mixed:" + ",".join(f"{k}={v}" for k, v in run.method.options)
    nearest = [(b, sweep.uniform(b)) for b in sorted(sweep.meta["bits"])]
    out = {"sweep": sweep.meta["key"], "sweep_label": sweep.meta["label"],
           "size_mib": r.size_mib, "bits_per_weight": r.bits_per_weight,
           "predicted_kld": r.predicted_kld, "counts": {str(k): v for k, v in r.counts.items()},
           "default_bits": r.default_bits, "bits_map": r.compact_map(), "method": method_arg,
           "uniform": [{"bits": b, "size_mib": u.size_mib, "predicted_kld": u.predicted_kld}
                       for b, u in nearest],
           "predictor": "sum of single-unit KLDs on the scoring slice (assumes effects add up)"}
    measured = None
    if args.verify:
        open_store(args.state_dir)
        below = [b for b, u in nearest if u.size_bits <= r.size_bits + 1e-9]
        specs = [run] + ([budget.uniform_run(sweep, max(below))] if below else [])
        subs = submit(specs, args.state_dir)
        waiting = [s.job_id for s in subs if not s.cached]
        if waiting:
            wait(args.state_dir, waiting, args.quiet)
        rows = ResultStore(args.state_dir).load().frame
        measured = {}
        for name, spec in zip(("recipe", "uniform"), specs):
            hit = rows[rows["key"] == spec.key()]
            measured[name] = ({"method": spec.method.label, "kld_mean": float(hit["kld_mean"].iloc[0]),
                               "weights_mib": float(hit["weights_mib"].iloc[0]),
                               "ppl": float(hit["ppl"].iloc[0])} if not hit.empty else None)
        if measured.get("recipe") and measured.get("uniform"):
            hit = rows[rows["key"] == run.key()].iloc[0]
            ci = budget.kl_interval(args.state_dir, hit, specs[0].key(), specs[1].key())
            if ci is not None:
                measured["recipe_minus_uniform_kld"] = {"estimate": ci.estimate, "lo": ci.lo,
                                                        "hi": ci.hi, "level": ci.level,
                                                        "verdict": budget.verdict(ci)}
        out["measured"] = measured
    if args.json:
        print(json.dumps(out, default=float))
        return 0
    print(f"recipe for {args.target_mib and f'{args.target_mib:g} MiB' or f'{args.target_bpw:g} bits per weight'} "
          f"from {sweep.meta['label']}:")
    print(f"  {r.describe()}")
    print("  (prediction: the sum of each unit's KLD alone, on the scoring slice)")
    for b, u in nearest:
        print(f"  uniform {b}-bit: {u.size_mib:.2f} MiB, predicted KLD {u.predicted_kld:.4g}")
    print(f"  run it: python -m qcompare run --method '{method_arg}'  (or --verify here)")
    for name in ("recipe", "uniform"):
        m = (measured or {}).get(name)
        if m:
            print(f"  measured {name}: {m['method'][:60]}: {m['weights_mib']:.2f} MiB, "
                  f"KLD {m['kld_mean']:.4g}, PPL {m['ppl']:.3f}")
    d = (measured or {}).get("recipe_minus_uniform_kld")
    if d:
        print(f"  recipe - uniform KLD: {d['estimate']:+.4g} [{d['lo']:+.4g}, {d['hi']:+.4g}] "
              f"({d['level']:.0%} paired bootstrap over windows): {d['verdict']}")
    return 0


def add_commands(sub) -> None:
    """The two subcommands, on the main parser's subparsers."""
    from qcompare.recipes.sensitivity import BITS

    p = sub.add_parser("sensitivity", help="per-layer (or per-Linear) KL divergence of quantizing "
                                           "each unit alone, measured, with the sweep's cost first")
    p.add_argument("--model", default="embedded")
    p.add_argument("--corpus", default="embedded")
    p.add_argument("--family", default=registry.unit_quantizers()[0], choices=registry.unit_quantizers())
    p.add_argument("--bits", type=_bits_arg, default=BITS, help="widths, e.g. 2,3,4,8")
    p.add_argument("--unit", default="linear", choices=("linear", "block"),
                   help="linear: each Linear of each layer; block: each decoder layer")
    p.add_argument("--group-size", type=int, default=128, help="0: one scale per output channel")
    p.add_argument("--asymmetric", action="store_true", help="zero points (default symmetric)")
    p.add_argument("--score-samples", type=int, default=4,
                   help="sequences of the scoring slice (of the calibration length)")
    p.add_argument("--effort", default="quick", choices=("quick", "thorough"),
                   help="evaluated tokens (excluded from the slices) and calibration size")
    p.add_argument("--tokens", type=int, default=None, help="evaluated tokens (effort's)")
    p.add_argument("--window", type=int, default=512,
                   help="the evaluation window of the runs that verify a recipe")
    p.add_argument("--calib-samples", type=int, default=None)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--top", type=int, default=5, help="units listed per width")
    p.add_argument("--dry-run", action="store_true", help="show the cost and stop")
    p.add_argument("--no-wait", action="store_true")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_sensitivity)

    p = sub.add_parser("recipe", help="bits per unit for a size, from a stored sensitivity sweep "
                                      "(exact knapsack on the predicted KLD); --verify measures it")
    p.add_argument("--target-mib", type=float, default=None, help="everything stored, MiB")
    p.add_argument("--target-bpw", type=float, default=None,
                   help="bits per weight of the quantized Linears, scales included")
    p.add_argument("--model", default=None, help="the sweep's model (a label or part of one)")
    p.add_argument("--family", default=None, choices=registry.unit_quantizers())
    p.add_argument("--sweep", default=None, help="a sweep's key (or its start)")
    p.add_argument("--no-keep", action="store_true", help="never leave a unit at 16 bits")
    p.add_argument("--verify", action="store_true",
                   help="measure the recipe and the largest uniform setting that is no bigger")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_recipe)
