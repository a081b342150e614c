import json

import pytest

from qcompare.core.errors import UserError
from qcompare.sources import models


def test_model_from_arg_kinds(tmp_path):
    assert models.model_from_arg("embedded").source == "embedded"
    assert models.model_from_arg(str(tmp_path / "m.gguf")).source == "gguf"
    assert models.model_from_arg(str(tmp_path)).source == "local"
    assert models.model_from_arg("HuggingFaceTB/SmolLM2-135M").source == "hub"


def test_missing_folder_and_folder_without_config(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        models.resolve(models.model_from_arg(str(tmp_path / "nope")))
    with pytest.raises(UserError, match="no config.json"):
        models.resolve(models.model_from_arg(str(tmp_path)))


def test_pickle_only_checkpoint_is_refused_unless_allowed(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "pytorch_model.bin").write_bytes(b"\x80\x04pickle")
    with pytest.raises(UserError, match="pickle"):
        models.resolve(models.model_from_arg(str(tmp_path)))
    assert models.resolve(models.model_from_arg(str(tmp_path), allow_pickle=True)).fingerprint


def test_remote_code_is_refused_unless_trusted(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"auto_map": {"AutoModel": "m.Model"}}))
    header = b'{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'
    (tmp_path / "model.safetensors").write_bytes(len(header).to_bytes(8, "little") + header + b"\0" * 4)
    with pytest.raises(UserError, match="trust-remote-code"):
        models.resolve(models.model_from_arg(str(tmp_path)))
    assert models.resolve(models.model_from_arg(str(tmp_path), trust_remote_code=True)).fingerprint


def test_a_file_that_is_not_gguf(tmp_path):
    p = tmp_path / "fake.gguf"
    p.write_bytes(b"NOPE" + b"\0" * 10)
    with pytest.raises(UserError, match="not a GGUF file"):
        models.resolve(models.model_from_arg(str(p)))


def test_fingerprint_changes_with_weights(tiny_model_dir, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tiny_model_dir, copy)
    a = models.folder_fingerprint(copy)
    assert a == models.folder_fingerprint(tiny_model_dir)
    data = bytearray((copy / "model.safetensors").read_bytes())
    data[-1] ^= 1
    (copy / "model.safetensors").write_bytes(bytes(data))
    assert models.folder_fingerprint(copy) != a


def test_memory_check_names_both_numbers():
    with pytest.raises(UserError, match=r"about 8.0 GiB .* only 2.0 GiB of RAM"):
        models.check_fits(8 * 2**30, 2 * 2**30, "RAM")


def test_embedded_model_is_located_without_importing_the_package():
    p = models.embedded_gguf()
    assert p.name == models.EMBEDDED_FILE and p.stat().st_size > 50_000_000


def test_concurrent_first_uses_convert_once(monkeypatch, tmp_path):
    """Two workers asking for the same GGUF at once: one converts, the other waits for it."""
    import threading
    import time as _time

    calls = []

    def fake_convert(gguf, out):
        calls.append(out)
        _time.sleep(0.5)
        (out / "config.json").write_text("{}")

    monkeypatch.setattr(models, "_convert_gguf", fake_convert)
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    results = []
    threads = [threading.Thread(target=lambda: results.append(
        models.ensure_converted(tmp_path / "state_dir", gguf, "f" * 64))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len(set(results)) == 1
    assert (results[0] / "config.json").is_file()
    assert not [p for p in results[0].parent.iterdir() if p.name.startswith(".m-") and p.is_dir()]


def test_a_failed_conversion_leaves_nothing_half_written(monkeypatch, tmp_path):
    def broken(gguf, out):
        (out / "model.safetensors").write_bytes(b"partial")
        raise RuntimeError("disk full")

    monkeypatch.setattr(models, "_convert_gguf", broken)
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    with pytest.raises(RuntimeError, match="disk full"):
        models.ensure_converted(tmp_path / "state_dir", gguf, "f" * 64)
    target = models.converted_dir(tmp_path / "state_dir", gguf, "f" * 64)
    assert not target.exists()
    assert [p.name for p in target.parent.iterdir() if p.is_dir()] == []
