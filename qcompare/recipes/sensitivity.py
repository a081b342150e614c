"""Layer sensitivity: what quantizing one unit (a Linear, or a whole decoder layer) alone costs
in KL divergence, for each bit width, measured. Torch-free: the spec, the stored table, the
cost of a sweep before it starts, and the rank agreement of a cheap estimator with the
measurement. The measurement itself runs in a worker (`qcompare.jobs.sensitivity_job`).

Protocol (`SensitivitySpec`):

* The scoring slice is `score_samples` sequences of the calibration draw's length, drawn like
  calibration (`qcompare.sources.calibration`): after the evaluated tokens, never sharing a 32-token
  run with them. It is the draw of `calib` extended by `score_samples` chunks, minus `calib`'s
  own chunks, so it is disjoint from both the evaluated text and GPTQ's calibration text.
* The baseline is the fp32 model. For each unit u and bits b, u's Linears are quantized at b
  by the family's quantizer (RTN; or GPTQ with the Hessian of each Linear's input in the
  baseline, from the calibration text), everything else stays in the baseline, and

      kld[u, b] = mean over scored tokens t of  KL(p_base(. | t) || p_u,b(. | t))    (nats)

  over every position of the scoring slice (the next-token distribution at each position).
  The layers before u are unchanged, so their outputs are taken from the baseline pass and
  only u's layer and those after it are run again (the same numbers as a full forward).
* The cheap estimator beside it: the output error the quantizer itself works against,
  recon[u, b] = sum over u's Linears of tr(dW H dW^T), dW = W_hat - W and H = (2/N) sum x x^T
  over the calibration inputs (what GPTQ minimises). Its Spearman rank correlation with the
  measured kld is reported (`estimator_agreement`); it never replaces the measurement.
* `uniform`: every unit at b at once, measured on the same slice, beside the sum of the
  single-unit klds: how far the additive prediction a recipe relies on holds at each b.

The table (`SensitivityStore`) is one Parquet file per spec key under
`<state_dir>/sensitivity/`, with a JSON of the spec and the sweep's facts beside it.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from qcompare.core import registry
from qcompare.core.errors import UserError
from qcompare.core.specs import (
    PROTOCOL_VERSION,
    CalibSpec,
    CorpusSpec,
    EvalSpec,
    MethodSpec,
    ModelSpec,
    RunSpec,
    _calib_from_dict,
    canonical_json,
)

KIND = "sensitivity"
UNITS = ("linear", "block")
BITS = (2, 3, 4, 8)
# the share of a full forward pass one unit's pass costs on average: the layers after it and
# the LM head (for L layers, about (L + 1) / 2L of the layers, plus the head)
PASS_SHARE = 0.6


@dataclass(frozen=True)
class SensitivitySpec:
    """One sensitivity sweep (module doc). `eval` says which tokens are evaluated (and so
    excluded from the slices) and where the sweep runs (device, threads)."""

    model: ModelSpec
    family: str = field(default_factory=lambda: registry.unit_quantizers()[0], metadata={
        "help": "the quantizer: a method that quantizes one Linear alone (Method.unit_quantizer)"})
    bits: tuple[int, ...] = field(default=BITS, metadata={"help": "bit widths to measure"})
    unit: str = field(default="linear", metadata={"help": "linear: each Linear; block: each layer"})
    symmetric: bool = True
    group_size: int = 128
    damp: float = 0.01
    score_samples: int = field(default=4, metadata={"help": "sequences scored per unit and bits"})
    corpus: CorpusSpec = CorpusSpec()
    eval: EvalSpec = EvalSpec()
    calib: CalibSpec = CalibSpec()

    def __post_init__(self):
        families = registry.unit_quantizers()
        if self.family not in families:
            raise UserError(key="errors.choice", what="sensitivity family",
                            choices=", ".join(families), value=repr(self.family))
        if self.unit not in UNITS:
            raise UserError(key="errors.choice", what="sensitivity unit",
                            choices=", ".join(UNITS), value=repr(self.unit))
        bad = [b for b in self.bits if b not in BITS]
        if bad or not self.bits:
            raise UserError(key="errors.sweep_bits", bits=", ".join(map(str, BITS)),
                            value=", ".join(map(str, self.bits)) or "—")
        object.__setattr__(self, "bits", tuple(sorted(set(self.bits))))
        if self.score_samples < 1:
            raise UserError(key="errors.score_samples")
        if self.group_size < 0:
            raise UserError(key="errors.group_size")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["eval"] = self.eval.to_dict()
        d["bits"] = list(self.bits)
        d["kind"] = KIND
        d["protocol_version"] = PROTOCOL_VERSION
        return d

    def to_json(self) -> str:
        return canonical_json(self.to_dict())

    def key(self) -> str:
        return hashlib.sha256(self.to_json().encode()).hexdigest()

    @classmethod
    def from_json(cls, text: str) -> SensitivitySpec:
        d = json.loads(text)
        if d.get("kind") != KIND:
            raise UserError(key="errors.not_sweep")
        if d.get("protocol_version") != PROTOCOL_VERSION:
            raise UserError(key="errors.protocol", theirs=d.get("protocol_version"),
                            ours=PROTOCOL_VERSION)
        return cls(model=ModelSpec(**d["model"]), family=d["family"], bits=tuple(d["bits"]),
                   unit=d["unit"], symmetric=d["symmetric"], group_size=d["group_size"],
                   damp=d["damp"], score_samples=d["score_samples"],
                   corpus=CorpusSpec(**d["corpus"]), eval=EvalSpec(**d["eval"]),
                   calib=_calib_from_dict(d["calib"]))

    @property
    def label(self) -> str:
        gran = f"g{self.group_size}" if self.group_size else "per-channel"
        return (f"sensitivity {self.family} {gran}{'' if self.symmetric else ' asym'} "
                f"{'/'.join(map(str, self.bits))}-bit per {self.unit} on {self.model.label}")

    @property
    def score_calib(self) -> CalibSpec:
        """The draw whose chunks after `calib.samples` are the scoring slice."""
        return replace(self.calib, samples=self.calib.samples + self.score_samples)

    def mixed_options(self, bits_map: dict[str, int] | None = None, default_bits: int = 4) -> dict:
        """The `mixed` method's options for a recipe measured on this sweep's settings."""
        return {"family": self.family, "default_bits": default_bits,
                "bits_map": json.dumps(bits_map or {}), "symmetric": self.symmetric,
                "group_size": self.group_size, "damp": self.damp}

    def run_spec(self, bits_map: dict[str, int] | None = None, default_bits: int = 4) -> RunSpec:
        """The RunSpec measuring a recipe (or, with no map, the uniform setting) for real."""
        m = registry.make_method_spec(registry.RECIPE, self.mixed_options(bits_map, default_bits))
        return RunSpec(model=self.model, method=m, corpus=self.corpus, eval=self.eval,
                       calib=self.calib if registry.get(self.family).may_calibrate() else None)

    def reference_spec(self) -> RunSpec:
        """The RunSpec of the unquantized reference on this sweep's model, in fp32 on the
        sweep's device: the model the sweep quantizes one unit at a time."""
        return RunSpec(model=self.model, method=registry.make_method_spec(registry.BASELINE, {}),
                       corpus=self.corpus, eval=replace(self.eval, dtype="float32"))

    def uniform_method(self, bits: int) -> MethodSpec:
        """The family's own method at `bits` with this sweep's settings (the uniform setting a
        recipe is compared with): exactly what `mixed` with an empty map builds."""
        from qcompare.methods.mixed import MixedConfig

        options = MixedConfig(family=self.family, default_bits=bits, symmetric=self.symmetric,
                              group_size=self.group_size, damp=self.damp).family_options(bits)
        return registry.make_method_spec(self.family, options)


def is_sensitivity_json(text: str) -> bool:
    try:
        return json.loads(text).get("kind") == KIND
    except (ValueError, AttributeError):
        return False


def unit_names(layers: int, unit: str, roles: tuple[str, ...]) -> list[str]:
    """The units of a model in the `mixed` map's naming: '3' or '3.down_proj'."""
    if unit == "block":
        return [str(i) for i in range(layers)]
    return [f"{i}.{r}" for i in range(layers) for r in roles]


def forward_passes(layers: int, unit: str, n_bits: int, roles: int = 7) -> int:
    """Model passes a sweep makes: one per unit and bits, a baseline and one per uniform bits."""
    units = layers if unit == "block" else layers * roles
    return units * n_bits + 1 + n_bits


@dataclass(frozen=True)
class Cost:
    passes: int
    tokens_per_pass: int
    seconds: float | None            # None: nothing measured on this model to estimate from
    basis: str                       # where the estimate comes from, in words (English)
    basis_key: str = ""              # the same as a message of qcompare.i18n.catalogue, and its values
    basis_values: tuple = ()


def estimate_cost(spec: SensitivitySpec, layers: int, seconds_per_token: float | None,
                  basis: str, basis_key: str = "", basis_values: tuple = ()) -> Cost:
    """The sweep's size, and its time from `seconds_per_token` of a full forward pass measured
    on this model and device (the last sweep's, or a result row's evaluation)."""
    passes = forward_passes(layers, spec.unit, len(spec.bits))
    tokens = spec.score_samples * spec.calib.seq_len
    seconds = None
    if seconds_per_token:
        seconds = seconds_per_token * tokens * (passes * PASS_SHARE + 1 + len(spec.bits))
    return Cost(passes, tokens, seconds, basis, basis_key, basis_values)


def spearman(a, b) -> float:
    """Spearman's rank correlation (average ranks for ties); nan for fewer than 3 pairs."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) < 3:
        return float("nan")
    ra, rb = pd.Series(a).rank().to_numpy(), pd.Series(b).rank().to_numpy()
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def estimator_agreement(table: pd.DataFrame) -> dict:
    """Spearman correlation of the reconstruction-error estimator with the measured kld: over
    all (unit, bits) entries, and within each bit width (the ranking a recipe leans on)."""
    out = {"all": spearman(table["recon_err"], table["kld"])}
    for b, g in table.groupby("bits"):
        out[int(b)] = spearman(g["recon_err"], g["kld"])
    return out


def ranked(table: pd.DataFrame, bits: int) -> pd.DataFrame:
    """The units at `bits`, most sensitive first."""
    return table[table["bits"] == bits].sort_values("kld", ascending=False).reset_index(drop=True)


class SensitivityStore:
    """Sensitivity tables at `<state_dir>/sensitivity/<key>.parquet`, facts in `<key>.json`."""

    def __init__(self, state_dir: str | os.PathLike):
        self.dir = Path(state_dir) / "sensitivity"

    def _write_atomic(self, path: Path, write) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=".tmp-", suffix=path.suffix)
        os.close(fd)
        try:
            write(tmp)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def write(self, key: str, table: pd.DataFrame, meta: dict) -> None:
        """The table first, then its facts: a sweep is listed only once both are in place."""
        self._write_atomic(self.dir / f"{key}.parquet", lambda p: table.to_parquet(p, index=False))
        text = json.dumps(meta, sort_keys=True, default=float)
        self._write_atomic(self.dir / f"{key}.json", lambda p: Path(p).write_text(text))

    def read(self, key: str) -> tuple[pd.DataFrame, dict] | None:
        try:
            meta = json.loads((self.dir / f"{key}.json").read_text())
            return pd.read_parquet(self.dir / f"{key}.parquet"), meta
        except (OSError, ValueError):
            return None

    def exists(self, key: str) -> bool:
        return (self.dir / f"{key}.json").exists() and (self.dir / f"{key}.parquet").exists()

    def sweeps(self) -> list[dict]:
        """The facts of every stored sweep, newest first (unreadable ones left out)."""
        out = []
        for path in self.dir.glob("*.json") if self.dir.exists() else []:
            if path.name.startswith("."):
                continue
            try:
                meta = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            if (self.dir / f"{path.stem}.parquet").exists():
                out.append(meta)
        return sorted(out, key=lambda m: m.get("finished_at", 0), reverse=True)
