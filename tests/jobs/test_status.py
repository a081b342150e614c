"""The Jobs page's pure rules: the sweep's summary, the order cards are shown in."""
from dataclasses import replace

from qcompare.jobs import status
from qcompare.jobs.store import Job

BASE = Job(id=0, key="k", label="x", spec_json="{}", state="queued", stage="", progress=0.0, log="",
           error=None, traceback=None, result_key=None, cached=0, pid=None, pid_start=None,
           created=1000.0, started=None, finished=None)


def _job(i, state, **kw):
    return replace(BASE, id=i, state=state, created=1000.0 + i, **kw)


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
