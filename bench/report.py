"""Writes one benchmark's section into BENCHMARKS.md, replacing that section's previous text."""
from __future__ import annotations

import datetime as dt
import platform
import re
from pathlib import Path

PATH = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"
HEADER = ("# Benchmarks\n\nEvery number here was measured by a script under `bench/` (named in its "
          "section), which rewrites its own section. Ratios compare runs made in the same process.\n")


def write_section(title: str, body: str) -> None:
    text = PATH.read_text() if PATH.exists() else HEADER
    stamp = f"_Measured {dt.date.today().isoformat()} on {platform.machine()} ({_cpu()})._"
    section = f"## {title}\n\n{stamp}\n\n{body.strip()}\n"
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.M | re.S)
    text = pattern.sub(lambda m: section + "\n", text) if pattern.search(text) else text.rstrip() + "\n\n" + section
    PATH.write_text(text)


def _cpu() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()
