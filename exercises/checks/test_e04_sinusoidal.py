"""Checks for exercise 4 (exercises/e04_sinusoidal.py): PE against the paper's formula, and shifts."""

import math

import torch

from .common import close_to, expect, load, same

ex = load("e04_sinusoidal")

T, D = 12, 16


def paper(T, d_model):
    """Section 3.5 written out one number at a time, the slow and obvious way."""
    pe = torch.zeros(T, d_model, dtype=torch.float64)
    for pos in range(T):
        for i in range(d_model // 2):
            pe[pos, 2 * i] = math.sin(pos / 10000 ** (2 * i / d_model))
            pe[pos, 2 * i + 1] = math.cos(pos / 10000 ** (2 * i / d_model))
    return pe


def test_sinusoidal_encoding_matches_the_paper():
    pe = ex.sinusoidal_encoding(T, D)
    want = paper(T, D)
    if isinstance(pe, torch.Tensor) and pe.shape == want.shape:
        halves = torch.cat([want[:, 0::2], want[:, 1::2]], dim=1)  # all sines, then all cosines
        expect(not close_to(pe, halves, atol=1e-5),
               "you put all the sines first and all the cosines after; the paper interleaves them: "
               "column 2i is a sine and column 2i+1 the cosine at the same frequency.")
        expect(not close_to(pe[:, 0::2], want[:, 1::2], atol=1e-5),
               "sines and cosines are swapped: the even columns (2i) are sines, so row 0 is [0, 1, 0, 1, ...].")
        expect(close_to(pe[0], want[0]),
               f"position 0 should be [sin 0, cos 0, ...] = [0, 1, 0, 1, ...]; yours starts "
               f"{[round(v, 3) for v in pe[0, :4].tolist()]}")
    same(pe, want, f"sinusoidal_encoding({T}, {D})",
         "Pair i turns at omega_i = 10000 ** (-2i / d_model): i counts pairs, so columns 2i and 2i+1 share it.")


def test_sinusoidal_shift_is_a_rotation():
    pe = paper(T + 5, D)
    for k in (1, 3, 5):
        M = ex.shift_by(k, D)
        expect(isinstance(M, torch.Tensor) and M.shape == (D, D),
               f"shift_by({k}, {D}) should be a ({D}, {D}) tensor, got "
               f"{tuple(M.shape) if isinstance(M, torch.Tensor) else type(M).__name__}")
        same(M.double() @ pe[:T].T, pe[k : T + k].T, f"shift_by({k}, {D}) @ PE(pos), for pos = 0..{T - 1}",
             f"Column pos should be PE(pos + {k}). Each (sin, cos) pair is rotated by the angle k * omega_i; "
             "M does not depend on pos.")
    same(ex.shift_by(0, D).double(), torch.eye(D, dtype=torch.float64), "shift_by(0, d_model)",
         "Shifting by 0 positions changes nothing: M is the identity.")
