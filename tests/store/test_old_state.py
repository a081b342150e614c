"""A state folder written by qcompare 0.1.0 before the move into folders (tests/fixtures/
state-0.1.0, made by the old code on a tiny random Llama) still opens: its result rows load,
its job table lists its jobs, and each stored spec parses and hashes to the key it was stored
under, so the cache answers the same questions after the move."""
from __future__ import annotations

import shutil
from pathlib import Path

from qcompare.core.specs import RunSpec
from qcompare.jobs.store import JobStore
from qcompare.store.results import ResultStore

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "state-0.1.0"


def _copy(tmp_path) -> Path:
    state = tmp_path / "state"
    shutil.copytree(FIXTURE, state)
    return state


def test_old_result_rows_load_with_their_keys(tmp_path):
    state = _copy(tmp_path)
    loaded = ResultStore(state).load()
    assert loaded.errors == []
    df = loaded.frame
    assert sorted(df["method"]) == ["fp32", "rtn", "rtn"]
    assert df["ppl"].notna().all() and (df["ppl"] > 1).all()
    for _, row in df.iterrows():
        assert RunSpec.from_json(row["spec_json"]).key() == row["key"]


def test_old_job_table_lists_its_jobs_and_their_specs(tmp_path):
    state = _copy(tmp_path)
    jobs = JobStore.open(state).list()
    assert [j.state for j in jobs] == ["done"] * 3
    rows = ResultStore(state)
    for job in jobs:
        spec = RunSpec.from_json(job.spec_json)
        assert spec.key() == job.key == job.result_key
        assert rows.has(job.key)
