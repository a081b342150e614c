"""Waiting for jobs from a terminal: one progress line per job, and a runner that dies on
the way is noticed and replaced. Waiting ends with one line, instead of hanging, when a job
stalls (its worker stopped beating, `qcompare.jobs.status`) or when a job's worker died while
the state folder's disk is full (the table cannot record it until space is freed)."""
from __future__ import annotations

import sys
import time
from pathlib import Path

from qcompare.core.errors import UserError

RUNNER_CHECK_S = 2.0
RUNNER_RESTARTS = 3


def open_store(state_dir: Path):
    """The job table, with a warning on stderr when a broken one was just moved aside."""
    from qcompare.jobs.store import JobStore

    store = JobStore.open(state_dir)
    if store.recovered:
        print(f"warning: {store.recovered}", file=sys.stderr)
    return store


def _ensure_served(state_dir: Path, jobs, seen: dict) -> None:
    """While jobs are active, a runner must serve them: when it is seen gone at two checks in a
    row (one may fall between a start and its lock), start a new one, which fails the running
    jobs whose worker died with it and runs the queued ones; after RUNNER_RESTARTS restarts,
    stop waiting with what its log says."""
    from qcompare.core import diskspace
    from qcompare.jobs.runner import ensure_runner, runner_log_tail, runner_running

    if not any(j.state in ("queued", "running") for j in jobs) or runner_running(state_dir):
        seen["gone"] = 0
        return
    seen["gone"] += 1
    if seen["gone"] < 2:
        return
    seen["gone"] = 0
    diskspace.require(state_dir, 0, "the job table and results")
    if seen["restarts"] >= RUNNER_RESTARTS:
        raise UserError(f"the job runner stopped {seen['restarts']} times while jobs were "
                        f"waiting; the last lines of its log ({state_dir / 'logs' / 'runner.log'}): "
                        f"{runner_log_tail(state_dir, 3) or '(empty)'}")
    seen["restarts"] += 1
    print(f"the job runner was gone: started a new one ({seen['restarts']} of {RUNNER_RESTARTS})",
          file=sys.stderr)
    ensure_runner(state_dir)


def _give_up_on_faults(state_dir: Path, jobs) -> None:
    """Stop waiting, with what to do, on a job that cannot end by itself: a stalled one, or
    one whose worker is gone while the disk is full."""
    from qcompare.core import diskspace
    from qcompare.jobs import status
    from qcompare.jobs.runner import process_alive

    now = time.time()
    for j in jobs:
        if j.state != "running":
            continue
        if not process_alive(j.pid, j.pid_start) and diskspace.is_full(state_dir):
            raise status.death_error(j.id, status.lost_error(j), state_dir)
        if status.is_stalled(j, now):
            raise status.stalled_error(j, now)


def wait(state_dir: Path, job_ids: list[int], quiet: bool) -> None:
    """Poll the job table (no busy loop) and show one progress line per job until all end;
    a runner that dies is noticed within two RUNNER_CHECK_S checks and replaced."""
    from qcompare.jobs.store import FINISHED

    store = open_store(state_dir)
    last, seen, checked = "", {"gone": 0, "restarts": 0}, time.monotonic()
    while True:
        jobs = [store.get(i) for i in job_ids]
        line = " | ".join(f"#{j.id} {j.state} {j.progress:4.0%} {j.stage[:40]}" for j in jobs)
        if not quiet and line != last and sys.stderr.isatty():
            print("\r" + line[:200].ljust(len(last)), end="", file=sys.stderr, flush=True)
        elif not quiet and line != last:
            print(line, file=sys.stderr, flush=True)
        last = line
        if all(j.state in FINISHED for j in jobs):
            if not quiet and sys.stderr.isatty():
                print(file=sys.stderr)
            return
        if time.monotonic() - checked >= RUNNER_CHECK_S:
            _give_up_on_faults(state_dir, jobs)
            _ensure_served(state_dir, jobs, seen)
            checked = time.monotonic()
        time.sleep(0.5)
