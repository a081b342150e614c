"""Fixtures of the reliability suite: a runner never left behind, and a tmpfs where the test
may mount one."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from harness import kill_runner


@pytest.fixture
def no_runner_left(state_dir):
    yield state_dir
    kill_runner(state_dir)


@pytest.fixture
def tmpfs(tmp_path):
    """mount(size, ro=False) -> a fresh tmpfs folder of `size`; skips where mounting is refused."""
    mounted = []

    def mount(size: str, name: str = "fs") -> Path:
        where = tmp_path / name
        where.mkdir()
        out = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                             capture_output=True, text=True)
        if out.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({out.stderr.strip() or 'not root'}): "
                        "the full-disk and read-only cases need one")
        mounted.append(where)
        return where

    yield mount
    for where in mounted:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)
