"""A job's stage line in Japanese: every stage qcompare reports has its pattern."""
import re
from pathlib import Path

from qcompare.core import registry
from qcompare.i18n import stages

ROOT = Path(__file__).resolve().parents[2]
TECHNICAL = {"quantize_dynamic"}                  # a torch function's name: shown as it is


def test_every_plain_stage_the_code_reports_is_translated():
    code = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "qcompare").rglob("*.py"))
    plain = set(re.findall(r"""(?:report|progress)\(\s*"([^"{}]+)",""", code))
    assert len(plain) > 20, plain                 # the scan found the calls
    extra = registry.stage_patterns()
    left = {s for s in plain - TECHNICAL if stages.text(s, "ja", extra) == s}
    assert not left, sorted(left)


def test_formatted_and_nested_stages():
    assert stages.text("baseline: perplexity window 2/8", "ja") == "ベースライン: パープレキシティのウィンドウ 2/8"
    assert stages.text("unit 3.down_proj at 4 bits (5/840)", "ja") == "ユニット 3.down_proj を 4 ビットで（5/840）"
    assert stages.text("QAT step 3/50 (loss 2.1234)", "ja", registry.stage_patterns()) \
        == "QAT ステップ 3/50（損失 2.1234）"
    assert stages.text("Hessians: layer 2/30", "ja") == "ヘッセ行列: 層 2/30"
    assert stages.text("quantizing model.layers.0.mlp.up_proj", "ja").endswith("を量子化中")


def test_english_and_unknown_lines_stay_as_written():
    assert stages.text("perplexity window 3/16", "en") == "perplexity window 3/16"
    assert stages.text("llama-quantize a.gguf -> Q4_K_M", "ja") == "llama-quantize a.gguf -> Q4_K_M"
    assert stages.text(None, "ja") == "" and stages.text("", "ja") == ""


def test_a_methods_own_stages_come_from_its_class():
    """Shared code holds no method's wording: a QAT line is translated only with the methods'
    patterns, which come from the QAT class."""
    line = "QAT step 3/50 (loss 2.1234)"
    assert stages.text(line, "ja") == line
    assert any(key == "stage.qat_step" for _, key in registry.get("qat").stages)
    assert not any("QAT" in pattern or "llm-compressor" in pattern or "llama" in pattern
                   for pattern, _ in stages.STAGES)
