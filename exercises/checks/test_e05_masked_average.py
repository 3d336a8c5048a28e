"""Checks for exercise 5 (exercises/e05_masked_average.py): three ways, one answer."""

import torch

from .common import Hint, close_to, expect, load, same

ex = load("e05_masked_average")

HINTS = {
    "average_loops": Hint(
        "For every row b and position t, take the vectors of positions 0..t (t + 1 of them) and average them.",
        "`torch.zeros_like(x)` for the output, `x[b, : t + 1]` for the past, `.mean(dim=0)`.",
        "out = torch.zeros_like(x); for b in range(B): for t in range(T): out[b, t] = x[b, : t + 1].mean(dim=0)"),
    "average_tril_matmul": Hint(
        "Row t of a (T, T) weight matrix says how much position t takes from each position: equal shares of "
        "0..t, nothing after. Then one matrix product does every average at once.",
        "`torch.tril(torch.ones(T, T))`, divided by its row sums (`.sum(dim=1, keepdim=True)`), then `wei @ x`: "
        "(T, T) @ (B, T, C) broadcasts over B.",
        "wei = torch.tril(torch.ones(T, T)); wei = wei / wei.sum(dim=1, keepdim=True); return wei @ x"),
    "average_masked_softmax": Hint(
        "Start with equal scores for everything; make the future impossible before the softmax, and the "
        "softmax shares the weight equally among what is left.",
        "`torch.zeros(T, T)`, `wei.masked_fill(torch.tril(torch.ones(T, T)) == 0, float('-inf'))`, "
        "`F.softmax(wei, dim=-1)`, `wei @ x`.",
        "wei = torch.zeros(T, T).masked_fill(torch.tril(torch.ones(T, T)) == 0, float('-inf')); "
        "return F.softmax(wei, dim=-1) @ x"),
}


def mistakes(x, way):
    answer = HINTS[way].answer
    full = x.mean(dim=1, keepdim=True).expand_as(x)  # every position averaging the whole row
    return [
        (full, Hint("every position got the average of the whole row, future included: position t may only see "
                    "0..t.", "The weights above the diagonal must be 0 (or -inf before a softmax): `torch.tril`.",
                    answer)),
        (x.cumsum(dim=1), Hint("each position holds the sum of positions 0..t, not their mean.",
                               "Divide by t + 1; in a matmul, each row of weights should sum to 1 "
                               "(`wei / wei.sum(dim=1, keepdim=True)`).", answer)),
        (x.flip(1).cumsum(dim=1).flip(1) / torch.arange(x.shape[1], 0, -1)[None, :, None],
         Hint("each position averaged itself and the positions *after* it: the mask is the wrong triangle.",
              "`torch.tril` keeps the lower triangle (on and below the diagonal); `torch.triu` the upper.", answer)),
    ]


def expected(x):
    counts = torch.arange(1, x.shape[1] + 1, dtype=x.dtype)[None, :, None]  # (1, T, 1): t + 1 positions
    return x.cumsum(dim=1) / counts  # (B, T, C): the running mean


def check(way):
    average = getattr(ex, way)
    x = torch.randn(2, 8, 3, generator=torch.Generator().manual_seed(0))  # (B, T, C)
    out = average(x)
    want = expected(x)
    for output, hint in mistakes(x, way):
        expect(not close_to(out, output), f"{way}(x) is not the running mean.", hint)
    expect(not isinstance(out, torch.Tensor) or out.shape != want.shape or close_to(out[:, 0], x[:, 0]),
           f"{way}: position 0 sees only itself, so out[:, 0] should equal x[:, 0]. Yours starts "
           f"{[round(v, 3) for v in out[0, 0].tolist()]}, x starts {[round(v, 3) for v in x[0, 0].tolist()]}.",
           HINTS[way])
    same(out, want, f"{way}(x) for x of shape (2, 8, 3): out[b, t] should be x[b, : t + 1].mean(dim=0)", HINTS[way])
    x1 = x[:, :5]
    same(average(x1), expected(x1), f"{way}(x) for a shorter x, (2, 5, 3), where T is 5",
         Hint("Build the (T, T) weights from x's own T, not a fixed size.", "`T = x.shape[1]`.", HINTS[way].answer))


def test_masked_average_loops():
    check("average_loops")


def test_masked_average_tril_matmul():
    check("average_tril_matmul")


def test_masked_average_masked_softmax():
    check("average_masked_softmax")
