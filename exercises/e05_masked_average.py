"""Exercise 5: the masked average, three ways: loops, a triangular matmul, a masked softmax.

Stage: bigram_v3.py    Note: ../notes/self-attention.md
Check: python -m pytest exercises -k masked_average
Hints: a failing check shows one; add --hints 2 (the calls), or --hints 3 (the answer).

Task. x is (B, T, C). Position t may look at positions 0..t of its own row and nothing later. The
simplest way to gather what came before is to average it: out[b, t] = mean of x[b, 0], ..., x[b, t].
Write it three times; each returns a (B, T, C) tensor.

  average_loops(x)           two Python loops over b and t, as the lecture first writes it.
  average_tril_matmul(x)     one matrix product: a (T, T) matrix of weights, row t averaging 0..t, @ x.
  average_masked_softmax(x)  the same weights made by a softmax: start from a (T, T) matrix of zeros, set
                             the entries above the diagonal (the future) to -inf, softmax each row.

The third is the one that becomes attention: replace the zeros by query-key scores and you have a head
(exercise 6).
"""

import torch  # noqa: F401  (you will want it)
from torch.nn import functional as F  # noqa: F401


def average_loops(x):
    raise NotImplementedError("not done yet: average_loops(x)")


def average_tril_matmul(x):
    raise NotImplementedError("not done yet: average_tril_matmul(x)")


def average_masked_softmax(x):
    raise NotImplementedError("not done yet: average_masked_softmax(x)")
