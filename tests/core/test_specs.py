import json

import pytest

from qcompare.core.errors import UserError
from qcompare.core.specs import CorpusSpec, EvalSpec, MethodSpec, ModelSpec, RunSpec


def _spec(**ev):
    return RunSpec(model=ModelSpec(fingerprint="abc"), method=MethodSpec.of("rtn", bits=4, group_size=128),
                   corpus=CorpusSpec(content_sha256="def"), eval=EvalSpec(**ev))


def test_key_is_stable_across_processes_and_versions():
    # If this changes, every stored result is orphaned: bump PROTOCOL_VERSION deliberately instead.
    assert _spec().key() == "f5fccd3f78555234f5e8b326a96952c99cb12a2f69b99359f8ee2701d42dd919"


def test_json_is_canonical_and_round_trips():
    s = _spec()
    text = s.to_json()
    assert text == json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"))
    assert RunSpec.from_json(text) == s and RunSpec.from_json(text).key() == s.key()


def test_option_order_does_not_change_the_key():
    a = MethodSpec.of("rtn", bits=4, group_size=128)
    b = MethodSpec.of("rtn", group_size=128, bits=4)
    assert a == b


def test_every_field_changes_the_key():
    base = _spec().key()
    assert _spec(tokens=4096).key() != base
    assert _spec(protocol="strided").key() != base
    assert RunSpec(model=ModelSpec(fingerprint="abd"), method=_spec().method,
                   corpus=_spec().corpus).key() != base


def test_reference_key_ignores_method_and_speed_settings():
    a = _spec()
    b = RunSpec(model=a.model, method=MethodSpec.of("fp16"), corpus=a.corpus,
                eval=EvalSpec(speed_repeats=0, dtype="bfloat16"))
    assert a.reference_key() == b.reference_key()
    assert _spec(window=256).reference_key() != a.reference_key()


@pytest.mark.parametrize("kwargs,match", [
    ({"protocol": "sliding"}, "protocol must be one of"),
    ({"device": "tpu"}, "device must be one of"),
    ({"tokens": 100, "window": 512}, "at least one window"),
    ({"window": 511, "protocol": "llamacpp"}, "even window"),
    ({"stride": 600}, "stride"),
])
def test_eval_spec_refuses_bad_values_with_a_message(kwargs, match):
    with pytest.raises(UserError, match=match):
        EvalSpec(**kwargs)


def test_model_spec_needs_a_ref_for_non_embedded():
    with pytest.raises(UserError, match="needs a path"):
        ModelSpec(source="local")
