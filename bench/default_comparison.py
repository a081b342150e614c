"""The default comparison from an empty state folder, as the Home button runs it.

Protocol: a fresh temporary state folder (the embedded model not converted, no baseline, no
results); `submit.preset_specs("default", EFFORT)` and `submit.submit(..., record_hits=True)`,
the two calls the Home button makes, start the job runner; the result folder is polled every
0.2 s. Reported: seconds from the click to the first result row (the Home chart's first
point) and to the last; each job's phases (from its row's `phases_json`: startup = process
start to the worker's first line, convert, load, reference pass, calibration draw, build,
evaluation with its KLD scoring, speed, roofline, write); a second click on the same state (median of 3), answered
from the cache; the rows' precision (PPL and KLD standard errors, decode spread and repeats);
the ranking by KLD with the paired gap between neighbours (qcompare.stats.ranking); and each speed
row's roofline %.

With --against thorough, the same comparison then runs at the thorough effort in the same
state folder (its converted model is reused; its baseline is another, over 4x the tokens),
and the two are compared method by method: how far quick's PPL and KLD are from thorough's,
and whether the KLD ranking is the same.

    python bench/default_comparison.py [--effort quick] [--against thorough]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.report import write_section  # noqa: E402

PHASES = ("startup", "convert", "load", "reference", "calibration", "build", "evaluation",
          "kld", "speed", "roofline", "write")


def run_click(state: Path, effort: str, timeout_s: float) -> dict:
    """One click on an empty (or warm) state folder; waits for every job to finish."""
    from qcompare.jobs.store import FINISHED, JobStore
    from qcompare.jobs.submit import preset_specs, submit
    from qcompare.store.results import ResultStore

    t0 = time.perf_counter()
    skipped: list = []
    subs = submit(preset_specs("default", effort, "cpu", skipped), state, record_hits=True)
    click_s = time.perf_counter() - t0
    keys = {s.spec.key(): s for s in subs}
    landed: dict[str, float] = {}
    store, results = JobStore.open(state), ResultStore(state)
    while time.perf_counter() - t0 < timeout_s:
        finished = all(store.get(s.job_id).state in FINISHED for s in subs if s.job_id)
        for k in keys:                       # a row lands before its job is marked done
            if k not in landed and results.has(k):
                landed[k] = time.perf_counter() - t0
        if finished:
            break
        time.sleep(0.2)
    jobs = {s.spec.key(): store.get(s.job_id) for s in subs if s.job_id}
    return {"subs": subs, "landed": landed, "jobs": jobs, "click_s": click_s,
            "skipped": skipped, "total_s": max(landed.values(), default=float("nan"))}


def repeat_click(state: Path, effort: str, n: int = 3) -> float:
    from qcompare.jobs.submit import preset_specs, submit

    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        subs = submit(preset_specs("default", effort, "cpu"), state, record_hits=True)
        times.append(time.perf_counter() - t0)
        if not all(s.cached for s in subs):
            raise RuntimeError("the repeated click queued work: the cache did not answer")
    return statistics.median(times)


def rows_of(state: Path, keys) -> "object":
    from qcompare.store.results import ResultStore

    df = ResultStore(state).load().frame
    return df[df["key"].isin(list(keys))]


def fmt(v, spec=".3f"):
    try:
        return "—" if v != v else format(v, spec)
    except (TypeError, ValueError):
        return "—"


def phase_table(df, click: dict) -> list[str]:
    lines = ["| # | method | landed at s | job s | " + " | ".join(PHASES) + " |",
             "|---|---|---|---|" + "---|" * len(PHASES)]
    totals = dict.fromkeys(PHASES, 0.0)
    order = sorted(click["landed"].items(), key=lambda kv: kv[1])
    by_key = df.set_index("key")
    for i, (key, at) in enumerate(order, 1):
        r = by_key.loc[key]
        ph = json.loads(r["phases_json"] or "{}")
        job = click["jobs"].get(key)
        job_s = (job.finished - job.started) if job and job.started and job.finished else float("nan")
        for p in PHASES:
            totals[p] += ph.get(p, 0.0)
        lines.append(f"| {i} | {r['method_label']} | {at:.1f} | {fmt(job_s, '.1f')} | "
                     + " | ".join(fmt(ph.get(p, 0.0), ".1f") for p in PHASES) + " |")
    lines.append("| | **sum** | | | " + " | ".join(f"**{totals[p]:.1f}**" for p in PHASES) + " |")
    return lines


def quality_table(df, state: Path) -> tuple[list[str], "object"]:
    from qcompare.stats import ranking

    lines = ["| method | effort | PPL ± se | KLD ± se | decode tok/s [min–max] (n) | "
             "decode roofline % | prefill tok/s | prefill % of matmul peak | weights MiB |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in df.sort_values("kld_mean").itertuples():
        lines.append(
            f"| {r.method_label} | {r.effort} | {r.ppl:.3f} ± {r.ppl_se:.3f} | "
            f"{r.kld_mean:.4f} ± {r.kld_se:.4f} | {fmt(r.decode_tok_s, '.1f')} "
            f"[{fmt(r.decode_tok_s_min, '.1f')}–{fmt(r.decode_tok_s_max, '.1f')}] "
            f"({fmt(r.speed_runs, '.0f')}) | {fmt(r.decode_roofline_pct, '.0f')} | "
            f"{fmt(r.prefill_tok_s, '.0f')} | {fmt(r.prefill_roofline_pct, '.0f')} | "
            f"{r.weights_mib:.1f} |")
    ranked = ranking.rank(df, state)
    lines += ["", "| rank | method | KLD | gap to next (paired) | its se | gap / se | verdict |",
              "|---|---|---|---|---|---|---|"]
    for r in ranked.itertuples():
        lines.append(f"| {r.rank} | {r.method_label} | {r.kld_mean:.4f} | {fmt(r.gap_to_next, '.4f')} "
                     f"| {fmt(r.gap_se, '.4f')} | {fmt(r.z, '.1f')} | {r.verdict} |")
    lines += ["", f"Ranking: {ranking.summary(ranked)}."]
    return lines, ranked


def against_table(quick, thorough, rq, rt) -> list[str]:
    t = thorough.set_index("method_label")
    lines = ["| method | PPL quick | PPL thorough | Δ PPL | Δ in thorough se | KLD quick | "
             "KLD thorough | Δ KLD | rank quick | rank thorough |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    rank_q = dict(zip(rq["method_label"], rq["rank"]))
    rank_t = dict(zip(rt["method_label"], rt["rank"]))
    for r in quick.sort_values("kld_mean").itertuples():
        if r.method_label not in t.index:
            continue
        o = t.loc[r.method_label]
        dk = (r.kld_mean / o["kld_mean"] - 1) * 100 if o["kld_mean"] > 0 else float("nan")
        lines.append(
            f"| {r.method_label} | {r.ppl:.3f} | {o['ppl']:.3f} | {(r.ppl / o['ppl'] - 1) * 100:+.1f}% | "
            f"{(r.ppl - o['ppl']) / o['ppl_se']:+.1f} | {r.kld_mean:.4f} | {o['kld_mean']:.4f} | "
            f"{fmt(dk, '+.1f')}% | {rank_q.get(r.method_label, '—')} | {rank_t.get(r.method_label, '—')} |")
    same = list(rq["method_label"]) == list(rt["method_label"])
    lines += ["", f"Same KLD ranking at both efforts: {'yes' if same else 'no'}."]
    if not same:
        # which neighbours swapped, and whether the quick ranking had called them apart
        verdict = dict(zip(rq["method_label"], rq["verdict"]))
        nxt = dict(zip(rq["method_label"], rq["next_label"]))
        swaps = [(a, b) for a, b in nxt.items() if b and rank_t.get(a, 0) > rank_t.get(b, 0)]
        for a, b in swaps:
            lines.append(f"- {a} and {b} swap places; the quick ranking called them "
                         f"{verdict[a]}.")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--effort", default="quick")
    ap.add_argument("--against", default="", help="a second effort to compare with (thorough)")
    ap.add_argument("--timeout", type=float, default=3600)
    ap.add_argument("--keep", default="", help="use (and keep) this state folder; must be empty")
    args = ap.parse_args()

    from qcompare.core import effort as efforts

    tmp = None if args.keep else tempfile.TemporaryDirectory(prefix="qcompare-bench-")
    state = Path(args.keep or tmp.name)
    state.mkdir(parents=True, exist_ok=True)
    if any(state.iterdir()):
        raise SystemExit(f"{state} is not empty: the benchmark starts from an empty state folder")
    click = run_click(state, args.effort, args.timeout)
    again = repeat_click(state, args.effort)
    df = rows_of(state, click["landed"])
    failed = [(j.label, j.error) for j in click["jobs"].values() if j.state != "done"]
    first = min(click["landed"].values(), default=float("nan"))
    e = efforts.get(args.effort)
    n = len(click["subs"])
    lines = [
        f"The default comparison (`sweep --preset default`, the Home button) on this machine, "
        f"effort **{args.effort}** ({e.summary}), from an empty state folder: the embedded "
        f"model not yet converted, no baseline. Command: `python bench/default_comparison.py "
        f"--effort {args.effort}{' --against ' + args.against if args.against else ''}`.",
        "",
        "| target | measured | target | met |", "|---|---|---|---|",
        f"| first point on the Home chart | {first:.1f} s | ≤ 60 s | {'yes' if first <= 60 else 'no'} |",
        f"| all {n} default runs | {click['total_s']:.1f} s ({click['total_s'] / 60:.2f} min) | ≤ 5 min | "
        f"{'yes' if click['total_s'] <= 300 else 'no'} |",
        f"| a repeated click (all cached; median of 3) | {again * 1000:.0f} ms | < 1 s | "
        f"{'yes' if again < 1 else 'no'} |",
        "",
    ]
    if failed:
        lines += [f"Failed runs: {'; '.join(f'{lbl}: {err}' for lbl, err in failed)}.", ""]
    if click["skipped"]:
        lines += [f"Skipped here: {'; '.join(f'{lbl} ({why})' for lbl, why in click['skipped'])}.", ""]
    lines += ["Per job, in the order the points landed (seconds; `job s` is the worker process "
              "from start to exit, so it also holds the process exit; `kld`, scoring the logits "
              "against the baseline, is part of `evaluation`, and fp32 reuses the baseline "
              "pass's numbers):", ""]
    lines += phase_table(df, click)
    first_row = df.dropna(subset=["mem_bandwidth_gbs"]).iloc[0]
    lines += ["", "Precision and roofline of each row (sorted by KLD; roofline against this "
              f"machine's {first_row['mem_bandwidth_gbs']:.1f} GB/s, measured "
              f"{first_row['machine_measured_at']}, see qcompare/metrics/roofline.py):", ""]
    qlines, ranked = quality_table(df, state)
    lines += qlines
    if args.against:
        click2 = run_click(state, args.against, args.timeout)
        df2 = rows_of(state, click2["landed"])
        lines += ["", f"### {args.against} effort in the same state folder", "",
                  f"First point {min(click2['landed'].values()):.1f} s, all runs "
                  f"{click2['total_s']:.1f} s ({click2['total_s'] / 60:.1f} min) "
                  "(the converted model reused, its own baseline pass over 4x the tokens).", ""]
        lines += phase_table(df2, click2)
        lines += [""]
        qlines2, ranked2 = quality_table(df2, state)
        lines += qlines2
        lines += ["", f"### {args.effort} against {args.against}", ""]
        lines += against_table(df, df2, ranked, ranked2)
    title = f"Default comparison from an empty state ({args.effort})"
    write_section(title, "\n".join(lines))
    print("\n".join(lines))
    if tmp:
        tmp.cleanup()


if __name__ == "__main__":
    main()
