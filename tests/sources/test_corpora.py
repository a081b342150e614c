import pytest

from qcompare.core.errors import UserError
from qcompare.core.specs import CorpusSpec
from qcompare.sources import corpora


def test_embedded_corpus_is_real_python_documentation():
    text = corpora.load_text(CorpusSpec())
    assert len(text) > 300_000
    assert 'The "if" statement' in text and 'The "for" statement' in text


def test_embedded_corpus_is_the_shipped_snapshot_whatever_the_python(monkeypatch, tmp_path):
    """The same bytes on every machine: the snapshot's hash, not the running Python's pydoc."""
    import sys

    text = corpora.embedded_text()
    assert corpora.content_hash(text) == corpora.EMBEDDED_SHA256
    monkeypatch.setitem(sys.modules, "pydoc_data.topics", type(sys)("fake"))   # no pydoc at all
    assert corpora.embedded_text() == text
    changed = tmp_path / "c.txt"
    changed.write_bytes(corpora.EMBEDDED_FILE.read_bytes() + b" ")
    monkeypatch.setattr(corpora, "EMBEDDED_FILE", changed)
    with pytest.raises(UserError, match="was changed"):
        corpora.embedded_text()


def test_content_hash_follows_the_text(tmp_path):
    p = tmp_path / "c.txt"
    p.write_text("hello world " * 100)
    a = corpora.resolve(corpora.corpus_from_arg(str(p)))
    p.write_text("hello there " * 100)
    b = corpora.resolve(corpora.corpus_from_arg(str(p)))
    assert a.content_sha256 != b.content_sha256
    with pytest.raises(UserError, match="changed since"):
        corpora.load_checked(a)


@pytest.mark.parametrize("content,match", [
    (b"", "is empty"), (b"   \n\n", "is empty"), (b"abc\x00\x01\x02", "looks binary"),
    (b"\xff\xfe\xfa bad", "not UTF-8"),
])
def test_bad_corpus_files_get_a_clear_message(tmp_path, content, match):
    p = tmp_path / "bad.txt"
    p.write_bytes(content)
    with pytest.raises(UserError, match=match):
        corpora.load_text(corpora.corpus_from_arg(str(p)))


def test_missing_file_and_bad_dataset_reference():
    with pytest.raises(UserError, match="does not exist"):
        corpora.load_text(corpora.corpus_from_arg("/no/such/file.txt"))
    with pytest.raises(UserError, match="NAME:CONFIG:SPLIT"):
        corpora.load_text(CorpusSpec(source="hf", ref="wikitext"))
