"""Large inputs: a corpus far larger than anything a draw needs costs the memory of the part a
draw reads, not of the file."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

pytestmark = pytest.mark.reliability

DRAW = r"""
import json, resource, sys
import numpy as np
from transformers import AutoTokenizer
from qcompare.core.specs import CalibSpec, CorpusSpec
from qcompare.sources import calibration, corpora

model, path = sys.argv[1], sys.argv[2]
tok = AutoTokenizer.from_pretrained(model)
eval_ids = np.asarray(tok(corpora.embedded_text()[:20000])["input_ids"][:2048])
corpus = corpora.resolve(CorpusSpec(source="file", ref=path))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
cal = calibration.draw(tok, CalibSpec(corpus=corpus, samples=32, seq_len=512), CorpusSpec(), eval_ids)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"grew": after - before, "shape": list(cal.ids.shape), "pool": cal.pool_tokens}))
"""


def test_a_draw_from_a_half_gigabyte_corpus_reads_only_its_pool(tmp_path, tiny_model_dir):
    """512 MB of text (varied words for the pool, then filler): drawing thorough's 32 x 512
    calibration tokens grows the process by far less than the file (it was 9.9 GiB for 1 GB:
    the whole file read, 50 M characters tokenized at once). `resolve`, which hashes the file
    to make the spec, streams it as well."""
    from qcompare.sources import calibration, corpora

    words = corpora.embedded_text().split()
    rng = np.random.default_rng(0)
    varied = " ".join(words[i] for i in rng.integers(0, len(words), 1_200_000)) + "\n"
    assert len(varied) > calibration.POOL_CHARS
    block = ("filler text that no draw reads " * 2000 + "\n").encode()
    path = tmp_path / "big.txt"
    with open(path, "wb") as f:
        f.write(varied.encode())
        while f.tell() < 512 * 2**20:
            f.write(block)
    out = subprocess.run([sys.executable, "-c", DRAW, str(tiny_model_dir), str(path)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["shape"] == [32, 512]
    assert got["pool"] > 32 * 512
    assert got["grew"] < 400 * 2**20, got                  # the file is 512 MiB
