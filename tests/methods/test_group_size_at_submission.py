"""A group size that does not divide the model's Linear inputs is refused at submission, from
the config or GGUF header alone, with the sizes that fit (llm-compressor's default 128 against
the embedded model's 576 columns), instead of failing after the model has loaded."""
import pytest

from qcompare.core.errors import UserError
from qcompare.core.registry import parse_method_arg
from qcompare.core.specs import CorpusSpec, EvalSpec, ModelSpec
from qcompare.jobs.submit import build_specs
from qcompare.sources import models

EV = EvalSpec(tokens=256, window=64, speed_repeats=0)


def test_the_embedded_models_sizes_come_from_its_gguf_header():
    assert models.linear_input_sizes(ModelSpec()) == [576, 1536]


@pytest.mark.parametrize("method", ["llmc-gptq", "llmc-awq"])
def test_llm_compressor_default_group_is_refused_on_the_embedded_model_with_64_offered(method):
    with pytest.raises(UserError) as e:
        build_specs(ModelSpec(), [parse_method_arg(method)], CorpusSpec(), EV)
    assert "group_size 128" in str(e.value) and "576" in str(e.value)
    assert "Use group_size 64 / 32 / 16 / 0" in str(e.value)
    skipped = []
    assert build_specs(ModelSpec(), [parse_method_arg(method)], CorpusSpec(), EV, skipped=skipped) == []
    assert skipped and "group_size 128" in skipped[0][1]
    # the offered size is taken
    (spec,) = build_specs(ModelSpec(), [parse_method_arg(f"{method}:group_size=64")], CorpusSpec(), EV)
    assert spec.method.options_dict["group_size"] == 64


def test_a_local_folder_is_read_from_its_config(tiny_model_dir):
    model = models.model_from_arg(str(tiny_model_dir))
    assert models.linear_input_sizes(model) == [64, 128]
    with pytest.raises(UserError, match="group_size 256; this model has 64, 128. Use group_size 64"):
        build_specs(model, [parse_method_arg("torchao-int4wo:group_size=256")], CorpusSpec(), EV)
    assert build_specs(model, [parse_method_arg("torchao-int4wo:group_size=32")], CorpusSpec(), EV)
