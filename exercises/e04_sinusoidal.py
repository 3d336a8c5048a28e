"""Exercise 4: the Transformer's sinusoidal positional encoding, and why a shift is a rotation.

Stage: bigram_v2.py (the alternative to its learned position table)
Note: ../notes/positional-embedding-vs-encoding.md
Check: python -m pytest exercises -k sinusoidal
Hints: a failing check shows one; add --hints 2 (the calls), or --hints 3 (the answer).

Task. Section 3.5 of Vaswani et al. 2017, "Attention Is All You Need" (https://arxiv.org/abs/1706.03762),
gives every position pos a fixed vector of d_model numbers, for pair index i (0 <= 2i < d_model):

    PE(pos, 2i)   = sin(pos / 10000^(2i / d_model))
    PE(pos, 2i+1) = cos(pos / 10000^(2i / d_model))

  sinusoidal_encoding(T, d_model) -> (T, d_model) float tensor, row pos = PE(pos) for pos = 0 .. T-1.

  shift_by(k, d_model) -> (d_model, d_model) float tensor M such that PE(pos + k) = M @ PE(pos) for every
      pos. The paper's reason for sines and cosines: a fixed offset is one fixed linear map.
"""

import torch  # noqa: F401  (you will want it)


def sinusoidal_encoding(T, d_model):
    raise NotImplementedError("not done yet: sinusoidal_encoding(T, d_model)")


def shift_by(k, d_model):
    raise NotImplementedError("not done yet: shift_by(k, d_model)")
