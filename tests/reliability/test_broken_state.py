"""Broken state: a corrupt cached result, a writer's leftover temporary, a corrupt or locked job
table, a read-only state folder and a full disk. Each ends in a clear message and a state that
recovers; stored results stay readable throughout."""
from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pandas as pd
import pytest
from harness import TINY, remount_read_only, run_cli, stored

from qcompare.jobs.store import JobStore
from qcompare.store.results import ResultStore

pytestmark = pytest.mark.reliability


def _measure(state, model_dir, method="fp32", extra=()):
    out = run_cli(state, "run", "--model", model_dir, "--method", method, *TINY, *extra, "--json")
    assert out.returncode == 0, out.stderr
    return out


def test_a_truncated_result_is_moved_aside_and_its_spec_computed_again(no_runner_left, tiny_model_dir):
    state = no_runner_left
    _measure(state, tiny_model_dir)
    (path,) = (state / "results").glob("*.parquet")
    path.write_bytes(path.read_bytes()[:100])                   # a torn write
    loaded = ResultStore(state).load()
    assert loaded.frame.empty and loaded.errors                 # reported, not fatal
    again = _measure(state, tiny_model_dir)
    assert "could not be read" in again.stderr and "moved to" in again.stderr
    (kept,) = (state / "results" / "unreadable").glob("*.parquet")
    assert kept.stat().st_size == 100                           # the broken file is kept
    assert len(ResultStore(state).load().frame) == 1 and not ResultStore(state).load().errors


def test_a_killed_writers_temporary_is_never_read_as_a_row(no_runner_left, tiny_model_dir):
    state = no_runner_left
    _measure(state, tiny_model_dir)
    (path,) = (state / "results").glob("*.parquet")
    shutil.copy(path, state / "results" / ".tmp-pid999999-abc.parquet")
    assert len(ResultStore(state).load().frame) == 1
    assert len(pd.read_parquet(path)) == 1
    out = run_cli(state, "results", "--format", "json")
    assert out.returncode == 0 and len(json.loads(out.stdout)) == 1


def test_a_corrupt_job_table_is_kept_aside_and_a_fresh_one_started(no_runner_left, tiny_model_dir):
    state = no_runner_left
    _measure(state, tiny_model_dir)
    before = stored(state)
    for part in state.glob("jobs.sqlite*"):
        part.unlink()
    (state / "jobs.sqlite").write_bytes(b"this is not a database" * 100)
    out = run_cli(state, "jobs")
    assert out.returncode == 0, out.stderr
    assert "could not be read" in out.stderr and "jobs.sqlite.broken-" in out.stderr
    (kept,) = [p for p in state.glob("jobs.sqlite.broken-*") if not p.name.endswith(("-wal", "-shm"))]
    assert kept.read_bytes().startswith(b"this is not a database")
    assert run_cli(state, "results").returncode == 0
    hit = _measure(state, tiny_model_dir)                       # the cached row still answers
    assert "cache hit" in hit.stderr and stored(state) == before


def test_the_pages_survive_a_corrupt_job_table(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    (tmp_path / "jobs.sqlite").write_bytes(b"garbage" * 1000)
    monkeypatch.setenv("QCOMPARE_HOME", str(tmp_path))
    monkeypatch.setenv("QCOMPARE_START_RUNNER", "0")
    app = str(Path(__file__).resolve().parents[2] / "app.py")
    for page in (None, "pages/jobs.py", "pages/results.py"):
        at = AppTest.from_file(app, default_timeout=60)
        at.run()
        if page:
            at.switch_page(page)
            at.run()
        assert not at.exception, at.exception
    assert list(tmp_path.glob("jobs.sqlite.broken-*"))


def test_a_locked_job_table_says_who_to_wait_for(no_runner_left, tiny_model_dir):
    state = no_runner_left
    JobStore.open(state)
    holder = sqlite3.connect(state / "jobs.sqlite", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        out = run_cli(state, "run", "--model", tiny_model_dir, "--method", "fp32", *TINY,
                      env={"QCOMPARE_DB_BUSY_TIMEOUT_S": "1"})
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert out.returncode == 2 and "is locked by another process" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr


def test_a_read_only_state_folder_says_pick_a_writable_one_and_results_stay_readable(
        tmpfs, tiny_model_dir):
    state = tmpfs("32m")
    _measure(state, tiny_model_dir)
    before = stored(state)
    remount_read_only(state)
    out = run_cli(state, "run", "--model", tiny_model_dir, "--method", "rtn", *TINY)
    assert out.returncode == 2 and "not writable" in out.stderr and "--home" in out.stderr, out.stderr
    listed = run_cli(state, "results", "--format", "json")
    assert listed.returncode == 0 and len(json.loads(listed.stdout)) == 1
    assert stored(state) == before


def test_a_full_disk_fails_at_submission_with_the_space_left(tmpfs, tiny_model_dir):
    state = tmpfs("3m")
    out = run_cli(state, "run", "--model", tiny_model_dir, "--method", "fp32", *TINY)
    assert out.returncode == 2, out.stderr
    assert "disk full:" in out.stderr and "MB free" in out.stderr and "MB needed" in out.stderr
    assert JobStore.open(state).list() == []                    # nothing half-queued


def test_a_baseline_too_large_for_the_disk_fails_its_job_and_the_cli_returns(tmpfs, tiny_model_dir):
    """30 MB free: enough to queue, not for 32,768 tokens of fp16 log-probabilities (about
    25 MB) plus the headroom: the job fails before writing, with the sizes; the table stays
    consistent and the CLI returns."""
    state = tmpfs("30m")
    out = run_cli(state, "run", "--model", tiny_model_dir, "--method", "fp32", "--tokens", "32768",
                  "--window", "64", "--speed-repeats", "0", timeout=300)
    assert out.returncode == 1, out.stderr
    assert "disk full:" in out.stderr and "baseline" in out.stderr, out.stderr
    jobs = JobStore.open(state).list()
    assert [j.state for j in jobs] == ["failed"] and "disk full" in jobs[0].error
    assert not [p for p in (state / "baselines").glob(".*") if p.is_dir()]
    assert stored(state) == {}


def test_the_browser_is_shown_an_errors_type_not_its_traceback():
    import tomllib

    config = tomllib.loads((Path(__file__).resolve().parents[2] / ".streamlit" / "config.toml").read_text())
    assert config["client"]["showErrorDetails"] == "type"
    assert config["server"]["address"] == "127.0.0.1"


def _fill(where: Path) -> Path:
    """Write zeros into `where` until its file system is full; returns the file."""
    filler = where / "filler.bin"
    block = b"\0" * (1 << 20)
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(block)
        except OSError:
            pass
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass
    return filler


def test_a_disk_that_fills_mid_job_is_named_at_once_and_the_job_fails_for_it(
        tmpfs, tiny_model_dir):
    """The disk fills while a job evaluates and its worker then dies of SIGBUS (what a
    memory-mapped page on a full disk does): the waiting `run` returns within seconds saying
    the disk is full and which job could not finish; once space is freed the job is failed
    for the disk, not for the signal; nothing stored changes."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from harness import kill_runner, wait_for

    state = tmpfs("48m")
    env = {**os.environ, "QCOMPARE_TEST_PAUSE": "perplexity window:30",
           "QCOMPARE_RUNNER_IDLE_EXIT_S": "30"}
    waiting = subprocess.Popen(
        [sys.executable, "-m", "qcompare", "--home", str(state), "run", "--model",
         str(tiny_model_dir), "--method", "rtn", *TINY], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, env=env)
    store = JobStore.open(state)
    try:
        job = wait_for(lambda: [j for j in store.list() if j.stage.startswith("perplexity window")],
                       120, "the job to pause in its evaluation")[0]
        before = stored(state)
        filler = _fill(state)
        os.killpg(job.pid, signal.SIGBUS)
        t0 = time.monotonic()
        _, stderr = waiting.communicate(timeout=30)
        assert time.monotonic() - t0 < 10
        assert waiting.returncode in (1, 2), stderr
        assert "disk is full" in stderr and f"job #{job.id} could not finish" in stderr, stderr
        filler.unlink()
        failed = wait_for(lambda: store.get(job.id).state == "failed" and store.get(job.id), 15,
                          "the job to be recorded once space is free")
        assert "disk is full" in failed.error and "SIGBUS" not in failed.error, failed.error
        assert stored(state) == before
    finally:
        if waiting.poll() is None:
            waiting.kill()
        kill_runner(state)


def test_a_baseline_file_reserves_its_blocks_so_a_full_disk_fails_before_any_write(tmpfs):
    """A memory-mapped file on a disk with too little space is refused when it is created, with
    the sizes, instead of killing its writer with SIGBUS at the first page it touches."""
    from qcompare.core.errors import UserError
    from qcompare.store.reference import ReferenceWriter

    where = tmpfs("4m")
    with pytest.raises(UserError, match="disk full:.*baseline's log-probabilities"):
        ReferenceWriter(where, 64, 49_152)                   # 6.3 MB of fp16 on a 4 MB disk
    ReferenceWriter(where, 16, 1024)                          # 32 KB: fits, and is allocated
    import os

    assert os.stat(where / "logprobs.npy").st_blocks * 512 >= 16 * 1024 * 2
