"""The whole KL distribution: percentiles against NumPy on the stored per-token values, bucket
counts that add up, and rows written before these columns."""
import json

import numpy as np
import pandas as pd
import pytest

from qcompare.core.registry import parse_method_arg
from qcompare.core.specs import CorpusSpec
from qcompare.jobs import worker
from qcompare.jobs.submit import build_specs
from qcompare.sources.models import model_from_arg
from qcompare.stats import kldist
from qcompare.store.tokenscores import TokenScores


def test_buckets_by_hand_and_the_last_bucket_is_closed():
    kl = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    top = np.array([0.1, 0.1, 0.5, 0.96, 1.0])
    b = kldist.buckets(kl, top)
    assert [e["tokens"] for e in b] == [2, 0, 1, 0, 0, 2]
    assert b[0]["kld_mean"] == 0.5 and b[1]["kld_mean"] is None and b[-1]["kld_mean"] == 3.5


def test_summary_by_hand():
    kl = np.linspace(0, 2, 101)                               # 0, 0.02, ..., 2
    s = kldist.summary(kl, np.full(101, 0.5))
    assert s["kld_p50"] == pytest.approx(1.0) and s["kld_max"] == 2.0
    assert s["kld_share_1"] == pytest.approx(50 / 101) and s["kld_share_01"] == pytest.approx(95 / 101)
    assert kldist.summary(kl, None)["kld_by_confidence_json"] is None


def test_worker_rows_carry_the_distribution_of_their_stored_tokens(tiny_model_dir, state_dir, tiny_eval):
    model = model_from_arg(str(tiny_model_dir))
    specs = build_specs(model, [parse_method_arg(m) for m in ("fp32", "rtn:bits=3")], CorpusSpec(),
                        tiny_eval)
    rows = [worker.run(s, state_dir) for s in specs]
    rtn = rows[1]
    kl = TokenScores(state_dir).read(rtn["key"])["kl"]
    for col, q in kldist.PERCENTILES.items():
        assert rtn[col] == pytest.approx(np.percentile(kl, q), rel=1e-6), col
    assert rtn["kld_max"] == pytest.approx(kl.max(), rel=1e-6)
    assert rtn["kld_share_01"] == pytest.approx((kl > 0.1).mean())
    buckets = json.loads(rtn["kld_by_confidence_json"])
    assert sum(b["tokens"] for b in buckets) == len(kl) == rtn["n_scored"]
    top = kldist.baseline_top(state_dir, rtn["reference_key"])
    assert top.shape == kl.shape and ((top > 0) & (top <= 1.0001)).all()
    assert rows[0]["kld_p999"] == 0.0                          # the baseline against itself


def test_a_row_written_before_the_columns_loads_with_nulls(state_dir):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from qcompare.store.results import ResultStore

    old = {"key": "old", "method": "rtn", "method_label": "rtn", "kld_mean": 0.1, "ppl": 10.0}
    (state_dir / "results").mkdir()
    pq.write_table(pa.Table.from_pylist([old]), state_dir / "results" / "old.parquet")
    frame = ResultStore(state_dir).load().frame
    assert len(frame) == 1 and pd.isna(frame["kld_p50"].iloc[0])
    assert frame["kld_by_confidence_json"].isna().all()
