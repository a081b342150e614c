import datetime as dt
import multiprocessing as mp

import pandas as pd
import pytest

from qcompare.store.results import COLUMNS, ResultStore


def _row(key, ppl=10.0):
    return {"key": key, "method": "rtn", "ppl": ppl, "tokens": 2048,
            "finished_at": dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)}


def test_write_then_read_with_plain_pandas(state_dir):
    store = ResultStore(state_dir)
    store.write(_row("a" * 64))
    store.write(_row("b" * 64, 12.0))
    df = pd.read_parquet(state_dir / "results")
    assert sorted(df["ppl"]) == [10.0, 12.0]
    assert list(store.load().frame.columns) == COLUMNS
    assert store.get("a" * 64)["ppl"] == 10.0


def test_unknown_columns_are_refused(state_dir):
    with pytest.raises(KeyError, match="not in the schema"):
        ResultStore(state_dir).write({**_row("c" * 64), "perplexity": 3.0})


def test_a_corrupt_file_is_named_and_skipped(state_dir):
    store = ResultStore(state_dir)
    store.write(_row("a" * 64))
    (state_dir / "results" / ("d" * 64 + ".parquet")).write_bytes(b"PAR1 not really")
    loaded = store.load()
    assert len(loaded.frame) == 1
    assert loaded.errors and loaded.errors[0][0] == "d" * 64 + ".parquet"


def _writer(state_dir, key, n):
    store = ResultStore(state_dir)
    for i in range(n):
        store.write(_row(key, float(i)))


def test_concurrent_writers_never_leave_a_partial_file(state_dir):
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(state_dir), k * 64, 30)) for k in "aab"]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    loaded = ResultStore(state_dir).load()
    assert not loaded.errors and len(loaded.frame) == 2
    assert not list((state_dir / "results").glob(".tmp-*"))


def test_files_written_before_a_column_was_added_still_load(state_dir):
    import pyarrow as pa
    import pyarrow.parquet as pq

    (state_dir / "results").mkdir(parents=True)
    old = pa.table({"key": ["e" * 64], "ppl": [9.5]})              # an older, narrower schema
    pq.write_table(old, state_dir / "results" / ("e" * 64 + ".parquet"))
    loaded = ResultStore(state_dir).load()
    assert not loaded.errors and loaded.frame["ppl"].tolist() == [9.5]
    assert loaded.frame["kld_mean"].isna().all()


def test_rows_written_before_efforts_existed_get_theirs_from_their_spec(tmp_path):
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    from qcompare.core.specs import CorpusSpec, EvalSpec, MethodSpec, ModelSpec, RunSpec
    from qcompare.store.results import ResultStore

    spec = RunSpec(model=ModelSpec(fingerprint="f"), method=MethodSpec.of("rtn"),
                   corpus=CorpusSpec(content_sha256="c"), eval=EvalSpec())
    folder = tmp_path / "results"
    folder.mkdir()
    # a file as an older qcompare wrote it: no effort column at all
    pq.write_table(pa.Table.from_pylist([{"key": spec.key(), "spec_json": spec.to_json(),
                                          "ppl": 15.0, "options_json": json.dumps({})}]),
                   folder / f"{spec.key()}.parquet")
    df = ResultStore(tmp_path).load().frame
    assert df.loc[0, "effort"] == "thorough" and df.loc[0, "ppl"] == 15.0


def test_largest_comparable_group_wins_over_a_newer_smaller_one():
    import pandas as pd

    from qcompare.stats.comparability import COMPARABLE, largest_group

    base = {c: "x" for c in COMPARABLE}
    rows = pd.DataFrame([{**base, "finished_at": pd.Timestamp(f"2026-12-0{i + 1}"), "k": i}
                         for i in range(3)]
                        + [{**base, "protocol": "strided", "finished_at": pd.Timestamp("2026-12-09"),
                            "k": 9}])
    assert sorted(largest_group(rows)["k"]) == [0, 1, 2]
    assert largest_group(rows.iloc[:0]).empty
