"""SOLUTION to exercise 11 (exercises/e11_temperature_top_k.py). A spoiler: try the exercise first."""

import torch
from torch.nn import functional as F


def next_token_probs(logits, temperature=1.0, top_k=None):
    if temperature == 0:  # greedy: the limit of a temperature going to 0
        return F.one_hot(logits.argmax(dim=-1), logits.shape[-1]).to(logits.dtype)  # (B, V)
    logits = logits / temperature  # (B, V): the same order, sharper or flatter
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k).values[:, [-1]]  # (B, 1): each row's k-th largest
        logits = logits.masked_fill(logits < kth, float("-inf"))  # the tail can no longer be drawn
    return F.softmax(logits, dim=-1)  # (B, V)
