"""Which result rows can be compared with each other: one definition, on content hashes.

Perplexity and KL divergence depend on the exact weights, the exact text and how it was
windowed, so two rows are comparable only when they agree on every column of COMPARABLE: the
model's content fingerprint, the corpus's sha256, the protocol, the evaluated tokens, the
window, the stride and the device. Labels (a model's path, a corpus's name) are not used: two
rows with the same label may hold different content, and the same content may carry two labels.
"""
from __future__ import annotations

import pandas as pd

COMPARABLE = ("model_fingerprint", "corpus_sha256", "protocol", "tokens", "window", "stride",
              "device")
# What a person calls each of them, and the column whose values to show for it.
SHOWN_AS = {"model_fingerprint": ("model", "model"), "corpus_sha256": ("corpus", "corpus"),
            "protocol": ("protocol", "protocol"), "tokens": ("tokens", "tokens"),
            "window": ("window", "window"), "stride": ("stride", "stride"),
            "device": ("device", "device")}


def same_group(df: pd.DataFrame, row: pd.Series) -> pd.Series:
    """Boolean mask of the rows comparable with `row`."""
    mask = pd.Series(True, index=df.index)
    for c in COMPARABLE:
        mask &= df[c] == row[c]
    return mask


def latest_group(df: pd.DataFrame) -> pd.DataFrame:
    """Rows comparable with the newest row: the set whose numbers can be compared."""
    if df.empty:
        return df
    newest = df.sort_values("finished_at").iloc[-1]
    return df[same_group(df, newest)]


def largest_group(df: pd.DataFrame) -> pd.DataFrame:
    """The comparable group with the most rows (the newest such group on a tie): the widest set
    of methods whose numbers can be ranked against each other."""
    if df.empty:
        return df
    keyed = df.assign(_g=df[list(COMPARABLE)].astype(str).agg("|".join, axis=1))
    sizes = keyed.groupby("_g").agg(n=("_g", "size"), newest=("finished_at", "max"))
    best = sizes.sort_values(["n", "newest"]).index[-1]
    return df[keyed["_g"] == best]


def differing(df: pd.DataFrame) -> list[str]:
    """What a person would call each COMPARABLE column on which the rows disagree."""
    return [SHOWN_AS[c][0] for c in COMPARABLE if df[c].nunique(dropna=False) > 1]
