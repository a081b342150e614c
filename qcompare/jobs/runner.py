"""Runners: `ProcessRunner` (a detached daemon that spawns one worker process per job, at most
K at once) and `run_inline` (tests, debugging). Only one daemon serves a state folder: it holds an
exclusive lock on `<state_dir>/runner.lock`; `ensure_runner` starts one when none holds it.

Each worker starts in its own session (process group), so `cancel` kills it and its children.
Workers record their own outcome; the runner records the outcome of workers that died. At start
a runner removes the temporaries that killed writers left (qcompare.jobs.cleanup) and says in
its log how much it freed. A failure of the job table (a full disk, a lock held too long) is
logged and retried on the next poll: it never ends the runner, and a dead worker's failure is
recorded once the table can be written again.

Stalls: each worker beats (qcompare.jobs.worker.Heartbeat); on each poll the runner marks a job
whose heartbeat is older than its limit as stalled (`qcompare.jobs.status`, the stall rule) and
says so in its log. A stalled job keeps running: it clears by itself if its worker resumes, and
`cancel` ends it (a stopped process group is continued so that it receives the SIGTERM).

A worker that dies while the state folder's disk is full (SIGBUS from a memory-mapped page, or
an outcome it could not write) is recorded as failed for the disk, not for the signal: the
reason is fixed when its death is first seen, and written once the table can be written.
"""
from __future__ import annotations

import argparse
import fcntl
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from qcompare.core import locks
from qcompare.core.errors import UserError
from qcompare.jobs import cleanup, status
from qcompare.jobs.store import JobStore

DEFAULT_IDLE_EXIT_S = 600.0


def _log_dir(state_dir: Path) -> Path:
    d = Path(state_dir) / "logs"
    d.mkdir(parents=True, exist_ok=True)
    return d


def job_log_path(state_dir: Path, job_id: int) -> Path:
    return _log_dir(state_dir) / f"job-{job_id}.log"


def _say(text: str) -> None:
    """A line in the runner's log (its stdout)."""
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {text}", flush=True)


def runner_log_tail(state_dir: str | Path, lines: int = 3) -> str:
    """The last lines of the runner's log, joined into one line."""
    return " | ".join(_tail(Path(state_dir) / "logs" / "runner.log", lines).splitlines())


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def process_alive(pid: int | None, pid_start: float | None) -> bool:
    """True if `pid` runs and is the process started at `pid_start` (not a recycled pid)."""
    if not pid:
        return False
    import psutil

    try:
        p = psutil.Process(pid)
        if p.status() == psutil.STATUS_ZOMBIE:
            return False
        return pid_start is None or abs(p.create_time() - pid_start) < 1.0
    except psutil.Error:
        return False


def claim(state_dir: Path):
    """Become the one runner of `state_dir`: take `runner.lock` (flock, held while the returned
    file stays open; its text is our pid) and remove stale temporaries. Returns (lock file,
    temporaries removed, bytes freed), or None when another runner holds the lock."""
    lock = open(Path(state_dir) / "runner.lock", "a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        return None
    lock.seek(0), lock.truncate(), lock.write(str(os.getpid())), lock.flush()
    count, freed = cleanup.clean(state_dir)
    return lock, count, freed


class ProcessRunner:
    def __init__(self, state_dir: str | Path, max_workers: int = 1,
                 idle_exit_s: float = DEFAULT_IDLE_EXIT_S, poll_s: float = 0.3):
        self.state_dir = Path(state_dir)
        self.store = JobStore.open(self.state_dir)
        self.max_workers = max_workers
        self.idle_exit_s = idle_exit_s
        self.poll_s = poll_s
        self.children: dict[int, subprocess.Popen] = {}     # job id -> our worker
        self.adopted: dict[int, tuple[int, float | None]] = {}   # job id -> (pid, start)
        self.deaths: dict[int, UserError] = {}     # job id -> why its worker died, until recorded

    def serve(self) -> int:
        """Run until idle for `idle_exit_s`; returns 0, or 1 if another runner holds the lock."""
        claimed = claim(self.state_dir)
        if claimed is None:
            return 1
        self._lock, count, freed = claimed
        _say(f"runner {os.getpid()} serving {self.state_dir}; removed {count} stale temporar"
             f"{'y' if count == 1 else 'ies'} left by killed writers ({freed / 1e6:.1f} MB freed)")
        idle_since, last_error = time.monotonic(), ""
        recovered = False
        while True:
            try:
                if not recovered:
                    self._recover()
                    recovered = True
                self._reap()
                self._watch_stalls()
                self._start_queued()
                busy = bool(self.children or self.adopted or self.store.next_queued())
                last_error = ""
            except UserError as e:         # the table failed: say so once, retry next poll
                if str(e) != last_error:
                    _say(f"job table error, retrying: {e}")
                last_error, busy = str(e), bool(self.children or self.adopted)
            if busy:
                idle_since = time.monotonic()
            elif time.monotonic() - idle_since > self.idle_exit_s:
                _say("idle: exiting")
                return 0
            time.sleep(self.poll_s)

    def _recover(self) -> None:
        for job in self.store.list(("running",)):
            if process_alive(job.pid, job.pid_start):
                self.adopted[job.id] = (job.pid, job.pid_start)
            else:
                self.store.finish(job.id, "failed", error=status.lost_error(job),
                                  tb=_tail(job_log_path(self.state_dir, job.id)))

    def _start_queued(self) -> None:
        import psutil

        while len(self.children) + len(self.adopted) < self.max_workers:
            job = self.store.next_queued()
            if job is None:
                return
            log = open(job_log_path(self.state_dir, job.id), "ab")
            env = {**os.environ, "PYTHONUNBUFFERED": "1"}
            proc = subprocess.Popen(
                [sys.executable, "-m", "qcompare.jobs.worker", "--state-dir", str(self.state_dir),
                 "--job", str(job.id)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, env=env, cwd=str(Path(__file__).resolve().parents[2]))
            log.close()
            try:
                started = psutil.Process(proc.pid).create_time()
            except psutil.Error:
                started = None
            try:
                marked = self.store.mark_running(job.id, proc.pid, started)
            except UserError:                # not recorded: this worker must not run the job
                _kill_group(proc.pid)
                proc.wait()
                raise
            if marked:
                self.children[job.id] = proc
            else:   # cancelled between our read and now
                _kill_group(proc.pid)
                proc.wait()

    def _reap(self) -> None:
        for job_id, proc in list(self.children.items()):
            rc = proc.poll()
            if rc is None:
                continue
            # the reason is fixed when the death is first seen (a full disk is the cause even
            # if space is freed before the table can be written)
            reason = self.deaths.setdefault(job_id, status.death_error(
                job_id, status.exit_error(rc), self.state_dir))
            # forgotten only once its outcome is recorded: a table error retries next poll
            if rc != 0 or self.store.get(job_id).state == "running":
                self.store.finish(job_id, "failed", error=reason,
                                  tb=_tail(job_log_path(self.state_dir, job_id)))
            del self.children[job_id]
            self.deaths.pop(job_id, None)
        for job_id, (pid, start) in list(self.adopted.items()):
            if not process_alive(pid, start):
                reason = self.deaths.setdefault(job_id, status.death_error(
                    job_id, status.lost_error(self.store.get(job_id)), self.state_dir))
                self.store.finish(job_id, "failed", error=reason,
                                  tb=_tail(job_log_path(self.state_dir, job_id)))
                del self.adopted[job_id]
                self.deaths.pop(job_id, None)

    def _watch_stalls(self) -> None:
        """Mark our running jobs whose heartbeat is too old as stalled, once each, and log it."""
        ours = set(self.children) | set(self.adopted)
        if not ours:
            return
        now = time.time()
        for job in self.store.list(("running",)):
            if job.id in ours and not job.stalled and status.is_stalled(job, now):
                if self.store.mark_stalled(job.id):
                    _say(f"job #{job.id} stalled: {status.stalled_error(job, now)}")


def _kill_group(pid: int, grace_s: float = 3.0) -> None:
    """SIGTERM the process group, then SIGKILL what is left after `grace_s`."""
    try:
        os.killpg(pid, signal.SIGTERM)
        os.killpg(pid, signal.SIGCONT)       # a stopped (stalled) group receives it only now
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if not process_alive(pid, None):
            return
        time.sleep(0.05)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def cancel(store: JobStore, job_id: int) -> bool:
    """Cancel a queued job, or a running one by killing its worker's process group."""
    job = store.get(job_id)
    if job.state not in ("queued", "running"):
        return False
    changed = store.finish(job_id, "cancelled", error=UserError(key="errors.cancelled"))
    if changed and job.state == "running" and process_alive(job.pid, job.pid_start):
        _kill_group(job.pid)
    return changed


def runner_pid(state_dir: str | Path) -> int | None:
    """Pid of the runner serving `state_dir`, or None."""
    if not runner_running(state_dir):
        return None
    text = (Path(state_dir) / "runner.lock").read_text().strip()
    return int(text) if text.isdigit() else None


def runner_running(state_dir: str | Path) -> bool:
    return locks.held(Path(state_dir) / "runner.lock")


RUNNERS = ("local", "ray")


def ensure_runner(state_dir: str | Path, max_workers: int | None = None, runner: str = "local",
                  address: str | None = None) -> bool:
    """Start a detached runner for `state_dir` unless one is already serving; True if started.
    `runner`: "local" (worker processes on this machine) or "ray" (one Ray task per job on the
    cluster at `address`, default $RAY_ADDRESS or "auto"; qcompare.jobs.ray_runner)."""
    state_dir = Path(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    if runner not in RUNNERS:
        raise UserError(key="errors.choice", what="runner", choices=", ".join(RUNNERS),
                        value=repr(runner))
    if runner_running(state_dir):
        return False
    idle = os.environ.get("QCOMPARE_RUNNER_IDLE_EXIT_S", str(DEFAULT_IDLE_EXIT_S))
    if runner == "ray":
        import importlib.util

        if importlib.util.find_spec("ray") is None:
            raise UserError(key="errors.ray_package")
        args = ["qcompare.jobs.ray_runner", "--address",
                address or os.environ.get("RAY_ADDRESS", "auto")]
    else:
        k = max_workers or int(os.environ.get("QCOMPARE_MAX_WORKERS", "1"))
        args = ["qcompare.jobs.runner", "--max-workers", str(k)]
    log = open(_log_dir(state_dir) / "runner.log", "ab")
    subprocess.Popen([sys.executable, "-m", *args, "--state-dir", str(state_dir), "--idle-exit", idle],
                     stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                     start_new_session=True, cwd=str(Path(__file__).resolve().parents[2]))
    log.close()
    return True


def stop_runner(state_dir: str | Path, timeout_s: float = 30.0) -> bool:
    """SIGTERM the runner serving `state_dir` (its running workers keep running and record
    their own outcome); True once it is gone."""
    pid = runner_pid(state_dir)
    if pid is None:
        return True
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not runner_running(state_dir):
            return True
        time.sleep(0.1)
    return False


def run_inline(store: JobStore, state_dir: str | Path, job_id: int) -> None:
    """Run a queued job in this process (tests, debugging); records the outcome like a worker."""
    import traceback

    from qcompare.core.errors import UserError
    from qcompare.jobs import worker

    job = store.get(job_id)
    store.mark_running(job_id, os.getpid(), None)
    try:
        key = worker.run_job(job.spec_json, state_dir, store.reporter(job_id))
    except UserError as e:
        store.finish(job_id, "failed", error=e, tb=traceback.format_exc())
        return
    except Exception as e:  # noqa: BLE001 - recorded as a failed row, like a worker's
        store.finish(job_id, "failed", error=f"{type(e).__name__}: {e}", tb=traceback.format_exc())
        return
    store.finish(job_id, "done", result_key=key)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="qcompare-runner")
    ap.add_argument("--state-dir", dest="state_dir", required=True)
    ap.add_argument("--max-workers", type=int, default=1)
    ap.add_argument("--idle-exit", type=float, default=DEFAULT_IDLE_EXIT_S)
    args = ap.parse_args(argv)
    return ProcessRunner(args.state_dir, args.max_workers, args.idle_exit).serve()


if __name__ == "__main__":
    raise SystemExit(main())
