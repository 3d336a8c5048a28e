"""Exercise 8: layer norm by hand, checked against nn.LayerNorm, gradients included.

Stage: gpt.py    Note: ../notes/heads-to-block.md (layer norm, before the sublayer)
Check: python -m pytest exercises -k layer_norm
Hints: a failing check shows one; add --hints 2 (the calls), or --hints 3 (the answer).

Task. gpt.py's blocks call nn.LayerNorm(C) before attention and before the feed-forward network. Write
what it computes:

  layer_norm(x, weight, bias, eps=1e-5) -> the same shape as x
      x is (B, T, C); weight and bias are (C,). For every position separately, over its C features:
      subtract their mean, divide by sqrt(their variance + eps), then multiply by weight and add bias.

The check compares with nn.LayerNorm on the same input, weight and bias, and then compares the
gradients that backward() gives x, weight and bias.
"""

import torch  # noqa: F401  (you will want it)


def layer_norm(x, weight, bias, eps=1e-5):
    raise NotImplementedError("not done yet: layer_norm(x, weight, bias, eps=1e-5)")
