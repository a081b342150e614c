import json
from dataclasses import asdict

import pytest

from qcompare.core import registry
from qcompare.core.errors import UserError
from qcompare.core.method import Method, MethodConfig


@pytest.mark.parametrize("name", registry.names())
def test_every_registered_method_imports_and_round_trips(name):
    cls = registry.get(name)
    assert issubclass(cls, Method) and cls.name == name and cls.family and cls.summary
    config = cls.config_cls()                          # defaults are valid
    assert isinstance(config, MethodConfig)
    spec = registry.make_method_spec(name, {})
    assert cls.config_cls.parse(json.loads(json.dumps(spec.options_dict))) == config
    for opt in cls.config_cls.option_table():
        assert opt["help"], f"{name}.{opt['name']} has no help text"
    reason = cls.unavailable_reason("cpu")
    assert reason is None or reason.endswith(".")


def test_listing_methods_does_not_import_torch():
    import subprocess
    import sys

    code = ("import sys; from qcompare.core import registry; registry.all_methods(); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_unknown_method_suggests_the_closest_names():
    with pytest.raises(UserError, match="Did you mean rtn"):
        registry.get("rnt")


def test_option_values_are_checked_and_listed():
    with pytest.raises(UserError, match="must be one of 8, 4, 3, 2"):
        registry.parse_method_arg("rtn:bits=5")
    with pytest.raises(UserError, match="unknown option.*this method takes: bits"):
        registry.parse_method_arg("rtn:bitz=4")
    with pytest.raises(UserError, match="needs an integer"):
        registry.parse_method_arg("rtn:group_size=big")


def test_defaults_are_part_of_the_spec_so_equal_questions_share_a_key():
    assert registry.parse_method_arg("rtn") == registry.parse_method_arg("rtn:bits=4,symmetric=true")
    assert registry.parse_method_arg("rtn:bits=8") != registry.parse_method_arg("rtn")
    assert asdict(registry.get("rtn").config_cls()) == registry.parse_method_arg("rtn").options_dict


def test_a_batch_is_queued_cheapest_first_with_the_reference_before_all():
    from qcompare.core.specs import CalibSpec, CorpusSpec, EvalSpec, ModelSpec, RunSpec
    from qcompare.jobs.submit import queue_order

    def spec(arg):
        m = registry.parse_method_arg(arg)
        cal = CalibSpec() if registry.get(m.name).calibrates(m.options_dict) else None
        return RunSpec(model=ModelSpec(fingerprint="f"), method=m, corpus=CorpusSpec(),
                       eval=EvalSpec(), calib=cal)

    names = ["gptq", "bnb-nf4", "rtn:bits=4", "fp32", "awq", "gguf:type=Q8_0",
             "gguf:type=Q4_K_M,imatrix=true", "bf16"]
    order = [names[i] for i in queue_order([spec(n) for n in names])]
    assert order == ["fp32", "rtn:bits=4", "bf16", "bnb-nf4", "gguf:type=Q8_0", "gptq", "awq",
                     "gguf:type=Q4_K_M,imatrix=true"]


@pytest.mark.parametrize("module", ["qcompare.recipes.budget", "qcompare.recipes.recipe", "qcompare.recipes.sensitivity",
                                    "qcompare.recipes.charts", "qcompare.explore.playground",
                                    "qcompare.explore.playground_charts", "qcompare.explore.generation",
                                    "qcompare.explore.generation_worker", "qcompare.cli.recipes"])
def test_what_the_pages_import_stays_torch_free(module):
    import subprocess
    import sys

    code = f"import sys, {module}; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", module


def test_an_option_past_its_stated_max_is_refused_with_the_limit():
    from dataclasses import dataclass, field

    from qcompare.core.errors import UserError
    from qcompare.core.method import MethodConfig

    @dataclass(frozen=True)
    class Ratio(MethodConfig):
        ratio: float = field(default=0.5, metadata={"help": "a fraction", "min": 0.0, "max": 1.0})

    assert Ratio.parse({"ratio": "1"}).ratio == 1.0
    with pytest.raises(UserError, match="at most 1.0"):
        Ratio.parse({"ratio": "1.5"})


def test_every_float_option_has_a_finite_range_and_refuses_nan():
    import math
    from dataclasses import fields

    from qcompare.core.errors import UserError

    for cls in registry.all_methods():
        for f in fields(cls.config_cls):
            if isinstance(f.default, float):
                low, high = f.metadata.get("min"), f.metadata.get("max")
                assert low is not None and high is not None, (cls.name, f.name)
                assert math.isfinite(low) and math.isfinite(high) and low <= f.default <= high
                for bad in ("nan", "inf", "-inf"):
                    with pytest.raises(UserError, match="finite"):
                        cls.config_cls.parse({f.name: bad})
