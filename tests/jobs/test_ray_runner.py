"""The Ray runner against a real local Ray head on 127.0.0.1: a sweep of three jobs on the tiny
model, one cancelled mid-run, one whose worker is killed with SIGKILL, and the third's row equal
to the local runner's for the same spec."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

from qcompare.core.registry import parse_method_arg
from qcompare.core.specs import CorpusSpec
from qcompare.jobs import runner as local_runner
from qcompare.jobs import submit as submitting
from qcompare.jobs.store import JobStore
from qcompare.sources.models import model_from_arg
from qcompare.store.results import ResultStore

pytestmark = pytest.mark.ray
ray = pytest.importorskip("ray", reason="the ray package is not installed")
PAUSE_S = 25


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ray_cli() -> str:
    return shutil.which("ray", path=os.path.dirname(sys.executable)) or "ray"


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory):
    """A Ray head on loopback with 2 CPUs; its workers pause PAUSE_S s when a job reaches its
    speed stage (the worker's test seam), so the test can act on two running jobs."""
    port = _free_port()
    env = {**os.environ, "QCOMPARE_TEST_PAUSE": f"speed:{PAUSE_S}", "RAY_USAGE_STATS_ENABLED": "0"}
    tmp = tmp_path_factory.mktemp("ray")
    out = subprocess.run([_ray_cli(), "start", "--head", f"--port={port}", "--num-cpus=2",
                          "--node-ip-address=127.0.0.1", "--include-dashboard=false",
                          f"--temp-dir={tmp}", "--disable-usage-stats"],
                         env=env, capture_output=True, text=True, timeout=180)
    if out.returncode != 0:
        pytest.skip(f"could not start a local Ray head: {out.stderr[-500:]}")
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([_ray_cli(), "stop", "--force"], capture_output=True, timeout=120)


def _wait(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_sweep_on_ray_cancels_fails_and_matches_the_local_runner(ray_head, tiny_model_dir,
                                                                  tiny_eval, tmp_path):
    state = tmp_path / "ray-state"
    methods = ("rtn:bits=8", "rtn:bits=4", "rtn:bits=3")
    ev = tiny_eval
    cli = subprocess.run(
        [sys.executable, "-m", "qcompare", "--home", str(state), "sweep", "--model", str(tiny_model_dir),
         *[a for m in methods for a in ("--method", m)], "--tokens", str(ev.tokens),
         "--window", str(ev.window), "--speed-prompt", str(ev.speed_prompt),
         "--speed-new-tokens", str(ev.speed_new_tokens), "--speed-repeats", str(ev.speed_repeats),
         "--runner", "ray", "--address", ray_head, "--no-wait"],
        capture_output=True, text=True, timeout=120)
    assert cli.returncode == 0, cli.stderr
    specs = submitting.build_specs(model_from_arg(str(tiny_model_dir)),
                                   [parse_method_arg(m) for m in methods], CorpusSpec(), ev)
    store = JobStore.open(state)
    jobs = {j.key: j.id for j in store.list()}
    assert set(jobs) == {s.key() for s in specs}          # the CLI queued these very specs
    try:
        running = lambda: [j for j in store.list(("running",)) if j.stage.startswith("speed")]  # noqa: E731
        _wait(lambda: len(running()) == 2, 240, "two jobs paused in their speed stage")
        first, second = sorted(running(), key=lambda j: j.id)
        assert local_runner.cancel(store, first.id)
        os.kill(second.pid, signal.SIGKILL)
        third = next(i for i in jobs.values() if i not in (first.id, second.id))
        _wait(lambda: store.get(third).state in ("done", "failed"), 240, "the third job")
        _wait(lambda: store.get(second.id).state == "failed", 60, "the killed job's failure")
    finally:
        local_runner.stop_runner(state)
    assert store.get(first.id).state == "cancelled"
    killed = store.get(second.id)
    assert "SIGKILL" in killed.error, killed.error
    done = store.get(third)
    assert done.state == "done", (done.error, done.traceback)
    ray_row = ResultStore(state).get(done.result_key)
    assert ray_row["runner"] == "ray" and ray_row["node"]
    # stopped in their speed stage: neither wrote a row, nothing else was lost
    assert not ResultStore(state).has(first.key) and not ResultStore(state).has(killed.key)
    assert len(ResultStore(state).load().frame) == 1

    # the same spec through the local path: identical quality numbers, same key
    from qcompare.jobs import worker

    spec = next(s for s in specs if s.key() == done.result_key)
    local_row = worker.run(spec, tmp_path / "local-state")
    assert local_row["runner"] == "local"
    for col in ("ppl", "ppl_se", "kld_mean", "kld_p99", "top1_agree", "n_scored", "weights_mib"):
        assert ray_row[col] == local_row[col], col


def test_a_tasks_resources_come_from_its_spec(tiny_model_dir, tiny_eval, tmp_path):
    from dataclasses import replace

    from qcompare.jobs.ray_runner import task_resources

    model = model_from_arg(str(tiny_model_dir))
    (cpu,) = submitting.build_specs(model, [parse_method_arg("rtn")], CorpusSpec(),
                                    replace(tiny_eval, threads=2))
    res = task_resources(cpu.to_json(), tmp_path)
    n = sum(p.numel() for p in __import__("safetensors.torch", fromlist=["x"]).load_file(
        str(tiny_model_dir / "model.safetensors")).values())
    assert res == {"num_cpus": 2, "num_gpus": 0, "memory": 4 * n}
    cuda = replace(cpu, eval=replace(cpu.eval, device="cuda", threads=0))
    assert task_resources(cuda.to_json(), tmp_path)["num_gpus"] == 1


@pytest.mark.gpu
def test_a_cuda_job_is_scheduled_on_a_gpu(ray_head, tiny_model_dir, tiny_eval, tmp_path):
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU: the task asks Ray for num_gpus=1")
    from dataclasses import replace

    state = tmp_path / "state"
    try:
        (spec,) = submitting.build_specs(model_from_arg(str(tiny_model_dir)), [parse_method_arg("fp16")],
                                         CorpusSpec(), replace(tiny_eval, device="cuda"))
        (sub,) = submitting.submit([spec], state, runner="ray", address=ray_head)
        store = JobStore.open(state)
        _wait(lambda: store.get(sub.job_id).state in ("done", "failed"), 300, "the CUDA job")
        assert store.get(sub.job_id).state == "done", store.get(sub.job_id).error
        assert ResultStore(state).get(spec.key())["device"] == "cuda"
    finally:
        local_runner.stop_runner(state)
