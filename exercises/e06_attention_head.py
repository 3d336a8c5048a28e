"""Exercise 6: one head of self-attention from scratch, checked against bigram_v3's Head.

Stage: bigram_v3.py    Note: ../notes/v2-to-v3.md (and ../notes/self-attention.md)
Check: python -m pytest exercises -k attention_head

Task. Write the forward pass of bigram_v3.Head yourself, from its three weight matrices:

  attention_head(x, w_key, w_query, w_value) -> (B, T, head_size)
      x is (B, T, C). Each w is (head_size, C), laid out as nn.Linear stores its weight, so
      k = x @ w_key.T is (B, T, head_size), and likewise q and v. Then:
        scores  q @ k^T, scaled by head_size ** -0.5                       (B, T, T)
        mask    position t may not look at positions after t: set them to -inf
        softmax over the last dimension, so each row of weights sums to 1
        out     weights @ v                                                  (B, T, head_size)

The check copies the weights of a real bigram_v3.Head into your function and compares the outputs.
Write it without looking at bigram_v3.py; compare afterwards.

Hint. It is exercise 5's masked softmax with the zeros replaced by scores. `k.transpose(-2, -1)` turns
(B, T, hs) into (B, hs, T). The mask for a given T: `torch.tril(torch.ones(T, T)) == 0` marks the future.
"""

import torch  # noqa: F401  (you will want it)
from torch.nn import functional as F  # noqa: F401


def attention_head(x, w_key, w_query, w_value):
    raise NotImplementedError("not done yet: attention_head(x, w_key, w_query, w_value)")
