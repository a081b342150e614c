import json

import pytest
import torch

from qcompare.core import registry
from qcompare.core.errors import UserError
from qcompare.methods import gptq, mixed, rtn


def test_the_map_is_canonical_and_checked():
    c = mixed.MixedConfig(bits_map='{"5.down_proj": 3, "0": 8, "5": 2}')
    assert c.bits_map == '{"0":8,"5":2,"5.down_proj":3}'
    assert (c.bits_of(5, "down_proj"), c.bits_of(5, "q_proj"), c.bits_of(0, "up_proj"),
            c.bits_of(1, "q_proj")) == (3, 2, 8, 4)
    for bad in ('{"x": 4}', '{"0.lm_head": 4}', '{"0": 5}', '[1]', '{"0": true}', "{"):
        with pytest.raises(UserError):
            mixed.MixedConfig(bits_map=bad)


def test_a_cli_argument_carries_a_json_map_with_commas():
    spec = registry.parse_method_arg('mixed:bits_map={"1":8,"0.q_proj":2},default_bits=3')
    opts = spec.options_dict
    assert opts["default_bits"] == 3 and json.loads(opts["bits_map"]) == {"0.q_proj": 2, "1": 8}
    same = registry.parse_method_arg('mixed:default_bits=3,bits_map={"0.q_proj":2, "1":8}')
    assert same == spec                      # one question, one key, however it was written


def _weights(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("family,group_size", [("rtn", 32), ("rtn", 0), ("gptq", 32)])
def test_an_empty_map_is_the_family_itself(family, group_size, build_context, tiny_model_dir):
    calib = torch.randint(0, 380, (4, 64), generator=torch.Generator().manual_seed(0))
    ctx = build_context(tiny_model_dir, calibration=lambda: calib)
    m = mixed.Mixed(mixed.MixedConfig(family=family, default_bits=3, group_size=group_size))
    built = m.build(ctx)
    if family == "rtn":
        ref = rtn.RTN(rtn.RTNConfig(bits=3, granularity="group" if group_size else "channel",
                                    group_size=group_size or 128)).build(ctx)
    else:
        ref = gptq.GPTQ(gptq.GPTQConfig(bits=3, group_size=group_size)).build(ctx)
    a, b = _weights(built.runtime.model), _weights(ref.runtime.model)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert built.weights_bytes == ref.weights_bytes


def test_units_get_their_own_bits(build_context, tiny_model_dir):
    ctx = build_context(tiny_model_dir)
    cfg = mixed.MixedConfig(default_bits=4, group_size=32,
                            bits_map='{"0": 2, "0.v_proj": 16, "1.down_proj": 8}')
    built = mixed.Mixed(cfg).build(ctx)
    m = built.runtime.model
    base = _weights(build_context(tiny_model_dir).load_model("float32"))
    by_name = {d["layer"]: d["unit_bits"] for d in built.layers}
    assert by_name["model.layers.0.self_attn.q_proj"] == 2
    assert by_name["model.layers.0.self_attn.v_proj"] == 16
    assert by_name["model.layers.1.mlp.down_proj"] == 8
    assert by_name["model.layers.1.mlp.up_proj"] == 4
    v = "model.layers.0.self_attn.v_proj.weight"
    assert torch.equal(m.get_parameter(v), base[v])                  # 16 bits: untouched
    q = m.get_parameter("model.layers.0.self_attn.q_proj.weight")
    assert all(row.unique().numel() <= 4 for row in q.reshape(-1, 32))   # 2 bits: 4 levels
    assert "2 Linears at 16 bits" not in built.notes and "1 Linears at 16 bits" in built.notes


def test_a_map_naming_a_layer_the_model_lacks_is_refused(tiny_model_dir, build_context):
    """A unit past the last decoder layer would be silently ignored (and labelled '+1 units'):
    refused with the valid range, at submission from the config and again at build."""
    from qcompare.core.errors import UserError
    from qcompare.core.specs import MethodSpec, RunSpec
    from qcompare.methods.mixed import Mixed
    from qcompare.sources.models import model_from_arg

    options = {"bits_map": '{"5":8}'}
    spec = RunSpec(model=model_from_arg(str(tiny_model_dir)), method=MethodSpec.of("mixed", **options))
    assert "0 to 1" in str(Mixed.request_problem(spec))
    with pytest.raises(UserError, match="0 to 1"):
        Mixed(Mixed.config_cls.parse(options)).build(build_context(tiny_model_dir, "mixed"))
    ok = RunSpec(model=spec.model, method=MethodSpec.of("mixed", bits_map='{"1":8}'))
    assert Mixed.request_problem(ok) is None
