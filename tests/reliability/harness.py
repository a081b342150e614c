"""Helpers of the reliability suite: the CLI as a real process, fingerprints of what is stored,
waiting, killing the runner."""
from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

TINY = ["--tokens", "256", "--window", "64", "--speed-prompt", "16", "--speed-new-tokens", "4",
        "--speed-repeats", "1"]


def run_cli(state_dir, *args, env=None, timeout=180):
    full = {**os.environ, "QCOMPARE_RUNNER_IDLE_EXIT_S": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "qcompare", "--home", str(state_dir), *map(str, args)],
                          capture_output=True, text=True, env=full, timeout=timeout)


def stored(state_dir) -> dict[str, str]:
    """sha256 of every stored result file: what must never change or disappear."""
    folder = Path(state_dir) / "results"
    if not folder.is_dir():
        return {}
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.glob("*.parquet")
            if not p.name.startswith(".")}


def wait_for(pred, timeout=60.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def kill_runner(state_dir) -> None:
    from qcompare.jobs.runner import runner_pid

    pid = runner_pid(state_dir)
    if pid:
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: runner_pid(state_dir) is None, 10, "runner gone")


def remount_read_only(where: Path) -> None:
    """Remount a tmpfs read-only once nothing holds a file on it open for writing (the runner
    that served it is stopped first)."""
    kill_runner(where)
    for _ in range(50):
        out = subprocess.run(["mount", "-o", "remount,ro", str(where)], capture_output=True, text=True)
        if out.returncode == 0:
            return
        time.sleep(0.2)
    pytest.skip(f"cannot remount read-only: {out.stderr.strip()}")
