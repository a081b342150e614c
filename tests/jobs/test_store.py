from qcompare.jobs.status import classify, eta_seconds, exit_error
from qcompare.jobs.store import JobStore


def test_identical_active_specs_are_queued_once():
    s = JobStore.memory()
    a, new_a = s.submit("k1", "rtn", "{}")
    b, new_b = s.submit("k1", "rtn", "{}")
    c, _ = s.submit("k2", "fp32", "{}")
    assert a == b and new_a and not new_b and c != a
    s.finish(a, "done", result_key="k1")
    d, new_d = s.submit("k1", "rtn", "{}")          # finished jobs do not absorb new ones
    assert new_d and d != a


def test_final_states_are_final():
    s = JobStore.memory()
    j, _ = s.submit("k", "x", "{}")
    assert s.mark_running(j, 123, 1.0)
    assert s.finish(j, "cancelled")
    assert not s.finish(j, "done")                  # a late worker cannot overwrite a cancel
    assert s.get(j).state == "cancelled"


def test_reporter_writes_progress_and_a_log_tail():
    s = JobStore.memory()
    j, _ = s.submit("k", "x", "{}")
    s.mark_running(j, 1, None)
    r = s.reporter(j, min_interval=0)
    r("loading", 0.1)
    r("perplexity window 1/2", 0.5)
    r("perplexity window 2/2", 0.9)
    job = s.get(j)
    assert job.stage == "perplexity window 2/2" and job.progress == 0.9
    assert job.log.count("perplexity") == 1 and "loading" in job.log


def test_clear_finished_keeps_active_jobs():
    s = JobStore.memory()
    a, _ = s.submit("a", "x", "{}")
    b, _ = s.submit("b", "x", "{}")
    s.finish(a, "failed", error="boom")
    assert s.clear_finished() == 1
    assert [j.id for j in s.list()] == [b]


def test_status_rules():
    s = JobStore.memory()
    j, _ = s.submit("a", "x", "{}")
    s.mark_running(j, 999, 1.0)
    job = s.get(j)
    assert classify(job, worker_alive=False) == "lost"
    assert classify(job, worker_alive=True) == "running"
    assert "SIGKILL" in str(exit_error(-9)) and "status 3" in str(exit_error(3))
    assert "SIGKILL" in exit_error(-9).text("ja") and "強制終了" in exit_error(-9).text("ja")
    assert eta_seconds(job, job.started + 10) is None     # no progress yet
    s.progress(j, "x", 0.25)
    assert eta_seconds(s.get(j), s.get(j).started + 10) == 30


def test_a_table_from_before_translated_errors_and_heartbeats_gains_the_columns_and_keeps_its_jobs(
        tmp_path):
    import sqlite3

    from qcompare.core.errors import UserError
    from qcompare.jobs.store import _SCHEMA, JobStore

    old = _SCHEMA.replace(",\n    error_i18n TEXT,\n    heartbeat REAL,\n    stalled REAL", "")
    assert "error_i18n" not in old and "heartbeat" not in old
    db = sqlite3.connect(tmp_path / "jobs.sqlite")
    db.executescript(old)
    db.execute("INSERT INTO jobs(key,label,spec_json,created) VALUES ('k','old job','{}',0)")
    db.commit()
    db.close()
    store = JobStore.open(tmp_path)
    (job,) = store.list()
    assert job.label == "old job" and job.error_i18n is None and job.heartbeat is None
    assert store.mark_running(job.id, 1, None) and store.get(job.id).heartbeat is not None
    store.finish(job.id, "failed", error=UserError(key="errors.cancelled"))
    got = store.get(job.id)
    assert got.error == "cancelled by the user" and "ユーザーが取り消しました" in got.error_i18n
    JobStore.open(tmp_path)                                      # a second open: nothing to add


def test_a_beat_clears_the_stall_mark_and_only_running_jobs_are_marked():
    from qcompare.jobs.store import JobStore

    s = JobStore.memory()
    j, _ = s.submit("k", "x", "{}")
    assert not s.mark_stalled(j)                                  # queued: nothing to stall
    s.mark_running(j, 1, None)
    first = s.get(j).heartbeat
    assert s.mark_stalled(j) and s.get(j).stalled is not None
    assert not s.mark_stalled(j)                                  # marked once
    s.beat(j)
    assert s.get(j).stalled is None and s.get(j).heartbeat >= first
    s.finish(j, "done")
    s.beat(j)
    assert s.get(j).state == "done"
