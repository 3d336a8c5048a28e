"""Exercise 6: one head of self-attention from scratch, checked against bigram_v3's Head.

Stage: bigram_v3.py    Note: ../notes/v2-to-v3.md (and ../notes/self-attention.md)
Check: python -m pytest exercises -k attention_head
Hints: a failing check shows one; add --hints 2 (the calls), or --hints 3 (the answer).

Task. Write the forward pass of bigram_v3.Head yourself, from its three weight matrices:

  attention_head(x, w_key, w_query, w_value) -> (B, T, head_size)
      x is (B, T, C). Each w is (head_size, C), laid out as nn.Linear stores its weight, so the keys
      are k = x @ w_key.T, (B, T, head_size), and likewise the queries q and the values v. The head computes

          out = softmax(q k^T / sqrt(head_size)) v      with position t allowed to look at 0..t only

      (the equation of "Attention Is All You Need", section 3.2.1, with the lecture's causal mask).

The check copies the weights of a real bigram_v3.Head into your function and compares the outputs.
Write it without looking at bigram_v3.py; compare afterwards.
"""

import torch  # noqa: F401  (you will want it)
from torch.nn import functional as F  # noqa: F401


def attention_head(x, w_key, w_query, w_value):
    raise NotImplementedError("not done yet: attention_head(x, w_key, w_query, w_value)")
