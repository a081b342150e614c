"""The calibration Hessian H = 2 X^T X of a Linear's inputs, made ready for GPTQ-style solvers
(GPTQ and SpQR): dead columns handled, act-order permutation, damping until it factorises."""
from __future__ import annotations


def prepare_hessian(W, H, act_order: bool):
    """W and H in (at least) fp32 with dead columns (H_jj = 0) zeroed in W and given H_jj = 1,
    and, with act-order, both permuted by descending H_jj; returns (W, H, permutation or None)."""
    import torch

    dtype = torch.promote_types(W.dtype, torch.float32)      # fp32, or fp64 when given fp64
    W = W.clone().to(dtype)
    H = H.clone().to(dtype)
    dead = torch.diagonal(H) == 0
    H[dead, dead] = 1.0
    W[:, dead] = 0.0
    perm = None
    if act_order:
        perm = torch.argsort(torch.diagonal(H), descending=True)
        W, H = W[:, perm], H[perm][:, perm]
    return W, H, perm


def damp_hessian(H, damp: float):
    """H + damp * mean(diag H) * I and its Cholesky factor, with the damping actually used: it
    is raised tenfold (up to six times) until the factorisation succeeds."""
    import torch

    eye = torch.eye(H.shape[0], dtype=H.dtype, device=H.device)
    mean_diag = float(torch.diagonal(H).mean())
    for _ in range(6):
        Hd = H + damp * mean_diag * eye
        L, info = torch.linalg.cholesky_ex(Hd)
        if int(info) == 0:
            return Hd, L, damp
        damp *= 10
    raise RuntimeError("the Hessian is not positive definite even with damp "
                       f"{damp:g}: the calibration inputs of this layer are degenerate")
