"""The roofline arithmetic, by hand: bytes per decoded token, FLOPs per prefill token, and the
percentages against a machine's measured bandwidth and matmul peak."""
import json

import numpy as np
import pytest
import torch

from qcompare.metrics import roofline as rf
from qcompare.runtime import cost

CM = cost.CostModel(weight_bytes=1000, kv_bytes_per_position=10, body_params=300,
                  head_params=50, layers=2, heads=3, head_dim=4)


def test_decode_bytes_at_the_mean_decode_position():
    # prompt 8, 5 new tokens: positions 8..12, mean 10 -> 1000 + 10 * 10
    assert CM.decode_bytes(8, 5) == 1100


def test_prefill_flops_per_token():
    # 2 * 300 + 4 * 2 layers * 3 heads * 4 dims * (8 - 1) / 2 + 2 * 50 / 8
    assert CM.prefill_flops(8) == pytest.approx(600 + 336 + 12.5)


def test_roofline_percentages():
    speed = {"decode_tok_s": 2e6, "prefill_tok_s": 1e6}
    machine = {"bandwidth_gbs": 4.4, "matmul_gflops": 9.485, "measured_at": "2026-12-01"}
    cols = rf.roofline_columns(CM, speed, 8, 5, machine)
    # 1100 bytes x 2e6 tok/s = 2.2 GB/s of 4.4 -> 50 %; 948.5 FLOP x 1e6 = 0.9485 of 9.485 -> 10 %
    assert cols["decode_roofline_pct"] == pytest.approx(50.0)
    assert cols["prefill_roofline_pct"] == pytest.approx(10.0)
    assert cols["decode_read_mib"] == pytest.approx(1100 / 2**20)
    assert rf.roofline_columns(None, speed, 8, 5, machine) == {}
    assert rf.roofline_columns(CM, {}, 8, 5, machine) == {}


def _tiny(tied: bool, dtype=torch.float32):
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=100, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=tied)
    return LlamaForCausalLM(cfg).to(dtype)


@pytest.mark.parametrize("tied", [True, False])
def test_torch_cost_model_counts_what_a_token_touches(tied):
    m = _tiny(tied)
    cm = cost.torch_cost_model(m)
    per_layer = (16 * 16 + 2 * (16 * 8) + 16 * 16) + 3 * (16 * 32)   # q,k,v,o + gate, up, down
    norms = 2 * 2 * 16 + 16                                          # 2 per layer + final
    embed = 100 * 16
    # tied: the head reads the whole shared table; untied: the embedding one row, the head all
    expected = (2 * per_layer + norms + embed + (0 if tied else 16)) * 4
    assert cm.weight_bytes == expected
    assert cm.body_params == 2 * per_layer and cm.head_params == embed
    # K and V, 2 layers x 2 kv heads x head_dim 4, fp32
    assert cm.kv_bytes_per_position == 2 * 2 * 2 * 4 * 4
    assert cm.kv_bytes_per_position // 2 == cost.torch_cost_model(_tiny(tied, torch.bfloat16)).kv_bytes_per_position


def test_gguf_cost_model_from_a_written_file(tmp_path):
    gguf = pytest.importorskip("gguf")
    path = tmp_path / "t.gguf"
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_block_count(1)
    w.add_embedding_length(8)
    w.add_head_count(2)
    w.add_head_count_kv(1)
    tensors = {"token_embd.weight": (50, 8), "output.weight": (50, 8),
               "blk.0.attn_q.weight": (8, 8), "blk.0.attn_k.weight": (4, 8),
               "blk.0.ffn_down.weight": (8, 16), "blk.0.attn_norm.weight": (8,)}
    for name, shape in tensors.items():
        w.add_tensor(name, np.zeros(shape, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    cm = cost.gguf_cost_model(path)
    # untied (output.weight present): one embedding row; everything else whole, 4 bytes each
    assert cm.weight_bytes == 4 * (8 + 50 * 8 + 64 + 32 + 128 + 8)
    assert cm.body_params == 64 + 32 + 128 and cm.head_params == 400
    # f16 KV: 2 x 1 layer x 1 kv head x head_dim 4 x 2 bytes
    assert cm.kv_bytes_per_position == 16 and cm.head_dim == 4


def test_machine_profile_is_measured_once_and_cached(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(rf, "measure_bandwidth", lambda d: calls.append("bw") or 12.5)
    monkeypatch.setattr(rf, "measure_matmul", lambda d, t: calls.append("mm") or 100.0)
    a = rf.machine_profile(tmp_path, "cpu", "Some CPU", 2)
    b = rf.machine_profile(tmp_path, "cpu", "Some CPU", 2)
    assert a == b and calls == ["bw", "mm"]
    assert a["bandwidth_gbs"] == 12.5 and a["measured_at"] and a["matmul_gflops"] == 100.0
    rf.machine_profile(tmp_path, "cpu", "Some CPU", 2, "bfloat16")  # one more matmul, same copy
    assert calls == ["bw", "mm", "mm"]
    assert [p["matmul_gflops"] for p in rf.cached_profiles(tmp_path)] == [
        {"float32": 100.0, "bfloat16": 100.0}]
    rf.machine_profile(tmp_path, "cpu", "Some CPU", 1)             # other threads: measured anew
    assert calls == ["bw", "mm", "mm", "bw", "mm"]
    # a profile measured the old way (no version) is measured again
    path = next((tmp_path / "machine").glob("*t2.json"))
    old = json.loads(path.read_text())
    del old["version"]
    path.write_text(json.dumps(old))
    rf.machine_profile(tmp_path, "cpu", "Some CPU", 2)
    assert calls[-2:] == ["bw", "mm"]
    assert all(json.loads(p.read_text())["device"] == "cpu" for p in (tmp_path / "machine").iterdir())


def test_measurements_are_plausible_on_this_cpu():
    assert 0.1 < rf.copy_bandwidth("cpu", mib=64, repeats=2) < 10_000
    assert 0.1 < rf.measure_bandwidth("cpu", processes=1) < 10_000
    assert 0.1 < rf.measure_matmul("cpu", n=256, repeats=2) < 1_000_000


@pytest.mark.gpu
def test_measurements_on_cuda():
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU: the device-to-device copy and matmul peak run there")
    assert rf.measure_bandwidth("cuda") > 100
    assert rf.measure_matmul("cuda", "float16", n=4096) > 1000
