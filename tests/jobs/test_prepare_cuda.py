"""Every kind of job builds its model on CUDA through the one build path (`jobs.prepare`): the
measuring worker (tests/jobs/test_worker_cuda.py), the generation worker and the sensitivity
sweep (here)."""
from dataclasses import replace

import pytest

from qcompare.core.registry import parse_method_arg
from qcompare.core.specs import CalibSpec, CorpusSpec, EvalSpec
from qcompare.explore.generation_worker import build_runtime
from qcompare.jobs.runner import run_inline
from qcompare.jobs.store import JobStore
from qcompare.jobs.submit import build_specs, submit_sensitivity
from qcompare.recipes.sensitivity import SensitivitySpec, SensitivityStore
from qcompare.sources.models import model_from_arg

torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


def test_the_generation_worker_builds_on_cuda(tiny_model_dir, state_dir, tiny_eval):
    (spec,) = build_specs(model_from_arg(str(tiny_model_dir)), [parse_method_arg("rtn:bits=4,group_size=32")],
                          CorpusSpec(), replace(tiny_eval, device="cuda"))
    runtime, tok, weights = build_runtime(spec, state_dir)
    assert next(runtime.model.parameters()).device.type == "cuda" and weights > 0
    assert len(runtime.generate(tok("def main():")["input_ids"], 4)) == 4


def test_the_sensitivity_sweep_runs_on_cuda(tiny_model_dir, tmp_path):
    spec = SensitivitySpec(model=model_from_arg(str(tiny_model_dir)), group_size=32, bits=(4,),
                           eval=EvalSpec(tokens=256, window=64, device="cuda"),
                           calib=CalibSpec(samples=4, seq_len=64), score_samples=2)
    sub = submit_sensitivity(spec, tmp_path, start_runner=False)
    run_inline(JobStore.open(tmp_path), tmp_path, sub.job_id)
    job = JobStore.open(tmp_path).get(sub.job_id)
    assert job.state == "done", job.error
    table, meta = SensitivityStore(tmp_path).read(job.result_key)
    assert meta["device"] == "cuda" and (table["kld"] >= 0).all() and len(table) == 14
