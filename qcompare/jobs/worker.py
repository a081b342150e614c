"""The worker: `run(spec, state_dir, report) -> row`, the whole measurement of one RunSpec.

Stages: prepare (model folder, tokens) -> baseline log-probabilities (once per model, corpus and
protocol) -> calibration draw (cached, shared by a sweep) -> load + quantize (method.build, its
own memory phase) -> quality over the windows (one fused pass each) -> speed -> roofline (the
machine measured once) -> per-token scores, row -> Parquet. Each stage's wall time goes on the
row (`phases_json`; `kld`, the scoring of the logits against the baseline, is part of
`evaluation`). `python -m qcompare.jobs.worker --state-dir DIR --job ID` runs one job of the
job table in this process and records its outcome there; the runner spawns it.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import errno
import gc
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path
from typing import Callable

import numpy as np

from qcompare import __version__
from qcompare.core import diskspace
from qcompare.core.errors import UserError
from qcompare.core.specs import PROTOCOL_VERSION, RunSpec
from qcompare.jobs import noise_job, prepare
from qcompare.sources import corpora, models
from qcompare.stats import noisefloor
from qcompare.store.results import ResultStore, check_finite

Report = Callable[[str, float], None]          # (stage, fraction of the whole job)
# The divergence of the baseline from itself, exactly: both sides are the same log-probabilities.
SELF_DIVERGENCE = {"kld_mean": 0.0, "kld_se": 0.0, "kld_p99": 0.0, "top1_agree": 1.0,
                   "delta_p_mean": 0.0}


def _with_test_pause(report: Report) -> Report:
    """Test seam: QCOMPARE_TEST_PAUSE="<stage prefix>:<seconds>" makes the worker sleep the
    first time it reports a stage starting with that prefix, so the reliability tests can kill
    it in a known stage. Unset (always, outside tests): `report` itself."""
    seam = os.environ.get("QCOMPARE_TEST_PAUSE", "")
    if not seam:
        return report
    prefix, _, seconds = seam.rpartition(":")
    paused = []

    def paused_report(stage: str, frac: float) -> None:
        report(stage, frac)
        if not paused and stage.startswith(prefix):
            paused.append(stage)
            report(stage, frac)                           # written even inside min_interval
            time.sleep(float(seconds))
    return paused_report


def _phase(report: Report, lo: float, hi: float) -> Report:
    """A reporter for a sub-range [lo, hi] of the job's progress."""
    return lambda stage, frac: report(stage, lo + (hi - lo) * min(max(frac, 0.0), 1.0))


def _evaluate(runtime, ids, nbytes, windows, bos_id, report: Report,
              reference=None, writer=None) -> tuple[dict, dict]:
    """Quality over all windows through `runtime` (one fused pass per window,
    `metrics.quality.score_window`); divergence against `reference`, or log-probs into
    `writer`. Returns (the row's quality numbers, per-token arrays: nll and, with a
    reference, kl; and `scoring_s`, the seconds spent scoring the logits — the KLD phase, when
    there is a reference — rather than running the model)."""
    from qcompare.metrics import quality as q

    parts: dict[str, list] = {"nll": [], "kl": [], "same_top": [], "dp": []}
    scored_bytes, offset, scoring_s = 0, 0, 0.0
    for i, w in enumerate(windows):
        logits, targets = q.window_logits(runtime, ids, w, bos_id)
        t0 = time.perf_counter()
        base16 = None
        if reference is not None:
            base16, base_targets = reference.rows(offset, w.n_scored)
            if not np.array_equal(base_targets, targets.cpu().numpy()):
                raise RuntimeError("the cached baseline was computed on other tokens; delete "
                                   f"{reference.meta.get('folder', 'its folder')} and run again")
        scores = q.score_window(logits, targets, base16, keep_logprobs=writer is not None)
        scoring_s += time.perf_counter() - t0
        del logits
        if writer is not None:
            writer.append(scores["lp16"], targets.cpu().numpy())
        for k in parts:
            if k in scores:
                parts[k].append(scores[k])
        scored_bytes += int(nbytes[w.start + w.score_from:w.end].sum())
        offset += w.n_scored
        report(f"perplexity window {i + 1}/{len(windows)}", (i + 1) / len(windows))
    nll_all = np.concatenate(parts["nll"])
    ppl, ppl_se = q.perplexity(nll_all)
    bpb, byte_ppl = q.byte_metrics(float(nll_all.sum()), scored_bytes)
    out = {"ppl": ppl, "ppl_se": ppl_se, "nll_mean": float(nll_all.mean()),
           "bits_per_byte": bpb, "byte_ppl": byte_ppl,
           "n_scored": int(nll_all.size), "n_bytes": scored_bytes}
    per_token = {"nll": nll_all, "scoring_s": scoring_s}
    if reference is not None:
        kl = np.concatenate(parts["kl"])
        out.update(q.summarize_divergence(kl, np.concatenate(parts["same_top"]),
                                          np.concatenate(parts["dp"])))
        per_token["kl"] = kl
        per_token["same_top"] = np.concatenate(parts["same_top"])
    return out, per_token


def evaluation_tokens(opened: prepare.Opened):
    """(token ids, the bytes each owns, the protocol's windows) of the spec's evaluation: the
    corpus's first `tokens` tokens (`metrics.quality`)."""
    from qcompare.metrics import quality as q

    ev, spec = opened.spec.eval, opened.spec
    ids, nbytes = q.tokenize_stream(opened.tokenizer, corpora.load_checked(spec.corpus), ev.tokens)
    if len(ids) < ev.tokens:
        raise UserError(key="errors.corpus_tokens", label=spec.corpus.label, n=len(ids),
                        tokens=ev.tokens)
    if ev.bos_stream:
        bos = opened.tokenizer.bos_token_id
        ids, nbytes = (q.bos_first(ids, bos, ev.tokens, ids, bos),
                       q.bos_first(nbytes, 0, ev.tokens, ids, bos))
    return ids, nbytes, q.plan_windows(len(ids), ev.window, ev.protocol, ev.effective_stride)


def _ensure_reference(opened: prepare.Opened, ids, nbytes, windows, bos_id, report: Report):
    """Baseline (fp32) log-probabilities for this model, corpus and protocol, computed once."""
    from qcompare.runtime.torch_model import TorchRuntime
    from qcompare.store.reference import ReferenceStore

    spec = opened.spec
    store, key = ReferenceStore(opened.state_dir), spec.reference_key()
    with store.lock(key):
        if not store.exists(key):
            report("baseline: loading fp32 reference", 0.0)
            runtime = TorchRuntime(opened.load("float32"), spec.eval.device)
            n_scored = sum(w.n_scored for w in windows)
            diskspace.require(store.dir, 2 * n_scored * runtime.vocab_size,
                              "the baseline's log-probabilities (fp16, one row per scored token)")
            with store.write(key, n_scored, runtime.vocab_size,
                             {"model": spec.model.label, "protocol": spec.eval.protocol}) as writer:
                t0 = time.perf_counter()
                baseline, per_token = _evaluate(runtime, ids, nbytes, windows, bos_id,
                                                lambda s, f: report(f"baseline: {s}", f),
                                                writer=writer)
                writer.meta.update(quality=baseline, eval_s=time.perf_counter() - t0)
                writer.nll = per_token["nll"]
            del runtime
            gc.collect()
            report(f"baseline ready (PPL {baseline['ppl']:.3f})", 1.0)
    reader = store.read(key)
    reader.meta["folder"] = str(store.folder(key))
    return reader


def _versions(library: str) -> dict:
    from importlib.metadata import PackageNotFoundError, version

    import torch
    import transformers

    try:
        lib_version = version(library) if library else ""
    except PackageNotFoundError:
        lib_version = ""
    return {"python_version": platform.python_version(), "torch_version": torch.__version__,
            "transformers_version": transformers.__version__, "qcompare_version": __version__,
            "library_version": lib_version}


def device_name(device: str) -> str:
    """The GPU's name on cuda, else the CPU model from /proc/cpuinfo."""
    if device == "cuda":
        import torch
        return torch.cuda.get_device_name()
    name = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return name


class PhaseClock:
    """Wall seconds per named phase of a job (`with clock("build"): ...`), kept on the row as
    `phases_json` so a slow run can say where its time went."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, name: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0


def run(spec: RunSpec, state_dir: str | os.PathLike, report: Report = lambda s, f: None,
        process_started: float | None = None) -> dict:
    """Measure one spec and write its row to the result cache; returns the row.
    `process_started` (epoch seconds) is when the worker process began: the time until this
    call is the job's `startup` phase."""
    import torch

    from qcompare.core import effort
    from qcompare.metrics import quality as q
    from qcompare.metrics import roofline
    from qcompare.metrics.memory import PhasePeak
    from qcompare.metrics.speed import measure_speed
    from qcompare.stats import kldist
    from qcompare.store.reference import ensure_pieces
    from qcompare.store.tokenscores import TokenScores

    state_dir = Path(state_dir)
    clock = PhaseClock()
    if process_started is not None:
        clock.seconds["startup"] = max(time.time() - process_started, 0.0)
    report = _with_test_pause(report)
    started = dt.datetime.now(dt.timezone.utc)
    ev = spec.eval

    report("preparing model", 0.0)
    # Test seam: lets the runner tests cancel or kill a worker in a known stage.
    time.sleep(float(os.environ.get("QCOMPARE_TEST_WORKER_DELAY_S", "0")))
    with clock("convert"):
        opened = prepare.open_spec(spec, state_dir, _phase(report, 0.0, 0.05))
    method_cls, method, tokenizer = opened.method_cls, opened.method, opened.tokenizer
    with clock("load"):
        prepare.check_memory(opened)
        ids, nbytes, windows = evaluation_tokens(opened)
        text = corpora.load_checked(spec.corpus)
        bos_id = tokenizer.bos_token_id
    with clock("reference"):
        reference = _ensure_reference(opened, ids, nbytes, windows, bos_id,
                                      _phase(report, 0.05, 0.40))
        pieces = q.token_texts(tokenizer, text, ev.tokens)
        if ev.bos_stream:
            pieces = q.bos_first(pieces, "", ev.tokens, q.tokenize_stream(tokenizer, text, 1)[0],
                                 bos_id)
        ensure_pieces(state_dir, spec.reference_key(), pieces, windows)

    calib = None
    if opened.calibrates:
        report("drawing calibration text", 0.40)
        with clock("calibration"):          # one draw per sweep, shared through the cache
            calib = prepare.calibration(opened, ids)
    ctx = prepare.context(opened, _phase(report, 0.40, 0.50), calib)
    with PhasePeak(ev.device) as load_phase, clock("build"):
        t0 = time.perf_counter()
        built = method.build(ctx)
        quant_s = time.perf_counter() - t0
    runtime = built.runtime
    reused = method_cls.is_reference and "quality" in reference.meta
    with runtime.memory_phase() as infer_phase:
        with clock("evaluation"):
            t0 = time.perf_counter()
            if reused:       # the same model on the same tokens: the baseline pass's numbers
                quality = {**reference.meta["quality"], **SELF_DIVERGENCE}
                nll = reference.nll
                per_token = None if nll is None else {"nll": nll, "kl": np.zeros_like(nll)}
                built.notes += "; quality numbers from the baseline pass (the same model and tokens)"
            else:
                quality, per_token = _evaluate(runtime, ids, nbytes, windows, bos_id,
                                               _phase(report, 0.50, 0.85), reference=reference)
                clock.seconds["kld"] = per_token["scoring_s"]     # inside evaluation
            eval_s = reference.meta["eval_s"] if reused else time.perf_counter() - t0
        speed, speed_s, machine = {}, None, None
        if ev.speed_repeats:
            report("speed: prefill and decode", 0.85)
            with clock("speed"):
                t0 = time.perf_counter()
                speed = measure_speed(runtime, ids[:ev.speed_prompt], ev.speed_new_tokens,
                                      ev.speed_repeats, ev.speed_spread)
                speed_s = time.perf_counter() - t0
    if speed:
        report("roofline: this machine's bandwidth and matmul peak", 0.95)
        with clock("roofline"):
            machine = roofline.machine_profile(state_dir, ev.device, device_name(ev.device),
                                               torch.get_num_threads(), _matmul_dtype(built))
            roof = roofline.roofline_columns(runtime.cost_model(), speed, ev.speed_prompt,
                                             ev.speed_new_tokens, machine)
    else:
        roof = {}

    report("writing result", 0.98)
    with clock("write"):
        dist = {}
        if per_token is not None and "kl" in per_token:
            TokenScores(state_dir).write(spec.key(), per_token["nll"], per_token["kl"],
                                         per_token.get("same_top"))
            top = kldist.baseline_top(state_dir, spec.reference_key())
            dist = kldist.summary(per_token["kl"], top if top is not None and
                                  len(top) == len(per_token["kl"]) else None)
        row = {
            "key": spec.key(), "spec_json": spec.to_json(), "reference_key": spec.reference_key(),
            "model": spec.model.label, "model_source": spec.model.source,
            "model_fingerprint": spec.model.fingerprint, "model_note": models.note(spec.model),
            "method": spec.method.name, "method_label": method_cls.short_label(spec.method.options_dict),
            "family": method.family, "effort": effort.effort_of(spec),
            "options_json": json.dumps(spec.method.options_dict, sort_keys=True),
            "corpus": spec.corpus.label, "corpus_sha256": spec.corpus.content_sha256,
            "protocol": ev.protocol, "tokens": ev.tokens, "window": ev.window,
            "stride": ev.effective_stride if ev.protocol == "strided" else ev.window,
            "device": ev.device, "device_name": device_name(ev.device),
            # which runner started this worker and on which machine (set by the Ray runner)
            "runner": os.environ.get("QCOMPARE_RUNNER", "local"),
            "node": os.environ.get("QCOMPARE_NODE") or platform.node(),
            "compute_dtype": built.compute_dtype, "kernel": built.kernel, "storage": built.storage,
            "backend": runtime.backend,
            "library": built.library, "notes": built.notes,
            "layers_json": json.dumps(built.layers), "calibration": ctx.calibration_label,
            "speed_prompt": ev.speed_prompt, "speed_new_tokens": ev.speed_new_tokens,
            "speed_repeats": ev.speed_repeats, "cpu_threads": torch.get_num_threads(),
            "protocol_version": PROTOCOL_VERSION,
            "weights_mib": built.weights_bytes / 2**20, "quant_s": quant_s, "eval_s": eval_s,
            "speed_s": speed_s, "started_at": started,
            **quality, **dist, **speed, **roof, **_versions(built.library),
            **{f"load_{k}": v for k, v in load_phase.result.items()}, **infer_phase.result,
        }
    # `write` holds the per-token scores and the row's assembly; the Parquet write itself,
    # which must carry these numbers, comes after (a few milliseconds)
    row["phases_json"] = json.dumps({k: round(v, 3) for k, v in clock.seconds.items()})
    row["finished_at"] = dt.datetime.now(dt.timezone.utc)
    check_finite(row)              # (the store checks again)
    ResultStore(state_dir).write(row)
    report("done", 1.0)
    return row



def noise_floor_compute(opened, ids, nbytes, windows, bos_id, reference,
                        report=lambda s, f: None, variants: dict | None = None) -> dict:
    """The noise floor's numbers (protocol: `qcompare.jobs.noise_job`):
    {"variants": {name: {kld_mean, kld_p99, top1_agree, ppl, seconds}}, "tokens",
    "of_tokens"} over the noise floor's part of `windows` (`noisefloor.scope`), against
    `reference`; `variants` (name -> (dtype, weights only, simulated)) replaces the device's."""
    from qcompare.runtime.torch_model import TorchRuntime

    device = opened.spec.eval.device
    variants = variants or noisefloor.variants(device)
    part = noisefloor.scope(windows)
    out, fp32 = {}, None
    for i, (name, (dtype, weights_only, simulated)) in enumerate(variants.items()):
        report(f"noise floor: baseline in {name}", i / len(variants))
        t0 = time.perf_counter()
        if simulated or weights_only:      # an fp32 model, rounded
            fp32 = fp32 if fp32 is not None else opened.load("float32")
            ctx = noise_job.rounded_compute(fp32, dtype, weights_only)
        else:                              # a real load and computation in `dtype`
            model = opened.load(dtype)
            ctx = contextlib.nullcontext(model)
        with ctx as m:
            quality, _ = _evaluate(TorchRuntime(m, device), ids, nbytes, part, bos_id,
                                   lambda s, f: None, reference=reference)
        out[name] = {k: quality[k] for k in ("kld_mean", "kld_p99", "top1_agree", "ppl")}
        out[name]["seconds"] = time.perf_counter() - t0
        if not (simulated or weights_only):
            del model
            gc.collect()
    return {"variants": out, "tokens": int(sum(w.n_scored for w in part)),
            "of_tokens": int(sum(w.n_scored for w in windows))}


def run_noise_floor(spec_json: str, state_dir: str | os.PathLike, report=lambda s, f: None) -> str:
    """The noise-floor job (`qcompare.jobs.noise_job`): compute and store the floor of the
    spec's baseline unless stored; returns the job's key."""
    from qcompare.store.reference import ReferenceStore

    spec = noise_job.from_json(spec_json)
    rk = spec.reference_key()
    state_dir = Path(state_dir)
    report("preparing model", 0.0)
    opened = prepare.open_spec(spec, state_dir, lambda s, f: report(s, 0.0))
    ids, nbytes, windows = evaluation_tokens(opened)
    reference = _ensure_reference(opened, ids, nbytes, windows, opened.tokenizer.bos_token_id,
                                  lambda s, f: report(s, 0.05 + 0.25 * f))
    with ReferenceStore(state_dir).lock(f"{rk}.noise"):
        if noisefloor.read(state_dir, rk) is None:
            got = noise_floor_compute(opened, ids, nbytes, windows, opened.tokenizer.bos_token_id,
                                      reference, lambda s, f: report(s, 0.3 + 0.7 * f))
            noisefloor.write(state_dir, rk, got["variants"],
                             {k: got[k] for k in ("tokens", "of_tokens")})
    report("done", 1.0)
    return noise_job.job_key(rk)


def _matmul_dtype(built) -> str:
    """The dtype whose matmul peak a row's prefill is held against (metrics.roofline): its
    compute dtype when its kernels are torch's own float matmuls in that dtype, else float32."""
    float_kernels = built.library in ("", "torch") and built.kernel in ("real", "simulated")
    ok = built.compute_dtype in ("float32", "bfloat16", "float16")
    return built.compute_dtype if float_kernels and ok else "float32"


def failure_message(e: BaseException) -> UserError | str:
    """The one line a person reads on the Jobs page for a failure: a UserError (stored with its
    translations) for what a person can fix, else the exception's type and text."""
    if isinstance(e, UserError):
        return e
    if isinstance(e, OSError) and e.errno == errno.ENOSPC:
        return UserError(key="errors.disk_full_file", file=e.filename or "?")
    return f"{type(e).__name__}: {e}"


def run_job(spec_json: str, state_dir, report: Report = lambda s, f: None,
             process_started: float | None = None) -> str:
    """Run one job of the table by the kind of its spec (a RunSpec, a noise floor,
    `qcompare.jobs.noise_job`, or a sensitivity sweep, `qcompare.recipes.sensitivity`); returns the key its result is stored under."""
    from qcompare.recipes import sensitivity

    if noise_job.is_noise_json(spec_json):
        return run_noise_floor(spec_json, state_dir, _with_test_pause(report))
    if sensitivity.is_sensitivity_json(spec_json):
        from qcompare.jobs import sensitivity_job

        return sensitivity_job.run(sensitivity.SensitivitySpec.from_json(spec_json), state_dir,
                                   _with_test_pause(report))["key"]
    return run(RunSpec.from_json(spec_json), state_dir, report,
               process_started=process_started)["key"]


class Heartbeat:
    """A daemon thread that writes the job's heartbeat every `every` seconds while the main
    thread works (the runner's stall rule, `qcompare.jobs.status`). A table it cannot write
    (locked, a full disk) skips a beat; the runner's limit is many beats long."""

    def __init__(self, store, job_id: int, every: float):
        import threading

        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(store, job_id, every),
                                        name="heartbeat", daemon=True)

    def _run(self, store, job_id: int, every: float) -> None:
        while not self._stop.wait(every):
            try:
                store.beat(job_id)
            except UserError:
                pass

    def __enter__(self) -> "Heartbeat":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def main(argv: list[str] | None = None) -> int:
    """Entry of a spawned worker: run one job of the table and record the outcome there. When
    the table itself cannot be written (a full disk), the worker exits non-zero and the runner
    records the failure once it can."""
    from qcompare.jobs.store import JobStore

    ap = argparse.ArgumentParser(prog="qcompare-worker")
    ap.add_argument("--state-dir", dest="state_dir", required=True)
    ap.add_argument("--job", type=int, required=True)
    args = ap.parse_args(argv)
    try:
        store = JobStore.open(args.state_dir)
        job = store.get(args.job)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    reporter = store.reporter(job.id)
    from qcompare.jobs.status import HEARTBEAT_S

    try:
        import psutil

        with Heartbeat(store, job.id, HEARTBEAT_S):
            key = run_job(job.spec_json, args.state_dir, reporter,
                          process_started=psutil.Process().create_time())
        outcome: tuple = ("done", None, None, key)
        code = 0
    except BaseException as e:  # noqa: BLE001 - every failure becomes a readable row
        outcome = ("failed", failure_message(e), traceback.format_exc(), None)
        code = 2 if isinstance(e, UserError) else 1
        print(f"error: {outcome[1]}", file=sys.stderr)
        if code == 1:
            traceback.print_exc()
    state, error, tb, key = outcome
    try:
        store.finish(job.id, state, error=error, tb=tb, result_key=key)
    except UserError as e:
        print(f"error: could not record the outcome ({state}): {e}", file=sys.stderr)
        return 3
    return code


if __name__ == "__main__":
    raise SystemExit(main())
