"""Checks for exercise 3 (exercises/e03_one_hot_embedding.py): one-hot @ W against nn.Embedding."""

import torch
import torch.nn as nn

from .common import Hint, expect, fail, load, same

ex = load("e03_one_hot_embedding")

V, C = 65, 8

HINTS = {
    "lookup_by_matmul": Hint(
        "A row of V zeros with a single 1 at place v, times a (V, C) matrix, picks out row v of the matrix. Turn "
        "every id into such a row, and keep the result connected to weight for autograd.",
        "`F.one_hot(idx, V)` gives (B, T, V) integers; `.float()`, then `@ weight`.",
        "return F.one_hot(idx, weight.shape[0]).float() @ weight  # (B, T, V) @ (V, C) -> (B, T, C)"),
    "lookup_grad": Hint(
        "Ask which positions used row v of the table: only they can send it gradient, and a row that no "
        "position looked up gets none. Write the output as a product and differentiate it by hand.",
        "`F.one_hot(idx, V).float()`, the (B, T) positions flattened into one with `.flatten(0, 1)`, a "
        "transpose `.T` and a matmul.",
        "one_hot = F.one_hot(idx, V).float().flatten(0, 1)  # (B*T, V); "
        "return one_hot.T @ grad_out.flatten(0, 1)  # (V, C): row v sums grad_out where idx == v"),
}
DETACHED = Hint(
    "the result does not depend on weight for autograd: something cut the path (.detach(), torch.no_grad(), a "
    "new tensor built from .tolist() or .item()).",
    "Only torch operations on weight itself: `F.one_hot(...).float() @ weight`.", HINTS["lookup_by_matmul"].answer)
NOT_FLOAT = Hint(
    "the matmul refused to multiply integers by floats: F.one_hot gives integer (long) tensors.",
    "`.float()` on the one-hot tensor before `@ weight`.", HINTS["lookup_by_matmul"].answer)
UNUSED_ROW = Hint(
    "token 3 never occurs in idx, so row 3 of the table took no part in the output: its gradient must be "
    "exactly zero. A lookup only trains the rows it looked up.",
    HINTS["lookup_grad"].calls, HINTS["lookup_grad"].answer)
NOT_SUMMED = Hint(
    "token 5 occurs twice, at (0, 0) and (0, 2): its row must get the sum of both positions' gradients; yours "
    "kept one of them (an assignment in a loop, or indexing, overwrites instead of adding).",
    "Add up instead of assigning: `grad[v] += ...`, `index_add_`, or the one-hot matmul.", HINTS["lookup_grad"].answer)


def an_embedding_and_ids():
    torch.manual_seed(0)
    emb = nn.Embedding(V, C)
    idx = torch.tensor([[5, 7, 5, 0], [64, 7, 7, 1]])  # (B, T) = (2, 4): repeats, and most ids absent
    return emb, idx


def lookup(idx, weight):
    """The learner's lookup_by_matmul; the usual dtype slip ends in its hint, not a traceback."""
    try:
        return ex.lookup_by_matmul(idx, weight)
    except RuntimeError as err:
        if "Long" not in str(err) and "dtype" not in str(err) and "scalar type" not in str(err):
            raise
        problem = f"lookup_by_matmul raised: {str(err).splitlines()[0]}"
    fail(problem, NOT_FLOAT)  # outside the except: pytest would print the error above as the failure's context


def test_one_hot_matmul_equals_the_lookup():
    emb, idx = an_embedding_and_ids()
    weight = emb.weight.detach().clone().requires_grad_(True)
    out = lookup(idx, weight)
    same(out, emb(idx), "lookup_by_matmul(idx, weight)", HINTS["lookup_by_matmul"])


def test_one_hot_matmul_gets_the_lookups_gradient():
    emb, idx = an_embedding_and_ids()
    weight = emb.weight.detach().clone().requires_grad_(True)
    signal = torch.randn(2, 4, C, generator=torch.Generator().manual_seed(1))  # any loss: sum(out * signal)
    (emb(idx) * signal).sum().backward()
    out = lookup(idx, weight)
    expect(isinstance(out, torch.Tensor) and out.requires_grad, "no gradient can reach weight.", DETACHED)
    (out * signal).sum().backward()
    same(weight.grad, emb.weight.grad, "the gradient of weight through lookup_by_matmul (it should equal "
         "nn.Embedding's: the same function has the same gradient)", HINTS["lookup_by_matmul"])


def test_one_hot_gradient_by_hand():
    emb, idx = an_embedding_and_ids()
    grad_out = torch.randn(2, 4, C, generator=torch.Generator().manual_seed(2))
    emb(idx).backward(grad_out)  # autograd's answer
    mine = ex.lookup_grad(idx, grad_out, V)
    if isinstance(mine, torch.Tensor) and mine.shape == (V, C):
        expect(torch.all(mine[3] == 0), "row 3 got a gradient.", UNUSED_ROW)
        twice = grad_out[0, 0] + grad_out[0, 2]  # token 5 sits at (0, 0) and (0, 2)
        want, got = [round(v, 4) for v in twice.tolist()[:3]], [round(v, 4) for v in mine[5].tolist()[:3]]
        once = any(torch.allclose(mine[5], grad_out[0, t], atol=1e-6) for t in (0, 2))
        expect(not once, f"row 5 should start {want}; yours starts {got}.", NOT_SUMMED)
        expect(torch.allclose(mine[5], twice, atol=1e-6), f"row 5 should start {want}; yours starts {got}.",
               HINTS["lookup_grad"])
    same(mine, emb.weight.grad, "lookup_grad(idx, grad_out, V)", HINTS["lookup_grad"])
