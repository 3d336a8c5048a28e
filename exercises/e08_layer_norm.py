"""Exercise 8: layer norm by hand, checked against nn.LayerNorm, gradients included.

Stage: gpt.py    Note: ../notes/v3-to-gpt.md (the questions on pre-layer-norm and layer vs batch norm)
Check: python -m pytest exercises -k layer_norm

Task. gpt.py's blocks call nn.LayerNorm(C) before attention and before the feed-forward network. Write
what it computes:

  layer_norm(x, weight, bias, eps=1e-5) -> the same shape as x
      x is (B, T, C); weight and bias are (C,). For every position separately, over its C features:
      subtract their mean, divide by sqrt(their variance + eps), then multiply by weight and add bias.

The check compares with nn.LayerNorm on the same input, weight and bias, and then compares the
gradients that backward() gives x, weight and bias.

Hint. Normalise over the last dimension: `x.mean(dim=-1, keepdim=True)`. nn.LayerNorm uses the biased
variance, dividing by C rather than C - 1: `x.var(dim=-1, keepdim=True, unbiased=False)`. Over the batch
dimension instead, you would have written batch norm.
"""

import torch  # noqa: F401  (you will want it)


def layer_norm(x, weight, bias, eps=1e-5):
    raise NotImplementedError("not done yet: layer_norm(x, weight, bias, eps=1e-5)")
