import torch

from qcompare.methods import qat, rtn


def test_fake_quant_forward_is_rtn_and_its_gradient_is_straight_through():
    torch.manual_seed(0)
    w = torch.randn(8, 32, requires_grad=True)
    fq = qat._fake_quant_module(4, True, "group", 16)
    out = fq(w)
    assert torch.equal(out.detach(), rtn.fake_quantize(w.detach(), 4, True, "group", 16))
    upstream = torch.randn_like(out)
    out.backward(upstream)
    assert torch.equal(w.grad, upstream)             # d(w_q)/dw treated as the identity


def test_activation_fake_quant_is_per_token_and_straight_through():
    x = torch.tensor([[0.1, -0.2, 12.7], [1.0, 2.0, -3.0]], requires_grad=True)
    (xq,) = qat.act_fake_quant_hook(8)(None, (x,))
    s = x.detach().abs().amax(-1, keepdim=True) / 127
    assert torch.allclose(xq.detach(), torch.round(x.detach() / s) * s)
    xq.sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))


def test_distillation_loss_is_zero_for_identical_logits_and_positive_otherwise():
    a = torch.randn(2, 5, 11)
    assert float(qat.distill_loss(a, a)) < 1e-6
    assert float(qat.distill_loss(a, a + torch.randn_like(a))) > 0
