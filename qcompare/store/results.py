"""The Parquet result cache: one file per result, `<state_dir>/results/<RunSpec.key()>.parquet`.

Every file has the same schema (SCHEMA, derived from the column table in
`qcompare.core.columns`), so `pandas.read_parquet("data/results")` reads the
folder as one table. A write goes to a temporary file in the same folder and is renamed into
place, so a reader never sees half a file and concurrent writers of one key cannot corrupt it.
A file that does not read is reported by name and skipped; the rest still load. Temporary
files of a writer that was killed (`.tmp-*`, dot-files) are never read as results. A cached
result that cannot be read is moved aside into `results/unreadable/` (kept for inspection) by
`readable`, so its spec is computed again instead of failing forever.
"""
from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from qcompare.core import columns as column_table
from qcompare.core.errors import UserError

_ARROW = {"str": pa.string(), "int": pa.int64(), "float": pa.float64(),
          "time": pa.timestamp("us", tz="UTC")}
SCHEMA = pa.schema([pa.field(c.name, _ARROW[c.kind]) for c in column_table.COLUMNS])
COLUMNS = SCHEMA.names


@dataclass
class Loaded:
    frame: "object"                                   # pandas.DataFrame
    errors: list[tuple[str, str]] = field(default_factory=list)   # (file, message)


def _conform(table: pa.Table) -> pa.Table:
    """A table in SCHEMA's columns and types: columns added to the schema after a file was
    written read as nulls, so a new column never makes old results unreadable."""
    n = table.num_rows
    cols = [table.column(f.name).cast(f.type) if f.name in table.column_names
            else pa.nulls(n, f.type) for f in SCHEMA]
    return pa.Table.from_arrays(cols, schema=SCHEMA)


def _derived(df):
    """Columns that older files lack but their spec determines, filled in on reading: `effort`
    (qcompare.core.effort reads it from the spec's values), so filters and labels treat old rows
    like new ones."""
    missing = df["effort"].isna() & df["spec_json"].notna()
    if missing.any():
        from qcompare.core.effort import effort_of
        from qcompare.core.specs import RunSpec

        def effort(text: str):
            try:
                return effort_of(RunSpec.from_json(text))
            except Exception:  # noqa: BLE001 - a spec of another protocol version: leave it unnamed
                return None
        df.loc[missing, "effort"] = df.loc[missing, "spec_json"].map(effort)
    return df


class ResultStore:
    def __init__(self, state_dir: str | os.PathLike):
        self.dir = Path(state_dir) / "results"

    def path(self, key: str) -> Path:
        return self.dir / f"{key}.parquet"

    def has(self, key: str) -> bool:
        return self.path(key).is_file()

    def write(self, row: dict) -> Path:
        """Write one row atomically; unknown columns are refused so typos cannot hide data, and
        a row whose headline numbers are not finite is refused (`check_finite`)."""
        unknown = sorted(set(row) - set(COLUMNS))
        if unknown:
            raise KeyError(f"result columns not in the schema: {unknown}")
        check_finite(row)
        table = pa.Table.from_pylist([row], schema=SCHEMA)
        self.dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=f".tmp-pid{os.getpid()}-", suffix=".parquet")
        os.close(fd)
        try:
            pq.write_table(table, tmp)
            os.replace(tmp, self.path(row["key"]))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return self.path(row["key"])

    def get(self, key: str) -> dict | None:
        if not self.has(key):
            return None
        return pq.read_table(self.path(key)).to_pylist()[0]

    def readable(self, key: str) -> tuple[bool, str]:
        """(True, "") when the key's result exists and reads; (False, "") when there is none;
        (False, note) when it exists but does not read: the file is then moved aside into
        `unreadable/` and `note` says what happened and where it went."""
        path = self.path(key)
        if not path.is_file():
            return False, ""
        try:
            rows = pq.read_table(path).to_pylist()
            if len(rows) != 1 or rows[0].get("key") != key:
                raise ValueError(f"holds {len(rows)} row(s), not the one result of this key")
            return True, ""
        except Exception as e:  # noqa: BLE001 - any unreadable file is kept aside, not fatal
            aside = self.dir / "unreadable" / f"{key}.{time.strftime('%Y%m%d-%H%M%S')}.parquet"
            aside.parent.mkdir(exist_ok=True)
            os.replace(path, aside)
            return False, (f"the stored result {path.name} could not be read "
                           f"({type(e).__name__}: {str(e)[:120]}); it was moved to {aside} and "
                           "the run is computed again")

    def files(self) -> list[Path]:
        """The result files: `<key>.parquet`, never a writer's temporary or another dot-file."""
        if not self.dir.is_dir():
            return []
        return sorted(p for p in self.dir.glob("*.parquet") if not p.name.startswith("."))

    def load(self) -> Loaded:
        """All rows as a DataFrame (columns in SCHEMA order), with unreadable files listed."""
        tables, errors = [], []
        for p in self.files():
            try:
                tables.append(_conform(pq.read_table(p)))
            except Exception as e:  # noqa: BLE001 - any unreadable file is reported, not fatal
                errors.append((p.name, f"{type(e).__name__}: {e}"))
        table = pa.concat_tables(tables) if tables else SCHEMA.empty_table()
        return Loaded(frame=_derived(table.to_pandas()), errors=errors)

    def delete(self, key: str) -> bool:
        p = self.path(key)
        if p.is_file():
            p.unlink()
            return True
        return False


# a row is a measurement only when these are numbers: a NaN or infinite perplexity, divergence
# or speed (a method that produced NaN weights, an overflow) is a failed job, never a row
MUST_BE_FINITE = ("ppl", "nll_mean", "bits_per_byte", "kld_mean", "kld_p99", "top1_agree",
                  "weights_mib", "prefill_tok_s", "decode_tok_s", "ttft_ms")


def check_finite(row: dict) -> None:
    """Refuse to store a row whose headline numbers are not finite (MUST_BE_FINITE; speed
    columns only where speed was measured)."""
    bad = [k for k in MUST_BE_FINITE if k in row and row[k] is not None
           and not np.isfinite(float(row[k]))]
    if bad:
        raise UserError(key="errors.row_not_finite",
                        values=", ".join(f"{k}={row[k]}" for k in bad))
