"""Checks for exercise 5 (exercises/e05_masked_average.py): three ways, one answer."""

import pytest
import torch

from .common import close_to, expect, load, same

ex = load("e05_masked_average")

WAYS = ["average_loops", "average_tril_matmul", "average_masked_softmax"]


def expected(x):
    counts = torch.arange(1, x.shape[1] + 1, dtype=x.dtype)[None, :, None]  # (1, T, 1): t + 1 positions
    return x.cumsum(dim=1) / counts  # (B, T, C): the running mean


@pytest.mark.parametrize("way", WAYS)
def test_masked_average(way):
    average = getattr(ex, way)
    x = torch.randn(2, 8, 3, generator=torch.Generator().manual_seed(0))  # (B, T, C)
    out = average(x)
    want = expected(x)
    if isinstance(out, torch.Tensor) and out.shape == want.shape:
        full = x.mean(dim=1, keepdim=True).expand_as(x)  # every position averaging the whole row
        expect(not close_to(out, full),
               f"{way}: every position got the average of the whole row, future included. Position t may only "
               f"see 0..t: the weights above the diagonal must be 0 (or -inf before a softmax).")
        expect(close_to(out[:, 0], x[:, 0]),
               f"{way}: position 0 sees only itself, so out[:, 0] should equal x[:, 0]. Yours starts "
               f"{[round(v, 3) for v in out[0, 0].tolist()]}, x starts {[round(v, 3) for v in x[0, 0].tolist()]}.")
        expect(not close_to(out, x.cumsum(dim=1)),
               f"{way}: each position holds the sum of positions 0..t, not their mean; divide by t + 1 "
               f"(in the matmul: each row of weights should sum to 1).")
    same(out, want, f"{way}(x) for x of shape (2, 8, 3)",
         "out[b, t] should be x[b, : t + 1].mean(dim=0).")
    x1 = x[:, :5]
    same(average(x1), expected(x1), f"{way}(x) for a shorter x, (2, 5, 3)",
         "Build the (T, T) weights from x's own T, not a fixed size.")
