"""SOLUTION to exercise 8 (exercises/e08_layer_norm.py). A spoiler: try the exercise first."""

import torch


def layer_norm(x, weight, bias, eps=1e-5):
    mean = x.mean(dim=-1, keepdim=True)  # (B, T, 1): one mean per position, over its C features
    var = x.var(dim=-1, keepdim=True, unbiased=False)  # (B, T, 1): divided by C, as nn.LayerNorm does
    x_hat = (x - mean) / torch.sqrt(var + eps)  # (B, T, C): mean 0, variance 1 at every position
    return x_hat * weight + bias  # (B, T, C): a learned scale and shift per feature
