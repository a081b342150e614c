"""The process runner with real spawned workers: success, cancel, kill -9, runner restarts."""
import os
import signal
import time

import pytest

from qcompare.core.registry import parse_method_arg
from qcompare.core.specs import CorpusSpec
from qcompare.jobs import submit as submitting
from qcompare.jobs.runner import cancel, ensure_runner, process_alive, runner_pid
from qcompare.jobs.store import JobStore
from qcompare.sources.models import model_from_arg


@pytest.fixture
def runner_env(monkeypatch, state_dir):
    monkeypatch.setenv("QCOMPARE_RUNNER_IDLE_EXIT_S", "2")
    yield state_dir
    pid = runner_pid(state_dir)
    if pid:
        os.kill(pid, signal.SIGKILL)


def _wait_for(pred, timeout=90.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _submit(state_dir, model_dir, ev, method="fp32"):
    specs = submitting.build_specs(model_from_arg(str(model_dir)), [parse_method_arg(method)],
                                   CorpusSpec(), ev)
    return submitting.submit(specs, state_dir)[0]


def _in_delay(store, job_id):
    job = store.get(job_id)
    return job.state == "running" and job.stage == "preparing model" and job


def _job_in_worker(state_dir, model_dir, ev, monkeypatch, delay_s, method="fp32"):
    """Submit a job whose worker pauses `delay_s` in its first stage; returns (store, job)."""
    monkeypatch.setenv("QCOMPARE_TEST_WORKER_DELAY_S", str(delay_s))
    store = JobStore.open(state_dir)
    sub = _submit(state_dir, model_dir, ev, method)
    return store, _wait_for(lambda: _in_delay(store, sub.job_id), what="worker start")


def _ended(store, job_id, states=("done", "failed")):
    return _wait_for(lambda: store.get(job_id).state in states and store.get(job_id),
                     what=f"job {job_id} to end")


def _kill_runner(state_dir):
    os.kill(runner_pid(state_dir), signal.SIGKILL)
    _wait_for(lambda: runner_pid(state_dir) is None, 10, "runner gone")


def test_a_job_runs_in_a_spawned_worker_and_lands_in_parquet(runner_env, tiny_model_dir, tiny_eval):
    from qcompare.store.results import ResultStore

    store = JobStore.open(runner_env)
    sub = _submit(runner_env, tiny_model_dir, tiny_eval)
    job = _ended(store, sub.job_id)
    assert job.state == "done", job.traceback
    assert job.pid != os.getpid() and ResultStore(runner_env).has(sub.spec.key())
    again = _submit(runner_env, tiny_model_dir, tiny_eval)
    assert again.cached and again.job_id == 0 and len(store.list()) == 1
    _wait_for(lambda: runner_pid(runner_env) is None, 20, "idle runner exit")


def test_cancel_kills_the_running_worker(runner_env, tiny_model_dir, tiny_eval, monkeypatch):
    store, job = _job_in_worker(runner_env, tiny_model_dir, tiny_eval, monkeypatch, 60)
    assert cancel(store, job.id)
    assert store.get(job.id).state == "cancelled"
    _wait_for(lambda: not process_alive(job.pid, job.pid_start), 10, "worker exit")


def test_a_worker_killed_with_sigkill_becomes_a_failed_row(runner_env, tiny_model_dir, tiny_eval, monkeypatch):
    store, job = _job_in_worker(runner_env, tiny_model_dir, tiny_eval, monkeypatch, 60)
    os.kill(job.pid, signal.SIGKILL)
    failed = _ended(store, job.id)
    assert failed.state == "failed" and "SIGKILL" in failed.error


def test_after_a_restart_a_job_whose_worker_is_gone_is_recovered_as_failed(
        runner_env, tiny_model_dir, tiny_eval, monkeypatch):
    store, job = _job_in_worker(runner_env, tiny_model_dir, tiny_eval, monkeypatch, 60)
    os.kill(job.pid, signal.SIGKILL)                      # the machine "restarts": worker
    _kill_runner(runner_env)                              # and runner both gone
    assert store.get(job.id).state == "running"           # nobody recorded anything yet
    assert ensure_runner(runner_env)
    failed = _ended(store, job.id)
    assert failed.state == "failed" and "is gone" in failed.error


def test_a_worker_that_outlives_its_runner_finishes_on_its_own(
        runner_env, tiny_model_dir, tiny_eval, monkeypatch):
    store, job = _job_in_worker(runner_env, tiny_model_dir, tiny_eval, monkeypatch, 3, "rtn:bits=8")
    _kill_runner(runner_env)                              # only the runner dies
    assert ensure_runner(runner_env)                      # a new one adopts the worker
    done = _ended(store, job.id)
    assert done.state == "done", done.error
