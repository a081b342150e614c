"""From a request to queued work: resolve specs (content hashes), answer cache hits at once,
queue the rest (identical active specs once) and make sure a runner serves them."""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from qcompare.core import diskspace, registry
from qcompare.core.errors import UserError
from qcompare.core.specs import CalibSpec, CorpusSpec, EvalSpec, MethodSpec, ModelSpec, RunSpec
from qcompare.jobs import noise_job, status
from qcompare.jobs.runner import ensure_runner, process_alive
from qcompare.jobs.store import JobStore
from qcompare.sources import corpora, models
from qcompare.store.results import ResultStore


@dataclass(frozen=True)
class Submitted:
    spec: RunSpec
    job_id: int
    cached: bool        # answered from the result cache, no work queued
    new: bool           # a new job was queued (False: joined an identical active one)
    note: str = ""      # something the person should know (a stored result was unreadable, ...)


def build_specs(model: ModelSpec, methods: list[MethodSpec], corpus: CorpusSpec,
                ev: EvalSpec, calib: CalibSpec | None = None,
                skipped: list[tuple[str, str]] | None = None) -> list[RunSpec]:
    """Resolved RunSpecs: model fingerprint and corpus hash filled in, dtype-fixed methods'
    eval dtype normalised, so equal questions get equal keys. Methods that calibrate get
    `calib` (default: 32 x 512 tokens of the evaluation corpus, after the evaluated ones);
    the others get none, so calibration settings never split their cache keys.

    Every method sees its whole request before anything is queued (`Method.refusal`): one
    that cannot take this model, device, dtype or these options is refused here, with why; when
    a `skipped` list is given (a preset: "whatever runs here"), it is left out and its
    (label, reason) appended there instead."""
    unavailable: dict[str, str | None] = {}
    for m in methods:              # before the model is resolved: this device, these packages
        if m.name not in unavailable:
            unavailable[m.name] = registry.get(m.name).unavailable_reason(ev.device)
        if unavailable[m.name] and skipped is None:
            raise UserError(key="errors.cannot_run", label=m.label, reason=unavailable[m.name])
    model = models.resolve(model)
    corpus = corpora.resolve(corpus, min_tokens=ev.tokens)
    calib = calib or CalibSpec(corpus=corpus)
    calib_resolved = None
    specs = []
    for m in methods:
        cls = registry.get(m.name)
        if unavailable[m.name]:
            skipped.append((m.label, unavailable[m.name]))
            continue
        calibrates = cls.calibrates(m.options_dict)
        if calibrates and calib_resolved is None:
            calib_resolved = replace(calib, corpus=corpora.resolve(calib.corpus))
        fixed = cls.fixed_dtype
        spec = RunSpec(model=model, method=m, corpus=corpus,
                       eval=replace(ev, dtype=fixed) if fixed else ev,
                       calib=calib_resolved if calibrates else None)
        reason = cls.request_problem(spec)     # the rest of `Method.refusal`, once per spec
        if reason and skipped is None:
            raise UserError(key="errors.cannot_take", label=m.label, model=model.label, reason=reason)
        if reason:
            skipped.append((m.label, reason))
            continue
        specs.append(spec)
    return specs


def job_label(spec: RunSpec) -> str:
    cls = registry.get(spec.method.name)
    return f"{cls.short_label(spec.method.options_dict)} on {spec.model.label} ({spec.eval.device})"


def drop_lost_jobs(store: JobStore, key: str) -> list[int]:
    """Fail every running job of `key` whose worker process is gone (recovery rule,
    qcompare.jobs.status), so a new submission runs anew instead of joining a dead job."""
    lost = []
    for job in store.active(key):
        if job.state == "running" and not process_alive(job.pid, job.pid_start):
            if store.finish(job.id, "failed", error=status.lost_error(job)):
                lost.append(job.id)
    return lost


def submit(specs: list[RunSpec], state_dir: str | Path, start_runner: bool = True,
           record_hits: bool = False, runner: str = "local",
           address: str | None = None) -> list[Submitted]:
    """Queue specs; a cached spec is answered at once (and, with `record_hits`, listed as a
    done job, as the dashboard shows it). A cached result that no longer reads is moved aside
    and computed again; a running job of the same spec whose worker is gone is failed first.
    Jobs are queued cheapest first (`queue_order`), so the first points land quickly, and a
    baseline without a noise floor gets its noise-floor job, which runs after all of them
    (`qcompare.jobs.noise_job`); the answers (the specs' own jobs) come back in the order of
    `specs`. `runner` picks which runner is started when none
    serves the folder ("local", or "ray" on the cluster at `address`)."""
    results, store = ResultStore(state_dir), JobStore.open(state_dir)
    answers: dict[int, Submitted] = {}
    queued = False
    for i in queue_order(specs):
        spec = specs[i]
        key, label = spec.key(), job_label(spec)
        hit, note = results.readable(key)
        if hit:
            job_id = store.record_cached(key, label, spec.to_json()) if record_hits else 0
            answers[i] = Submitted(spec, job_id, True, False)
            continue
        if not queued:
            diskspace.require(state_dir, 0, "the job table and results")
        lost = drop_lost_jobs(store, key)
        if lost:
            note = "; ".join(filter(None, [note, f"job #{lost[0]} of this spec had lost its "
                                                 "worker: marked failed, queued anew"]))
        job_id, new = store.submit(key, label, spec.to_json())
        answers[i] = Submitted(spec, job_id, False, new, note)
        queued = True
    noise = noise_job.queue_for(specs, state_dir, store)     # runs after every other job
    if (queued or noise) and start_runner:
        ensure_runner(state_dir, runner=runner, address=address)
    return [answers[i] for i in range(len(specs))]


def queue_order(specs: list[RunSpec]) -> list[int]:
    """Indices of `specs`, cheapest first by `Method.queue_rank`, ties in the given order."""
    return sorted(range(len(specs)), key=lambda i: registry.get(specs[i].method.name)
                  .queue_rank(specs[i].method.options_dict))


def preset_specs(preset: str = "default", effort_name: str = "quick", device: str = "cpu",
                 skipped: list[tuple[str, str]] | None = None) -> list[RunSpec]:
    """The RunSpecs of a preset's runnable methods on the embedded model and corpus at an
    effort: what the Home button submits (`sweep --preset NAME --effort E` with no other flags
    builds the same specs, so they share the cache)."""
    from qcompare.core import effort
    from qcompare.core.presets import preset_methods

    ev = effort.eval_spec(effort_name, EvalSpec(device=device))
    corpus = CorpusSpec()
    return build_specs(ModelSpec(), preset_methods(preset, device), corpus, ev,
                       effort.calib_spec(effort_name, corpus),
                       skipped if skipped is not None else [])


def resolve_sensitivity(spec):
    """A SensitivitySpec with its model fingerprint and corpus hashes filled in, so equal
    sweeps get equal keys (as `build_specs` does for runs)."""
    from qcompare.recipes.sensitivity import SensitivitySpec

    assert isinstance(spec, SensitivitySpec)
    corpus = corpora.resolve(spec.corpus, min_tokens=spec.eval.tokens)
    return replace(spec, model=models.resolve(spec.model), corpus=corpus,
                   calib=replace(spec.calib, corpus=corpora.resolve(spec.calib.corpus)))


def submit_sensitivity(spec, state_dir: str | Path, start_runner: bool = True,
                       runner: str = "local", address: str | None = None) -> Submitted:
    """Queue a sensitivity sweep (resolved first) unless its table is stored; identical active
    sweeps run once, like runs."""
    from qcompare.recipes.sensitivity import SensitivityStore

    spec = resolve_sensitivity(spec)
    store = JobStore.open(state_dir)
    key = spec.key()
    if SensitivityStore(state_dir).exists(key):
        return Submitted(spec, 0, True, False)
    diskspace.require(state_dir, 0, "the job table and the sensitivity table")
    lost = drop_lost_jobs(store, key)
    job_id, new = store.submit(key, spec.label, spec.to_json())
    if start_runner:
        ensure_runner(state_dir, runner=runner, address=address)
    note = f"job #{lost[0]} of this sweep had lost its worker: marked failed, queued anew" if lost else ""
    return Submitted(spec, job_id, False, new, note)
