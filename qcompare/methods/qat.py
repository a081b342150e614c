"""Quantization-aware training (QAT): fake quantization with a straight-through estimator and a
short fine-tune on calibration text, starting from the RTN (PTQ) model at the same bits.

Forward: every Linear of the decoder layers uses w_q = w + (Q(w) - w).detach(), where Q is RTN
(`bits`, `group_size`, symmetric or not; qcompare.methods.rtn), so the forward pass sees the
quantized weights and the backward pass treats Q as the identity (straight-through). With
`act_bits` = 8 the Linears' inputs are fake-quantized too (per token, symmetric), and stay so
for evaluation. At step 0 the model is exactly the RTN model.

Training: only those Linears' latent weights train (embeddings, norms and the LM head stay
frozen), with AdamW (no weight decay) for `steps` steps of `batch` sequences of `seq_len`
tokens drawn (seeded) from the calibration set, which never overlaps the evaluation text.
The loss is either
  - kd (default): KL(p_fp32 || p_student) per token against the unquantized model's own
    predictions, so the fine-tune recovers the original model instead of adapting it to the
    calibration text's domain (which could lower perplexity below the baseline's and mislead);
  - ce: next-token cross-entropy on the calibration text.
Held-out: the same loss on calibration sequences not trained on, before (= PTQ) and after QAT,
is reported in the row's notes. Finally Q(w) is baked into the weights.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from qcompare.core.errors import UserError
from qcompare.core.method import BuildContext, Built, Method, MethodConfig, Needs
from qcompare.methods import rtn
from qcompare.methods.kernels.sequential import decoder_layers, linears_of
from qcompare.methods.kernels.simulated import finish_simulated, simulated_tensor_bits

HELD_OUT = 2             # calibration sequences kept out of training for the held-out loss


def _fake_quant_module(bits: int, sym: bool, gran: str, group_size: int):
    import torch

    class FakeQuant(torch.nn.Module):
        """Straight-through fake quantization of a weight (module doc)."""

        def forward(self, w):
            return w + (rtn.fake_quantize(w.detach(), bits, sym, gran, group_size) - w).detach()

    return FakeQuant()


def act_fake_quant_hook(bits: int):
    """Forward pre-hook: the input fake-quantized per token, symmetric, straight-through."""
    import torch

    qmax = 2 ** (bits - 1) - 1

    def hook(_m, args):
        x = args[0]
        s = (x.detach().abs().amax(-1, keepdim=True) / qmax).clamp_min(1e-8)
        xq = torch.clamp(torch.round(x.detach() / s), -qmax - 1, qmax) * s
        return (x + (xq - x).detach(),) + tuple(args[1:])

    return hook


def distill_loss(student_logits, teacher_logits):
    """Mean over tokens of KL(p_teacher || p_student)."""
    import torch

    v = student_logits.shape[-1]
    s = torch.log_softmax(student_logits.reshape(-1, v).float(), -1)
    t = torch.log_softmax(teacher_logits.reshape(-1, v).float(), -1)
    return torch.nn.functional.kl_div(s, t, log_target=True, reduction="batchmean")


def ce_loss(logits, ids):
    import torch

    return torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(),
                                             ids[:, 1:].reshape(-1))


@dataclass(frozen=True)
class QATConfig(MethodConfig):
    bits: int = field(default=4, metadata={"help": "bits per weight code", "choices": (8, 4, 3, 2)})
    group_size: int = field(default=128, metadata={
        "help": "input columns per scale; 0 = one scale per output channel", "min": 0})
    symmetric: bool = field(default=True, metadata={"help": "symmetric or with zero points",
                                                    "choices": (True, False)})
    steps: int = field(default=30, metadata={"help": "optimizer steps", "min": 1})
    lr: float = field(default=1e-5, metadata={"help": "AdamW learning rate", "min": 0.0,
                                              "max": 1.0})
    batch: int = field(default=2, metadata={"help": "sequences per step", "min": 1})
    seq_len: int = field(default=256, metadata={"help": "tokens per training sequence", "min": 8})
    loss: str = field(default="kd", metadata={
        "help": "kd: match the fp32 model's predictions; ce: next-token loss on the text",
        "choices": ("kd", "ce")})
    act_bits: int = field(default=0, metadata={
        "help": "fake-quantize Linear inputs per token (0 = off)", "choices": (0, 8)})
    seed: int = field(default=0, metadata={"help": "seed of the batch order", "min": 0})


class QAT(Method):
    name = "qat"
    cpu_cost = 3                           # trains
    family = "built-in (inspectable)"
    summary = "QAT: straight-through fake quantization, short fine-tune from the RTN model"
    stages = (   # its progress lines, for the Jobs page in the page's language
        (r"QAT step (?P<i>\d+)/(?P<n>\d+) \(loss (?P<loss>[\d.]+)\)", "stage.qat_step"),
    )
    config_cls = QATConfig
    needs = Needs(calibration=True)
    key_options = ("bits", "group_size", "steps")

    @classmethod
    def stored_bits(cls, options: dict, tensor, shape) -> float:
        c = cls.config_cls.parse(options)
        gran = "group" if c.group_size else "channel"
        return simulated_tensor_bits(tensor, lambda r, k: rtn.storage_bits(
            (r, k), c.bits, c.symmetric, gran, c.group_size))

    def build(self, ctx: BuildContext) -> Built:
        import torch
        from torch.nn.utils import parametrize

        c = self.config
        gran = "group" if c.group_size else "channel"
        ctx.progress("loading weights", 0.0)
        model = ctx.load_model("float32")
        teacher = ctx.load_model("float32") if c.loss == "kd" else None
        device = next(model.parameters()).device
        calib = ctx.calibration_ids()
        usable = calib.shape[1] // c.seq_len * c.seq_len
        if usable == 0:
            raise UserError(key="errors.qat_seq_len", n=calib.shape[1], seq_len=c.seq_len)
        seqs = calib[:, :usable].reshape(-1, c.seq_len)
        if len(seqs) <= HELD_OUT:
            raise UserError(key="errors.qat_held_out")
        held, train = seqs[:HELD_OUT].to(device), seqs[HELD_OUT:]

        for p in model.parameters():
            p.requires_grad_(False)
        targets = {}
        for layer in decoder_layers(model):
            for lin in linears_of(layer).values():
                targets[lin] = lin.weight.detach().clone()
                parametrize.register_parametrization(lin, "weight", _fake_quant_module(
                    c.bits, c.symmetric, gran, c.group_size))
                lin.parametrizations.weight.original.requires_grad_(True)
                if c.act_bits:
                    lin.register_forward_pre_hook(act_fake_quant_hook(c.act_bits))
        params = [lin.parametrizations.weight.original for lin in targets]
        opt = torch.optim.AdamW(params, lr=c.lr, weight_decay=0.0)

        def loss_of(ids, grad: bool):
            with torch.set_grad_enabled(grad):
                logits = model(input_ids=ids, use_cache=False).logits
            if c.loss == "ce":
                return ce_loss(logits, ids)
            with torch.no_grad():
                t_logits = teacher(input_ids=ids, use_cache=False).logits
            return distill_loss(logits, t_logits)

        with torch.no_grad():
            before = float(loss_of(held, False))
        gen = torch.Generator().manual_seed(c.seed)
        model.train()
        for step in range(c.steps):
            idx = torch.randint(0, len(train), (c.batch,), generator=gen)
            loss = loss_of(train[idx].to(device), True)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            ctx.progress(f"QAT step {step + 1}/{c.steps} (loss {float(loss.detach()):.4f})", (step + 1) / c.steps)
        model.eval()
        with torch.no_grad():
            after = float(loss_of(held, False))
        teacher = None                       # free the fp32 copy before evaluation

        names = {id(m): n for n, m in model.named_modules()}
        layer_bits: dict[str, float] = {}
        layers = []
        for lin, W0 in targets.items():
            parametrize.remove_parametrizations(lin, "weight", leave_parametrized=True)
            lin.weight.requires_grad_(False)
            W = lin.weight.data
            ptq = rtn.fake_quantize(W0, c.bits, c.symmetric, gran, c.group_size)
            bits = rtn.storage_bits(tuple(W.shape), c.bits, c.symmetric, gran, c.group_size)
            full = names[id(lin)]
            layer_bits[f"{full}.weight"] = bits / W.numel()
            layers.append({"layer": full, "shape": list(W.shape),
                           "weight_rel_err": float((W - W0).norm() / W0.norm().clamp_min(1e-30)),
                           "ptq_weight_rel_err": float((ptq - W0).norm() / W0.norm().clamp_min(1e-30)),
                           "codes_changed": float((W != ptq).float().mean()),
                           "bits_per_weight": bits / W.numel()})
        what = "KL to fp32" if c.loss == "kd" else "cross-entropy"
        notes = (f"QAT int{c.bits} {'sym' if c.symmetric else 'asym'} "
                 + (f"g{c.group_size}" if c.group_size else "per-channel")
                 + (f", activations int{c.act_bits} per token" if c.act_bits else "")
                 + f"; {c.steps} steps x {c.batch} x {c.seq_len} tokens, lr {c.lr:g}; held-out "
                 f"{what}: PTQ (RTN) {before:.4f} -> QAT {after:.4f}; calibration {ctx.calibration_label}")
        return finish_simulated(model, ctx, layer_bits, layers, notes)
