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
  (accumulation, softmax) stays fp32, as on tensor cores.
* It scores the baseline's first scored tokens (`noisefloor.scope`: a sixteenth, at least 128):
  at `quick` 127 of 2,044, about 1 s a variant for the embedded model on 2 cores. The stored
  floor says how many tokens it used.
"""
from __future__ import annotations

import contextlib
import gc
import json
import os
import time
from dataclasses import replace
from pathlib import Path

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


def compute(opened, ids, nbytes, windows, bos_id, reference, report=lambda s, f: None,
            variants: dict | None = None) -> dict:
    """{"variants": {name: {kld_mean, kld_p99, top1_agree, ppl, seconds}}, "tokens",
    "of_tokens"} over the noise floor's part of `windows` (`noisefloor.scope`), against `reference`
    (module doc); `variants` (name -> (dtype, weights only, simulated)) replaces the device's."""
    from qcompare.jobs.worker import _evaluate
    from qcompare.runtime.torch_model import TorchRuntime

    device = opened.spec.eval.device
    variants = variants or noisefloor.variants(device)
    part = noisefloor.scope(windows)
    out, fp32 = {}, None
    for i, (name, (dtype, weights_only, simulated)) in enumerate(variants.items()):
        report(f"noise floor: baseline in {name}", i / len(variants))
        t0 = time.perf_counter()
        if simulated or weights_only:      # an fp32 model, rounded
            fp32 = fp32 if fp32 is not None else opened.load("float32")
            ctx = rounded_compute(fp32, dtype, weights_only)
        else:                              # a real load and computation in `dtype`
            model = opened.load(dtype)
            ctx = contextlib.nullcontext(model)
        with ctx as m:
            quality, _ = _evaluate(TorchRuntime(m, device), ids, nbytes, part, bos_id,
                                   lambda s, f: None, reference=reference)
        out[name] = {k: quality[k] for k in ("kld_mean", "kld_p99", "top1_agree", "ppl")}
        out[name]["seconds"] = time.perf_counter() - t0
        if not (simulated or weights_only):
            del model
            gc.collect()
    return {"variants": out, "tokens": int(sum(w.n_scored for w in part)),
            "of_tokens": int(sum(w.n_scored for w in windows))}


def run(spec_json: str, state_dir: str | os.PathLike, report=lambda s, f: None) -> str:
    """The noise-floor job: compute and store the floor of the spec's baseline unless stored;
    returns the job's key."""
    from qcompare.jobs import prepare
    from qcompare.jobs.worker import _ensure_reference, evaluation_tokens
    from qcompare.store.reference import ReferenceStore

    spec = from_json(spec_json)
    rk = spec.reference_key()
    state_dir = Path(state_dir)
    report("preparing model", 0.0)
    opened = prepare.open_spec(spec, state_dir, lambda s, f: report(s, 0.0))
    ids, nbytes, windows = evaluation_tokens(opened)
    reference = _ensure_reference(opened, ids, nbytes, windows, opened.tokenizer.bos_token_id,
                                  lambda s, f: report(s, 0.05 + 0.25 * f))
    with ReferenceStore(state_dir).lock(f"{rk}.noise"):
        if noisefloor.read(state_dir, rk) is None:
            got = compute(opened, ids, nbytes, windows, opened.tokenizer.bos_token_id, reference,
                          lambda s, f: report(s, 0.3 + 0.7 * f))
            noisefloor.write(state_dir, rk, got["variants"],
                             {k: got[k] for k in ("tokens", "of_tokens")})
    report("done", 1.0)
    return job_key(rk)
