"""GPTQ (Frantar et al., arXiv:2209.05433), built in: simulated storage, open to inspection.

For one Linear with weights W [out, in] and the Hessian H = (2/N) sum x x^T of its calibration
inputs, GPTQ quantizes the columns in order and, after each column c, moves the rounding error
onto the columns not yet quantized so that the layer's output error ||W x - W_hat x||^2 stays
small (the Optimal Brain Surgeon update):

    err_c   = (w_c - q(w_c)) / [H^-1]_cc
    W[:, j] -= err_c * [H^-1]_cj            for j > c
    H^-1    <- H^-1 - H^-1[:, c] H^-1[c, :] / [H^-1]_cc      (drop column c from the problem)

`gptq_reference` is that per-column loop, literally (the reference for correctness). `gptq_quantize`
is the paper's fast, equivalent form: the rows of the upper Cholesky factor U of H^-1 (H^-1 =
U^T U) are exactly the downdated rows scaled by 1/sqrt([H^-1]_cc), so no downdate is needed;
and the updates are applied lazily in blocks of `block` columns (one matrix product per block
for the columns beyond it). Before that: dead inputs (H_jj = 0) get H_jj = 1 and W[:, j] = 0;
H += damp * mean(diag H) * I (retried with 10x damp while the Cholesky fails); with act-order,
columns are processed in order of decreasing H_jj.

The quantizer q is RTN's (qcompare.methods.rtn) with one scale (and zero point) per group of
`group_size` consecutive columns in processing order, computed from the group's weights as they
are when its first column comes up (after the updates of earlier columns); group_size 0 means
one scale per output channel, from the original weights. Blocks are aligned to groups so that
both functions produce the same result. SpQR-style options (`keep`, `stat_bits`) live here too:
`keep` marks weights stored exactly (outliers, excluded from the group statistics), and
`stat_bits` > 0 quantizes each group's scale (see `quantize_scales`).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from qcompare.core.method import BuildContext, Built, Method, MethodConfig, Needs
from qcompare.methods import rtn
from qcompare.methods.kernels.hessian import damp_hessian, prepare_hessian
from qcompare.methods.kernels.sequential import (
    collect_hessians,
    layer_diagnostics,
    linears_of,
    run_sequential,
)
from qcompare.methods.kernels.simulated import finish_simulated, simulated_tensor_bits

STAT_BLOCK = 16        # SpQR-style second-level statistics: one 16-bit scale and zero per 16 scales


def _params(wg, bits: int, sym: bool, keep_g=None, stat_bits: int = 0):
    """(scale, zero), each [out, 1], of one group of columns wg [out, g]."""
    import torch

    if keep_g is not None:
        wg = torch.where(keep_g, torch.zeros_like(wg), wg)     # 0 never changes a range
    _, scale, zero = rtn.quantize_blocks(wg, bits, sym)
    if stat_bits:
        scale = quantize_scales(scale, stat_bits)
    return scale, zero


def quantize_scales(scale, bits: int):
    """Scales [out, 1] quantized in blocks of STAT_BLOCK rows, asymmetric min-max at `bits`
    (the second-level statistics are kept at 16 bits); never below a positive floor."""
    import torch

    s = scale.reshape(-1)
    n = s.numel()
    pad = (-n) % STAT_BLOCK
    blocks = torch.nn.functional.pad(s, (0, pad), value=float(s[-1])).reshape(-1, STAT_BLOCK)
    lo = blocks.amin(1, keepdim=True)
    hi = blocks.amax(1, keepdim=True)
    step = (hi - lo) / (2 ** bits - 1)
    step = torch.where(step == 0, torch.ones_like(step), step)
    q = torch.clamp(torch.round((blocks - lo) / step), 0, 2 ** bits - 1) * step + lo
    floor = s[s > 0].min() if (s > 0).any() else torch.tensor(1.0)
    return q.reshape(-1)[:n].clamp_min(float(floor)).reshape(scale.shape)


@dataclass
class GPTQInfo:
    damp: float                  # damping actually used (after any retries)
    perm: object                 # act-order permutation or None


def gptq_quantize(W, H, *, bits: int, group_size: int, sym: bool, act_order: bool = False,
                  damp: float = 0.01, block: int = 128, keep=None, stat_bits: int = 0):
    """W_hat (same shape, fp32) by blocked GPTQ (module doc), and GPTQInfo."""
    import torch

    W, H, perm = prepare_hessian(W, H, act_order)
    if keep is not None:
        keep = keep[:, perm] if perm is not None else keep
    _, L, used = damp_hessian(H, damp)
    U = torch.linalg.cholesky(torch.cholesky_inverse(L), upper=True)
    cols = W.shape[1]
    if group_size:
        block = group_size * max(1, block // group_size)
    else:
        scale, zero = _params(W, bits, sym, keep, stat_bits)
    Q = torch.zeros_like(W)
    for i1 in range(0, cols, block):
        i2 = min(i1 + block, cols)
        W1 = W[:, i1:i2].clone()
        Err1 = torch.zeros_like(W1)
        U1 = U[i1:i2, i1:i2]
        for i in range(i2 - i1):
            c = i1 + i
            if group_size and c % group_size == 0:
                kg = keep[:, c:c + group_size] if keep is not None else None
                scale, zero = _params(W1[:, i:i + group_size], bits, sym, kg, stat_bits)
            w = W1[:, i]
            q = rtn.quant_dequant(w.unsqueeze(1), scale, zero, bits, sym).squeeze(1)
            if keep is not None:
                q = torch.where(keep[:, c], w, q)
            Q[:, c] = q
            err = (w - q) / U1[i, i]
            W1[:, i:] -= err.unsqueeze(1) @ U1[i, i:].unsqueeze(0)
            Err1[:, i] = err
        W[:, i2:] -= Err1 @ U[i1:i2, i2:]
    if perm is not None:
        Q = Q[:, torch.argsort(perm)]
    return Q, GPTQInfo(used, perm)


def gptq_reference(W, H, *, bits: int, group_size: int, sym: bool, act_order: bool = False,
                   damp: float = 0.01):
    """The per-column loop with explicit inverse-Hessian downdates (module doc), each downdate
    restricted to the columns still to come: O(in^3 / 3 + out * in^2 / 2) per layer, no
    blocking. The reference for tests and the speed benchmark, not for use."""
    import torch

    W, H, perm = prepare_hessian(W, H, act_order)
    Hd, _, _ = damp_hessian(H, damp)
    Hinv = torch.linalg.inv(Hd)
    cols = W.shape[1]
    if not group_size:
        scale, zero = _params(W, bits, sym)
    for c in range(cols):
        if group_size and c % group_size == 0:
            scale, zero = _params(W[:, c:c + group_size], bits, sym)
        w = W[:, c].clone()
        q = rtn.quant_dequant(w.unsqueeze(1), scale, zero, bits, sym).squeeze(1)
        err = (w - q) / Hinv[c, c]
        W[:, c:] -= err.unsqueeze(1) * Hinv[c, c:].unsqueeze(0)
        W[:, c] = q
        # downdate: only the rows and columns of the columns still to come are used again
        rest = Hinv[c:, c:]
        rest -= rest[:, :1] @ rest[:1, :] / rest[0, 0]
    if perm is not None:
        W = W[:, torch.argsort(perm)]
    return W


def storage_bits(shape, bits: int, sym: bool, group_size: int, act_order: bool) -> int:
    """RTN's packed layout, plus a 32-bit group index per input column with act-order groups."""
    gran = "group" if group_size else "channel"
    extra = shape[1] * 32 if (act_order and group_size) else 0
    return rtn.storage_bits(tuple(shape), bits, sym, gran, group_size) + extra


@dataclass(frozen=True)
class GPTQConfig(MethodConfig):
    bits: int = field(default=4, metadata={"help": "bits per weight code", "choices": (8, 4, 3, 2)})
    group_size: int = field(default=128, metadata={
        "help": "input columns per scale; 0 = one scale per output channel", "min": 0})
    symmetric: bool = field(default=True, metadata={
        "help": "symmetric codes (no zero point) or asymmetric", "choices": (True, False)})
    act_order: bool = field(default=False, metadata={
        "help": "process columns by decreasing Hessian diagonal (desc_act)", "choices": (True, False)})
    damp: float = field(default=0.01, metadata={
        "help": "dampening added to H's diagonal, as a fraction of its mean", "min": 0.0,
        "max": 10.0})
    block_size: int = field(default=128, metadata={"help": "lazy-batch block of columns", "min": 1})


class GPTQ(Method):
    name = "gptq"
    family = "built-in (inspectable)"
    summary = "GPTQ, built in: Hessian-aware rounding with error feedback, layer by layer"
    config_cls = GPTQConfig
    needs = Needs(calibration=True)
    key_options = ("bits", "group_size")
    unit_quantizer = True

    @classmethod
    def unit_options(cls, bits: int, symmetric: bool, group_size: int, damp: float) -> dict:
        return {"bits": bits, "symmetric": symmetric, "group_size": group_size, "damp": damp,
                "act_order": False, "block_size": 128}

    @classmethod
    def quantize_unit(cls, W, H, bits: int, symmetric: bool, group_size: int, damp: float):
        Q, _ = gptq_quantize(W.clone(), H, bits=bits, group_size=group_size, sym=symmetric,
                             damp=damp, block=128)
        return Q

    @classmethod
    def unit_storage_bits(cls, rows: int, cols: int, bits: int, symmetric: bool,
                          group_size: int) -> int:
        return storage_bits((rows, cols), bits, symmetric, group_size, False)

    @classmethod
    def linear_bits(cls, c, rows: int, cols: int) -> float:
        """Stored bits of one quantized Linear [rows x cols] (what `quantize_layer` reports)."""
        return storage_bits((rows, cols), c.bits, c.symmetric, c.group_size, c.act_order)

    @classmethod
    def stored_bits(cls, options: dict, tensor, shape) -> float:
        c = cls.config_cls.parse(options)
        return simulated_tensor_bits(tensor, lambda r, k: cls.linear_bits(c, r, k))

    def quantize_layer(self, name: str, W, H):
        """(W_hat, extra diagnostics) for one Linear; SpQR-style subclasses change this."""
        c = self.config
        Q, info = gptq_quantize(W, H, bits=c.bits, group_size=c.group_size, sym=c.symmetric,
                                act_order=c.act_order, damp=c.damp, block=c.block_size)
        bits = storage_bits(W.shape, c.bits, c.symmetric, c.group_size, c.act_order)
        return Q, bits, {"damp_used": info.damp}

    def settings_text(self) -> str:
        c = self.config
        return (f"int{c.bits} {'sym' if c.symmetric else 'asym'} "
                + (f"g{c.group_size}" if c.group_size else "per-channel")
                + (" act-order" if c.act_order else "") + f" damp {c.damp:g}")

    def build(self, ctx: BuildContext) -> Built:
        ctx.progress("loading weights", 0.0)
        model = ctx.load_model("float32")
        calib = ctx.calibration_ids()
        layer_bits: dict[str, float] = {}
        layers: list[dict] = []
        names = {id(m): n for n, m in model.named_modules()}

        def process(_i, layer, forward):
            hessians = collect_hessians(layer, forward)
            for name, lin in linears_of(layer).items():
                full = names[id(lin)]
                W = lin.weight.data
                Q, bits, extra = self.quantize_layer(full, W, hessians[name])
                layers.append(layer_diagnostics(full, W, Q, hessians[name], bits / W.numel(), **extra))
                layer_bits[f"{full}.weight"] = bits / W.numel()
                lin.weight.data.copy_(Q.to(W.dtype))

        run_sequential(model, calib, process, ctx.progress)
        return finish_simulated(
            model, ctx, layer_bits, layers,
            f"{self.settings_text()}; calibration {ctx.calibration_label}; dequantized to {ctx.dtype} "
            "for compute; unquantized tensors counted at 16 bits")
