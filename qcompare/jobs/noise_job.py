"""The noise floor as its own job, off the critical path (the metric: `qcompare.stats.noisefloor`).

Protocol:

* When runs are submitted, one noise-floor job is queued per baseline (model, corpus,
  protocol, device) that has no noise floor yet and no such job waiting (`queue_for`). Its key
  is `noise-<reference key>`; the runner takes it only when no other job waits
  (`JobStore.next_queued`), so it never delays a point of the comparison, and `run` never
  waits for it. A failed one is queued again by the next submission on that baseline.
* The job opens the baseline's spec (the fp32 method on the same model, corpus and evaluation),
  makes sure the baseline's log-probabilities exist, and scores each variant of
  `noisefloor.variants(device)` against them like a method.
* On CUDA the variants compute in bf16 and fp16 for real. On a CPU, where fp16 arithmetic is
  emulated (46 s for 2,048 tokens of the embedded model, against 8 s in fp32), the same rounding
  is simulated in fp32: one fp32 load, and per variant every parameter rounded to the dtype and
  every module's output and every Linear's input rounded to it (`rounded_compute`), so what is
  stored between operations has the dtype's precision while the arithmetic inside an operation
  (accumulation, softmax) stays fp32, as on tensor cores. The job itself is
  `worker.run_noise_floor` (it scores like every job, `worker.noise_floor_compute`).
* It scores the baseline's first scored tokens (`noisefloor.scope`: a sixteenth, at least 128):
  at `quick` 127 of 2,044, about 1 s a variant for the embedded model on 2 cores. The stored
  floor says how many tokens it used.
"""
from __future__ import annotations

import contextlib
import json
import os
from dataclasses import replace

from qcompare.core.specs import MethodSpec, RunSpec, canonical_json
from qcompare.stats import noisefloor

KIND = "noise_floor"
KEY_PREFIX = "noise-"
SWITCH = "QCOMPARE_NOISE_FLOOR"        # "0": no noise-floor jobs (most tests)


def enabled() -> bool:
    return os.environ.get(SWITCH, "1") != "0"


def baseline_spec(spec: RunSpec) -> RunSpec:
    """The spec whose model is the baseline of `spec`: fp32 on the same model, corpus and
    evaluation (speed settings zeroed); its reference key is `spec`'s."""
    out = replace(spec, method=MethodSpec(name="fp32"), calib=None, eval=spec.eval.reference())
    assert out.reference_key() == spec.reference_key()
    return out


def job_key(reference_key: str) -> str:
    return KEY_PREFIX + reference_key


def to_json(spec: RunSpec) -> str:
    return canonical_json({"kind": KIND, "run": json.loads(baseline_spec(spec).to_json())})


def is_noise_json(text: str) -> bool:
    try:
        return json.loads(text).get("kind") == KIND
    except (ValueError, AttributeError):
        return False


def from_json(text: str) -> RunSpec:
    return RunSpec.from_json(canonical_json(json.loads(text)["run"]))


def label(spec: RunSpec) -> str:
    return f"noise floor of {spec.model.label} ({spec.eval.protocol}, {spec.eval.device})"


def queue_for(specs: list[RunSpec], state_dir: str | os.PathLike, store) -> list[int]:
    """Queue one noise-floor job per baseline of `specs` that lacks a noise floor (module doc);
    returns the new jobs' ids."""
    if not enabled():
        return []
    out, seen = [], set()
    for spec in specs:
        rk = spec.reference_key()
        if rk in seen or noisefloor.read(state_dir, rk) is not None:
            continue
        seen.add(rk)
        job_id, new = store.submit(job_key(rk), label(spec), to_json(spec))
        if new:
            out.append(job_id)
    return out


@contextlib.contextmanager
def rounded_compute(model, dtype: str, weights_only: bool = False):
    """`model` (fp32) computing as if in `dtype` (module doc): parameters rounded in place and
    restored on exit; unless `weights_only`, every module's tensor output and every Linear's
    input rounded."""
    import torch

    t = getattr(torch, dtype)

    def rnd(x):
        return x.to(t).to(x.dtype) if torch.is_tensor(x) and x.is_floating_point() else x

    def out_hook(_module, _args, output):
        if isinstance(output, tuple):
            return tuple(rnd(o) for o in output)
        return rnd(output)

    def in_hook(_module, args):
        return tuple(rnd(a) for a in args)

    saved = [p.detach().clone() for p in model.parameters()]
    handles = []
    try:
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(rnd(p))
        for m in () if weights_only else model.modules():
            handles.append(m.register_forward_hook(out_hook))
            if isinstance(m, torch.nn.Linear):
                handles.append(m.register_forward_pre_hook(in_hook))
        yield model
    finally:
        for h in handles:
            h.remove()
        with torch.no_grad():
            for p, s in zip(model.parameters(), saved):
                p.copy_(s)
