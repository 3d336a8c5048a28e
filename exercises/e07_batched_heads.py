"""Exercise 7 (the lecture's EX1): every head in one batched matmul, checked against bigram_v3's heads.

Stage: gpt.py (bigram_v3.py's heads, batched)    Note: ../notes/scaling-up.md (the batched heads are bigram_v3's heads)
Check: python -m pytest exercises -k batched_heads
Hints: a failing check shows one; add --hints 2 (the calls), or --hints 3 (the answer).

Task. bigram_v3.MultiHeadAttention runs n_head separate Heads and concatenates their outputs. gpt.py
does the same math with one Linear(C, 3 * C) for every key, query and value, and treats the heads as one
more batch dimension. Do that conversion:

  stack_weights(heads) -> (3 * C, C)
      heads is a list of bigram_v3.Head. Stack their weights in gpt.py's order: the queries of heads
      0, 1, ..., then the keys of heads 0, 1, ..., then the values: rows [q heads | k heads | v heads].

  batched_attention(x, qkv_weight, n_head) -> (B, T, C)
      x is (B, T, C), qkv_weight is (3 * C, C) in that layout. One matmul x @ qkv_weight.T gives
      (B, T, 3 * C); reshape it into q, k, v of shape (B, n_head, T, head_size) each; do causal attention
      for all heads at once (the same steps as exercise 6, on 4-D tensors); put the heads side by side
      again, (B, T, C), as torch.cat did. No Python loop over heads.

The check feeds your stacked weights to bigram_v3's heads and gpt.MultiHeadAttention and compares.
"""

import torch  # noqa: F401  (you will want it)
from torch.nn import functional as F  # noqa: F401


def stack_weights(heads):
    raise NotImplementedError("not done yet: stack_weights(heads)")


def batched_attention(x, qkv_weight, n_head):
    raise NotImplementedError("not done yet: batched_attention(x, qkv_weight, n_head)")
