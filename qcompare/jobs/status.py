"""Pure rules about job state, tested without processes or Streamlit.

Recovery rule: a job recorded as `running` whose worker process no longer exists (checked by
pid *and* process start time, so a recycled pid does not count) cannot finish any more; it is
failed with a message saying so. A worker that outlived its runner keeps running: it is in its
own session, records its own outcome, and the next runner only watches it.
"""
from __future__ import annotations

import signal

from qcompare.jobs.store import Job


def exit_reason(returncode: int) -> str:
    """'killed by SIGKILL (often the kernel's out-of-memory killer)' and the like."""
    if returncode < 0:
        sig = -returncode
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        hint = {"SIGKILL": " (often the out-of-memory killer, or kill -9)",
                "SIGSEGV": " (a crash in native code)", "SIGTERM": " (terminated)"}.get(name, "")
        return f"worker was killed by {name}{hint}"
    return f"worker exited with status {returncode} without recording a result"


def classify(job: Job, worker_alive: bool | None) -> str:
    """Displayed state: 'lost' for a running job whose worker is gone, else the stored state."""
    if job.state == "running" and worker_alive is False:
        return "lost"
    return job.state


def lost_message(job: Job) -> str:
    return (f"worker process {job.pid} is gone and recorded no outcome: it was killed, crashed, "
            "or the machine restarted while it ran. Retry the job.")


def eta_seconds(job: Job, now: float) -> float | None:
    """Remaining time by linear extrapolation of progress since start (None before 2%)."""
    if job.state != "running" or not job.started or job.progress < 0.02:
        return None
    elapsed = now - job.started
    return elapsed * (1 - job.progress) / job.progress
