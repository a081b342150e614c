"""The worker side of a sensitivity sweep (protocol: `qcompare.recipes.sensitivity`): quantize one unit
at a time, score the scoring slice against the baseline, store the table."""
from __future__ import annotations

import gc
import time
from pathlib import Path

import numpy as np
import pandas as pd

from qcompare.core import registry
from qcompare.jobs import prepare
from qcompare.metrics.quality import BaselineDistribution
from qcompare.recipes.sensitivity import (
    PASS_SHARE,
    SensitivitySpec,
    SensitivityStore,
    estimator_agreement,
    unit_names,
)
from qcompare.sources import calibration, corpora

BATCH = 4


class Replay:
    """A baseline model with every decoder layer's inputs on the scoring slice kept, so that a
    pass with one layer changed runs only that layer and the ones after it."""

    def __init__(self, model, score_ids):
        import torch

        from qcompare.methods.kernels.sequential import _layer_out, capture_inputs, decoder_layers

        self.model, self.layers = model, decoder_layers(model)
        self._out = _layer_out
        first = capture_inputs(model, score_ids, BATCH)
        self.kwargs = [kw for _, kw in first]
        self.inputs: list[list] = []                   # [layer][batch] hidden states
        hidden = [h for h, _ in first]
        with torch.no_grad():
            for layer in self.layers:
                self.inputs.append(hidden)
                hidden = [_layer_out(layer(h, **kw)) for h, kw in zip(hidden, self.kwargs)]
            self.base = [BaselineDistribution(self._head(h).reshape(-1, self._vocab(h))) for h in hidden]

    def _head(self, h):
        return self.model.get_output_embeddings()(self.model.model.norm(h))

    def _vocab(self, h) -> int:
        return self.model.get_output_embeddings().weight.shape[0]

    @property
    def tokens(self) -> int:
        return sum(b.rows for b in self.base)

    def kl_from(self, start: int):
        """Per-position KL of the model as it is now against the baseline, running the layers
        from `start` on the baseline's inputs to that layer."""
        import torch

        out = []
        with torch.no_grad():
            for b, kw in enumerate(self.kwargs):
                h = self.inputs[start][b]
                for layer in self.layers[start:]:
                    h = self._out(layer(h, **kw))
                out.append(self.base[b].kl(self._head(h).reshape(-1, self._vocab(h))))
        return torch.cat(out).cpu().numpy()


def _hessians(model, calib_ids, progress) -> dict:
    """H = (2/N) sum x x^T of every decoder Linear's input in the baseline (full names)."""
    from qcompare.methods.kernels.sequential import collect_hessians, run_sequential

    names = {id(m): n for n, m in model.named_modules()}
    out = {}

    def process(_i, layer, forward):
        for short, H in collect_hessians(layer, forward).items():
            out[names[id(layer.get_submodule(short))]] = H
    run_sequential(model, calib_ids, process, progress)
    return out


def _quantizer(spec: SensitivitySpec):
    """(W, H, bits) -> W_hat by the sweep's quantizer with its settings (those of `mixed`)."""
    cls = registry.get(spec.family)

    def quantize(W, H, bits):
        return cls.quantize_unit(W, H, bits, spec.symmetric, spec.group_size, spec.damp)
    return quantize


def run(spec: SensitivitySpec, state_dir, report=lambda s, f: None) -> dict:
    """Measure the sweep and store its table; returns the stored facts."""
    import torch

    from qcompare.decide import shapes, sizing
    from qcompare.methods.mixed import ROLES, Mixed, MixedConfig, linear_storage_bits, parse_name
    from qcompare.metrics import quality as q

    state_dir = Path(state_dir)
    t_start = time.perf_counter()
    report("preparing model", 0.0)
    # the reference model, built as every job builds it (`jobs.prepare`)
    opened = prepare.open_spec(spec.reference_spec(), state_dir,
                               lambda s, f: report(s, 0.02 * f))
    tokenizer = opened.tokenizer
    ids, _ = q.tokenize_stream(tokenizer, corpora.load_checked(spec.corpus), spec.eval.tokens)
    draw, _ = calibration.cached_draw(state_dir, tokenizer, spec.score_calib, spec.corpus, ids,
                                      spec.model.fingerprint)
    calib_ids = torch.from_numpy(draw.ids[:spec.calib.samples].astype(np.int64))
    score_ids = torch.from_numpy(draw.ids[spec.calib.samples:].astype(np.int64))
    model = prepare.build(opened).runtime.model
    model.eval()
    report("calibration inputs of every Linear (baseline)", 0.03)
    hessians = _hessians(model, calib_ids, lambda s, f: report(f"Hessians: {s}", 0.03 + 0.05 * f))
    report("baseline pass on the scoring slice", 0.08)
    sweep = Replay(model, score_ids)
    linears = {n: m for n, m in model.named_modules()
               if isinstance(m, torch.nn.Linear) and parse_name(n)}
    by_unit: dict[str, list[str]] = {}
    for name in linears:
        layer, role = parse_name(name)
        by_unit.setdefault(str(layer) if spec.unit == "block" else f"{layer}.{role}", []).append(name)
    units = [u for u in unit_names(len(sweep.layers), spec.unit, ROLES) if u in by_unit]
    quantize = _quantizer(spec)
    cfg = MixedConfig(family=spec.family, symmetric=spec.symmetric, group_size=spec.group_size,
                      damp=spec.damp)
    originals = {n: m.weight.data.clone() for n, m in linears.items()}

    def quantized(name, bits):          # computed again where needed: a cache of every Linear
        return quantize(originals[name], hessians[name], bits)       # at every width is 4x the model

    rows, total, done, pass_s = [], len(units) * len(spec.bits), 0, []
    for u in units:
        start = int(u.split(".")[0])
        for bits in spec.bits:
            t0 = time.perf_counter()
            recon, params, stored = 0.0, 0, 0
            with torch.no_grad():
                for name in by_unit[u]:
                    W, Q, H = originals[name], quantized(name, bits), hessians[name]
                    dW = (Q - W).double()
                    recon += float(((dW @ H.double()) * dW).sum())
                    params += W.numel()
                    stored += linear_storage_bits(cfg, W.shape[0], W.shape[1], bits)
                    linears[name].weight.data.copy_(Q)
            kl = sweep.kl_from(start)
            with torch.no_grad():
                for name in by_unit[u]:
                    linears[name].weight.data.copy_(originals[name])
            elapsed = time.perf_counter() - t0
            pass_s.append(elapsed)
            layer, _, role = u.partition(".")
            rows.append({"unit": u, "layer": int(layer), "role": role or "block", "bits": bits,
                         "kld": float(kl.mean()), "kld_se": float(kl.std(ddof=1) / np.sqrt(kl.size)),
                         "recon_err": recon, "params": params, "stored_bits": stored,
                         "seconds": elapsed})
            done += 1
            report(f"unit {u} at {bits} bits ({done}/{total})", 0.1 + 0.8 * done / total)
    table = pd.DataFrame(rows)

    uniform = {}
    for i, bits in enumerate(spec.bits):
        report(f"every unit at {bits} bits at once (additivity check)", 0.9 + 0.08 * i / len(spec.bits))
        with torch.no_grad():
            for name in linears:
                linears[name].weight.data.copy_(quantized(name, bits))
            kl = sweep.kl_from(0)
            for name in linears:
                linears[name].weight.data.copy_(originals[name])
        uniform[str(bits)] = {"measured": float(kl.mean()),
                              "predicted": float(table.loc[table["bits"] == bits, "kld"].sum())}
    shape = shapes.shape_of(spec.model)
    fixed_bits = None
    if shape is not None:
        every = sizing.weight_bits(Mixed, spec.mixed_options({}, 16), shape)
        kinds = {t.name: t.kind for t in Mixed.sizing_tensors({}, shape)}
        fixed_bits = sum(b for n, b in every.items() if kinds.get(n) != "linear")
    if fixed_bits is None:          # from the model itself: every parameter not swept, at 16 bits
        seen, fixed_bits = set(), 0
        for n, p in model.named_parameters():
            if n.removesuffix(".weight") in linears or p.data_ptr() in seen:
                continue
            seen.add(p.data_ptr())
            fixed_bits += 16 * p.numel()
    tokens = sweep.tokens
    meta = {"key": spec.key(), "spec_json": spec.to_json(), "label": spec.label,
            "model": spec.model.label, "model_fingerprint": spec.model.fingerprint,
            "family": spec.family, "unit": spec.unit, "bits": list(spec.bits),
            "units": len(units), "layers": len(sweep.layers), "tokens": tokens,
            "fixed_bits": float(fixed_bits), "uniform": uniform,
            "agreement": {str(k): v for k, v in estimator_agreement(table).items()},
            "seconds": time.perf_counter() - t_start,
            "seconds_per_pass": float(np.median(pass_s)) if pass_s else None,
            # a full pass's seconds per token, as `sensitivity.estimate_cost` takes it
            "seconds_per_token": (float(np.median(pass_s)) / tokens / PASS_SHARE) if pass_s else None,
            "device": spec.eval.device, "slice": f"{spec.score_samples}x{spec.calib.seq_len} "
            f"tokens of {spec.corpus.label} after the evaluated text, disjoint from calibration",
            "finished_at": time.time()}
    SensitivityStore(state_dir).write(spec.key(), table, meta)
    del model, sweep
    gc.collect()
    report("done", 1.0)
    return meta
