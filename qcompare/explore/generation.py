"""Baseline-vs-quantized generation, side by side: the request and progress files shared by the
generation page and the generation worker (`qcompare.explore.generation_worker`), and the pure
pieces both use. Torch-free.

Protocol, under `<state_dir>/generation/`:

* the page writes `requests/<id>.json` (the prompt, the decoding settings, the columns as
  RunSpec JSON, the baseline first) and makes sure a worker serves the folder;
* the worker takes requests in order, writes `<id>/state.json` (atomically) after every token:
  each column's token ids and text so far, time to first token, tokens per second, peak memory,
  and at the end each quantized column's per-token KL divergence from the baseline and where
  its tokens first depart from the baseline's;
* `<id>/cancel`, written by the page, stops the request at the next token.

KL colouring: for a quantized column with tokens y, the baseline scores the same sequence
(prompt + y) and kl[t] = KL(p_base(. | prompt, y<t) || p_quant(. | prompt, y<t)) in nats: the
divergence of the two models' next-token distributions at the positions the quantized model
actually went through.
"""
from __future__ import annotations

import html
import json
import os
import tempfile
import time
import uuid
from dataclasses import asdict
from pathlib import Path

from qcompare.explore.decoding import Decoding

# the embedded model is a small English model: it continues English text, and Japanese poorly
# (「昔々、あるところに」 gets the same broken phrase over and over), which a demo should show as such
DEFAULT_PROMPTS = ("Once upon a time, in a small village by the sea,",
                   "The three things to know about quantization are", "昔々、あるところに")
MAX_COLUMNS = 4          # the baseline and up to three variants
FINISHED = ("done", "cancelled", "failed")


def folder(state_dir) -> Path:
    return Path(state_dir) / "generation"


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, ensure_ascii=False)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def submit(state_dir, prompt: str, decoding: Decoding, columns: list[tuple[str, str]]) -> str:
    """Queue a request; `columns` are (label, RunSpec JSON), the baseline first. Returns its id."""
    if not prompt.strip():
        raise ValueError("type a prompt first")
    if not 1 <= len(columns) <= MAX_COLUMNS:
        raise ValueError(f"the baseline and at most {MAX_COLUMNS - 1} variants")
    rid = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
    _write_json(folder(state_dir) / "requests" / f"{rid}.json",
                {"id": rid, "prompt": prompt, "decoding": asdict(decoding), "created": time.time(),
                 "columns": [{"label": label, "spec_json": spec} for label, spec in columns]})
    return rid


def submit_activations(state_dir, text: str, spec_json: str, module: str) -> str:
    """Queue a capture of the inputs of one Linear (`module`, e.g. model.layers.3.mlp.down_proj)
    while the model reads `text` (the playground's activation view). Returns its id; the worker
    writes `<id>/activations.npy` ([tokens, input features], float32) and the token texts."""
    if not text.strip():
        raise ValueError("type a sentence first")
    rid = time.strftime("%Y%m%d-%H%M%S-act-") + uuid.uuid4().hex[:6]
    _write_json(folder(state_dir) / "requests" / f"{rid}.json",
                {"id": rid, "kind": "activations", "text": text, "spec_json": spec_json,
                 "module": module, "created": time.time()})
    return rid


def activations(state_dir, rid: str):
    """The captured inputs ([tokens, features] float32 NumPy) of a finished capture, or None."""
    import numpy as np

    try:
        return np.load(folder(state_dir) / rid / "activations.npy")
    except (OSError, ValueError):
        return None


def pending(state_dir) -> list[dict]:
    """Requests without a finished state, oldest first."""
    out = []
    for path in sorted((folder(state_dir) / "requests").glob("*.json")):
        try:
            req = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        st = read_state(state_dir, req["id"])
        if st is None or st.get("status") not in FINISHED:
            out.append(req)
    return out


def read_state(state_dir, rid: str) -> dict | None:
    try:
        return json.loads((folder(state_dir) / rid / "state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def write_state(state_dir, rid: str, state: dict) -> None:
    _write_json(folder(state_dir) / rid / "state.json", state)


def cancel(state_dir, rid: str) -> None:
    path = folder(state_dir) / rid / "cancel"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("cancel")


def cancelled(state_dir, rid: str) -> bool:
    return (folder(state_dir) / rid / "cancel").exists()


def first_divergence(base: list[int], other: list[int]) -> int | None:
    """Index of the first generated token where `other` differs from `base` (None: never,
    within the shorter of the two)."""
    for i, (a, b) in enumerate(zip(base, other)):
        if a != b:
            return i
    return None


def html_tokens(pieces: list[str], kl: list[float] | None, split: int | None, scale: float) -> str:
    """The generated text, one span per token: red by KL (full at `scale` nats), a marker before
    the first token that departs from the baseline, the KL in each token's tooltip."""
    out = []
    for i, piece in enumerate(pieces):
        if split is not None and i == split:
            out.append('<span title="first token that differs from the baseline" '
                       'style="color:#FB0D0D;font-weight:700">▍</span>')
        text = html.escape(piece).replace("\n", "<br>")
        if kl is None:
            out.append(f"<span>{text}</span>")
            continue
        a = min(max(kl[i] / scale, 0.0), 1.0) if scale > 0 else 0.0
        out.append(f'<span title="KL {kl[i]:.3g}" style="background:rgba(251,13,13,{a:.2f})">'
                   f"{text}</span>")
    return "".join(out)
