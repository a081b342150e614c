import json

import numpy as np
import pandas as pd
import pytest
import torch

from qcompare.core.errors import UserError
from qcompare.core.specs import CalibSpec, EvalSpec
from qcompare.jobs.runner import run_inline
from qcompare.jobs.store import JobStore
from qcompare.jobs.submit import submit_sensitivity
from qcompare.recipes import sensitivity
from qcompare.recipes.sensitivity import SensitivitySpec, SensitivityStore
from qcompare.sources.models import model_from_arg
from tests.conftest import build_tiny_model

FRAGILE = "model.layers.1.mlp.down_proj"


@pytest.fixture(scope="module")
def fragile_model_dir(tmp_path_factory):
    """The tiny model with one Linear made fragile on purpose: its output dominates the residual
    stream (weights x30), and one outlier in every group of 32 inputs coarsens its grid, so
    rounding its ordinary weights moves the output far more than any other Linear's."""
    from transformers import AutoModelForCausalLM

    folder = build_tiny_model(tmp_path_factory.mktemp("fragile"), seed=3)
    model = AutoModelForCausalLM.from_pretrained(folder)
    with torch.no_grad():
        w = model.get_submodule(FRAGILE).weight
        w.mul_(30.0)
        w[:, ::32] = 10 * w.abs().max()
    model.save_pretrained(folder)
    return folder


def _spec(folder, **kw):
    return SensitivitySpec(model=model_from_arg(str(folder)), group_size=32,
                           eval=EvalSpec(tokens=256, window=64),
                           calib=CalibSpec(samples=4, seq_len=64), score_samples=2, **kw)


def test_spec_round_trips_and_is_checked(tiny_model_dir):
    spec = _spec(tiny_model_dir, bits=(4, 2, 4))
    assert spec.bits == (2, 4)
    assert SensitivitySpec.from_json(spec.to_json()) == spec
    assert sensitivity.is_sensitivity_json(spec.to_json())
    assert not sensitivity.is_sensitivity_json('{"model": {}}')
    for bad in ({"bits": (5,)}, {"unit": "head"}, {"family": "awq"}, {"bits": ()}):
        with pytest.raises(UserError):
            _spec(tiny_model_dir, **bad)
    run = spec.run_spec({"1": 8}, 3)
    assert run.method.name == "mixed" and run.calib is None
    assert json.loads(run.method.options_dict["bits_map"]) == {"1": 8}
    assert spec.uniform_method(3).options_dict["bits"] == 3


def test_the_replayed_pass_equals_a_full_forward(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    from qcompare.jobs.sensitivity_job import Replay

    def _kl_rows(base_logp, logits):                 # the direct sum, in float64
        logp = torch.log_softmax(logits.double(), dim=-1)
        return (base_logp.exp() * (base_logp - logp)).sum(-1)

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    ids = torch.randint(0, 380, (5, 40), generator=torch.Generator().manual_seed(1))
    sweep = Replay(model, ids)
    for start in range(len(sweep.layers)):
        assert np.abs(sweep.kl_from(start)).max() < 1e-6        # nothing changed: KL 0
    with torch.no_grad():
        base = torch.log_softmax(model(input_ids=ids).logits.double(), -1).reshape(-1, model.config.vocab_size)
        lin = model.get_submodule("model.layers.1.self_attn.v_proj")
        lin.weight.mul_(0.5)
        full = _kl_rows(base, model(input_ids=ids).logits.reshape(base.shape)).double().numpy()
    replayed = sweep.kl_from(1)
    assert full.mean() > 1e-4
    np.testing.assert_allclose(replayed, full, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("unit,fragile", [("linear", "1.down_proj"), ("block", "1")])
def test_the_fragile_layer_ranks_first(unit, fragile, fragile_model_dir, tmp_path):
    """At 4 and 8 bits the fragile Linear (and its layer) comes first, by a wide margin. At 2
    bits (four levels) every Linear loses most of its weights to zero, fragile or not, so the
    order there is the model's own, not the planted one."""
    spec = _spec(fragile_model_dir, unit=unit, bits=(2, 4, 8))
    sub = submit_sensitivity(spec, tmp_path, start_runner=False)
    assert not sub.cached
    run_inline(JobStore.open(tmp_path), tmp_path, sub.job_id)
    job = JobStore.open(tmp_path).get(sub.job_id)
    assert job.state == "done", job.error
    table, meta = SensitivityStore(tmp_path).read(job.result_key)
    n_units = 14 if unit == "linear" else 2
    assert len(table) == n_units * 3 and meta["units"] == n_units
    for bits in (4, 8):
        order = sensitivity.ranked(table, bits)
        assert order["unit"].iloc[0] == fragile, (bits, order.head(3))
        assert order["kld"].iloc[0] > 2 * order["kld"].iloc[1]
    assert (table["kld"] >= 0).all() and (table["stored_bits"] > 0).all()
    # more bits, less divergence, for each unit (up to the noise of the tiniest values)
    wide = table.pivot(index="unit", columns="bits", values="kld")
    assert (wide[2] >= wide[8]).all()
    # asking again is answered from the stored table
    assert submit_sensitivity(spec, tmp_path, start_runner=False).cached


def test_cost_is_shown_before_the_sweep():
    spec = SensitivitySpec(model=model_from_arg("embedded"), bits=(2, 3, 4, 8), unit="linear")
    cost = sensitivity.estimate_cost(spec, layers=30, seconds_per_token=1e-3, basis="a row")
    assert cost.passes == 30 * 7 * 4 + 1 + 4
    assert cost.tokens_per_pass == 4 * 512
    assert cost.seconds == pytest.approx(1e-3 * 2048 * (cost.passes * 0.6 + 5))
    block = sensitivity.estimate_cost(spec.__class__(model=spec.model, unit="block"), 30, None, "")
    assert block.passes == 30 * 4 + 5 and block.seconds is None


def test_spearman_and_agreement_by_hand():
    assert sensitivity.spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert sensitivity.spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert np.isnan(sensitivity.spearman([1, 2], [1, 2]))
    t = pd.DataFrame({"bits": [2, 2, 2, 4, 4, 4], "kld": [3, 2, 1, 0.3, 0.1, 0.2],
                      "recon_err": [30, 20, 10, 1, 2, 3]})
    agree = sensitivity.estimator_agreement(t)
    assert agree[2] == pytest.approx(1.0) and agree[4] == pytest.approx(-0.5)


def test_a_stored_table_without_its_facts_is_not_listed(tmp_path):
    store = SensitivityStore(tmp_path)
    store.write("k1", pd.DataFrame({"unit": ["0"], "kld": [0.1]}), {"key": "k1", "finished_at": 1})
    (store.dir / "k2.parquet").write_bytes(b"half")
    (store.dir / "k3.json").write_text("{not json")
    assert [m["key"] for m in store.sweeps()] == ["k1"]
    assert store.read("k2") is None and store.read("k1")[1]["key"] == "k1"
