"""Exercise 3: an embedding lookup is a one-hot vector times a matrix, gradients included.

Stage: bigram_v2.py    Note: ../notes/embedding-vs-linear.md
Check: python -m pytest exercises -k one_hot
Hints: a failing check shows one; add --hints 2 (the calls), or --hints 3 (the answer).

Task. nn.Embedding(V, C) holds a (V, C) weight and returns row idx of it for each token id. Show that
this is the same as a matrix product, and work out by hand which gradient the table receives:

  lookup_by_matmul(idx, weight) -> (B, T, C)
      idx is (B, T) token ids, weight is (V, C). Turn every id into a one-hot vector of length V and
      multiply by weight. Keep it differentiable: the check backpropagates through it.

  lookup_grad(idx, grad_out, vocab_size) -> (V, C)
      grad_out is (B, T, C), the gradient of some loss with respect to the lookup's output. Return the
      gradient with respect to weight, without calling backward(): what does row v of the table
      receive, and what do the rows of tokens that never occur in idx receive?
"""

import torch  # noqa: F401  (you will want it)
from torch.nn import functional as F  # noqa: F401


def lookup_by_matmul(idx, weight):
    raise NotImplementedError("not done yet: lookup_by_matmul(idx, weight)")


def lookup_grad(idx, grad_out, vocab_size):
    raise NotImplementedError("not done yet: lookup_grad(idx, grad_out, vocab_size)")
