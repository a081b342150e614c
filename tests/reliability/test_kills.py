"""kill -9 (and SIGTERM) of workers in every stage and of the runner: every job ends, nothing
stored is lost, waiting never hangs, and the temporaries a kill leaves are cleaned up."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from harness import TINY, kill_runner, run_cli, stored, wait_for

from qcompare.jobs.runner import ensure_runner, process_alive, runner_pid
from qcompare.jobs.store import JobStore

pytestmark = pytest.mark.reliability

# the stages a worker reports, in order; each is a place where a kill must leave no damage
STAGES = ("preparing model", "baseline: loading", "baseline: perplexity", "loading weights",
          "perplexity window", "speed", "writing result")


def _submit(state_dir, model_dir, method="rtn:bits=8"):
    from qcompare.core.registry import parse_method_arg
    from qcompare.core.specs import CorpusSpec, EvalSpec
    from qcompare.jobs import submit as submitting
    from qcompare.sources.models import model_from_arg

    ev = EvalSpec(tokens=256, window=64, speed_prompt=16, speed_new_tokens=4, speed_repeats=1)
    specs = submitting.build_specs(model_from_arg(str(model_dir)), [parse_method_arg(method)],
                                   CorpusSpec(), ev)
    return submitting.submit(specs, state_dir, start_runner=False)[0]


def _serve_paused(monkeypatch, state_dir, stage, seconds=60):
    """A fresh runner whose workers pause the first time they report `stage`."""
    kill_runner(state_dir)
    monkeypatch.setenv("QCOMPARE_TEST_PAUSE", f"{stage}:{seconds}")
    monkeypatch.setenv("QCOMPARE_RUNNER_IDLE_EXIT_S", "30")
    assert ensure_runner(state_dir)


def _paused_job(store, job_id, stage):
    def check():
        j = store.get(job_id)
        return j.state == "running" and j.stage.startswith(stage) and j
    return wait_for(check, 90, f"job {job_id} to pause in {stage!r}")


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_a_worker_killed_in_any_stage_becomes_a_failed_row_and_loses_nothing(
        no_runner_left, tiny_model_dir, monkeypatch, sig):
    state = no_runner_left
    store = JobStore.open(state)
    kills = 0
    for stage in STAGES:
        before = stored(state)
        _serve_paused(monkeypatch, state, stage)
        sub = _submit(state, tiny_model_dir)
        job = _paused_job(store, sub.job_id, stage)
        os.killpg(job.pid, sig)
        failed = wait_for(lambda i=job.id: store.get(i).state == "failed" and store.get(i), 15,
                          f"the killed job ({stage}) to fail")
        assert signal.Signals(sig).name in failed.error, failed.error
        assert stored(state) == before                       # nothing lost, nothing half-written
        assert store.list(("queued", "running")) == []       # nothing stuck
        kills += 1
    assert kills == len(STAGES)
    # a killed baseline pass left a temporary folder; the next runner removes it and says so
    kill_runner(state)
    monkeypatch.delenv("QCOMPARE_TEST_PAUSE")
    before = stored(state)
    sub = _submit(state, tiny_model_dir)
    assert ensure_runner(state)
    done = wait_for(lambda: store.get(sub.job_id).state in ("done", "failed") and store.get(sub.job_id),
                    120, "the job to finish once nothing kills it")
    assert done.state == "done", done.error
    assert len(stored(state)) == len(before) + 1 and set(before) <= set(stored(state))
    assert not [p for p in (state / "baselines").iterdir() if p.name.startswith(".") and p.is_dir()]
    log = (state / "logs" / "runner.log").read_text()
    assert "removed 1 stale temporary left by killed writers" in log   # the baseline pass's


def test_waiting_notices_a_dead_runner_and_all_queued_jobs_still_run(no_runner_left, tiny_model_dir, monkeypatch):
    """sweep --no-wait of two jobs, a `run` of a third waiting on them, kill -9 of the runner:
    the waiting `run` starts a new runner within seconds and every job lands."""
    state = no_runner_left
    monkeypatch.setenv("QCOMPARE_TEST_PAUSE", "preparing model:3")
    model = str(tiny_model_dir)
    out = run_cli(state, "sweep", "--model", model, "--method", "fp32", "--method", "rtn:bits=8",
                  "--no-wait", *TINY, env={"QCOMPARE_RUNNER_IDLE_EXIT_S": "30"})
    assert out.returncode == 0, out.stderr
    waiting = subprocess.Popen([sys.executable, "-m", "qcompare", "--home", str(state), "run",
                                "--model", model, "--method", "rtn", "--set", "bits=4", *TINY, "--json"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "QCOMPARE_RUNNER_IDLE_EXIT_S": "30"})
    store = JobStore.open(state)
    wait_for(lambda: len(store.list()) == 3 and any(j.state == "running" for j in store.list()),
             60, "the third job queued behind a running one")
    kill_runner(state)                                        # runner kill 1
    stdout, stderr = waiting.communicate(timeout=240)
    assert waiting.returncode == 0, stderr
    assert "runner was gone" in stderr
    assert [j.state for j in store.list()] == ["done"] * 3
    assert len(stored(state)) == 3


def test_resubmitting_a_spec_whose_runner_and_worker_died_runs_it_anew(
        no_runner_left, tiny_model_dir, monkeypatch):
    state = no_runner_left
    store = JobStore.open(state)
    _serve_paused(monkeypatch, state, "speed")              # fp32 reuses the baseline's scores
    sub = _submit(state, tiny_model_dir, "fp32")
    job = _paused_job(store, sub.job_id, "speed")
    kill_runner(state)                                        # runner kill 2
    os.killpg(job.pid, signal.SIGKILL)                        # and its worker: the machine "restarts"
    assert store.get(job.id).state == "running"               # nobody could record it
    monkeypatch.delenv("QCOMPARE_TEST_PAUSE")
    out = run_cli(state, "run", "--model", tiny_model_dir, "--method", "fp32", *TINY, "--json")
    assert out.returncode == 0, out.stderr
    assert "had lost its worker" in out.stderr
    assert store.get(job.id).state == "failed" and len(stored(state)) == 1


def test_a_worker_outlives_a_killed_runner_and_records_its_own_row(no_runner_left, tiny_model_dir, monkeypatch):
    state = no_runner_left
    store = JobStore.open(state)
    for stage in ("baseline: perplexity", "speed"):           # runner kills 3 and 4
        _serve_paused(monkeypatch, state, stage, seconds=2)
        sub = _submit(state, tiny_model_dir, "fp32" if stage.startswith("baseline") else "rtn:bits=8")
        job = _paused_job(store, sub.job_id, stage)
        kill_runner(state)
        done = wait_for(lambda i=job.id: store.get(i).state != "running" and store.get(i), 90,
                        "the orphaned worker to finish")
        assert done.state == "done", done.error
        wait_for(lambda j=job: not process_alive(j.pid, j.pid_start), 15, "the worker to exit")
    assert len(stored(state)) == 2 and runner_pid(state) is None


def test_sweep_of_cached_specs_answers_from_the_cache_twice(no_runner_left, tiny_model_dir):
    state = no_runner_left
    args = ["sweep", "--model", tiny_model_dir, "--method", "fp32", *TINY]
    first = run_cli(state, *args)
    assert first.returncode == 0, first.stderr
    t0 = time.monotonic()
    second = run_cli(state, *args)
    assert second.returncode == 0 and "cache hit: fp32" in second.stderr, second.stderr
    assert "Traceback" not in second.stderr and time.monotonic() - t0 < 30


def test_a_stopped_worker_is_marked_stalled_waiting_ends_and_cancel_still_ends_it(
        no_runner_left, tiny_model_dir):
    """SIGSTOP of a worker: a long call (the pause seam, beyond the limit) is not a stall, since
    the heartbeat thread keeps beating; a stopped process is, within the limit and a poll; the
    waiting `run` says so and returns; `jobs` shows it; `cancel` ends the stopped group."""
    state = no_runner_left
    store = JobStore.open(state)
    env = {"QCOMPARE_STALL_S": "5", "QCOMPARE_TEST_PAUSE": "speed:20",
           "QCOMPARE_RUNNER_IDLE_EXIT_S": "30"}
    waiting = subprocess.Popen(
        [sys.executable, "-m", "qcompare", "--home", str(state), "run", "--model",
         str(tiny_model_dir), "--method", "rtn", *TINY], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, env={**os.environ, **env})
    job = wait_for(lambda: [j for j in store.list() if j.stage.startswith("speed")], 120,
                   "the job to pause in its speed stage")[0]
    time.sleep(7)                                            # paused past the 5 s limit
    assert store.get(job.id).stalled is None and waiting.poll() is None
    before = stored(state)
    os.killpg(job.pid, signal.SIGSTOP)
    t0 = time.monotonic()
    try:
        _, stderr = waiting.communicate(timeout=30)
        took = time.monotonic() - t0
        assert waiting.returncode == 2, stderr
        assert f"job #{job.id} has stalled" in stderr and f"cancel {job.id}" in stderr, stderr
        assert took < 15, took                                # the limit, a beat and a check
        marked = wait_for(lambda: store.get(job.id).stalled and store.get(job.id), 10,
                          "the runner to mark the job stalled")
        assert marked.state == "running"
        listed = run_cli(state, "jobs")
        assert " stalled " in listed.stdout and "has stalled" in listed.stdout, listed.stdout
        assert "stalled" in (state / "logs" / "runner.log").read_text()
        out = run_cli(state, "cancel", job.id)
        assert out.returncode == 0 and "cancelled" in out.stdout, out.stderr
        wait_for(lambda: not process_alive(job.pid, job.pid_start), 15, "the stopped worker to end")
        assert store.get(job.id).state == "cancelled" and stored(state) == before
    finally:
        try:
            os.killpg(job.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if waiting.poll() is None:
            waiting.kill()
