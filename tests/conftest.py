"""Shared fixtures: a tiny random Llama saved as a real local model folder, with a byte-level
BPE tokenizer trained in-process on the embedded corpus (nothing is downloaded)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# every fresh state folder measures the machine's bandwidth once: in-process and on a small
# buffer here (metrics.roofline), as no test needs the precise figure
os.environ.setdefault("QCOMPARE_BANDWIDTH_PROCESSES", "0")
os.environ.setdefault("QCOMPARE_BANDWIDTH_MIB", "64")
os.environ.setdefault("QCOMPARE_MATMUL_N", "256")
# the noise floor adds three baseline passes per new baseline (fp16 compute is slow on a CPU):
# off unless a test is about it (tests/stats/test_noisefloor.py, the seeded page store)
os.environ.setdefault("QCOMPARE_NOISE_FLOOR", "0")


def build_tiny_model(folder: Path, seed: int = 0) -> Path:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from qcompare.sources.corpora import embedded_text

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=384, special_tokens=["<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([embedded_text()[:200_000]], trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>")
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(fast), hidden_size=64, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=1024, bos_token_id=fast.bos_token_id,
                         eos_token_id=fast.eos_token_id, tie_word_embeddings=True)
    model = LlamaForCausalLM(config)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    fast.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture
def state_dir(tmp_path) -> Path:
    h = tmp_path / "state_dir"
    h.mkdir()
    return h


@pytest.fixture
def tiny_eval():
    """A small, fast evaluation protocol for the tiny model."""
    from qcompare.core.specs import EvalSpec

    return EvalSpec(tokens=256, window=64, speed_prompt=16, speed_new_tokens=4, speed_repeats=1)


@pytest.fixture
def build_context():
    """A factory of the BuildContext the worker would hand a method for a local model folder:
    make(folder, method="fp32", device="cpu", dtype="float32", **context fields)."""
    from qcompare.core.method import BuildContext
    from qcompare.core.specs import EvalSpec, MethodSpec, RunSpec
    from qcompare.sources.models import load_model, model_from_arg

    def make(folder, method: str = "fp32", device: str = "cpu", dtype: str = "float32", **kw):
        model = model_from_arg(str(folder))
        spec = RunSpec(model=model, method=MethodSpec.of(method),
                       eval=EvalSpec(device=device, dtype=dtype))
        return BuildContext(spec=spec, tokenizer=kw.pop("tokenizer", None),
                            load_model=lambda d, **fp: load_model(folder, model, d, device, **fp),
                            **kw)

    return make


@pytest.fixture
def cli(state_dir):
    """`python -m qcompare --home <state_dir> ...` as a real process: run(*args, check=True);
    the runner it may have started is killed afterwards."""
    import signal
    import subprocess
    import sys

    from qcompare.jobs.runner import runner_pid

    def run(*args, check=True):
        env = {**os.environ, "QCOMPARE_RUNNER_IDLE_EXIT_S": "2"}     # as the test has set it
        out = subprocess.run([sys.executable, "-m", "qcompare", "--home", str(state_dir), *args],
                             capture_output=True, text=True, env=env, timeout=300)
        if check and out.returncode != 0:
            raise AssertionError(f"exit {out.returncode}: {out.stderr}")
        return out
    yield run
    pid = runner_pid(state_dir)
    if pid:
        os.kill(pid, signal.SIGKILL)
