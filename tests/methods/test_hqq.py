"""HQQ through the hqq library on the tiny model: packed codes, storage, and bits ordering."""
import json
import math

import pytest

pytest.importorskip("hqq", reason="hqq is not installed")

from qcompare.core.registry import parse_method_arg
from qcompare.core.specs import CorpusSpec
from qcompare.jobs import submit as submitting
from qcompare.jobs import worker
from qcompare.sources.models import model_from_arg


def test_hqq_rows_are_real_storage_and_error_grows_as_bits_shrink(tiny_model_dir, state_dir, tiny_eval):
    specs = submitting.build_specs(model_from_arg(str(tiny_model_dir)),
                                   [parse_method_arg(m) for m in ("hqq:bits=8,group_size=32",
                                                                  "hqq:bits=4,group_size=32",
                                                                  "hqq:bits=2,group_size=32")],
                                   CorpusSpec(), tiny_eval)
    assert all(s.calib is None for s in specs)          # calibration-free
    rows = [worker.run(s, state_dir) for s in specs]
    assert all(math.isfinite(r["ppl"]) and r["library"] == "hqq" for r in rows)
    assert all(r["storage"] == "real" and r["kernel"] == "dequantized" for r in rows)
    errs = [sum(l["weight_rel_err"] for l in json.loads(r["layers_json"])) for r in rows]
    assert errs[0] < errs[1] < errs[2]
    assert rows[0]["kld_mean"] < rows[1]["kld_mean"] < rows[2]["kld_mean"]
    assert rows[0]["weights_mib"] > rows[1]["weights_mib"] > rows[2]["weights_mib"]
    # 4-bit codes packed two per byte, plus a 16-bit scale and zero per 32 weights: 5 bits
    bpw = [l["bits_per_weight"] for l in json.loads(rows[1]["layers_json"])]
    assert all(b == pytest.approx(4 + 32 / 32) for b in bpw)
