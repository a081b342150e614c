"""How a point looks on every chart: a stable colour per method variant, a marker shape per
family, a short label, and label positions that do not collide.

Stability: colours and shapes come from a hash of the text (sha256), not from the order rows
arrive in, so the same method is the same colour on every chart, every day, whatever else is
plotted; two variants may share a colour (24 colours), never within one family and label.
"""
from __future__ import annotations

import hashlib
import json
import math

# plotly's Dark24, minus its near-black and near-white entries: readable on a projector
PALETTE = ("#2E91E5", "#E15F99", "#1CA71C", "#FB0D0D", "#DA16FF", "#B68100", "#750D86",
           "#EB663B", "#511CFB", "#00A08B", "#FB00D1", "#FC0080", "#B2828D", "#6C7C32",
           "#778AAE", "#862A16", "#A777F1", "#620042", "#1616A7", "#DA60CA", "#6C4516",
           "#0D2A63", "#AF0038", "#3B8B3B")
SYMBOLS = ("circle", "square", "diamond", "cross", "x", "triangle-down", "pentagon", "hexagram",
           "star", "hourglass", "bowtie", "triangle-left")
CHAR_PX, LINE_PX, MARKER_PX = 7.0, 14.0, 12.0
POSITIONS = ("top center", "bottom center", "middle right", "middle left", "top right",
             "top left", "bottom right", "bottom left")


def _index(text: str, n: int) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) % n


def colour_of(method_label: str) -> str:
    return PALETTE[_index(method_label, len(PALETTE))]


def symbol_of(family: str) -> str:
    return SYMBOLS[_index(family, len(SYMBOLS))]


def point_label(row) -> str:
    """The method's short chart label ('gptq 4b g128', 'Q4_K_M'), from its registry class;
    the stored method_label for a method this build no longer knows."""
    from qcompare.core import registry

    try:
        cls = registry.get(row["method"])
        return cls.chart_label(json.loads(row.get("options_json") or "{}"))
    except Exception:  # noqa: BLE001 - an old or foreign row still gets a label
        return str(row.get("method_label") or row.get("method"))


def _boxes(x: float, y: float, text: str):
    """Pixel boxes (x0, y0, x1, y1) of `text` at each position around a marker at (x, y)."""
    w, h, m = CHAR_PX * len(text), LINE_PX, MARKER_PX / 2 + 2
    for pos in POSITIONS:
        vert, horiz = pos.split()
        cx = x if horiz == "center" else (x + m + w / 2 if horiz == "right" else x - m - w / 2)
        cy = y if vert == "middle" else (y - m - h / 2 if vert == "top" else y + m + h / 2)
        yield pos, (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)


def _overlap(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def place_labels(xs, ys, labels, x_range, y_range, log_x=False, log_y=False,
                 width: float = 800, height: float = 440) -> list[str | None]:
    """A text position per point such that no label overlaps another label or marker, or
    None for a point whose label fits nowhere (it is then numbered instead). Positions are
    planned in pixels of a plot area of `width` x `height` over the given axis ranges (in
    log10 units on log axes), greedily, points with the longest labels first."""
    def px(v, lo, hi, size, log, flip):
        v = math.log10(v) if log and v > 0 else v
        t = 0.5 if hi == lo else (v - lo) / (hi - lo)
        return (1 - t if flip else t) * size

    pts = [(px(x, *x_range, width, log_x, False), px(y, *y_range, height, log_y, True))
           for x, y in zip(xs, ys)]
    taken = [(x - MARKER_PX / 2, y - MARKER_PX / 2, x + MARKER_PX / 2, y + MARKER_PX / 2)
             for x, y in pts]
    out: list[str | None] = [None] * len(pts)
    for i in sorted(range(len(pts)), key=lambda i: -len(labels[i])):
        for pos, box in _boxes(*pts[i], labels[i]):
            inside = box[0] >= 0 and box[2] <= width and box[1] >= 0 and box[3] <= height
            if inside and not any(_overlap(box, t) for t in taken):
                out[i] = pos
                taken.append(box)
                break
    return out
