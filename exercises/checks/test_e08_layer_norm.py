"""Checks for exercise 8 (exercises/e08_layer_norm.py): your layer norm against nn.LayerNorm.

Every check first asks which of the usual slips the layer norm makes (diagnosis()), so that every failure
names the slip actually made: an unbiased variance gets the variance hint in each check that fails.
"""

import torch
import torch.nn as nn

from .common import Hint, expect, load, same, which_mistake

ex = load("e08_layer_norm")

C = 6

ANSWER = ("mean = x.mean(dim=-1, keepdim=True); var = x.var(dim=-1, keepdim=True, unbiased=False); "
          "return (x - mean) / torch.sqrt(var + eps) * weight + bias")
HINTS = {"layer_norm": Hint(
    "Each position is normalised on its own, over its C features: its own mean and its own variance. "
    "Then every feature gets its learned scale and shift.",
    "`.mean(dim=-1, keepdim=True)`, `.var(dim=-1, keepdim=True, unbiased=False)`, `torch.sqrt`; keepdim so the "
    "(B, T, 1) statistics broadcast over the C features.",
    ANSWER)}

SLIPS = [
    (dict(unbiased=True), Hint(
        "the variance is the unbiased one (divided by C - 1); nn.LayerNorm divides by C.",
        "`x.var(dim=-1, keepdim=True, unbiased=False)` (or `((x - mean) ** 2).mean(dim=-1, keepdim=True)`).",
        ANSWER)),
    (dict(dims=(0,)), Hint(
        "you normalised over the batch dimension: that is batch norm. Layer norm normalises each position over "
        "its own C features.", "dim=-1 in both `.mean` and `.var`.", ANSWER)),
    (dict(dims=(0, 1)), Hint(
        "you normalised each feature over all positions of the batch (batch norm's statistics); layer norm uses "
        "each position's own C features.", "dim=-1 in both `.mean` and `.var`.", ANSWER)),
    (dict(eps_inside=False), Hint(
        "eps is added after the square root; nn.LayerNorm adds it to the variance, inside the root.",
        "`torch.sqrt(var + eps)`.", ANSWER)),
    (dict(std=True), Hint(
        "you divided by the variance; normalising divides by the standard deviation, its square root.",
        "`torch.sqrt(var + eps)` (or `torch.rsqrt` and a product).", ANSWER)),
    (dict(affine=False), Hint(
        "the output is normalised but weight and bias are missing: every feature has a learned scale and shift.",
        "`... * weight + bias` at the end.", ANSWER)),
]


def by_hand(x, weight, bias, dims=(-1,), unbiased=False, eps=1e-5, eps_inside=True, affine=True, std=False):
    """Layer norm and the usual slips, to name the one that was made."""
    mean = x.mean(dim=dims, keepdim=True)
    var = x.var(dim=dims, keepdim=True, unbiased=unbiased)
    if std:
        out = (x - mean) / (var + eps)
    else:
        out = (x - mean) / (torch.sqrt(var + eps) if eps_inside else torch.sqrt(var) + eps)
    return out * weight + bias if affine else out


def a_layer_norm_and_input():
    torch.manual_seed(0)
    ln = nn.LayerNorm(C)
    with torch.no_grad():  # a trained-looking scale and shift, so forgetting either shows
        ln.weight.copy_(torch.randn(C))
        ln.bias.copy_(torch.randn(C))
    x = 3.0 * torch.randn(2, 4, C) + 1.0  # (B, T, C), neither mean 0 nor variance 1
    return ln, x


@torch.no_grad()
def diagnosis():
    """The Hint of the slip the learner's layer norm makes, or the general one."""
    ln, x = a_layer_norm_and_input()
    out = ex.layer_norm(x, ln.weight, ln.bias)
    slips = [(by_hand(x, ln.weight, ln.bias, **kwargs), hint) for kwargs, hint in SLIPS]
    return which_mistake(out, slips, atol=1e-4) or HINTS["layer_norm"]


def test_layer_norm_matches_nn_layernorm():
    ln, x = a_layer_norm_and_input()
    with torch.no_grad():
        out, want = ex.layer_norm(x, ln.weight, ln.bias), ln(x)
    same(out, want, "layer_norm(x, weight, bias) for x of shape (2, 4, 6)", diagnosis())


def test_layer_norm_gradients_match():
    ln, x = a_layer_norm_and_input()
    signal = torch.randn(2, 4, C, generator=torch.Generator().manual_seed(1))  # any loss: sum(out * signal)
    x1 = x.clone().requires_grad_(True)
    (ln(x1) * signal).sum().backward()
    x2 = x.clone().requires_grad_(True)
    weight, bias = ln.weight.detach().clone().requires_grad_(True), ln.bias.detach().clone().requires_grad_(True)
    out = ex.layer_norm(x2, weight, bias)
    expect(isinstance(out, torch.Tensor) and out.requires_grad,
           "the output does not depend on x, weight and bias for autograd.",
           Hint("something cut autograd's path from x, weight and bias to the output.",
                "Avoid `.detach()`, `.item()`, `.tolist()` and `torch.no_grad()`; torch operations only.", ANSWER))
    (out * signal).sum().backward()
    for name, mine, theirs in (("x", x2.grad, x1.grad), ("weight", weight.grad, ln.weight.grad),
                               ("bias", bias.grad, ln.bias.grad)):
        same(mine, theirs, f"the gradient with respect to {name}", diagnosis())


def test_layer_norm_output_has_mean_0_and_variance_1():
    _, x = a_layer_norm_and_input()
    out = ex.layer_norm(x, torch.ones(C), torch.zeros(C))  # weight 1, bias 0: only the normalisation
    expect(isinstance(out, torch.Tensor) and out.shape == x.shape,
           f"layer_norm should keep x's shape {tuple(x.shape)}.", diagnosis())
    same(out.mean(dim=-1), torch.zeros(2, 4), "the mean of each position's features with weight=1, bias=0",
         diagnosis(), atol=1e-5)
    same(out.var(dim=-1, unbiased=False), torch.ones(2, 4),
         "the variance (divided by C) of each position's features, with weight=1, bias=0", diagnosis(), atol=1e-3)
