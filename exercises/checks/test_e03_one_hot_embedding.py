"""Checks for exercise 3 (exercises/e03_one_hot_embedding.py): one-hot @ W against nn.Embedding."""

import torch
import torch.nn as nn

from .common import expect, load, same

ex = load("e03_one_hot_embedding")

V, C = 65, 8


def an_embedding_and_ids():
    torch.manual_seed(0)
    emb = nn.Embedding(V, C)
    idx = torch.tensor([[5, 7, 5, 0], [64, 7, 7, 1]])  # (B, T) = (2, 4): repeats, and most ids absent
    return emb, idx


def test_one_hot_matmul_equals_the_lookup():
    emb, idx = an_embedding_and_ids()
    weight = emb.weight.detach().clone().requires_grad_(True)
    out = ex.lookup_by_matmul(idx, weight)
    same(out, emb(idx), "lookup_by_matmul(idx, weight)",
         "Position (b, t) should hold row idx[b, t] of weight: one_hot(idx, V).float() @ weight.")


def test_one_hot_matmul_gets_the_lookups_gradient():
    emb, idx = an_embedding_and_ids()
    weight = emb.weight.detach().clone().requires_grad_(True)
    signal = torch.randn(2, 4, C, generator=torch.Generator().manual_seed(1))  # any loss: sum(out * signal)
    (emb(idx) * signal).sum().backward()
    out = ex.lookup_by_matmul(idx, weight)
    expect(isinstance(out, torch.Tensor) and out.requires_grad,
           "the result does not depend on weight for autograd: no .detach(), no torch.no_grad(), no new "
           "tensor built from .tolist(); multiply by weight itself.")
    (out * signal).sum().backward()
    same(weight.grad, emb.weight.grad, "the gradient of weight through lookup_by_matmul",
         "It should equal nn.Embedding's: the same function has the same gradient.")


def test_one_hot_gradient_by_hand():
    emb, idx = an_embedding_and_ids()
    grad_out = torch.randn(2, 4, C, generator=torch.Generator().manual_seed(2))
    emb(idx).backward(grad_out)  # autograd's answer
    mine = ex.lookup_grad(idx, grad_out, V)
    if isinstance(mine, torch.Tensor) and mine.shape == (V, C):
        expect(torch.all(mine[3] == 0),
               "token 3 never occurs in idx, so row 3 of the table took no part in the output: its gradient "
               "must be exactly zero. A lookup only trains the rows it looked up.")
        twice = grad_out[0, 0] + grad_out[0, 2]  # token 5 sits at (0, 0) and (0, 2)
        want, got = [round(v, 4) for v in twice.tolist()[:3]], [round(v, 4) for v in mine[5].tolist()[:3]]
        expect(torch.allclose(mine[5], twice, atol=1e-6),
               "token 5 occurs twice, at (0, 0) and (0, 2): its row gets the sum of both positions' gradients, "
               f"starting {want}; yours starts {got}")
    same(mine, emb.weight.grad, "lookup_grad(idx, grad_out, V)",
         "Row v should be the sum of grad_out[b, t] over the positions where idx[b, t] == v.")
