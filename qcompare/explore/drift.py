"""Drift explorer: where, in the evaluated text, a method departs from the baseline.

Beside each baseline pass (`<state_dir>/baselines/<reference_key>/pieces.json`) the worker keeps
the text each evaluated token owns (`metrics.quality.token_texts`) and the positions that were
scored, in evaluation order: the same order as every row's per-token scores
(`qcompare.store.tokenscores`). So any row, from any runtime, can colour the text it was scored on by
its per-token KL divergence, or mark where its top token differs from the baseline's.

Passages: consecutive runs of PASSAGE scored tokens; the worst are those with the highest mean
KL (or the highest share of changed top tokens). HTML is built here (pure, escaped), shown by
the page.
"""
from __future__ import annotations

import html
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PASSAGE = 48


@dataclass
class Pieces:
    pieces: list[str]                # the text of every evaluated token
    scored: np.ndarray               # position of each scored token, in evaluation order


def read_pieces(state_dir: str | os.PathLike, reference_key: str) -> Pieces | None:
    path = Path(state_dir) / "baselines" / reference_key / "pieces.json"
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return Pieces(d["pieces"], np.asarray(d["scored"], np.int64))


def values_by_position(p: Pieces, scored_values: np.ndarray) -> np.ndarray:
    """Per-token values in evaluation order -> per text position (NaN where not scored)."""
    out = np.full(len(p.pieces), np.nan)
    out[p.scored] = scored_values
    return out


def worst_passages(scored_values: np.ndarray, n: int = 5, size: int = PASSAGE) -> list[tuple[int, float]]:
    """(first scored index, mean value) of the `n` passages of `size` scored tokens with the
    highest mean, worst first."""
    v = np.asarray(scored_values, np.float64)
    starts = range(0, max(len(v) - size + 1, 1), size)
    means = [(s, float(v[s:s + size].mean())) for s in starts if len(v[s:s + size])]
    return sorted(means, key=lambda t: -t[1])[:n]


def colour(value: float, scale: float, changed: bool | None = None) -> str:
    """Background for one token: red with opacity value / scale (capped at 1); for the
    changed-top view, solid amber where it changed."""
    if changed is not None:
        return "rgba(255,170,0,0.75)" if changed else "transparent"
    if value != value:
        return "transparent"
    return f"rgba(214,39,40,{min(1.0, value / scale) if scale > 0 else 0:.3f})"


def html_span(p: Pieces, values: np.ndarray, first: int, last: int, scale: float,
              changed: np.ndarray | None = None) -> str:
    """Text positions [first, last) as escaped spans coloured by `values` (per position), with
    each token's value in its tooltip; unscored tokens in grey."""
    out = []
    for pos in range(max(0, first), min(last, len(p.pieces))):
        text = html.escape(p.pieces[pos]).replace("\n", "↵\n")
        v = values[pos]
        if v != v:
            out.append(f'<span style="color:#999">{text}</span>')
            continue
        ch = None if changed is None else bool(changed[pos])
        tip = f"KL {v:.4f}" + ("" if ch is None else (" · top token changed" if ch else ""))
        out.append(f'<span title="{tip}" style="background:{colour(v, scale, ch)}">{text}</span>')
    return ('<div style="font-family:monospace;white-space:pre-wrap;line-height:1.6;'
            'font-size:0.9rem">' + "".join(out) + "</div>")
