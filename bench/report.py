"""Writes one benchmark's section into BENCHMARKS.md, replacing that section's previous text."""
from __future__ import annotations

import datetime as dt
import platform
import re
from pathlib import Path

from qcompare.jobs.worker import device_name

PATH = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"
HEADER = ("# Benchmarks\n\nEvery number here was measured by a script under `bench/` (named in its "
          "section), which rewrites its own section. Ratios compare runs made in the same process.\n")


def write_section(title: str, body: str, measured_on: str | None = None, date: str | None = None) -> None:
    """Replace (or append) section `title`; the stamp names where and when it was measured
    (default: today, on this machine's CPU)."""
    text = PATH.read_text() if PATH.exists() else HEADER
    where = measured_on or f"{platform.machine()} ({device_name('cpu')})"
    stamp = f"_Measured {date or dt.date.today().isoformat()} on {where}._"
    section = f"## {title}\n\n{stamp}\n\n{body.strip()}\n"
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.M | re.S)
    text = pattern.sub(lambda m: section + "\n", text) if pattern.search(text) else text.rstrip() + "\n\n" + section
    PATH.write_text(text)
