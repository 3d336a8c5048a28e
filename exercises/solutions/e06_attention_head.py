"""SOLUTION to exercise 6 (exercises/e06_attention_head.py). A spoiler: try the exercise first."""

import torch
from torch.nn import functional as F


def attention_head(x, w_key, w_query, w_value):
    T = x.shape[1]
    k = x @ w_key.T  # (B, T, C) @ (C, hs) -> (B, T, hs): what each position offers
    q = x @ w_query.T  # (B, T, hs): what each position looks for
    v = x @ w_value.T  # (B, T, hs): what each position hands over when attended to
    scores = q @ k.transpose(-2, -1) * k.shape[-1] ** -0.5  # (B, T, T): scaled so softmax does not saturate
    future = torch.tril(torch.ones(T, T)) == 0  # (T, T): True above the diagonal
    wei = F.softmax(scores.masked_fill(future, float("-inf")), dim=-1)  # (B, T, T): rows sum to 1
    return wei @ v  # (B, T, T) @ (B, T, hs) -> (B, T, hs)
