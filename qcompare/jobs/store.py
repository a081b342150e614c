"""The durable job table: SQLite in WAL mode at `<state_dir>/jobs.sqlite` (or in memory for tests).

States: queued -> running -> done | failed | cancelled. A queued or running job with the same
spec key is reused by `submit`, so identical specs run once. Workers write their own stage,
progress, log tail and outcome; the runner fills in failures of workers that died.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from qcompare.core.errors import Message, UserError

LOG_TAIL_LINES = 200
BUSY_TIMEOUT_S = 30
CORRUPT = ("file is not a database", "database disk image is malformed")
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
    finished REAL,
    error_i18n TEXT,
    heartbeat REAL,
    stalled REAL
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state);
CREATE INDEX IF NOT EXISTS jobs_key ON jobs(key);
"""


class NoSuchJob(UserError, KeyError):
    """A job id the table does not hold."""

    def __str__(self) -> str:                 # KeyError would quote the message
        return str(self.args[0])


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
    error_i18n: str | None = None            # the error in every language (UserError.translations)
    heartbeat: float | None = None           # when the worker last said it is alive (time.time)
    stalled: float | None = None             # when the runner found the heartbeat too old


class JobStore:
    def __init__(self, path: str, busy_timeout_s: float = BUSY_TIMEOUT_S):
        self.path = path
        self.busy_timeout_s = busy_timeout_s
        self.recovered = ""                  # set when a broken table was moved aside
        self._lock = threading.Lock()
        try:
            self._connect()
        except sqlite3.DatabaseError as e:
            if path == ":memory:" or not any(m in str(e) for m in CORRUPT):
                raise self._user_error(e) from None
            self._recover_broken(e)

    def _connect(self) -> None:
        with self._translated():
            self._db = sqlite3.connect(self.path, timeout=self.busy_timeout_s,
                                       check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        if self.path != ":memory:":
            self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_s * 1000)}")
        self._db.executescript(_SCHEMA)
        columns = {r[1] for r in self._db.execute("PRAGMA table_info(jobs)")}
        # columns a table written by an older version lacks: failures' translations, heartbeats
        for name, kind in (("error_i18n", "TEXT"), ("heartbeat", "REAL"), ("stalled", "REAL")):
            if name in columns:
                continue
            try:
                self._db.execute(f"ALTER TABLE jobs ADD COLUMN {name} {kind}")
            except sqlite3.OperationalError as e:    # another process added it first
                if "duplicate column" not in str(e):
                    raise

    def _recover_broken(self, error: Exception) -> None:
        """Move an unreadable table aside (once, under a lock: concurrent openers wait) and
        start a fresh one; `recovered` says what happened."""
        path = Path(self.path)
        with open(path.parent / ".jobs.recover.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                self._connect()              # another process may have recovered it already
                return
            except sqlite3.DatabaseError:
                pass
            kept = path.with_name(f"{path.name}.broken-{time.strftime('%Y%m%d-%H%M%S')}")
            for suffix in ("", "-wal", "-shm"):
                part = Path(f"{path}{suffix}")
                if part.exists():
                    os.replace(part, f"{kept}{suffix}")
            self._connect()
        self.recovered = Message("errors.table_recovered", path=path, error=error, kept=kept.name)

    def _user_error(self, e: Exception) -> UserError:
        msg, where = str(e), Path(self.path)
        if "locked" in msg:
            return UserError(key="errors.table_locked", where=where, s=self.busy_timeout_s)
        if "readonly" in msg or "unable to open" in msg or isinstance(e, PermissionError):
            return UserError(key="errors.state_readonly", folder=where.parent, error=msg)
        if "disk is full" in msg or "No space left" in msg:
            from qcompare.core.diskspace import MB, free_bytes

            return UserError(key="errors.table_disk_full", where=where,
                             mb=free_bytes(where.parent) / MB)
        if any(m in msg for m in CORRUPT):
            return UserError(key="errors.table_damaged", where=where, error=msg)
        return UserError(key="errors.table_failed", where=where, error=msg)

    @contextlib.contextmanager
    def _translated(self):
        try:
            yield
        except (sqlite3.OperationalError, sqlite3.DatabaseError, PermissionError) as e:
            raise self._user_error(e) from None

    @classmethod
    def open(cls, state_dir: str | Path) -> "JobStore":
        folder = Path(state_dir)
        if folder.exists() and not folder.is_dir():
            raise UserError(key="errors.state_is_file", folder=folder)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UserError(key="errors.state_create", folder=folder, error=e.strerror) from None
        busy = float(os.environ.get("QCOMPARE_DB_BUSY_TIMEOUT_S", BUSY_TIMEOUT_S))
        return cls(str(folder / "jobs.sqlite"), busy)

    @classmethod
    def memory(cls) -> "JobStore":
        return cls(":memory:")

    def broken_copies(self) -> list[Path]:
        """Unreadable tables kept aside by earlier recoveries."""
        if self.path == ":memory:":
            return []
        p = Path(self.path)
        return sorted(q for q in p.parent.glob(f"{p.name}.broken-*") if not q.name.endswith(("-wal", "-shm")))

    def _exec(self, sql: str, args: tuple = ()) -> sqlite3.Cursor:
        with self._lock, self._translated():
            return self._db.execute(sql, args)

    # --- reading ---------------------------------------------------------------------------
    def get(self, job_id: int) -> Job:
        row = self._exec("SELECT * FROM jobs WHERE id=?", (job_id,)).fetchone()
        if row is None:
            raise NoSuchJob(f"there is no job #{job_id} in {self.path}: python -m qcompare jobs "
                            "lists the jobs.")
        return Job(**dict(row))

    def list(self, states: tuple[str, ...] | None = None, limit: int = 500) -> list[Job]:
        if states:
            marks = ",".join("?" * len(states))
            rows = self._exec(f"SELECT * FROM jobs WHERE state IN ({marks}) ORDER BY id DESC LIMIT ?",
                              (*states, limit)).fetchall()
        else:
            rows = self._exec("SELECT * FROM jobs ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
        return [Job(**dict(r)) for r in rows]

    def active(self, key: str) -> list[Job]:
        """Queued and running jobs of one spec key."""
        rows = self._exec("SELECT * FROM jobs WHERE key=? AND state IN ('queued','running') "
                          "ORDER BY id", (key,)).fetchall()
        return [Job(**dict(r)) for r in rows]

    def next_queued(self) -> Job | None:
        # a noise-floor job (qcompare.jobs.noise_job) only when nothing else waits
        row = self._exec("SELECT * FROM jobs WHERE state='queued' "
                         "ORDER BY key LIKE 'noise-%', id LIMIT 1").fetchone()
        return Job(**dict(row)) if row else None

    # --- writing ---------------------------------------------------------------------------
    def submit(self, key: str, label: str, spec_json: str) -> tuple[int, bool]:
        """(job id, created): an active job with the same key is returned instead of a new one."""
        with self._lock, self._translated():
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
        now = time.time()
        cur = self._exec("UPDATE jobs SET state='running', pid=?, pid_start=?, started=?, "
                         "heartbeat=?, stalled=NULL, stage='starting worker' "
                         "WHERE id=? AND state='queued'", (pid, pid_start, now, now, job_id))
        return cur.rowcount == 1

    def beat(self, job_id: int) -> None:
        """The worker's heartbeat: it is alive now (and no longer stalled, if it was)."""
        self._exec("UPDATE jobs SET heartbeat=?, stalled=NULL WHERE id=? AND state='running'",
                   (time.time(), job_id))

    def mark_stalled(self, job_id: int) -> bool:
        """The runner's verdict that a running job's heartbeat is too old (`status.stalled`)."""
        cur = self._exec("UPDATE jobs SET stalled=? WHERE id=? AND state='running' "
                         "AND stalled IS NULL", (time.time(), job_id))
        return cur.rowcount == 1

    def progress(self, job_id: int, stage: str, fraction: float) -> None:
        self._exec("UPDATE jobs SET stage=?, progress=? WHERE id=? AND state='running'",
                   (stage, fraction, job_id))

    def append_log(self, job_id: int, line: str) -> None:
        with self._lock, self._translated():
            row = self._db.execute("SELECT log FROM jobs WHERE id=?", (job_id,)).fetchone()
            if row is None:
                return
            lines = (row["log"].splitlines() + line.rstrip("\n").splitlines())[-LOG_TAIL_LINES:]
            self._db.execute("UPDATE jobs SET log=? WHERE id=?", ("\n".join(lines), job_id))

    def finish(self, job_id: int, state: str, error: str | UserError | None = None,
               tb: str | None = None, result_key: str | None = None) -> bool:
        """Move a queued/running job to a final state; a job already final is left alone. An
        error given as a UserError is stored as its English text and its translations."""
        assert state in FINISHED
        i18n_json = error.translations() if isinstance(error, UserError) else None
        text = str(error) if error is not None else None
        cur = self._exec(
            "UPDATE jobs SET state=?, error=?, error_i18n=?, traceback=?, result_key=?, "
            "finished=?, progress=CASE WHEN ?='done' THEN 1 ELSE progress END "
            "WHERE id=? AND state IN ('queued','running')",
            (state, text, i18n_json, tb, result_key, time.time(), state, job_id))
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
