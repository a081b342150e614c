"""The pipeline without a browser: `python -m qcompare methods | run | sweep | results | jobs |
cancel | recommend | report | sensitivity | recipe` (the last two: `qcompare.cli.recipes`).

The CLI never imports torch: work runs in worker processes started by the runner.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

from qcompare.cli.waiting import open_store, wait
from qcompare.core import statedir
from qcompare.core.columns import names as column_names
from qcompare.core.errors import UserError
from qcompare.core.statedir import default_state_dir

SHOW_COLUMNS = column_names(brief=True)


def _add_eval_args(p: argparse.ArgumentParser) -> None:
    from qcompare.core.effort import DEFAULT_EFFORT, EFFORTS
    from qcompare.core.specs import CalibSpec, EvalSpec

    d = EvalSpec()
    p.add_argument("--effort", default=DEFAULT_EFFORT, choices=tuple(EFFORTS),
                   help="how much measuring: " + "; ".join(f"{e.name}: {e.summary}"
                                                           for e in EFFORTS.values())
                        + f" (default {DEFAULT_EFFORT}). Flags below override its values")
    p.add_argument("--model", default="embedded",
                   help="embedded | a local Hugging Face folder | a hub id | a .gguf file")
    p.add_argument("--corpus", default="embedded",
                   help="embedded | path to a UTF-8 text file | hf:NAME:CONFIG:SPLIT")
    p.add_argument("--tokens", type=int, default=None, help="corpus tokens evaluated (effort's)")
    p.add_argument("--window", type=int, default=d.window, help="tokens per window")
    p.add_argument("--stride", type=int, default=d.stride, help="strided protocol step (0: window/2)")
    p.add_argument("--protocol", default=d.protocol, help="disjoint | llamacpp | strided")
    p.add_argument("--device", default=d.device, help="cpu | cuda")
    p.add_argument("--dtype", default=d.dtype, help="compute dtype of dequantizing methods")
    p.add_argument("--speed-prompt", type=int, default=None, help="prompt tokens (effort's)")
    p.add_argument("--speed-new-tokens", type=int, default=None, help="new tokens (effort's)")
    p.add_argument("--speed-repeats", type=int, default=None,
                   help="most timed repeats, 0 skips speed (effort's)")
    p.add_argument("--speed-spread", type=float, default=None,
                   help="stop repeating once decode's (max-min)/median is at most this (effort's)")
    p.add_argument("--threads", type=int, default=d.threads, help="CPU threads (0: all)")
    c = CalibSpec()
    p.add_argument("--calib-corpus", default="",
                   help="calibration text for methods that calibrate (default: the evaluation "
                        "corpus, after the evaluated tokens); same forms as --corpus")
    p.add_argument("--calib-samples", type=int, default=None, help="calibration sequences (effort's)")
    p.add_argument("--calib-len", type=int, default=None,
                   help="tokens per calibration sequence (effort's)")
    p.add_argument("--calib-seed", type=int, default=c.seed, help="seed of the calibration draw")
    p.add_argument("--runner", default="local", choices=("local", "ray"),
                   help="local: worker processes here; ray: one Ray task per job on a cluster")
    p.add_argument("--address", default=None,
                   help="the Ray cluster (default $RAY_ADDRESS or auto: a head on this machine)")
    p.add_argument("--trust-remote-code", action="store_true",
                   help="allow a model's own Python code to run (never by default)")
    p.add_argument("--allow-pickle", action="store_true",
                   help="allow pickle (.bin/.pt) checkpoints (refused by default)")


def _specs_from_args(args, method_args: list[str], skipped: list | None = None):
    from dataclasses import replace

    from qcompare.core import effort, registry
    from qcompare.core.specs import CalibSpec, EvalSpec
    from qcompare.jobs.submit import build_specs
    from qcompare.sources import corpora, models

    def given(**values) -> dict:            # the flags typed, over the effort's values
        return {k: v for k, v in values.items() if v is not None}

    methods = [registry.parse_method_arg(m) for m in method_args]
    # one EvalSpec from the effort's values with the typed flags over them, so its checks see
    # the numbers the person typed (not the effort's tokens beside a typed window)
    ev = EvalSpec(window=args.window, stride=args.stride, protocol=args.protocol,
                  device=args.device, dtype=args.dtype, threads=args.threads,
                  **{**effort.get(args.effort).eval,
                     **given(tokens=args.tokens, speed_prompt=args.speed_prompt,
                             speed_new_tokens=args.speed_new_tokens,
                             speed_repeats=args.speed_repeats, speed_spread=args.speed_spread)})
    model = models.model_from_arg(args.model, args.trust_remote_code, args.allow_pickle)
    corpus = corpora.corpus_from_arg(args.corpus)
    calib_corpus = corpora.corpus_from_arg(args.calib_corpus) if args.calib_corpus else corpus
    calib = replace(effort.calib_spec(args.effort, calib_corpus,
                                      CalibSpec(corpus=calib_corpus, seed=args.calib_seed)),
                    **given(samples=args.calib_samples, seq_len=args.calib_len))
    return build_specs(model, methods, corpus, ev, calib, skipped)


def _fmt(v) -> str:
    if isinstance(v, float):
        return "—" if math.isnan(v) else (f"{v:.4g}" if abs(v) < 1e5 else f"{v:.0f}")
    return "—" if v is None else str(v)


def _print_table(rows: list[dict], columns: list[str], out=sys.stdout) -> None:
    cells = [[_fmt(r.get(c)) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)), file=out)
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)), file=out)


def _jsonable(row: dict) -> dict:
    out = {}
    for k, v in row.items():
        if hasattr(v, "isoformat"):
            v = v.isoformat()
        elif isinstance(v, float) and math.isnan(v):
            v = None
        out[k] = v
    return out


def cmd_methods(args) -> int:
    from qcompare.core import registry

    rows = []
    for cls in registry.all_methods():
        reasons = {d: cls.unavailable_reason(d) for d in ("cpu", "cuda")}
        rows.append({"name": cls.name, "family": cls.family, "summary": cls.summary,
                     "available": {d: r is None for d, r in reasons.items()},
                     "why_not": {d: r for d, r in reasons.items() if r},
                     "options": cls.config_cls.option_table()})
    if args.json:
        print(json.dumps(rows, indent=1, default=str))
        return 0
    from qcompare.i18n import catalogue as i18n

    lang = args.lang
    for r in rows:
        cls = registry.get(r["name"])
        where = ", ".join(d for d, ok in r["available"].items() if ok) or i18n.t("cli.nowhere", lang)
        calib = i18n.t("cli.calibrates", lang) if cls.may_calibrate() else ""
        print(f"{r['name']:<8} [{i18n.family(r['family'], lang)}] {i18n.method_summary(cls, lang)}{calib}")
        print(f"{'':8} {i18n.t('cli.runs_on', lang, where=where)}")
        for d, why in r["why_not"].items():
            print(f"{'':8} {d}: {why}")
        for o in r["options"]:
            choices = f" {{{'|'.join(map(str, o['choices']))}}}" if o["choices"] else ""
            print(f"{'':8} --set {o['name']}={o['default']}{choices}  {i18n.option_help(o['help'], lang)}")
    return 0


def _submit(args, method_args: list[str], skipped: list | None = None):
    from qcompare.jobs.submit import submit

    open_store(args.state_dir)
    subs = submit(_specs_from_args(args, method_args, skipped), args.state_dir,
                  runner=args.runner, address=args.address)
    for s in subs:
        if s.note:
            print(f"note: {s.spec.method.label}: {s.note}", file=sys.stderr)
    return subs


def cmd_run(args) -> int:
    from qcompare.store.results import ResultStore

    method = args.method + (":" + ",".join(args.set) if args.set else "")
    (sub,) = _submit(args, [method])
    if not sub.cached:
        wait(args.state_dir, [sub.job_id], args.quiet)
    row = ResultStore(args.state_dir).get(sub.spec.key())
    if row is None:
        job = open_store(args.state_dir).get(sub.job_id)
        print(f"job #{job.id} {job.state}: {job.error}", file=sys.stderr)
        if job.traceback and args.verbose:
            print(job.traceback, file=sys.stderr)
        return 1
    if sub.cached:
        print("(cache hit: stored result)", file=sys.stderr)
    if args.json:
        print(json.dumps(_jsonable(row), default=str))
    else:
        _print_table([row], SHOW_COLUMNS)
    return 0


def cmd_sweep(args) -> int:
    from qcompare.core.presets import preset_methods

    methods = list(args.method)
    skipped = None
    if args.preset:
        # a preset means "its methods that can run here": the others are named, not fatal
        methods = [m.label for m in preset_methods(args.preset, args.device)] + methods
        skipped = []
    if not methods:
        raise UserError("name the methods to run: --method NAME (repeat it) or --preset default.")
    subs = _submit(args, methods, skipped)
    for label, reason in skipped or []:
        print(f"skipped {label}: {reason}", file=sys.stderr)
    for s in subs:
        what = "cache hit" if s.cached else (f"#{s.job_id} queued" if s.new
                                             else f"#{s.job_id} already queued")
        print(f"{what}: {s.spec.method.label}", file=sys.stderr)
    if args.no_wait:
        return 0
    waiting = [s.job_id for s in subs if not s.cached]
    wait(args.state_dir, waiting, args.quiet)
    store = open_store(args.state_dir)
    failed = [j for j in (store.get(i) for i in waiting) if j.state != "done"]
    for j in failed:
        print(f"#{j.id} {j.state}: {j.label}: {j.error}", file=sys.stderr)
    return 1 if failed else 0


def cmd_results(args) -> int:
    from qcompare.store.results import ResultStore

    loaded = ResultStore(args.state_dir).load()
    for name, msg in loaded.errors:
        print(f"warning: skipped unreadable result file {name}: {msg}", file=sys.stderr)
    df = loaded.frame
    if args.format == "table":
        if df.empty:
            print("no results yet: python -m qcompare run --model embedded --method fp32")
            return 0
        _print_table(df.to_dict("records"), SHOW_COLUMNS)
    elif args.format == "csv":
        if args.output:
            write_output(args.output, lambda path: df.to_csv(path, index=False))
        else:
            df.to_csv(sys.stdout, index=False)
    elif args.format == "json":
        text = json.dumps([_jsonable(r) for r in df.to_dict("records")], default=str, indent=1)
        if args.output:
            write_output(args.output, lambda path: Path(path).write_text(text, encoding="utf-8"))
        else:
            print(text)
    else:
        if not args.output:
            raise UserError("parquet export needs --output FILE.parquet")
        write_output(args.output, lambda path: df.to_parquet(path, index=False))
    return 0


def write_output(output: str | Path, write) -> None:
    """Run `write(path)` for an --output, refusing a folder or a missing parent first, and
    turning what the file system answers (no space, /dev/full, a read-only or forbidden
    folder) into one line that says what to do; a file this call created and could not finish
    is removed, so no half-written export is left behind."""
    import errno

    out = Path(output)
    if out.is_dir():
        raise UserError(key="errors.output_is_folder", output=output)
    if not out.resolve().parent.is_dir():
        raise UserError(key="errors.output_no_folder", output=output, folder=out.resolve().parent)
    existed = out.exists()
    try:
        write(str(out))
    except OSError as e:
        if not existed and out.is_file():
            out.unlink(missing_ok=True)
        code = getattr(e, "errno", None)
        if code == errno.ENOSPC:
            raise UserError(key="errors.output_full", output=output) from None
        if code in (errno.EACCES, errno.EPERM, errno.EROFS) or "ermission" in str(e) \
                or "ead-only" in str(e):
            raise UserError(key="errors.output_forbidden", output=output,
                            folder=out.resolve().parent) from None
        raise UserError(key="errors.output_failed", output=output,
                        error=getattr(e, "strerror", None) or str(e)) from None


def cmd_jobs(args) -> int:
    from qcompare.jobs.runner import process_alive
    from qcompare.jobs.status import classify, eta_seconds, stalled_error

    jobs = open_store(args.state_dir).list()
    if not jobs:
        print("no jobs yet")
        return 0
    now = time.time()
    rows = []
    for j in jobs:
        state = classify(j, process_alive(j.pid, j.pid_start) if j.state == "running" else None)
        eta = None if state == "stalled" else eta_seconds(j, now)
        error = str(stalled_error(j, now)) if state == "stalled" else (j.error or "")
        rows.append({"id": j.id, "state": state, "progress": f"{j.progress:.0%}",
                     "stage": j.stage[:50], "eta_s": None if eta is None else round(eta),
                     "job": j.label[:60], "error": error[:80]})
    _print_table(rows, ["id", "state", "progress", "stage", "eta_s", "job", "error"])
    stalled = [j for j, r in zip(jobs, rows) if r["state"] == "stalled"]
    for j in stalled:                         # the whole advice, not cut to a column
        print(f"\n{stalled_error(j, now)}")
    return 0


def cmd_cancel(args) -> int:
    from qcompare.jobs.runner import cancel

    ok = cancel(open_store(args.state_dir), args.job)
    print(f"job #{args.job} {'cancelled' if ok else 'was not queued or running'}")
    return 0 if ok else 1


def _model_rows(state_dir: Path, model: str | None):
    """Result rows, of one model when `model` is given (a label or a substring of one)."""
    from qcompare.store.results import ResultStore

    df = ResultStore(state_dir).load().frame
    if model and not df.empty:
        df = df[df["model"].str.contains(model, case=False, regex=False)]
    return df


def _shape_arg(args, rows):
    """The calculator's shape: --config, --preset, --params, else the rows' model's own."""
    from qcompare.core.specs import RunSpec
    from qcompare.decide import catalog, shapes, sizing

    if args.config:
        path = Path(args.config)
        try:
            if path.is_dir():
                return shapes.shape_of_folder(path)
            cfg = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise UserError(f"cannot read the config {args.config}: {e}") from None
        if not isinstance(cfg, dict):
            raise UserError(key="errors.model_config_not_object", config=path,
                            kind=type(cfg).__name__)
        try:
            return sizing.ModelShape.from_config(cfg, path.stem)
        except (ValueError, TypeError, KeyError) as e:
            raise UserError(f"cannot read the config {args.config}: {e}") from None
    if args.preset:
        if args.preset not in catalog.MODELS:
            raise UserError(f"unknown preset {args.preset!r}; known: {', '.join(catalog.MODELS)}")
        return catalog.MODELS[args.preset]
    if args.params:
        return sizing.shape_from_params(args.params, catalog.MODELS)
    if not rows.empty:
        return shapes.shape_of(RunSpec.from_json(rows.sort_values("finished_at")["spec_json"].iloc[-1]).model)
    return None


def _check_recommend_numbers(args) -> None:
    """One line for a number no machine or model can have (negative, zero, NaN, infinite),
    instead of a recommendation that quotes it ("has nan GiB") or ignores it."""
    limits = (("--memory-gb", args.memory_gb, "a positive number of GiB", False),
              ("--max-memory-gb", args.max_memory_gb, "a positive number of GiB", False),
              ("--params", args.params, "a positive parameter count", False),
              ("--max-kld", args.max_kld, "a KL divergence of 0 or more (nats)", True),
              ("--max-ppl-increase", args.max_ppl_increase, "a percentage of 0 or more", True),
              ("--min-decode-tok-s", args.min_decode_tok_s, "a speed of 0 or more tokens/s", True))
    for flag, value, what, zero_ok in limits:
        if value is not None and (not math.isfinite(value) or value < 0 or (value == 0 and not zero_ok)):
            raise UserError(f"{flag} needs {what}; got {value:g}.")


def cmd_recommend(args) -> int:
    from dataclasses import asdict

    from qcompare.decide import recommend
    from qcompare.i18n import catalogue as i18n

    _check_recommend_numbers(args)
    try:
        c = recommend.Constraints(
            memory_gib=args.memory_gb, device=args.device, gpus=args.gpus, context=args.context,
            batch=args.batch, finetune=args.finetune, priority=args.priority, max_kld=args.max_kld,
            max_ppl_increase_pct=args.max_ppl_increase, min_decode_tok_s=args.min_decode_tok_s,
            max_memory_gib=args.max_memory_gb)
    except ValueError as e:
        raise UserError(str(e)) from None
    rows = _model_rows(args.state_dir, args.model)
    if args.preset or args.params or args.config:
        rows = rows.iloc[:0] if not args.model else rows        # a size alone: rules only
    shape = _shape_arg(args, rows)
    lang = "en" if args.json else args.lang          # --json stays English, for scripts
    rec = recommend.recommend(rows, shape, c, args.state_dir, lang)
    if args.json:
        out = rec.to_dict()
        out["constraints"] = asdict(c)
        out["model"] = asdict(shape) if shape else None
        print(json.dumps(out, indent=1, default=str))
        return 0

    def t(key, **v):
        return i18n.t(f"cli.{key}", lang, **v)

    print(t("rec_measured" if rec.measured else "rec_none", basis=rec.basis))
    for ch in rec.measured:
        print(f"  {ch.rank}. {ch.method_label}: {ch.reason}")
    if rec.excluded:
        print(t("rec_excluded"))
        for e in rec.excluded:
            print(f"  - {e.method_label}: {recommend.limit_name(e.limit, lang)}: {e.detail}")
    print(t("rec_rules"))
    for r in rec.rules:
        queue = f" [{', '.join(r.methods)}]" if r.methods else ""
        print("  * " + t("rec_rule", text=r.text, why=r.why) + queue)
    return 0


def cmd_report(args) -> int:
    from qcompare.charts import report
    from qcompare.metrics import roofline
    from qcompare.sources import published

    out = Path(args.output)
    if out.is_dir():
        raise UserError(key="errors.output_is_folder", output=args.output)
    if not out.resolve().parent.is_dir():            # said before the rows are read
        raise UserError(key="errors.output_no_folder", output=args.output,
                        folder=out.resolve().parent)
    rows = _model_rows(args.state_dir, args.model)
    for col, values in (("method", args.method), ("effort", args.effort), ("device", args.device)):
        if values and not rows.empty:
            rows = rows[rows[col].isin(values)]
    if rows.empty:
        raise UserError("no result rows match these filters: python -m qcompare results lists "
                        "what is stored.")
    text = report.build(rows, title=args.title, published=published.load() if args.published else None,
                        machine=roofline.cached_profiles(args.state_dir), lang=args.lang)
    write_output(out, lambda path: Path(path).write_text(text, encoding="utf-8"))
    print(f"wrote {out} ({len(text) / 1e6:.1f} MB, {len(rows)} rows): it opens offline in any browser")
    return 0


def cmd_pack(args) -> int:
    """Write a demo pack of stored rows (--output), or merge one into the state folder (--load)
    (`qcompare.store.pack`)."""
    from qcompare.store import pack

    if args.load:
        from qcompare.sources.paths import user_path

        got = pack.load(args.state_dir, user_path(args.load))
        m = got.manifest
        print(f"loaded {args.load} (made {m['created_at']} on {m['machine']} by {m['who'] or '?'}): "
              f"{got.rows_added} row(s) added, {got.rows_kept} already here and kept; "
              f"{len(got.added)} file(s) written")
        return 0
    rows = _model_rows(args.state_dir, args.model)
    for col, values in (("method", args.method), ("effort", args.effort), ("device", args.device)):
        if values and not rows.empty:
            rows = rows[rows[col].isin(values)]
    if rows.empty:
        raise UserError(key="errors.pack_nothing")
    out = Path(args.output)
    if not out.resolve().parent.is_dir():
        raise UserError(key="errors.output_no_folder", output=args.output, folder=out.resolve().parent)
    manifest = {}
    write_output(out, lambda path: manifest.update(pack.write(
        args.state_dir, path, list(rows["key"]), who=args.who, logprobs=args.logprobs)))
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB): {len(manifest['rows'])} row(s), "
          f"{len(manifest['baselines'])} baseline(s), {len(manifest['sensitivity'])} sensitivity "
          f"sweep(s); load it with: python -m qcompare pack --load {out.name}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m qcompare", description=__doc__)
    ap.add_argument("--home", dest="state_dir", type=Path, default=None,
                    help="state folder (default: $QCOMPARE_HOME or the repository's data/)")
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("methods", help="every method, its options, and where it can run")
    p.add_argument("--json", action="store_true")
    p.add_argument("--lang", default="en", choices=("en", "ja"),
                   help="language of the text (summaries and option help); --json stays English")
    p.set_defaults(func=cmd_methods)

    p = sub.add_parser("run", help="measure one method and print its row (waits)")
    p.add_argument("--method", required=True, help="method name, e.g. rtn")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a method option; repeat for several")
    p.add_argument("--json", action="store_true", help="print the row as one JSON object")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.add_argument("--verbose", action="store_true", help="print the traceback of a failure")
    _add_eval_args(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("sweep", help="queue several methods and show their progress")
    p.add_argument("--method", action="append", default=[],
                   help="NAME or NAME:key=value,key=value; repeat for several")
    p.add_argument("--preset", default="",
                   help="a named method list, e.g. 'default' (the Home page's comparison: the "
                        "methods of it that run on --device), before any --method")
    p.add_argument("--no-wait", action="store_true", help="queue and return")
    p.add_argument("--quiet", action="store_true")
    _add_eval_args(p)
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("results", help="show or export the result cache")
    p.add_argument("--format", choices=("table", "csv", "json", "parquet"), default="table")
    p.add_argument("--output", help="file to write (stdout for csv/json when omitted)")
    p.set_defaults(func=cmd_results)

    p = sub.add_parser("jobs", help="queued / running (with progress) / done / failed jobs")
    p.set_defaults(func=cmd_jobs)

    p = sub.add_parser("cancel", help="cancel a queued or running job")
    p.add_argument("job", type=int)
    p.set_defaults(func=cmd_cancel)

    p = sub.add_parser("recommend", help="which method to deploy: measured rows that fit the "
                                         "limits, ranked and explained, and the rules of thumb")
    p.add_argument("--memory-gb", type=float, default=None,
                   help="memory per device in GiB (each GPU, or the CPU's RAM)")
    p.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    p.add_argument("--gpus", type=int, default=1)
    p.add_argument("--context", type=int, default=4096, help="context length in tokens")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--finetune", action="store_true", help="it will be fine-tuned (QLoRA)")
    p.add_argument("--priority", default="quality", choices=("quality", "speed", "size"))
    p.add_argument("--max-kld", type=float, default=None)
    p.add_argument("--max-ppl-increase", type=float, default=None, help="in %% over the baseline")
    p.add_argument("--min-decode-tok-s", type=float, default=None)
    p.add_argument("--max-memory-gb", type=float, default=None, help="limit on the total, GiB")
    p.add_argument("--model", default=None, help="measured rows of this model (a label or part of one)")
    p.add_argument("--preset", default=None, help="size a known model (e.g. Llama-2-7B) by rules")
    p.add_argument("--params", type=float, default=None, help="size a model by parameter count")
    p.add_argument("--config", default=None, help="a config.json (or its folder) to size")
    p.add_argument("--json", action="store_true")
    p.add_argument("--lang", default="en", choices=("en", "ja"),
                   help="language of the reasons and rules; --json stays English")
    p.set_defaults(func=cmd_recommend)

    p = sub.add_parser("report", help="one self-contained HTML file (charts, rows, specs, "
                                      "environment) that opens offline")
    p.add_argument("--output", required=True, help="the .html file to write")
    p.add_argument("--model", default=None, help="rows of this model (a label or part of one)")
    p.add_argument("--method", action="append", default=[], help="only these methods (repeat)")
    p.add_argument("--effort", action="append", default=[], help="only these efforts (repeat)")
    p.add_argument("--device", action="append", default=[], help="only these devices (repeat)")
    p.add_argument("--published", action="store_true", help="include the published layer")
    p.add_argument("--title", default="qcompare report")
    p.add_argument("--lang", default="en", choices=("en", "ja"),
                   help="language of the report's text and charts")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("pack", help="a demo pack: stored rows, their per-token files, baselines' "
                                    "side files and noise floors in one file; or load one")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--output", help="the .qcpack file to write")
    what.add_argument("--load", help="a .qcpack file to merge into the state folder")
    p.add_argument("--model", default=None, help="rows of this model (a label or part of one)")
    p.add_argument("--method", action="append", default=[], help="only these methods (repeat)")
    p.add_argument("--effort", action="append", default=[], help="only these efforts (repeat)")
    p.add_argument("--device", action="append", default=[], help="only these devices (repeat)")
    p.add_argument("--who", default="", help="who made the pack (default: this user)")
    p.add_argument("--logprobs", action="store_true",
                   help="also the baselines' log-probabilities (large), so new runs on them "
                        "need no baseline pass")
    p.set_defaults(func=cmd_pack)

    from qcompare.cli.recipes import add_commands
    add_commands(sub)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.state_dir = statedir.resolve(args.state_dir) if args.state_dir else default_state_dir()
        if args.state_dir.exists() and not args.state_dir.is_dir():
            raise UserError(f"the state folder {args.state_dir} is a file, not a folder: pick a "
                            "folder with --home or QCOMPARE_HOME.")
        return args.func(args)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
