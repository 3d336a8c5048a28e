"""Checks for exercise 4 (exercises/e04_sinusoidal.py): PE against the paper's formula, and shifts."""

import math

import torch

from .common import Hint, close_to, expect, load, same

ex = load("e04_sinusoidal")

T, D = 12, 16

HINTS = {
    "sinusoidal_encoding": Hint(
        "Each pair of columns (2i, 2i+1) has one frequency omega_i = 10000^(-2i / d_model), and row pos turns "
        "it by the angle pos * omega_i. Make the (T, d_model/2) table of angles first, then fill the columns.",
        "`torch.arange(T)[:, None] * omega[None, :]` for the angles; `torch.sin` and `torch.cos`; slice assignment "
        "`pe[:, 0::2] = ...` and `pe[:, 1::2] = ...`.",
        "omega = 10000.0 ** (-torch.arange(0, d_model, 2) / d_model); angle = torch.arange(T)[:, None] * omega; "
        "pe = torch.empty(T, d_model); pe[:, 0::2] = torch.sin(angle); pe[:, 1::2] = torch.cos(angle)"),
    "shift_by": Hint(
        "Write a = pos * omega_i and b = k * omega_i. The angle-addition formulas give sin(a + b) and cos(a + b) "
        "from sin a and cos a, with coefficients that depend on b alone: that is a 2x2 matrix per pair.",
        "sin(a + b) = sin a cos b + cos a sin b and cos(a + b) = cos a cos b - sin a sin b; `torch.zeros(d, d)`, "
        "`torch.diag`, and strided slices such as `M[0::2, 1::2]` for the four entries of every 2x2 block.",
        "b = k * omega; M = torch.zeros(d, d); M[0::2, 0::2] = torch.diag(torch.cos(b)); "
        "M[0::2, 1::2] = torch.diag(torch.sin(b)); M[1::2, 0::2] = torch.diag(-torch.sin(b)); "
        "M[1::2, 1::2] = torch.diag(torch.cos(b))"),
}
HALVES = Hint(
    "you put all the sines first and all the cosines after; the paper interleaves them: column 2i is a sine "
    "and column 2i+1 the cosine at the same frequency.",
    "Strided slices: `pe[:, 0::2]` for the sines, `pe[:, 1::2]` for the cosines.", HINTS["sinusoidal_encoding"].answer)
SWAPPED = Hint(
    "sines and cosines are swapped: the even columns (2i) are sines, so row 0 is [0, 1, 0, 1, ...].",
    HINTS["sinusoidal_encoding"].calls, HINTS["sinusoidal_encoding"].answer)
I_NOT_2I = Hint(
    "your frequencies fall too fast: i counts *pairs* of columns, so the exponent is 2i / d_model, and pair i "
    "sits in columns 2i and 2i+1.",
    "`torch.arange(0, d_model, 2) / d_model` gives the exponents 2i / d_model.", HINTS["sinusoidal_encoding"].answer)
BACKWARDS = Hint(
    "your M moves every position back by k instead of forward: the signs of the two sin b entries are swapped "
    "(M(-k) is the transpose of M(k)).",
    HINTS["shift_by"].calls, HINTS["shift_by"].answer)


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
        expect(not close_to(pe, halves, atol=1e-5), "the columns are in another order.", HALVES)
        expect(not close_to(pe[:, 0::2], want[:, 1::2], atol=1e-5), "row 0 is not [0, 1, 0, 1, ...].", SWAPPED)
        expect(close_to(pe[0], want[0]),
               f"position 0 should be [sin 0, cos 0, ...] = [0, 1, 0, 1, ...]; yours starts "
               f"{[round(v, 3) for v in pe[0, :4].tolist()]}.", HINTS["sinusoidal_encoding"])
        per_column = torch.tensor([10000 ** (-(c // 2) / D) for c in range(D)], dtype=torch.float64)
        fast = torch.arange(T, dtype=torch.float64)[:, None] * per_column  # the exponent i / d_model
        fast[:, 0::2], fast[:, 1::2] = fast[:, 0::2].sin(), fast[:, 1::2].cos()
        expect(not close_to(pe, fast, atol=1e-5), "the frequencies are not the paper's.", I_NOT_2I)
    same(pe, want, f"sinusoidal_encoding({T}, {D})", HINTS["sinusoidal_encoding"])


def test_sinusoidal_shift_is_a_rotation():
    pe = paper(T + 5, D)
    for k in (1, 3, 5):
        M = ex.shift_by(k, D)
        expect(isinstance(M, torch.Tensor) and M.shape == (D, D),
               f"shift_by({k}, {D}) should be a ({D}, {D}) tensor, got "
               f"{tuple(M.shape) if isinstance(M, torch.Tensor) else type(M).__name__}.", HINTS["shift_by"])
        expect(not close_to(M.double() @ pe[k : T + k].T, pe[:T].T, atol=1e-5) or k == 0,
               f"shift_by({k}) @ PE(pos) gives PE(pos - {k}).", BACKWARDS)
        same(M.double() @ pe[:T].T, pe[k : T + k].T,
             f"shift_by({k}, {D}) @ PE(pos), for pos = 0..{T - 1} (column pos should be PE(pos + {k}))",
             HINTS["shift_by"])
    same(ex.shift_by(0, D).double(), torch.eye(D, dtype=torch.float64),
         "shift_by(0, d_model) (shifting by 0 positions changes nothing: the identity)", HINTS["shift_by"])
