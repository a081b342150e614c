"""The Ray runner: the same job table, worker and Parquet results, with each job run as a Ray
task wherever the cluster has room for it.

Protocol (`RayRunner.serve`, a detached driver like `ProcessRunner`, holding the same
`runner.lock`, so one runner of either kind serves a state folder):

1. Connect to the cluster (`ray.init(address=...)`; "auto" finds a local head).
2. Every poll: each queued job becomes one task, `run_job.options(num_cpus=..., num_gpus=...,
   memory=...)`, sized from its spec: the CPU threads it asks for (all of a node's share when
   0 means "all": `QCOMPARE_RAY_CPUS`, default 1), one GPU for a CUDA job, and the model's fp32
   size as memory, so Ray places it where it fits. At most `max_jobs` tasks are in flight.
3. A task starts the ordinary worker (`python -m qcompare.jobs.worker`) as a child process in its
   own session on its node, records that pid in the job table (`mark_running`), waits for it
   and returns its exit status, the node and the pid. The worker records its own outcome and
   writes its row to the state folder, exactly as under the local runner, so a spec's row does
   not depend on the runner (only `runner` and `node` say where it ran).
4. The driver reaps finished tasks: a worker that exited without recording an outcome (killed,
   crashed), or a task Ray lost (its node died, its worker crashed), becomes a `failed` row with
   the reason; a job cancelled in the table has its task cancelled (`ray.cancel`, which raises
   KeyboardInterrupt inside the task, which then kills the worker's process group).

What must be shared between nodes: the state folder (job table, baselines, results: a shared
filesystem such as NFS mounted at the same path on every node), this checkout of qcompare with
its Python environment (tasks import it from the same path), and the model files or the hub
cache. The job table is SQLite: fine for a shared folder written by one job at a time per
row, not for hundreds of nodes.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from qcompare.core.errors import UserError
from qcompare.jobs import status
from qcompare.jobs.noise_job import KEY_PREFIX as NOISE_PREFIX
from qcompare.jobs.runner import DEFAULT_IDLE_EXIT_S, _say, _tail, claim, job_log_path
from qcompare.jobs.store import JobStore

REPO = Path(__file__).resolve().parents[2]


def task_resources(spec_json: str, state_dir: Path) -> dict:
    """Ray resources of one job: CPUs, GPUs and memory (bytes), from its spec."""
    from qcompare.core.specs import RunSpec
    from qcompare.jobs import noise_job
    from qcompare.recipes.sensitivity import SensitivitySpec, is_sensitivity_json
    from qcompare.sources import models

    if noise_job.is_noise_json(spec_json):
        spec = noise_job.from_json(spec_json)
    else:
        spec = (SensitivitySpec if is_sensitivity_json(spec_json) else RunSpec).from_json(spec_json)
    cpus = spec.eval.threads or int(os.environ.get("QCOMPARE_RAY_CPUS", "1"))
    res = {"num_cpus": cpus, "num_gpus": 1 if spec.eval.device == "cuda" else 0}
    try:
        n = models.param_count(spec.model, state_dir)
    except Exception:  # noqa: BLE001 - unreadable: no memory request, the worker says why
        n = None
    if n:
        res["memory"] = 4 * n                   # the fp32 model the worker loads
    return res


def _run_job(state_dir: str, job_id: int, repo: str) -> dict:
    """Body of the Ray task (module doc, step 3)."""
    import psutil

    from qcompare.jobs.runner import _kill_group

    log = open(job_log_path(Path(state_dir), job_id), "ab")
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "QCOMPARE_RUNNER": "ray",
           "QCOMPARE_NODE": socket.gethostname()}
    proc = subprocess.Popen([sys.executable, "-m", "qcompare.jobs.worker", "--state-dir", state_dir,
                             "--job", str(job_id)], stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True, env=env, cwd=repo)
    log.close()
    store = JobStore.open(state_dir)
    try:
        started = psutil.Process(proc.pid).create_time()
    except psutil.Error:
        started = None
    if not store.mark_running(job_id, proc.pid, started):      # cancelled before it started
        _kill_group(proc.pid)
        proc.wait()
        return {"rc": None, "node": socket.gethostname(), "pid": proc.pid, "skipped": True}
    try:
        rc = proc.wait()
    except KeyboardInterrupt:                                  # ray.cancel: stop the worker too
        _kill_group(proc.pid)
        proc.wait()
        raise
    return {"rc": rc, "node": socket.gethostname(), "pid": proc.pid, "skipped": False}


class RayRunner:
    def __init__(self, state_dir: str | Path, address: str = "auto", max_jobs: int = 64,
                 idle_exit_s: float = DEFAULT_IDLE_EXIT_S, poll_s: float = 0.5):
        self.state_dir = Path(state_dir)
        self.address = address
        self.max_jobs = max_jobs
        self.idle_exit_s = idle_exit_s
        self.poll_s = poll_s
        self.store = JobStore.open(self.state_dir)
        self.tasks: dict[int, object] = {}          # job id -> ObjectRef

    def serve(self) -> int:
        import ray

        claimed = claim(self.state_dir)
        if claimed is None:
            return 1
        self._lock, count, freed = claimed
        # tasks import qcompare from this checkout (the same path on every node)
        path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH", "")]))
        ray.init(address=self.address, namespace="qcompare", log_to_driver=False,
                 runtime_env={"env_vars": {"PYTHONPATH": path}})
        self.remote = ray.remote(max_retries=0)(_run_job)
        _say(f"ray runner {os.getpid()} serving {self.state_dir} on {self.address} "
             f"({ray.cluster_resources()}); removed {count} stale temporaries "
             f"({freed / 1e6:.1f} MB freed)")
        idle_since = time.monotonic()
        while True:
            try:
                self._reap()
                self._cancel_cancelled()
                self._start_queued()
                busy = bool(self.tasks or self.store.next_queued())
            except UserError as e:
                _say(f"job table error, retrying: {e}")
                busy = bool(self.tasks)
            if busy:
                idle_since = time.monotonic()
            elif time.monotonic() - idle_since > self.idle_exit_s:
                _say("idle: exiting")
                ray.shutdown()
                return 0
            time.sleep(self.poll_s)

    def _start_queued(self) -> None:
        while len(self.tasks) < self.max_jobs:
            # oldest first, a noise-floor job after every other (qcompare.jobs.noise_job)
            job = next((j for j in sorted(self.store.list(("queued",)),
                                          key=lambda j: (j.key.startswith(NOISE_PREFIX), j.id))
                        if j.id not in self.tasks), None)
            if job is None:
                return
            opts = task_resources(job.spec_json, self.state_dir)
            self.tasks[job.id] = self.remote.options(**opts).remote(
                str(self.state_dir), job.id, str(REPO))

    def _cancel_cancelled(self) -> None:
        import ray

        for job_id, ref in list(self.tasks.items()):
            if self.store.get(job_id).state == "cancelled":
                ray.cancel(ref, force=False)

    def _reap(self) -> None:
        import ray

        if not self.tasks:
            return
        refs = list(self.tasks.values())
        done, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        for job_id, ref in list(self.tasks.items()):
            if ref not in done:
                continue
            try:
                out = ray.get(ref)
                reason = None if out["skipped"] or out["rc"] == 0 else status.exit_error(out["rc"])
            except (ray.exceptions.TaskCancelledError, KeyboardInterrupt):
                reason = None                          # the table already says cancelled
            except ray.exceptions.RayError as e:
                reason = UserError(key="errors.ray_lost",
                                   error=f"{type(e).__name__}: {str(e).splitlines()[0]}")
            job = self.store.get(job_id)
            if job.state in ("queued", "running") and reason is None:
                reason = UserError(key="errors.no_result")
            if reason and job.state in ("queued", "running"):
                self.store.finish(job_id, "failed", error=reason,
                                  tb=_tail(job_log_path(self.state_dir, job_id)))
            del self.tasks[job_id]


CURRENT_CLUSTER = Path("/tmp/ray/ray_current_cluster")   # written by `ray start --head`


def known_address() -> str | None:
    """The Ray cluster this machine knows of without connecting: $RAY_ADDRESS, else the head
    started here (`ray start --head` records it), else None. None too without the package."""
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        return None
    if os.environ.get("RAY_ADDRESS"):
        return os.environ["RAY_ADDRESS"]
    try:
        text = CURRENT_CLUSTER.read_text().strip()
    except OSError:
        return None
    return text or None


_SUMMARY = """
import json, sys, ray
ray.init(address=sys.argv[1], namespace="qcompare", log_to_driver=False)
nodes = [n for n in ray.nodes() if n.get("Alive")]
total, free = ray.cluster_resources(), ray.available_resources()
print(json.dumps({"nodes": len(nodes), "cpus": total.get("CPU", 0), "gpus": total.get("GPU", 0),
                  "free_gpus": free.get("GPU", 0), "free_memory_gb": free.get("memory", 0) / 1e9}))
"""


def cluster_summary(address: str, timeout_s: float = 30.0) -> dict:
    """Alive nodes, CPUs, GPUs (total, free) and free memory of the cluster at `address`, asked
    in a child process (a Ray driver does not belong inside the dashboard's server); a
    UserError with the reason when it cannot be reached."""
    try:
        out = subprocess.run([sys.executable, "-c", _SUMMARY, address], capture_output=True,
                             text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise UserError(key="errors.ray_timeout", address=address, s=timeout_s) from None
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or ["no output"])[-1]
        raise UserError(key="errors.ray_unreachable", address=address, error=last)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="qcompare-ray-runner")
    ap.add_argument("--state-dir", dest="state_dir", required=True)
    ap.add_argument("--address", default="auto")
    ap.add_argument("--max-jobs", type=int, default=64)
    ap.add_argument("--idle-exit", type=float, default=DEFAULT_IDLE_EXIT_S)
    args = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    return RayRunner(args.state_dir, args.address, args.max_jobs, args.idle_exit).serve()


if __name__ == "__main__":
    raise SystemExit(main())
