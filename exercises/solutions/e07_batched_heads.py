"""SOLUTION to exercise 7 (exercises/e07_batched_heads.py). A spoiler: try the exercise first."""

import torch
from torch.nn import functional as F


def stack_weights(heads):
    # [q of every head | k of every head | v of every head], each block (head_size, C)
    return torch.cat([h.query.weight for h in heads] + [h.key.weight for h in heads] + [h.value.weight for h in heads])


def batched_attention(x, qkv_weight, n_head):
    B, T, C = x.shape
    qkv = (x @ qkv_weight.T).view(B, T, 3, n_head, C // n_head)  # (B, T, 3, nh, hs): one matmul for all
    q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B, nh, T, hs): the heads are a batch dimension now
    scores = q @ k.transpose(-2, -1) * k.shape[-1] ** -0.5  # (B, nh, T, T)
    future = torch.tril(torch.ones(T, T)) == 0  # (T, T), broadcast over B and nh
    wei = F.softmax(scores.masked_fill(future, float("-inf")), dim=-1)  # (B, nh, T, T)
    y = wei @ v  # (B, nh, T, hs)
    return y.transpose(1, 2).reshape(B, T, C)  # (B, T, nh * hs): head 0's columns first, as torch.cat
