"""Published figures (the source guide, the meetup talk, the AWQ paper), shipped as
`qcompare/sources/published.csv` with each row's source, where in it, and what it did not state.

They are a labelled layer, never measurements: charts draw them as hollow markers named
"published: <source>", never on a measured Pareto frontier, and tables show them only when the
user turns the layer on. Mapping onto qcompare's columns (so the layer can share a chart's axes):

* weights_gb -> weights_mib and memory_gb -> nvml_used_peak_mib (GPU memory as nvidia-smi
  shows it: the talk's readings; the guide's table does not say how it measured), by the
  row's `gb_means` column (added in the shipped copy): the talk's "7.3GB" is 3271 + 4055 MiB
  read off nvidia-smi, so its GB is 1000 MiB; elsewhere GB is assumed to be 10^9 bytes (the
  sources do not say)
* ppl, decode_tok_s as given; ppl_increase_pct against the same source table's FP16 / F16 row.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from qcompare.core.presets import PUBLISHED_FAMILIES

CSV = Path(__file__).with_name("published.csv")
COLUMNS = ("source", "where", "model", "hardware", "method", "family", "bits", "weights_gb",
           "memory_gb", "decode_tok_s", "ppl", "ppl_text", "note", "gb_means")
TO_MIB = 1e9 / 2 ** 20
# what each mapped column is, for chart captions
MAPPED = {"weights_mib": "weights_gb", "nvml_used_peak_mib": "memory_gb", "ppl": "ppl",
          "decode_tok_s": "decode_tok_s", "ppl_increase_pct": "ppl"}


def short_source(source: str) -> str:
    """'seed guide (quantization guide article)' -> 'seed guide'."""
    return source.split(" (")[0]


def load(path: Path = CSV) -> pd.DataFrame:
    """The published rows with the mapped columns (module doc) and a `label` per row."""
    d = pd.read_csv(path)
    missing = [c for c in COLUMNS if c not in d]
    if missing:
        raise ValueError(f"{path.name} lacks column(s) {', '.join(missing)}")
    for c in ("bits", "weights_gb", "memory_gb", "decode_tok_s", "ppl"):
        d[c] = pd.to_numeric(d[c], errors="coerce")
    per_gb = d["gb_means"].map(lambda m: 1000.0 if str(m).startswith("1000 MiB") else TO_MIB)
    d["weights_mib"] = d["weights_gb"] * per_gb
    d["nvml_used_peak_mib"] = d["memory_gb"] * per_gb
    base = (d[d["family"] == "baseline"].dropna(subset=["ppl"])
            .drop_duplicates(["source", "where", "model"])[["source", "where", "model", "ppl"]]
            .rename(columns={"ppl": "_base"}))
    d = d.merge(base, on=["source", "where", "model"], how="left")
    d["ppl_increase_pct"] = 100 * (d["ppl"] / d["_base"] - 1)
    d = d.drop(columns="_base")
    d["label"] = [f"published: {short_source(s)} — {m} ({model})"
                  for s, m, model in zip(d["source"], d["method"], d["model"])]
    return d


def on_axes(published: pd.DataFrame, x: str, y: str) -> pd.DataFrame:
    """The published rows that have a value on both axes (none when an axis has no mapping)."""
    if x not in published or y not in published:
        return published.iloc[:0]
    return published.dropna(subset=[x, y])




def beside_measured(published: pd.DataFrame, measured: pd.DataFrame, lang: str = "en") -> pd.DataFrame:
    """Each published row with the measured rows of the same model (name contained in the
    measured model's label, case-insensitive) and method family (`core.presets.PUBLISHED_FAMILIES`): perplexity
    and weights side by side, or "not measured here" (column names and that phrase in `lang`)."""
    from qcompare.i18n import catalogue as i18n

    def t(key):
        return i18n.t(f"published.{key}", lang)

    out = []
    for _, p in published.iterrows():
        name = str(p["model"]).split(" (")[0].lower()
        same = measured[measured["model"].str.lower().str.contains(name, regex=False)
                        & measured["method"].isin(PUBLISHED_FAMILIES.get(str(p["family"]), ()))] \
            if not measured.empty else measured
        out.append({t("published"): p["label"], t("published_ppl"): p["ppl"],
                    t("published_gb"): p["memory_gb"] if p["memory_gb"] == p["memory_gb"] else p["weights_gb"],
                    t("measured_here"): ", ".join(same["method_label"]) or t("not_measured"),
                    t("measured_ppl"): same["ppl"].min() if not same.empty else float("nan"),
                    t("measured_gb"): (same["weights_mib"].min() / TO_MIB
                                       if not same.empty else float("nan"))})
    return pd.DataFrame(out)
