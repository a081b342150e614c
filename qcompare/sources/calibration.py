"""Calibration sequences for methods that calibrate, never overlapping the evaluation text.

Protocol (`draw`):

1. The calibration corpus's first POOL_CHARS characters (4 M, about a million tokens: room
   for thorough's 32 x 512 many times over) are tokenized as one stream (same tokenizer as
   evaluation), in pieces of at most PIECE_CHARS (1 M) characters cut after a newline, so a
   large corpus costs the memory of one piece, not of the file (`stream_ids`). A text of at
   most PIECE_CHARS characters, like the embedded corpus, is one piece.
2. When it is the evaluation corpus (same content hash), the first `eval_tokens` tokens, which
   are the evaluated ones, are cut away; the pool is what follows.
3. The pool is cut into consecutive, non-overlapping chunks of `seq_len` tokens; a seeded
   permutation orders them.
4. Walking that order, a chunk is dropped when it shares any run of `NGRAM` consecutive tokens
   with the evaluated tokens (repeated boilerplate, or a different corpus that quotes the same
   text); the first `samples` chunks kept are the calibration set.

Too little text for the request is a UserError that says what to change.

`cached_draw` keeps each draw in `<state_dir>/calibration/<key>.npz`, keyed by the sha256 of
everything the draw depends on (the CalibSpec, the evaluation corpus hash and evaluated tokens,
the model's fingerprint, which fixes its tokenizer), so the methods of one sweep that
calibrate share one draw instead of tokenizing and filtering the corpus once each.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from qcompare.core.errors import UserError
from qcompare.core.specs import CalibSpec, CorpusSpec, canonical_json
from qcompare.sources import corpora

NGRAM = 32
POOL_CHARS = 4_000_000          # the part of a calibration corpus a draw comes from
PIECE_CHARS = 1_000_000         # characters tokenized at once


@dataclass
class Calibration:
    ids: np.ndarray             # [samples, seq_len] int64
    dropped_overlap: int        # chunks dropped because they shared text with the evaluation
    pool_tokens: int            # tokens the chunks were drawn from
    label: str

    def tensor(self):
        import torch

        return torch.from_numpy(self.ids.astype(np.int64))


def ngrams(ids: np.ndarray, n: int = NGRAM) -> set[bytes]:
    """Every run of n consecutive ids, as bytes (hashable, compact)."""
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    if len(ids) < n:
        return set()
    view = np.lib.stride_tricks.sliding_window_view(ids, n)
    return {row.tobytes() for row in view}


def overlaps(chunk: np.ndarray, eval_grams: set[bytes], n: int = NGRAM) -> bool:
    return any(g in eval_grams for g in ngrams(chunk, n))


def stream_ids(tokenizer, text: str, piece_chars: int = PIECE_CHARS) -> np.ndarray:
    """Token ids of `text`, tokenized in pieces of at most `piece_chars` characters, each cut
    after its last newline (whole when it has none); a text within one piece is tokenized whole.
    Special tokens the tokenizer adds (a BOS) come only at the start of the stream."""
    parts, start = [], 0
    while start < len(text):
        end = min(start + piece_chars, len(text))
        if end < len(text):
            cut = text.rfind("\n", start, end)
            end = cut + 1 if cut > start else end
        ids = tokenizer(text[start:end])["input_ids"]
        if parts and ids and tokenizer.bos_token_id is not None and ids[0] == tokenizer.bos_token_id:
            ids = ids[1:]
        parts.append(np.asarray(ids, dtype=np.int64))
        start = end
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def draw(tokenizer, calib: CalibSpec, eval_corpus: CorpusSpec, eval_ids: np.ndarray) -> Calibration:
    """The calibration set of `calib` (module doc), disjoint from `eval_ids`."""
    ids = stream_ids(tokenizer, corpora.checked_prefix(calib.corpus, POOL_CHARS))
    same = bool(calib.corpus.content_sha256) and calib.corpus.content_sha256 == eval_corpus.content_sha256
    pool = ids[len(eval_ids):] if same else ids
    where = (f"{calib.corpus.label}, after the {len(eval_ids)} evaluated tokens" if same
             else calib.corpus.label)
    n_chunks = len(pool) // calib.seq_len
    if n_chunks < calib.samples:
        raise UserError(key="errors.calib_short", samples=calib.samples, seq_len=calib.seq_len,
                        where=where, n=len(pool), chunks=n_chunks)
    chunks = pool[: n_chunks * calib.seq_len].reshape(n_chunks, calib.seq_len)
    order = np.random.default_rng(calib.seed).permutation(n_chunks)
    eval_grams = ngrams(np.asarray(eval_ids))
    kept, dropped = [], 0
    for i in order:
        if overlaps(chunks[i], eval_grams):
            dropped += 1
            continue
        kept.append(chunks[i])
        if len(kept) == calib.samples:
            break
    if len(kept) < calib.samples:
        raise UserError(key="errors.calib_overlap", kept=len(kept), where=where, dropped=dropped)
    label = f"{calib.samples}x{calib.seq_len} tokens of {where} (seed {calib.seed})"
    return Calibration(np.stack(kept), dropped, len(pool), label)


def draw_key(calib: CalibSpec, eval_corpus: CorpusSpec, eval_ids: np.ndarray,
             model_fingerprint: str) -> str:
    """sha256 of what a draw depends on (module doc); the evaluated ids enter by their hash."""
    d = {"calib": asdict(calib), "eval_corpus": eval_corpus.content_sha256,
         "eval_ids": hashlib.sha256(np.ascontiguousarray(eval_ids, np.int64).tobytes()).hexdigest(),
         "model": model_fingerprint, "ngram": NGRAM, "pool_chars": POOL_CHARS,
         "piece_chars": PIECE_CHARS}
    return hashlib.sha256(canonical_json(d).encode()).hexdigest()


def cached_draw(state_dir: str | os.PathLike, tokenizer, calib: CalibSpec,
                eval_corpus: CorpusSpec, eval_ids: np.ndarray,
                model_fingerprint: str) -> tuple[Calibration, bool]:
    """(the draw, whether it came from the cache). Without a model fingerprint there is no
    safe key, and the draw is made afresh."""
    if not model_fingerprint:
        return draw(tokenizer, calib, eval_corpus, eval_ids), False
    folder = Path(state_dir) / "calibration"
    path = folder / f"{draw_key(calib, eval_corpus, eval_ids, model_fingerprint)}.npz"
    try:
        with np.load(path) as z:
            return Calibration(z["ids"], int(z["dropped"]), int(z["pool"]), str(z["label"])), True
    except (OSError, KeyError, ValueError):
        pass
    c = draw(tokenizer, calib, eval_corpus, eval_ids)
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".tmp-pid{os.getpid()}-", suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, ids=c.ids, dropped=c.dropped_overlap, pool=c.pool_tokens, label=c.label)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return c, False
