"""The one way a job turns a spec into a model: every kind of job (the measuring worker, the
generation worker, the sensitivity sweep) builds through here, so a model is loaded, quantized
and placed on its device the same way whichever page asked for it.

    opened = open_spec(spec, state_dir)    # the request checked once (refusal, options), the
                                           # process set up (device, threads, seed), the model
                                           # folder converted once, its tokenizer
    opened.load(dtype)                     # the checkpoint in a dtype on the spec's device
    calib = calibration(opened, ids)       # the cached calibration draw, when the method uses one
    built = build(opened, progress, calib) # Method.build through one BuildContext

A request is validated at submission (`jobs.submit`) and once more here, in the process that
does the work, before any work (the state folder may have changed in between); never again.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qcompare.core import registry
from qcompare.core.errors import UserError
from qcompare.core.method import BuildContext, Built, Method
from qcompare.core.specs import RunSpec
from qcompare.sources import calibration as calibration_source
from qcompare.sources import corpora, models

Report = Callable[[str, float], None]          # (stage, fraction)


@dataclass
class Opened:
    """A checked request with its model folder and tokenizer, ready to load or build."""

    spec: RunSpec
    method_cls: type[Method]
    method: Method                 # its options parsed once
    folder: Path                   # the Hugging Face folder the model loads from
    tokenizer: Any
    state_dir: Path

    def load(self, dtype: str, **from_pretrained):
        """The checkpoint in `dtype` on the spec's device (`sources.models.load_model`)."""
        return models.load_model(self.folder, self.spec.model, dtype, self.spec.eval.device,
                                 **from_pretrained)

    @property
    def calibrates(self) -> bool:
        return self.method_cls.calibrates(self.spec.method.options_dict)


def environment(device: str, threads: int = 0) -> None:
    """This process's torch settings for a job: the device must exist, the CPU thread count is
    the spec's (else every core) and the seed is fixed, so two runs of a spec match."""
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise UserError(key="errors.no_torch_cuda")
    torch.set_num_threads(threads or os.cpu_count() or 1)
    torch.manual_seed(0)


def open_spec(spec: RunSpec, state_dir: str | os.PathLike,
              report: Report = lambda s, f: None) -> Opened:
    """Check the request (the method's refusal and its options, once), set up the process and
    make the model folder (a GGUF is converted once per state folder) and its tokenizer."""
    cls = registry.get(spec.method.name)
    reason = cls.refusal(spec)
    if reason:
        raise UserError(reason)
    method = cls(cls.config_cls.parse(spec.method.options_dict))
    environment(spec.eval.device, spec.eval.threads)
    state_dir = Path(state_dir)
    folder = models.local_folder(spec.model, state_dir, report)
    return Opened(spec=spec, method_cls=cls, method=method, folder=folder,
                  tokenizer=models.load_tokenizer(folder, spec.model), state_dir=state_dir)


def check_memory(opened: Opened) -> None:
    """Refuse before loading when the checkpoint in fp32 cannot fit the device or the RAM."""
    import psutil

    needed = models.estimate_fp32_bytes(opened.folder)
    if opened.spec.eval.device == "cuda":
        import torch

        free, _ = torch.cuda.mem_get_info()
        models.check_fits(needed, free, "GPU memory")
    models.check_fits(needed, psutil.virtual_memory().available, "RAM")


def calibration(opened: Opened, ids=None):
    """The calibration draw of the spec (cached in the state folder, shared by a sweep), or
    None when the method does not calibrate. `ids`: the evaluated token ids, which the draw
    starts after; tokenized from the corpus when not given."""
    spec = opened.spec
    if not opened.calibrates:
        return None
    if spec.calib is None:
        raise UserError(key="errors.needs_calib", name=spec.method.name)
    if ids is None:
        from qcompare.metrics.quality import tokenize_stream

        ids, _ = tokenize_stream(opened.tokenizer, corpora.load_checked(spec.corpus),
                                 spec.eval.tokens)
    draw, _ = calibration_source.cached_draw(opened.state_dir, opened.tokenizer, spec.calib,
                                             spec.corpus, ids, spec.model.fingerprint)
    return draw


def context(opened: Opened, progress: Report = lambda s, f: None, calib=None) -> BuildContext:
    """The BuildContext every method gets: the request, the loader, the tokenizer, progress,
    the run's work folder and the calibration draw."""
    spec = opened.spec
    return BuildContext(spec=spec, tokenizer=opened.tokenizer, progress=progress,
                        load_model=opened.load,
                        workdir=str(opened.state_dir / "work" / spec.key()),
                        state_dir=str(opened.state_dir),
                        calibration=calib.tensor if calib else None,
                        calibration_label=calib.label if calib else "")


def build(opened: Opened, progress: Report = lambda s, f: None, calib=None) -> Built:
    """The method applied to the model: a runtime ready to score and generate, and its facts."""
    return opened.method.build(context(opened, progress, calib))
