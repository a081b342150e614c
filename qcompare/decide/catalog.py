"""Common models and GPUs for the memory calculator: public config.json shapes and nominal GPU
memory. Facts, not measurements: the calculator's presets, overridable by a user's own config
or memory size."""
from __future__ import annotations

from qcompare.core.shape import ModelShape


def _m(name, layers, hidden, heads, kv, inter, vocab, tied=False, bias=False) -> ModelShape:
    return ModelShape(name, layers, hidden, heads, kv, inter, vocab, tied=tied,
                      attention_bias=bias, basis="public config.json")


MODELS: dict[str, ModelShape] = {m.name: m for m in (
    _m("SmolLM2-135M", 30, 576, 9, 3, 1536, 49152, tied=True),
    _m("Qwen2.5-0.5B", 24, 896, 14, 2, 4864, 151936, tied=True, bias=True),
    _m("Llama-3.2-1B", 16, 2048, 32, 8, 8192, 128256, tied=True),
    _m("Llama-2-7B", 32, 4096, 32, 32, 11008, 32000),
    _m("ELYZA-japanese-Llama-2-7b", 32, 4096, 32, 32, 11008, 32000),
    _m("Mistral-7B-v0.1", 32, 4096, 32, 8, 14336, 32000),
    _m("Qwen2.5-7B", 28, 3584, 28, 4, 18944, 152064, bias=True),
    _m("Llama-3.1-8B", 32, 4096, 32, 8, 14336, 128256),
    _m("Llama-2-13B", 40, 5120, 40, 40, 13824, 32000),
    _m("Llama-2-70B", 80, 8192, 64, 8, 28672, 32000),
    _m("Llama-3.1-70B", 80, 8192, 64, 8, 28672, 128256),
)}

# GiB a program can allocate: the total nvidia-smi reports (its MiB / 1024), which is less than
# the marketed "24 GB" where ECC and the driver reserve part of it (an A10's 24 GiB of chips shows
# 23,028 MiB); the catalogue names say GiB so the two are never read as one number
GPUS: dict[str, float] = {
    "T4 (15.0 GiB)": 15360 / 1024, "RTX 4080 (16.0 GiB)": 16376 / 1024,
    "A10 (22.5 GiB)": 23028 / 1024, "L4 (22.5 GiB)": 23034 / 1024,
    "RTX 4090 (24.0 GiB)": 24564 / 1024, "A100 40GB (40.0 GiB)": 40960 / 1024,
    "L40S (45.0 GiB)": 46068 / 1024, "RTX A6000 (48.0 GiB)": 49140 / 1024,
    "A100 80GB (80.0 GiB)": 81920 / 1024, "H100 SXM (79.6 GiB)": 81559 / 1024,
    "H200 (140.4 GiB)": 143771 / 1024,
}
COMMON_SIZES_GIB = (16, 24, 40, 48, 80)
