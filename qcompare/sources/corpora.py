"""Evaluation text: the embedded corpus (a shipped snapshot of CPython's own documentation), a
text file, or a `datasets` split; each resolved to exact text whose sha256 goes into the spec."""
from __future__ import annotations

import hashlib
from pathlib import Path

from qcompare.core.errors import UserError
from qcompare.core.specs import CorpusSpec
from qcompare.sources import hub
from qcompare.sources.paths import user_path

EMBEDDED_FILE = Path(__file__).with_name("corpus") / "cpython-3.11.7-pydoc-topics.txt"
EMBEDDED_SHA256 = "d9dc35bce5ab1a24ed7f4c3c9b7c22450410e9d68279e3426db458c6be371621"


def pydoc_topics_text() -> str:
    """The running Python's pydoc topic pages, in key order: how the shipped snapshot was made
    (on CPython 3.11.7). It differs between Python versions (3.12's text gives other keys and
    another perplexity), which is why the embedded corpus is the snapshot, not this."""
    from pydoc_data.topics import topics

    return "\n\n".join(topics[k].strip() for k in sorted(topics))


def embedded_text() -> str:
    """The embedded corpus: a fixed snapshot of CPython 3.11.7's pydoc topic pages (real prose,
    the Python Software Foundation's documentation; its licence beside it in `corpus/`),
    read as bytes so every machine and Python version evaluates exactly the same text."""
    raw = EMBEDDED_FILE.read_bytes()
    if hashlib.sha256(raw).hexdigest() != EMBEDDED_SHA256:
        raise UserError(key="errors.corpus_changed_embedded", file=EMBEDDED_FILE)
    return raw.decode("utf-8")


def _regular_file(path: str) -> Path:
    """The corpus file `path`, refused when it is a folder, a device or missing."""
    p = user_path(path)
    if p.is_dir():
        raise UserError(key="errors.corpus_folder", path=path)
    if p.exists() and not p.is_file():        # /dev/zero, a pipe: no end to read to
        raise UserError(key="errors.corpus_not_file", path=path)
    if not p.is_file():
        raise UserError(key="errors.corpus_missing", path=path)
    return p


def _file_text(path: str) -> str:
    raw = _regular_file(path).read_bytes()
    if b"\x00" in raw[:65536]:
        raise UserError(key="errors.corpus_binary", path=path)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError(key="errors.corpus_not_utf8", path=path, reason=e.reason,
                        at=e.start) from None


def _hf_text(ref: str) -> str:
    parts = ref.split(":")
    if len(parts) != 3:
        raise UserError(key="errors.corpus_hf_form", ref=repr(ref))
    name, config, split = parts
    if not name or not split:
        raise UserError(key="errors.corpus_hf_form", ref=repr(ref))
    try:
        import datasets
    except ImportError:
        raise UserError(key="errors.corpus_hf_package") from None
    online = hub.reachable()
    if not online:
        hub.go_offline()                      # the local cache only: no retries to wait for
    try:
        ds = datasets.load_dataset(name, config or None, split=split)
    except Exception as e:  # noqa: BLE001 - the library raises many kinds; the message matters
        if not online:
            raise UserError(key="errors.corpus_hf_offline", ref=ref) from None
        raise UserError(key="errors.corpus_hf_load", ref=ref, error=e) from None
    column = "text" if "text" in ds.column_names else ds.column_names[0]
    return "\n\n".join(str(t) for t in ds[column] if str(t).strip())


def load_text(spec: CorpusSpec) -> str:
    """The corpus text; raises UserError when it is missing, binary or empty."""
    if spec.source == "embedded":
        text = embedded_text()
    elif spec.source == "file":
        text = _file_text(spec.ref)
    else:
        text = _hf_text(spec.ref)
    if not text.strip():
        raise UserError(key="errors.corpus_empty", label=spec.label)
    return text


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def resolve(spec: CorpusSpec, min_tokens: int = 0) -> CorpusSpec:
    """The same spec with `content_sha256` filled from the text as it is now; refuses a text
    that cannot hold `min_tokens` tokens (`check_long_enough`)."""
    if spec.source == "file":                 # streamed: the file is never held whole
        _, sha, n_bytes = _scan_file(spec.ref, 0)
        if min_tokens:
            _check_bytes(n_bytes, spec.label, min_tokens)
        return CorpusSpec(source=spec.source, ref=spec.ref, content_sha256=sha)
    text = load_text(spec)
    if min_tokens:
        check_long_enough(text, spec.label, min_tokens)
    return CorpusSpec(source=spec.source, ref=spec.ref, content_sha256=content_hash(text))


def corpus_from_arg(arg: str) -> CorpusSpec:
    """'embedded' | 'hf:NAME:CONFIG:SPLIT' | a path to a text file."""
    if arg in ("", "embedded"):
        return CorpusSpec()
    if arg.startswith("hf:"):
        return CorpusSpec(source="hf", ref=arg[3:])
    return CorpusSpec(source="file", ref=str(user_path(arg)))


def check_long_enough(text: str, label: str, tokens: int) -> None:
    """Refuse, without a tokenizer, a text that cannot hold `tokens` tokens: every token but a
    leading special one covers at least one UTF-8 byte, so a text of B bytes has at most B + 1."""
    _check_bytes(len(text.encode("utf-8")), label, tokens)


def _check_bytes(n: int, label: str, tokens: int) -> None:
    if n + 1 < tokens:
        raise UserError(key="errors.corpus_short", label=label, n=n, tokens=tokens)


READ_BLOCK = 8 << 20


def _scan_file(ref: str, max_chars: int) -> tuple[str, str, int]:
    """(the first `max_chars` characters, the sha256 of the whole text, its UTF-8 bytes) of a
    corpus file, with `_file_text`'s checks and the emptiness check, holding at most
    `max_chars` characters and one READ_BLOCK in memory: the file is hashed and decoded block
    by block, so a 1 GB corpus is never read whole."""
    import codecs

    p = _regular_file(ref)
    digest, decoder = hashlib.sha256(), codecs.getincrementaldecoder("utf-8")()
    kept: list[str] = []
    n_kept, offset, blank = 0, 0, True
    with open(p, "rb") as f:
        while block := f.read(READ_BLOCK):
            if offset == 0 and b"\x00" in block[:65536]:
                raise UserError(key="errors.corpus_binary", path=ref)
            digest.update(block)
            try:
                text = decoder.decode(block)
            except UnicodeDecodeError as e:
                raise UserError(key="errors.corpus_not_utf8", path=ref, reason=e.reason,
                                at=offset + e.start) from None
            blank = blank and not text.strip()
            if n_kept < max_chars:
                kept.append(text[:max_chars - n_kept])
                n_kept += len(kept[-1])
            offset += len(block)
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError as e:
        raise UserError(key="errors.corpus_not_utf8", path=ref, reason=e.reason,
                        at=offset) from None
    if blank:
        raise UserError(key="errors.corpus_empty", label=CorpusSpec(source="file", ref=ref).label)
    return "".join(kept), digest.hexdigest(), offset


def checked_prefix(spec: CorpusSpec, max_chars: int) -> str:
    """The first `max_chars` characters of the text `load_checked` would return, with the same
    checks; a file is streamed (`_scan_file`), never read whole."""
    if spec.source != "file":
        return load_checked(spec)[:max_chars]
    text, sha, _ = _scan_file(spec.ref, max_chars)
    if spec.content_sha256 and sha != spec.content_sha256:
        raise UserError(key="errors.corpus_changed", label=spec.label)
    return text


def load_checked(spec: CorpusSpec) -> str:
    """Text for a worker: refuses when the content changed since the spec was made."""
    text = load_text(spec)
    if spec.content_sha256 and content_hash(text) != spec.content_sha256:
        raise UserError(key="errors.corpus_changed", label=spec.label)
    return text
