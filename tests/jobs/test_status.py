"""The Jobs page's pure rules: the sweep's summary, the order cards are shown in."""
from dataclasses import replace

from qcompare.jobs import status
from qcompare.jobs.store import Job

BASE = Job(id=0, key="k", label="x", spec_json="{}", state="queued", stage="", progress=0.0, log="",
           error=None, traceback=None, result_key=None, cached=0, pid=None, pid_start=None,
           created=1000.0, started=None, finished=None)


def _job(i, state, **kw):
    return replace(BASE, **{"id": i, "key": f"k{i}", "state": state, "created": 1000.0 + i, **kw})


def test_the_summary_counts_the_sweep_and_estimates_what_is_left():
    jobs = [_job(1, "done", started=1000, finished=1060), _job(2, "done", started=1060, finished=1116),
            _job(3, "running", started=1116, progress=0.5), _job(4, "queued"), _job(5, "queued")]
    text = status.batch_summary(jobs, now=1146)          # #3: 30 s for half: 30 s left
    assert text.startswith("2 of 5 done")
    # 30 s for #3 and the median of 60 s and 56 s (60, the upper one) for each of two queued
    assert text.endswith("about 2 min left")


def test_the_summary_says_when_it_cannot_estimate_yet():
    text = status.batch_summary([_job(1, "running", started=1000, progress=0.5), _job(2, "queued")], 1010)
    assert text == "0 of 2 done, time left: known once a job of this sweep has finished"


def test_a_second_press_mid_sweep_keeps_the_sweep_and_its_estimate():
    first = [_job(1, "done", started=1000, finished=1060), _job(2, "done", started=1060, finished=1120),
             _job(3, "running", started=1120, progress=0.5), _job(4, "queued")]
    before = status.batch_summary(first, now=1150)
    # 300 s later the button is pressed again: the two done specs are recorded as cache hits
    # (new rows), the running and queued ones are joined (no new rows); a noise-floor job waits
    hits = [_job(11, "done", key="k1", cached=1, created=1450.0),
            _job(12, "done", key="k2", cached=1, created=1450.1)]
    noise = [_job(13, "queued", key="noise-abc", created=1450.2)]
    after = status.batch_summary(first + hits + noise, now=1150)
    assert before.startswith("2 of 4 done") and after == before


def test_an_old_sweep_is_not_counted_with_the_new_one():
    old = [_job(1, "done", started=1, finished=2)]
    old[0] = replace(old[0], created=1.0)
    new = [_job(10, "running", started=1010, progress=0.1)]
    assert status.batch_summary(old + new, 1011).startswith("0 of 1 done")
    assert status.batch_summary(old, 5000) == "1 of 1 done"


def test_running_jobs_come_first_then_queued_in_run_order_then_the_newest_finished():
    jobs = [_job(1, "done", finished=1), _job(2, "failed", finished=5), _job(3, "queued"),
            _job(4, "running"), _job(5, "queued")]
    assert [j.id for j in status.display_order(jobs)] == [4, 3, 5, 2, 1]


def test_a_heartbeat_older_than_its_stage_limit_is_a_stall_and_slow_stages_get_longer(monkeypatch):
    monkeypatch.delenv("QCOMPARE_STALL_S", raising=False)
    quick = '{"eval": {"tokens": 2048}}'
    job = _job(1, "running", spec_json=quick, stage="perplexity window 3/8", heartbeat=1000.0,
               pid=7, started=990.0)
    assert status.stall_limit_s(job) == status.STALL_S
    assert not status.is_stalled(job, 1000.0 + status.STALL_S - 1)
    assert status.is_stalled(job, 1000.0 + status.STALL_S + 1)
    assert status.classify(replace(job, heartbeat=1e12), True) == "running"
    assert status.classify(replace(job, stalled=1070.0, heartbeat=1e12), True) == "stalled"
    assert status.classify(job, False) == "lost"                       # gone beats stalled
    loading = replace(job, stage="loading weights")
    assert status.stall_limit_s(loading) == 3 * status.STALL_S
    assert status.stall_limit_s(replace(loading, stage="baseline: loading fp32 reference")) == 180
    thorough = replace(job, spec_json='{"eval": {"tokens": 8192}}')
    assert status.stall_limit_s(thorough) == 4 * status.STALL_S        # scaled by the effort
    assert status.stall_limit_s(replace(job, spec_json='{"eval": {"tokens": 999999}}')) == 240
    monkeypatch.setenv("QCOMPARE_STALL_S", "2")
    assert status.stall_limit_s(job) == 2
    # jobs written before heartbeats existed have none and never stall; finished jobs neither
    assert not status.is_stalled(replace(job, heartbeat=None), 1e12)
    assert not status.is_stalled(replace(job, state="done"), 1e12)
    text = str(status.stalled_error(job, 1010.0))
    assert "job #1 has stalled" in text and "10 s" in text and "cancel 1" in text
    assert "ジョブ #1" in status.stalled_error(job, 1010.0).text("ja")


def test_a_worker_that_died_on_a_full_disk_is_blamed_on_the_disk(tmp_path, monkeypatch):
    from qcompare.core import diskspace

    default = status.exit_error(-7)
    assert status.death_error(3, default, tmp_path) is default           # space left: the signal
    monkeypatch.setattr(diskspace, "free_bytes", lambda folder: 512 * 1024)
    text = str(status.death_error(3, default, tmp_path))
    assert "disk is full (0.5 MiB free" in text and "job #3 could not finish" in text
