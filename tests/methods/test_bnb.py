"""bitsandbytes methods on the tiny model: real library, packed storage checked by hand."""
from dataclasses import replace

import pytest
import torch

pytest.importorskip("bitsandbytes", reason="bitsandbytes is not installed")

from qcompare.core.registry import parse_method_arg  # noqa: E402
from qcompare.core.specs import CorpusSpec  # noqa: E402
from qcompare.jobs import submit as submitting
from qcompare.jobs import worker  # noqa: E402
from qcompare.methods import bnb  # noqa: E402
from qcompare.sources.models import model_from_arg  # noqa: E402


def _linear_shapes(folder):
    from transformers import AutoModelForCausalLM

    m = AutoModelForCausalLM.from_pretrained(folder)
    head = m.get_output_embeddings()
    lin = [mod.weight.shape for mod in m.modules() if isinstance(mod, torch.nn.Linear) and mod is not head]
    other = sum(p.numel() for n, p in m.named_parameters() if not n.endswith("proj.weight"))
    return lin, other


def test_nf4_replaces_linears_and_counts_codes_plus_block_scales(build_context, tiny_model_dir):
    import bitsandbytes as b

    built = bnb.BnbNF4(bnb.Bnb4bitConfig(compute_dtype="bfloat16")).build(build_context(tiny_model_dir))
    m = built.runtime.model
    assert isinstance(m.model.layers[0].mlp.down_proj, b.nn.Linear4bit)
    assert not isinstance(m.lm_head, b.nn.Linear4bit)
    shapes, other = _linear_shapes(tiny_model_dir)
    codes = sum(o * i // 2 for o, i in shapes)            # two 4-bit codes per byte
    scales = sum(o * i // 64 * 4 for o, i in shapes)      # one fp32 absmax per 64 weights
    assert built.weights_bytes == codes + scales + other * 2    # the rest in bf16
    assert built.kernel == "real" and built.compute_dtype == "bfloat16"


def test_int8_counts_int8_weights_plus_row_scales(build_context, tiny_model_dir):
    import bitsandbytes as b

    built = bnb.BnbInt8().build(build_context(tiny_model_dir))
    assert isinstance(built.runtime.model.model.layers[0].self_attn.q_proj, b.nn.Linear8bitLt)
    shapes, other = _linear_shapes(tiny_model_dir)
    expect = sum(o * i + o * 4 for o, i in shapes) + other * 2    # int8 codes + fp32 SCB per row
    assert built.weights_bytes == expect


def test_bnb_rows_through_the_worker(tiny_model_dir, state_dir, tiny_eval):
    ev = replace(tiny_eval, speed_repeats=0)
    model = model_from_arg(str(tiny_model_dir))
    methods = [parse_method_arg(m) for m in ("fp32", "bnb-int8", "bnb-nf4", "bnb-fp4")]
    rows = {r["method"]: r for r in (worker.run(s, state_dir)
                                      for s in submitting.build_specs(model, methods, CorpusSpec(), ev))}
    assert rows["bnb-int8"]["kld_mean"] < rows["bnb-nf4"]["kld_mean"]
    assert rows["bnb-nf4"]["weights_mib"] < rows["bnb-int8"]["weights_mib"] < rows["fp32"]["weights_mib"]
    assert all("bitsandbytes" in rows[m]["backend"] for m in ("bnb-int8", "bnb-nf4", "bnb-fp4"))
    assert rows["bnb-nf4"]["library_version"]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_bnb_on_cuda_uses_the_gpu(tiny_model_dir, state_dir, tiny_eval):
    model = model_from_arg(str(tiny_model_dir))
    specs = submitting.build_specs(model, [parse_method_arg("bnb-nf4")], CorpusSpec(),
                                   replace(tiny_eval, device="cuda"))
    row = worker.run(specs[0], state_dir)
    assert row["device"] == "cuda" and "cuda backend" in row["backend"] and row["cuda_peak_alloc_mib"] > 0
