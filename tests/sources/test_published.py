"""The shipped published figures: every row keeps its source and caveats, units as stated."""
import pandas as pd
import pytest

from qcompare.sources import published


def test_the_shipped_copy_has_the_shared_rows_and_their_sources():
    from pathlib import Path

    shared = Path(__file__).resolve().parents[3] / "shared" / "reference" / "published.csv"
    d = published.load()
    assert d["source"].notna().all() and d["where"].notna().all() and d["label"].str.startswith("published: ").all()
    if shared.exists():                                    # the copy keeps every shared row
        assert len(pd.read_csv(shared)) == len(d)


def test_units_and_the_increase_against_the_same_table():
    d = published.load()
    talk = d[(d["where"] == "nvidia-smi after load") & (d["family"] == "bitsandbytes")].iloc[0]
    assert talk["nvml_used_peak_mib"] == pytest.approx(7300)            # 3271 + 4055 MiB, / 1000
    fp16 = d[(d["where"] == "section 7.2 table") & (d["method"] == "F16")].iloc[0]
    assert fp16["weights_mib"] == pytest.approx(13.5e9 / 2 ** 20)
    awq = d[(d["source"].str.startswith("AWQ")) & (d["method"] == "AWQ INT4 g128")].iloc[0]
    assert awq["ppl_increase_pct"] == pytest.approx(100 * (5.60 / 5.47 - 1))


def test_beside_measured_pairs_the_same_model_and_family_or_says_not_measured():
    d = published.load()
    measured = pd.DataFrame([{"model": "meta-llama/Llama-2-7B-hf", "method": "gptq",
                              "method_label": "gptq 4b", "ppl": 5.9, "weights_mib": 3700.0}])
    side = published.beside_measured(d, measured)
    gptq = side[side["published"].str.contains("INT4 GPTQ")].iloc[0]
    assert gptq["measured here"] == "gptq 4b" and gptq["measured PPL"] == 5.9
    assert (side[side["published"].str.contains("NF4")]["measured here"] == "not measured here").all()
