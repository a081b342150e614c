"""`sensitivity` and `recipe` as a user runs them: real processes, a real runner and worker
(the `cli` fixture of tests/conftest.py)."""
import json

import pytest

TINY = ["--tokens", "256", "--window", "64", "--calib-samples", "4"]


def test_a_sweep_then_a_verified_recipe(cli, tiny_model_dir):
    model = ["--model", str(tiny_model_dir)]
    sweep = ["sensitivity", *model, "--unit", "block", "--bits", "2,4,8", "--group-size", "32",
             "--score-samples", "2", *TINY]
    dry = cli(*sweep, "--dry-run")
    assert "10 forward passes of 512 tokens" in dry.stderr    # 2 layers x 3 widths + 1 + 3
    out = cli(*sweep)
    assert "4-bit, most sensitive first:" in out.stdout and "Spearman" in out.stdout
    assert "every unit at 8-bit: measured" in out.stdout
    again = cli(*sweep, "--json")                       # answered from the stored table
    data = json.loads(again.stdout)
    assert len(data["table"]) == 6 and data["meta"]["unit"] == "block"

    too_small = cli("recipe", "--target-bpw", "1", check=False)
    assert too_small.returncode == 2 and "nothing fits" in too_small.stderr
    plan = json.loads(cli("recipe", "--target-bpw", "5", "--json").stdout)
    assert plan["bits_per_weight"] <= 5 and plan["method"].startswith("mixed:")
    assert set(plan["counts"]) <= {"2", "4", "8", "16"}
    done = json.loads(cli("recipe", "--target-bpw", "5", "--verify", "--json", *model,
                          "--family", "rtn").stdout)
    m = done["measured"]
    assert m["recipe"]["weights_mib"] <= plan["size_mib"] + 1e-6
    assert m["uniform"]["method"].startswith("rtn:bits=4")         # the largest no bigger
    d = m["recipe_minus_uniform_kld"]
    assert d["lo"] <= d["estimate"] <= d["hi"]
    assert d["estimate"] == pytest.approx(m["recipe"]["kld_mean"] - m["uniform"]["kld_mean"], abs=1e-6)
    text = cli("recipe", "--target-bpw", "5", "--verify").stdout
    assert "recipe - uniform KLD" in text and "paired bootstrap" in text
