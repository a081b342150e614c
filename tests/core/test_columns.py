"""The column table is the one list of result columns: the Parquet schema, the worker's row,
charts and pages all follow it."""
import pytest

from qcompare.core import columns as table
from qcompare.store import results


def test_the_parquet_schema_is_the_column_table():
    assert results.SCHEMA.names == [c.name for c in table.COLUMNS]
    kinds = {"str": "string", "int": "int64", "float": "double", "time": "timestamp[us, tz=UTC]"}
    assert all(str(results.SCHEMA.field(c.name).type) == kinds[c.kind] for c in table.COLUMNS)


def test_chart_axes_have_a_direction_and_a_label():
    for name in table.names(axis="quality") + table.names(axis="cost"):
        c = table.BY_NAME[name]
        assert c.higher_is_better is not None and c.label, name
    assert table.label("decode_tok_s") == "Decode speed (tok/s)"
    assert table.label("not_a_column") == "not_a_column"
    with pytest.raises(ValueError, match="needs a direction"):
        table.Column("x", "float", axis="cost")


def test_a_worker_row_fills_every_column_measured_on_its_device(tiny_model_dir, state_dir, tiny_eval):
    from qcompare.core.registry import parse_method_arg
    from qcompare.core.specs import CorpusSpec
    from qcompare.jobs import submit as submitting
    from qcompare.jobs import worker
    from qcompare.sources.models import model_from_arg

    (spec,) = submitting.build_specs(model_from_arg(str(tiny_model_dir)), [parse_method_arg("rtn")],
                                     CorpusSpec(), tiny_eval)
    row = worker.run(spec, state_dir)
    cpu_columns = {c.name for c in table.COLUMNS if not c.cuda_only}
    assert set(row) == cpu_columns
    stored = results.ResultStore(state_dir).get(spec.key())
    assert all(stored[c] is not None for c in cpu_columns)
