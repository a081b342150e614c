"""The worker's CUDA path: quality on the GPU, peak allocated and NVML memory per phase."""
from dataclasses import replace

import pytest

from qcompare.core.registry import parse_method_arg
from qcompare.core.specs import CorpusSpec
from qcompare.jobs import submit as submitting
from qcompare.jobs import worker
from qcompare.sources.models import model_from_arg

torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


def test_cuda_rows_report_device_memory_and_match_cpu_quality(tiny_model_dir, state_dir, tiny_eval):
    model = model_from_arg(str(tiny_model_dir))
    methods = [parse_method_arg(m) for m in ("fp32", "rtn:bits=4,group_size=32")]
    gpu = submitting.build_specs(model, methods, CorpusSpec(), replace(tiny_eval, device="cuda"))
    cpu = submitting.build_specs(model, methods[:1], CorpusSpec(), tiny_eval)
    rows = [worker.run(s, state_dir) for s in gpu]
    cpu_row = worker.run(cpu[0], state_dir)
    for r in rows:
        assert r["device"] == "cuda" and r["device_name"]
        assert r["cuda_peak_alloc_mib"] > 0 and r["load_cuda_peak_alloc_mib"] > 0
        assert r["nvml_used_peak_mib"] >= r["cuda_peak_alloc_mib"]
        assert r["decode_tok_s"] > 0
    assert rows[0]["kld_mean"] == 0
    assert rows[0]["ppl"] == pytest.approx(cpu_row["ppl"], rel=1e-3)     # same model, other device
    assert rows[1]["kld_mean"] > 0
