"""SOLUTION to exercise 5 (exercises/e05_masked_average.py). A spoiler: try the exercise first."""

import torch
from torch.nn import functional as F


def average_loops(x):
    B, T, C = x.shape
    out = torch.zeros_like(x)  # (B, T, C)
    for b in range(B):
        for t in range(T):
            out[b, t] = x[b, : t + 1].mean(dim=0)  # (t + 1, C) -> (C,)
    return out


def average_tril_matmul(x):
    T = x.shape[1]
    wei = torch.tril(torch.ones(T, T, dtype=x.dtype))  # (T, T): 1 where t may look
    wei = wei / wei.sum(dim=1, keepdim=True)  # each row averages: 1/(t + 1) on positions 0..t
    return wei @ x  # (T, T) @ (B, T, C) -> (B, T, C)


def average_masked_softmax(x):
    T = x.shape[1]
    tril = torch.tril(torch.ones(T, T))
    wei = torch.zeros(T, T, dtype=x.dtype)  # every position equally interesting, for now
    wei = wei.masked_fill(tril == 0, float("-inf"))  # (T, T): the future is out of reach
    wei = F.softmax(wei, dim=-1)  # (T, T): the same rows as the tril matmul
    return wei @ x  # (B, T, C)
