"""llm-compressor GPTQ / AWQ on the tiny model: a real compressed-tensors checkpoint, loaded back."""
import json
import math

import pytest

pytest.importorskip("llmcompressor", reason="llm-compressor is not installed")

from qcompare.core.registry import parse_method_arg
from qcompare.core.specs import CalibSpec, CorpusSpec
from qcompare.jobs import submit as submitting
from qcompare.jobs import worker
from qcompare.methods import llmc
from qcompare.sources.models import model_from_arg


@pytest.mark.parametrize("method", ["llmc-gptq:group_size=32", "llmc-awq:group_size=32"])
def test_library_checkpoint_is_saved_packed_and_loaded_back(tiny_model_dir, state_dir, tiny_eval, method):
    (spec,) = submitting.build_specs(model_from_arg(str(tiny_model_dir)), [parse_method_arg(method)],
                                     CorpusSpec(), tiny_eval, CalibSpec(samples=8, seq_len=64))
    row = worker.run(spec, state_dir)
    assert math.isfinite(row["ppl"]) and row["kld_mean"] > 0
    assert row["library"] == "llmcompressor" and row["library_version"]
    # compressed-tensors decompresses the packed checkpoint for compute on this CPU: the row says so
    assert row["storage"] == "real" and row["kernel"] == "dequantized"
    assert "decompressed to float32" in row["backend"]
    folder = state_dir / "work" / spec.key() / "checkpoint"
    qc = json.loads((folder / "config.json").read_text())["quantization_config"]
    weights = qc["config_groups"]["group_0"]["weights"]
    assert qc["format"] == "pack-quantized" and weights["num_bits"] == 4 and weights["group_size"] == 32
    # the stored size is the checkpoint's tensors, which hold 4-bit codes: far below fp32
    fp32 = submitting.build_specs(model_from_arg(str(tiny_model_dir)), [parse_method_arg("fp32")],
                                  CorpusSpec(), tiny_eval)[0]
    full = worker.run(fp32, state_dir)
    assert row["weights_mib"] * 2**20 == llmc.checkpoint_bytes(folder)
    assert row["weights_mib"] < full["weights_mib"]


def test_recipes_carry_the_options():
    g = llmc.LlmcGPTQ(llmc.LlmcGPTQConfig(bits=8, group_size=0, act_order="weight", damp=0.05)).recipe()
    assert g.dampening_frac == 0.05
    w = g.config_groups["group_0"].weights
    assert w.num_bits == 8 and w.strategy == "channel"
    awq, quant = llmc.LlmcAWQ(llmc.LlmcAWQConfig(duo_scaling=False, n_grid=5)).recipe()
    assert awq.duo_scaling is False and awq.n_grid == 5
    assert quant.config_groups["group_0"].weights.symmetric is False


def test_group_sizes_that_do_not_divide_the_inputs_are_refused_with_sizes_that_work():
    import torch

    from qcompare.core.errors import UserError
    from qcompare.methods.kernels.linears import check_group_size

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b, self.head = (torch.nn.Linear(576, 8), torch.nn.Linear(1536, 8),
                                         torch.nn.Linear(8, 100))

        def get_output_embeddings(self):
            return self.head

    check_group_size(Tiny(), 64, "llm-compressor")
    check_group_size(Tiny(), 0, "llm-compressor")
    with pytest.raises(UserError, match="576. Use group_size 64 / 32 / 16 / 0"):
        check_group_size(Tiny(), 128, "llm-compressor")
