"""The durable job table: SQLite in WAL mode at `<state_dir>/jobs.sqlite` (or in memory for tests).

States: queued -> running -> done | failed | cancelled. A queued or running job with the same
spec key is reused by `submit`, so identical specs run once. Workers write their own stage,
progress, log tail and outcome; the runner fills in failures of workers that died.
"""
from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

LOG_TAIL_LINES = 200
ACTIVE = ("queued", "running")
FINISHED = ("done", "failed", "cancelled")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL,
    label TEXT NOT NULL,
    spec_json TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'queued',
    stage TEXT NOT NULL DEFAULT '',
    progress REAL NOT NULL DEFAULT 0,
    log TEXT NOT NULL DEFAULT '',
    error TEXT,
    traceback TEXT,
    result_key TEXT,
    cached INTEGER NOT NULL DEFAULT 0,
    pid INTEGER,
    pid_start REAL,
    created REAL NOT NULL,
    started REAL,
    finished REAL
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state);
CREATE INDEX IF NOT EXISTS jobs_key ON jobs(key);
"""


@dataclass(frozen=True)
class Job:
    id: int
    key: str
    label: str
    spec_json: str
    state: str
    stage: str
    progress: float
    log: str
    error: str | None
    traceback: str | None
    result_key: str | None
    cached: int
    pid: int | None
    pid_start: float | None
    created: float
    started: float | None
    finished: float | None


class JobStore:
    def __init__(self, path: str):
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, timeout=30, check_same_thread=False,
                                   isolation_level=None)
        self._db.row_factory = sqlite3.Row
        if path != ":memory:":
            self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA busy_timeout=30000")
        self._db.executescript(_SCHEMA)

    @classmethod
    def open(cls, state_dir: str | Path) -> "JobStore":
        Path(state_dir).mkdir(parents=True, exist_ok=True)
        return cls(str(Path(state_dir) / "jobs.sqlite"))

    @classmethod
    def memory(cls) -> "JobStore":
        return cls(":memory:")

    def _exec(self, sql: str, args: tuple = ()) -> sqlite3.Cursor:
        with self._lock:
            return self._db.execute(sql, args)

    # --- reading ---------------------------------------------------------------------------
    def get(self, job_id: int) -> Job:
        row = self._exec("SELECT * FROM jobs WHERE id=?", (job_id,)).fetchone()
        if row is None:
            raise KeyError(f"no job {job_id}")
        return Job(**dict(row))

    def list(self, states: tuple[str, ...] | None = None, limit: int = 500) -> list[Job]:
        if states:
            marks = ",".join("?" * len(states))
            rows = self._exec(f"SELECT * FROM jobs WHERE state IN ({marks}) ORDER BY id DESC LIMIT ?",
                              (*states, limit)).fetchall()
        else:
            rows = self._exec("SELECT * FROM jobs ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
        return [Job(**dict(r)) for r in rows]

    def next_queued(self) -> Job | None:
        row = self._exec("SELECT * FROM jobs WHERE state='queued' ORDER BY id LIMIT 1").fetchone()
        return Job(**dict(row)) if row else None

    # --- writing ---------------------------------------------------------------------------
    def submit(self, key: str, label: str, spec_json: str) -> tuple[int, bool]:
        """(job id, created): an active job with the same key is returned instead of a new one."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute(
                    "SELECT id FROM jobs WHERE key=? AND state IN ('queued','running') "
                    "ORDER BY id LIMIT 1", (key,)).fetchone()
                if row:
                    self._db.execute("COMMIT")
                    return row["id"], False
                cur = self._db.execute(
                    "INSERT INTO jobs(key,label,spec_json,created) VALUES (?,?,?,?)",
                    (key, label, spec_json, time.time()))
                self._db.execute("COMMIT")
                return cur.lastrowid, True
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def record_cached(self, key: str, label: str, spec_json: str) -> int:
        """A job row for a cache hit, done at once, so pages list it with the others."""
        now = time.time()
        cur = self._exec(
            "INSERT INTO jobs(key,label,spec_json,state,stage,progress,result_key,cached,created,"
            "started,finished) VALUES (?,?,?,'done','cache hit',1,?,1,?,?,?)",
            (key, label, spec_json, key, now, now, now))
        return cur.lastrowid

    def mark_running(self, job_id: int, pid: int, pid_start: float) -> bool:
        cur = self._exec("UPDATE jobs SET state='running', pid=?, pid_start=?, started=?, "
                         "stage='starting worker' WHERE id=? AND state='queued'",
                         (pid, pid_start, time.time(), job_id))
        return cur.rowcount == 1

    def progress(self, job_id: int, stage: str, fraction: float) -> None:
        self._exec("UPDATE jobs SET stage=?, progress=? WHERE id=? AND state='running'",
                   (stage, fraction, job_id))

    def append_log(self, job_id: int, line: str) -> None:
        with self._lock:
            row = self._db.execute("SELECT log FROM jobs WHERE id=?", (job_id,)).fetchone()
            if row is None:
                return
            lines = (row["log"].splitlines() + line.rstrip("\n").splitlines())[-LOG_TAIL_LINES:]
            self._db.execute("UPDATE jobs SET log=? WHERE id=?", ("\n".join(lines), job_id))

    def finish(self, job_id: int, state: str, error: str | None = None, tb: str | None = None,
               result_key: str | None = None) -> bool:
        """Move a queued/running job to a final state; a job already final is left alone."""
        assert state in FINISHED
        cur = self._exec(
            "UPDATE jobs SET state=?, error=?, traceback=?, result_key=?, finished=?, "
            "progress=CASE WHEN ?='done' THEN 1 ELSE progress END "
            "WHERE id=? AND state IN ('queued','running')",
            (state, error, tb, result_key, time.time(), state, job_id))
        return cur.rowcount == 1

    def retry(self, job_id: int) -> int:
        job = self.get(job_id)
        return self.submit(job.key, job.label, job.spec_json)[0]

    def clear_finished(self) -> int:
        return self._exec("DELETE FROM jobs WHERE state IN ('done','failed','cancelled')").rowcount

    def reporter(self, job_id: int, min_interval: float = 0.25):
        """A (stage, fraction) callback for a worker: writes at most every `min_interval` s,
        always on a new stage name, and appends each new stage to the log tail."""
        last = {"t": 0.0, "stage": None}

        def report(stage: str, fraction: float) -> None:
            now = time.monotonic()
            base = stage.split(" window ")[0]
            if base != last["stage"]:
                self.append_log(job_id, f"{time.strftime('%H:%M:%S')} {stage}")
            if base != last["stage"] or now - last["t"] >= min_interval or fraction >= 1:
                self.progress(job_id, stage, fraction)
                last.update(t=now, stage=base)
        return report
