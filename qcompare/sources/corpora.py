"""Evaluation text: the embedded corpus (a shipped snapshot of CPython's own documentation), a
text file, or a `datasets` split; each resolved to exact text whose sha256 goes into the spec."""
from __future__ import annotations

import hashlib
from pathlib import Path

from qcompare.core.errors import UserError
from qcompare.core.specs import CorpusSpec
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


def _file_text(path: str) -> str:
    p = user_path(path)
    if p.is_dir():
        raise UserError(key="errors.corpus_folder", path=path)
    if p.exists() and not p.is_file():        # /dev/zero, a pipe: no end to read to
        raise UserError(key="errors.corpus_not_file", path=path)
    if not p.is_file():
        raise UserError(key="errors.corpus_missing", path=path)
    raw = p.read_bytes()
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
    try:
        ds = datasets.load_dataset(name, config or None, split=split)
    except Exception as e:  # noqa: BLE001 - the library raises many kinds; the message matters
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
    n = len(text.encode("utf-8"))
    if n + 1 < tokens:
        raise UserError(key="errors.corpus_short", label=label, n=n, tokens=tokens)


def load_checked(spec: CorpusSpec) -> str:
    """Text for a worker: refuses when the content changed since the spec was made."""
    text = load_text(spec)
    if spec.content_sha256 and content_hash(text) != spec.content_sha256:
        raise UserError(key="errors.corpus_changed", label=spec.label)
    return text
