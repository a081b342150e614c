"""qcompare's `--protocol llamacpp` against llama.cpp's own `llama-perplexity`, on the same text.

Protocol:

* The binary: `llama-perplexity` built from the llama.cpp source vendored in the
  llama-cpp-python sdist of requirements.txt (`pip download --no-binary`, then
  `cmake --build --target llama-perplexity`; about 10 minutes on 2 cores, once, into
  `.tools/llama.cpp-build/`), or `--binary PATH`.
* The model: the embedded model's converted folder written as F16 GGUF by llama.cpp's own
  converter (`qcompare.sources.hf2gguf`), so both sides run the same weights (llama.cpp in F16,
  qcompare's baseline in fp32).
* The text: the embedded corpus written to a file. llama.cpp: `llama-perplexity -m F16 -f FILE
  -c 512 --chunks N -t <cores>`; its "Final estimate: PPL". qcompare: the fp32 baseline with
  `protocol=llamacpp`, window 512, tokens 512 x N, on the same file.
* The token streams compared: llama.cpp's tokenization of the file with BOS (through
  llama-cpp-python on the same GGUF, vocab only) against qcompare's stream, the first 512 x N
  tokens: how many differ, and where the first difference is.

    python bench/llamacpp_protocol.py [--chunks 16] [--binary PATH]
"""
from __future__ import annotations

import argparse
import glob
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.report import write_section  # noqa: E402

BUILD = ROOT / ".tools" / "llama.cpp-build"
SDIST = "llama-cpp-python==0.3.36"


def build_binary() -> Path:
    """llama-perplexity from the sdist's vendored llama.cpp, built once."""
    binary = BUILD / "build" / "bin" / "llama-perplexity"
    if binary.is_file():
        return binary
    BUILD.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary",
                    ":all:", "-d", str(BUILD), SDIST], check=True)
    tar = sorted(BUILD.glob("llama_cpp_python-*.tar.gz"))[-1]
    subprocess.run(["tar", "xzf", str(tar), "-C", str(BUILD)], check=True)
    src = Path(glob.glob(str(BUILD / "llama_cpp_python-*" / "vendor" / "llama.cpp"))[0])
    subprocess.run(["cmake", "-S", str(src), "-B", str(BUILD / "build"), "-DCMAKE_BUILD_TYPE=Release",
                    "-DLLAMA_CURL=OFF", "-DGGML_NATIVE=ON", "-DLLAMA_BUILD_TESTS=OFF"], check=True)
    subprocess.run(["cmake", "--build", str(BUILD / "build"), "--target", "llama-perplexity",
                    "-j", str(os.cpu_count() or 2)], check=True)
    return binary


def llama_perplexity(binary: Path, gguf: Path, text_file: Path, chunks: int) -> tuple[float, str]:
    out = subprocess.run([str(binary), "-m", str(gguf), "-f", str(text_file), "-c", "512",
                          "--chunks", str(chunks), "-t", str(os.cpu_count() or 2), "-b", "512"],
                         capture_output=True, text=True, timeout=3600)
    log = out.stdout + out.stderr
    m = re.search(r"Final estimate: PPL = ([0-9.]+) \+/- ([0-9.]+)", log)
    if not m:
        raise SystemExit(f"llama-perplexity printed no estimate:\n{log[-2000:]}")
    return float(m.group(1)), m.group(2)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chunks", type=int, default=16)
    ap.add_argument("--binary", default="")
    args = ap.parse_args()

    from qcompare.core.registry import parse_method_arg
    from qcompare.core.specs import CorpusSpec, EvalSpec, ModelSpec
    from qcompare.core.statedir import default_state_dir
    from qcompare.jobs import prepare, worker
    from qcompare.jobs.submit import build_specs
    from qcompare.sources import corpora, hf2gguf, models

    binary = Path(args.binary) if args.binary else build_binary()
    state = default_state_dir()
    tokens = 512 * args.chunks
    with tempfile.TemporaryDirectory() as tmp:
        text_file = Path(tmp) / "corpus.txt"
        text_file.write_text(corpora.embedded_text(), encoding="utf-8")
        model = models.resolve(ModelSpec())
        folder = models.local_folder(model, state)
        gguf = hf2gguf.cached_f16(state, folder, model.fingerprint)
        theirs, their_se = llama_perplexity(binary, gguf, text_file, args.chunks)
        corpus = CorpusSpec(source="file", ref=str(text_file))
        ev = EvalSpec(tokens=tokens, window=512, protocol="llamacpp", speed_repeats=0)
        (spec,) = build_specs(model, [parse_method_arg("fp32")], corpus, ev)
        row = worker.run(spec, state)
        opened = prepare.open_spec(spec, state)
        ours_ids, _, _ = worker.evaluation_tokens(opened)
        from llama_cpp import Llama

        vocab = Llama(str(gguf), vocab_only=True, verbose=False)
        theirs_ids = vocab.tokenize(text_file.read_bytes(), add_bos=True)[:tokens]
    differ = [i for i, (a, b) in enumerate(zip(ours_ids, theirs_ids)) if int(a) != int(b)]
    gap = (row["ppl"] / theirs - 1) * 100
    lines = [
        f"`python bench/llamacpp_protocol.py --chunks {args.chunks}`: the embedded model on the "
        f"embedded corpus, {args.chunks} windows of 512 ({tokens} tokens).", "",
        "| | PPL | note |", "|---|---|---|",
        f"| llama.cpp `llama-perplexity -c 512 --chunks {args.chunks}` (F16 GGUF) | "
        f"{theirs:.4f} ± {their_se} | built from llama-cpp-python 0.3.36's vendored source |",
        f"| qcompare `--protocol llamacpp` fp32 | {row['ppl']:.4f} ± {row['ppl_se']:.4f} | "
        f"{row['n_scored']} tokens scored |",
        "", f"qcompare against llama.cpp: {gap:+.3f} %.",
        f"Token streams (llama.cpp's tokenizer with BOS, against qcompare's): "
        f"{len(differ)} of {min(len(ours_ids), len(theirs_ids))} tokens differ"
        + (f", the first at position {differ[0]}" if differ else "") + ".",
    ]
    write_section("llamacpp protocol against llama-perplexity", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
