"""transformers' loading failures of a broken local checkpoint read as one line with the cause
and the remedy, in English and Japanese; what is not recognised is left as raised."""
from __future__ import annotations

import json
import shutil

import pytest

from qcompare.core.errors import UserError
from qcompare.core.specs import ModelSpec
from qcompare.sources import load_errors, models


def _variant(tiny_model_dir, tmp_path, name, change=None, drop=()):
    folder = tmp_path / name
    shutil.copytree(tiny_model_dir, folder)
    cfg = json.loads((folder / "config.json").read_text())
    for key, value in (change or {}).items():
        if value is None:
            cfg.pop(key, None)
        else:
            cfg[key] = value
    (folder / "config.json").write_text(json.dumps(cfg))
    for pattern in drop:
        for p in folder.glob(pattern):
            p.unlink()
    return folder


def _load(folder):
    return models.load_model(folder, ModelSpec(source="local", ref=str(folder)), "float32", "cpu")


@pytest.mark.parametrize("name,change,says,says_ja", [
    ("unknown-type", {"model_type": "nosuchmodel"}, "does not know the model type “nosuchmodel”",
     "モデルタイプ「nosuchmodel」"),
    ("no-type", {"model_type": None}, "has no model_type", "model_type がなく"),
    ("wider", {"hidden_size": 128, "head_dim": 32}, "(stored [384, 64], config [384, 128])", "形が違います"),
])
def test_a_broken_config_fails_to_load_with_one_line_that_says_what_to_do(
        tiny_model_dir, tmp_path, name, change, says, says_ja):
    folder = _variant(tiny_model_dir, tmp_path, name, change)
    with pytest.raises(UserError) as caught:
        _load(folder)
    text = str(caught.value)
    assert says in text and str(folder) in text and "\n" not in text, text
    assert "look at the above" not in text and "huggingface.co" not in text
    assert says_ja in caught.value.text("ja")


def test_a_folder_without_a_tokenizer_says_which_files_to_copy(tiny_model_dir, tmp_path):
    folder = _variant(tiny_model_dir, tmp_path, "no-tokenizer", drop=("tokenizer*", "special_tokens*"))
    with pytest.raises(UserError) as caught:
        models.load_tokenizer(folder, ModelSpec(source="local", ref=str(folder)))
    assert "has no tokenizer transformers can load" in str(caught.value), str(caught.value)
    assert "トークナイザ" in caught.value.text("ja")


def test_an_unrecognised_failure_is_left_as_raised():
    assert load_errors.explain(RuntimeError("CUDA out of memory"), "/m") is None
    assert load_errors.explain(UserError("already a sentence"), "/m") is None
    mapped = load_errors.explain(ValueError("GGUF model with architecture rwkv7 is not supported yet."),
                                 "/m/x.gguf")
    assert "architecture “rwkv7”" in str(mapped) and "Hugging Face folder" in str(mapped)
