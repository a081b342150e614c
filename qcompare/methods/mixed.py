"""Mixed precision: a different bit width per decoder layer or per Linear, with any method that
quantizes one Linear alone (`Method.unit_quantizer`: RTN and the built-in GPTQ) as the quantizer.

`bits_map` names units and their bits, as canonical JSON: `"3"` is every Linear of decoder
layer 3, `"3.down_proj"` one Linear of it (the role names of `qcompare.decide.sizing`). A Linear takes
the bits of its own entry, else its layer's, else `default_bits`. 16 bits leaves a Linear
unquantized (held as the baseline holds it, counted at 16 bits like every tensor left
unquantized). Everything else is the family's own method, unchanged: with an empty map this is
exactly `rtn` (granularity group, or channel when group_size is 0) or `gptq` (no act-order,
lazy blocks of 128) at `default_bits`, weight for weight (tested).

The map is part of the options, so it is hashed into the cache key like any option; recipes
from `qcompare.recipes.recipe` are written in this form.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from qcompare.core import registry
from qcompare.core.errors import Message, UserError
from qcompare.core.method import BuildContext, Built, Method, MethodConfig, Needs
from qcompare.methods.kernels.simulated import KEPT_BITS, finish_simulated, simulated_tensor_bits
from qcompare.sources import models

UNIT_BITS = (2, 3, 4, 8, 16)
ROLES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def canonical_map(text: str) -> str:
    """The map as sorted compact JSON, checked: keys 'L' or 'L.role', bits in UNIT_BITS."""
    try:
        raw = json.loads(text or "{}")
    except json.JSONDecodeError as e:
        raise UserError(key="errors.bits_map_json", error=e) from None
    if not isinstance(raw, dict):
        raise UserError(key="errors.bits_map_object")
    out = {}
    for key, bits in raw.items():
        layer, _, role = str(key).partition(".")
        if not (layer.isascii() and layer.isdigit()) or (role and role not in ROLES):
            raise UserError(key="errors.bits_map_key", unit=repr(key), roles=", ".join(ROLES))
        if bits not in UNIT_BITS or isinstance(bits, bool):
            raise UserError(key="errors.bits_map_bits", unit=repr(key),
                            choices=", ".join(map(str, UNIT_BITS)), value=repr(bits))
        out[f"{int(layer)}{'.' + role if role else ''}"] = int(bits)
    return json.dumps(dict(sorted(out.items(), key=lambda kv: _unit_order(kv[0]))),
                      separators=(",", ":"))


def _unit_order(key: str) -> tuple:
    layer, _, role = key.partition(".")
    return int(layer), ROLES.index(role) + 1 if role else 0


def parse_name(param_name: str) -> tuple[int, str] | None:
    """(layer, role) of a decoder Linear's name ('model.layers.3.mlp.down_proj[.weight]')."""
    parts = param_name.split(".")
    if "layers" not in parts:
        return None
    i = parts.index("layers")
    try:
        layer = int(parts[i + 1])
    except (IndexError, ValueError):
        return None
    role = next((p for p in parts[i + 2:] if p in ROLES), "")
    return (layer, role) if role else None


def bits_for(bits_map: dict, default_bits: int, layer: int, role: str) -> int:
    """The bits of one Linear: its own entry, else its layer's, else the default."""
    return bits_map.get(f"{layer}.{role}", bits_map.get(str(layer), default_bits))


@dataclass(frozen=True)
class MixedConfig(MethodConfig):
    family: str = field(default="rtn", metadata={
        "help": "the quantizer applied to each Linear: round-to-nearest or the built-in GPTQ",
        "choices": registry.unit_quantizers})
    default_bits: int = field(default=4, metadata={
        "help": "bits of every Linear the map does not name", "choices": UNIT_BITS})
    bits_map: str = field(default="{}", metadata={
        "help": "JSON from unit to bits: \"3\" is decoder layer 3, \"3.down_proj\" one Linear "
                "of it; 16 leaves it unquantized"})
    symmetric: bool = field(default=True, metadata={
        "help": "symmetric codes (no zero point) or asymmetric", "choices": (True, False)})
    group_size: int = field(default=128, metadata={
        "help": "input columns per scale; 0 = one scale per output channel", "min": 0})
    damp: float = field(default=0.01, metadata={
        "help": "GPTQ only: dampening added to H's diagonal, as a fraction of its mean", "min": 0.0,
        "max": 10.0})

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "bits_map", canonical_map(self.bits_map))

    @property
    def quantizer(self) -> type[Method]:
        """The method class that quantizes each Linear."""
        return registry.get(self.family)

    @property
    def calibrates(self) -> bool:
        """Whether the quantizer calibrates (then the run draws calibration text)."""
        return self.quantizer.may_calibrate()

    @property
    def units(self) -> dict[str, int]:
        return json.loads(self.bits_map)

    def bits_of(self, layer: int, role: str) -> int:
        return bits_for(self.units, self.default_bits, layer, role)

    def family_options(self, bits: int) -> dict:
        """The options of the family's own method that this config applies at `bits`."""
        return self.quantizer.unit_options(bits, self.symmetric, self.group_size, self.damp)

    def quantize(self, W, H, bits: int):
        """W_hat of one Linear at `bits` by the family's quantizer."""
        return self.quantizer.quantize_unit(W, H, bits, self.symmetric, self.group_size, self.damp)


def linear_storage_bits(c: MixedConfig, rows: int, cols: int, bits: int) -> int:
    """Stored bits of one [rows x cols] Linear at `bits` under `c`'s family (16: kept)."""
    if bits == KEPT_BITS:
        return KEPT_BITS * rows * cols
    return c.quantizer.unit_storage_bits(rows, cols, bits, c.symmetric, c.group_size)


def layers_problem(c: MixedConfig, layers: int | None) -> Message | None:
    """Why the map cannot apply to a model of `layers` decoder layers (a unit past the last
    layer would be silently ignored), or None."""
    if layers is None:
        return None
    beyond = [u for u in c.units if int(u.partition(".")[0]) >= layers]
    if beyond:
        return Message("errors.bits_map_layer", unit=repr(beyond[0]), last=layers - 1)
    return None


class Mixed(Method):
    name = "mixed"
    family = "mixed precision"
    summary = "a bit width per layer or per Linear (a recipe for a size), quantized by RTN or GPTQ"
    config_cls = MixedConfig
    needs = Needs(calibration="calibrates")
    key_options = ("family", "default_bits")
    cpu_cost = 2

    @classmethod
    def short_label(cls, options: dict) -> str:
        return cls.chart_label(options)

    @classmethod
    def chart_label(cls, options: dict) -> str:
        c = cls.config_cls.parse(options)
        units = c.units
        mix = f" +{len(units)} units" if units else ""
        return f"mixed {c.family} {c.default_bits}b{mix} " + (
            f"g{c.group_size}" if c.group_size else "per-channel") + ("" if c.symmetric else " asym")

    @classmethod
    def stored_bits(cls, options: dict, tensor, shape) -> float:
        c = cls.config_cls.parse(options)
        return simulated_tensor_bits(tensor, lambda r, k: linear_storage_bits(
            c, r, k, c.bits_of(tensor.layer, tensor.role)))

    @classmethod
    def request_problem(cls, spec) -> str | None:
        c = cls.config_cls.parse(spec.method.options_dict)
        if c.calibrates and spec.calib is None:
            return Message("errors.mixed_calib")
        return layers_problem(c, models.layer_count(spec.model))

    def _quantize(self, name: str, W, H):
        """(W_hat, stored bits, bits) of one Linear."""
        c = self.config
        where = parse_name(name)
        bits = c.bits_of(*where) if where else KEPT_BITS
        if bits == KEPT_BITS:
            return W.clone(), KEPT_BITS * W.numel(), bits
        Q = c.quantize(W, H, bits)
        return Q, linear_storage_bits(c, W.shape[0], W.shape[1], bits), bits

    def build(self, ctx: BuildContext) -> Built:
        import torch

        from qcompare.methods.kernels.linears import quantizable_linears
        from qcompare.methods.kernels.sequential import (
            collect_hessians,
            layer_diagnostics,
            linears_of,
            run_sequential,
        )

        c = self.config
        ctx.progress("loading weights", 0.0)
        model = ctx.load_model("float32")
        problem = layers_problem(c, model.config.num_hidden_layers)
        if problem:
            raise UserError(problem)
        layer_bits: dict[str, float] = {}
        layers: list[dict] = []

        def record(full, W, Q, bits, stored, H=None):
            if H is not None:
                layers.append(layer_diagnostics(full, W, Q, H, stored / W.numel(), unit_bits=bits))
            else:
                rel = float((Q - W).norm() / W.norm().clamp_min(1e-30))
                layers.append({"layer": full, "shape": list(W.shape), "weight_rel_err": rel,
                               "bits_per_weight": stored / W.numel(), "unit_bits": bits})
            layer_bits[f"{full}.weight"] = stored / W.numel()

        if not c.calibrates:
            with torch.no_grad():
                targets = list(quantizable_linears(model, False))
                for i, (full, lin) in enumerate(targets):
                    W = lin.weight.data
                    Q, stored, bits = self._quantize(full, W, None)
                    record(full, W, Q, bits, stored)
                    lin.weight.data.copy_(Q)
                    ctx.progress(f"quantized {i + 1}/{len(targets)}", (i + 1) / len(targets))
        else:
            names = {id(m): n for n, m in model.named_modules()}

            def process(_i, layer, forward):
                hessians = collect_hessians(layer, forward)
                for name, lin in linears_of(layer).items():
                    full = names[id(lin)]
                    W = lin.weight.data
                    Q, stored, bits = self._quantize(full, W, hessians[name])
                    record(full, W, Q, bits, stored, hessians[name])
                    lin.weight.data.copy_(Q.to(W.dtype))

            run_sequential(model, ctx.calibration_ids(), process, ctx.progress)
        counts: dict[int, int] = {}
        for d in layers:
            counts[d["unit_bits"]] = counts.get(d["unit_bits"], 0) + 1
        mix = ", ".join(f"{n} Linears at {b} bits" for b, n in sorted(counts.items()))
        calib = f"; calibration {ctx.calibration_label}" if c.calibrates else ""
        return finish_simulated(
            model, ctx, layer_bits, layers,
            f"mixed precision ({c.family}): {mix}{calib}; dequantized to {ctx.dtype} for compute; "
            "unquantized tensors counted at 16 bits")
