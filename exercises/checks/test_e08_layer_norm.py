"""Checks for exercise 8 (exercises/e08_layer_norm.py): your layer norm against nn.LayerNorm."""

import torch
import torch.nn as nn

from .common import close_to, expect, load, same

ex = load("e08_layer_norm")

C = 6


def a_layer_norm_and_input():
    torch.manual_seed(0)
    ln = nn.LayerNorm(C)
    with torch.no_grad():  # a trained-looking scale and shift, so forgetting either shows
        ln.weight.copy_(torch.randn(C))
        ln.bias.copy_(torch.randn(C))
    x = 3.0 * torch.randn(2, 4, C) + 1.0  # (B, T, C), neither mean 0 nor variance 1
    return ln, x


def by_hand(x, weight, bias, dims=(-1,), unbiased=False, eps=1e-5, eps_inside=True, affine=True):
    """Layer norm and the usual slips, to name the one that was made."""
    mean = x.mean(dim=dims, keepdim=True)
    var = x.var(dim=dims, keepdim=True, unbiased=unbiased)
    out = (x - mean) / (torch.sqrt(var + eps) if eps_inside else torch.sqrt(var) + eps)
    return out * weight + bias if affine else out


SLIPS = [
    (dict(unbiased=True), "you used the unbiased variance (divided by C - 1); nn.LayerNorm divides by C: "
                          "var(dim=-1, unbiased=False)."),
    (dict(dims=(0,)), "you normalised over the batch dimension: that is batch norm. Layer norm normalises each "
                      "position over its own C features, dim=-1."),
    (dict(dims=(0, 1)), "you normalised each feature over all positions of the batch (batch norm's statistics); "
                        "layer norm uses each position's own C features, dim=-1."),
    (dict(affine=False), "the output is normalised but weight and bias are missing: multiply by weight, add bias."),
]


def test_layer_norm_matches_nn_layernorm():
    ln, x = a_layer_norm_and_input()
    with torch.no_grad():
        out = ex.layer_norm(x, ln.weight, ln.bias)
        want = ln(x)
        if isinstance(out, torch.Tensor) and out.shape == want.shape and not close_to(out, want):
            for kwargs, message in SLIPS:
                expect(not close_to(out, by_hand(x, ln.weight, ln.bias, **kwargs)), message)
    same(out, want, "layer_norm(x, weight, bias) for x of shape (2, 4, 6)",
         "Every position: (x - mean) / sqrt(var + eps) over its 6 features, then * weight + bias.")


def test_layer_norm_gradients_match():
    ln, x = a_layer_norm_and_input()
    signal = torch.randn(2, 4, C, generator=torch.Generator().manual_seed(1))  # any loss: sum(out * signal)
    x1 = x.clone().requires_grad_(True)
    (ln(x1) * signal).sum().backward()
    x2 = x.clone().requires_grad_(True)
    weight, bias = ln.weight.detach().clone().requires_grad_(True), ln.bias.detach().clone().requires_grad_(True)
    out = ex.layer_norm(x2, weight, bias)
    expect(isinstance(out, torch.Tensor) and out.requires_grad,
           "the output does not depend on x, weight and bias for autograd: avoid .detach(), .item(), no_grad.")
    (out * signal).sum().backward()
    for name, mine, theirs in (("x", x2.grad, x1.grad), ("weight", weight.grad, ln.weight.grad),
                               ("bias", bias.grad, ln.bias.grad)):
        same(mine, theirs, f"the gradient with respect to {name}",
             "Build the output from x, weight and bias with torch operations, and autograd finds the rest.")


def test_layer_norm_output_has_mean_0_and_variance_1():
    _, x = a_layer_norm_and_input()
    out = ex.layer_norm(x, torch.ones(C), torch.zeros(C))  # weight 1, bias 0: only the normalisation
    expect(isinstance(out, torch.Tensor) and out.shape == x.shape,
           f"layer_norm should keep x's shape {tuple(x.shape)}")
    same(out.mean(dim=-1), torch.zeros(2, 4), "the mean of each position's features with weight=1, bias=0",
         "Subtract each position's own mean.", atol=1e-5)
    same(out.var(dim=-1, unbiased=False), torch.ones(2, 4), "the variance of each position's features",
         "Divide by sqrt(variance + eps): the result is 1 up to eps.", atol=1e-3)
