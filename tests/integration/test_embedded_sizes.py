"""The memory calculator against real library builds on the embedded model (bitsandbytes,
torchao, HQQ, torch.ao, fp8, bf16): build only, no evaluation. The calibrating families are
checked on their real rows in test_embedded_calibrated.py, GGUF against llama-quantize's files
in tests/methods/test_gguf.py."""
import pytest

from qcompare.core import registry
from qcompare.core.errors import UserError
from qcompare.decide import sizing
from qcompare.sources import models

pytestmark = pytest.mark.slow

VARIANTS = ["bf16", "fp8", "bnb-int8", "bnb-nf4:double_quant=true", "torchao-int8wo",
            "torchao-int4wo", "torch-dynamic-int8", "hqq:bits=3"]


@pytest.fixture(scope="module")
def embedded(tmp_path_factory):
    from qcompare.core.specs import ModelSpec

    try:
        spec = models.resolve(ModelSpec())
    except UserError as e:
        pytest.skip(str(e))
    state_dir = tmp_path_factory.mktemp("embedded-sizes")
    return spec, models.local_folder(spec, state_dir)


@pytest.mark.parametrize("arg", VARIANTS)
def test_calculated_weights_equal_the_built_ones(arg, embedded):
    from qcompare.core.method import BuildContext
    from qcompare.core.specs import EvalSpec, RunSpec
    from qcompare.decide.shapes import shape_of_gguf

    spec = registry.parse_method_arg(arg)
    cls = registry.get(spec.name)
    if cls.unavailable_reason("cpu"):
        pytest.skip(cls.unavailable_reason("cpu"))
    model, folder = embedded
    ctx = BuildContext(spec=RunSpec(model=model, method=spec, eval=EvalSpec()), tokenizer=None,
                       load_model=lambda d, **fp: models.load_model(folder, model, d, "cpu", **fp))
    built = cls(cls.config_cls.parse(dict(spec.options))).build(ctx)
    calc = sizing.estimate(cls, dict(spec.options), shape_of_gguf(models.embedded_gguf()),
                           sizing.Setting())
    assert calc.weights == built.weights_bytes
