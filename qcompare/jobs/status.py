"""Pure rules about job state, tested without processes or Streamlit.

Recovery rule: a job recorded as `running` whose worker process no longer exists (checked by
pid *and* process start time, so a recycled pid does not count) cannot finish any more; it is
failed with a message saying so. A worker that outlived its runner keeps running: it is in its
own session, records its own outcome, and the next runner only watches it.

Stall rule: a worker's heartbeat thread writes the time every HEARTBEAT_S seconds whatever its
main thread is doing (a long matmul, a pause, a child process). A running job whose heartbeat is
older than `stall_limit_s(job)` has a worker that exists but is not being run: stopped
(SIGSTOP, a suspended terminal), frozen by the machine (swapping), or hung inside a call that
holds the interpreter. The runner marks it stalled; the mark clears by itself at the next beat.
The limit is STALL_S (60 s; $QCOMPARE_STALL_S overrides it), 3x in the stages where one call may
legitimately hold the interpreter for long (loading or converting weights, drawing calibration
text, quantizing), times the effort's scale: its evaluated tokens over quick's 2,048, between 1
and 4 (thorough: 4), since a larger run's single calls are larger.
"""
from __future__ import annotations

import json
import os
import signal
import time

from qcompare.core.errors import UserError
from qcompare.jobs.store import Job


def exit_error(returncode: int) -> UserError:
    """'killed by SIGKILL (often the kernel's out-of-memory killer)' and the like, as a message
    of the catalogue (stored with a failed job in every language)."""
    if returncode < 0:
        sig = -returncode
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        key = {"SIGKILL": "errors.killed_kill", "SIGSEGV": "errors.killed_segv",
               "SIGTERM": "errors.killed_term"}.get(name, "errors.killed")
        return UserError(key=key, signal=name)
    return UserError(key="errors.exited", status=returncode)


def classify(job: Job, worker_alive: bool | None) -> str:
    """Displayed state: 'lost' for a running job whose worker is gone, 'stalled' for one whose
    worker the runner found without a recent heartbeat, else the stored state."""
    if job.state == "running" and worker_alive is False:
        return "lost"
    if job.state == "running" and (job.stalled or is_stalled(job, time.time())):
        return "stalled"
    return job.state


HEARTBEAT_S = 2.0
STALL_S = 60.0
SLOW_STAGES = ("preparing", "converting", "baseline: loading", "loading", "drawing calibration",
               "calibration", "quantiz", "noise floor")
QUICK_TOKENS = 2048


def stall_limit_s(job: Job) -> float:
    """Seconds without a heartbeat after which a running job counts as stalled (module text)."""
    base = float(os.environ.get("QCOMPARE_STALL_S", STALL_S))
    stage = (job.stage or "").lower()
    slow = 3.0 if any(stage.startswith(s) or f" {s}" in stage for s in SLOW_STAGES) else 1.0
    try:
        tokens = float(json.loads(job.spec_json).get("eval", {}).get("tokens", QUICK_TOKENS))
    except (ValueError, AttributeError, TypeError):
        tokens = QUICK_TOKENS
    return base * slow * min(max(tokens / QUICK_TOKENS, 1.0), 4.0)


def is_stalled(job: Job, now: float) -> bool:
    """A running job whose last heartbeat is older than its limit (jobs from before heartbeats,
    which have none, never are)."""
    return (job.state == "running" and job.heartbeat is not None
            and now - job.heartbeat > stall_limit_s(job))


def stalled_error(job: Job, now: float) -> UserError:
    """What the CLI and the Jobs page say of a stalled job: since when, at which stage, what to do."""
    return UserError(key="errors.stalled", id=job.id, pid=job.pid,
                     s=now - (job.heartbeat or now), limit=stall_limit_s(job), stage=job.stage)


def lost_error(job: Job) -> UserError:
    return UserError(key="errors.lost", pid=job.pid)


def eta_seconds(job: Job, now: float) -> float | None:
    """Remaining time by linear extrapolation of progress since start (None before 2%)."""
    if job.state != "running" or not job.started or job.progress < 0.02:
        return None
    elapsed = now - job.started
    return elapsed * (1 - job.progress) / job.progress


def display_order(jobs: list[Job]) -> list[Job]:
    """Running jobs first, then queued (oldest first: the order they will run), then finished
    ones, newest first."""
    rank = {"running": 0, "queued": 1}
    return sorted(jobs, key=lambda j: (rank.get(j.state, 2),
                                       j.id if j.state == "queued" else -(j.finished or j.id)))


def batch(jobs: list[Job], gap_s: float = 60.0) -> list[Job]:
    """The jobs of the current sweep: the newest run of submissions, each created within
    `gap_s` of the one before, and every job still active, one per spec: a cache hit recorded
    by pressing the same button again stands for the job that computed it (so a second press
    mid-sweep neither shrinks the sweep nor loses its time estimate). Noise-floor jobs
    (`qcompare.jobs.noise_job`) are not part of a sweep."""
    jobs = [j for j in jobs if not j.key.startswith("noise-")]     # noise_job.KEY_PREFIX
    if not jobs:
        return []
    order = sorted(jobs, key=lambda j: j.created)
    start = len(order) - 1
    while start > 0 and order[start].created - order[start - 1].created <= gap_s:
        start -= 1
    picked = order[start:] + [j for j in order[:start] if j.state in ("queued", "running")]
    computed = {j.key: j for j in order if j.state == "done" and not j.cached}
    out: dict[str, Job] = {}
    for j in picked:
        j = computed.get(j.key, j) if j.cached else j
        if j.key not in out or out[j.key].state not in ("queued", "running"):
            out[j.key] = j
    return sorted(out.values(), key=lambda j: j.created)


def batch_summary(jobs: list[Job], now: float, lang: str = "en") -> str:
    """'8 of 11 done, 1 failed, about 4 min left' for the current sweep; the time left is the
    running jobs' ETA plus, for each queued job, the median duration of the sweep's finished
    computed jobs (none: no estimate)."""
    b = batch(jobs)
    if not b:
        return ""
    done = sum(j.state == "done" for j in b)
    failed = sum(j.state in ("failed", "cancelled") for j in b)
    from qcompare.i18n import catalogue as i18n

    parts = [i18n.t("jobs.b_done", lang, done=done, n=len(b))] + (
        [i18n.t("jobs.b_failed", lang, n=failed)] if failed else [])
    active = [j for j in b if j.state in ("queued", "running")]
    if active:
        took = sorted(j.finished - j.started for j in b
                      if j.state == "done" and not j.cached and j.started and j.finished)
        etas = [eta_seconds(j, now) for j in active if j.state == "running"]
        if took and all(e is not None for e in etas):
            median = took[len(took) // 2]
            left = sum(etas) + median * sum(j.state == "queued" for j in active)
            parts.append(i18n.t("jobs.b_minutes", lang, v=left / 60) if left >= 90
                         else i18n.t("jobs.b_seconds", lang, v=left))
        else:
            parts.append(i18n.t("jobs.b_unknown", lang))
    return ", ".join(parts) if lang == "en" else "、".join(parts)


def result_missing(job, state_dir) -> bool:
    """A done job whose stored result is gone (its file deleted after the job ended): the Jobs
    page says so and offers to run it again instead of showing it as done."""
    if job.state != "done":
        return False
    from qcompare.recipes import sensitivity
    from qcompare.store.results import ResultStore

    key = job.result_key or job.key
    if sensitivity.is_sensitivity_json(job.spec_json):
        return not sensitivity.SensitivityStore(state_dir).exists(key)
    return not ResultStore(state_dir).has(key)


def death_error(job_id: int, default: UserError, state_dir) -> UserError:
    """Why a worker that died without recording its outcome failed: the state folder's full
    disk when it is full now (its memory-mapped writes or its last table write failed for it),
    else `default` (the signal or exit status; a lost worker)."""
    from qcompare.core import diskspace

    if diskspace.is_full(state_dir):
        return UserError(key="errors.disk_full_job", id=job_id, folder=state_dir,
                         mib=diskspace.free_bytes(state_dir) / diskspace.MIB)
    return default
