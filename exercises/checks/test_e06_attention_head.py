"""Checks for exercise 6 (exercises/e06_attention_head.py): your head against bigram_v3.Head."""

import torch
from torch.nn import functional as F

import bigram_v3

from .common import close_to, expect, load, same

ex = load("e06_attention_head")

C, HEAD_SIZE, BLOCK = 16, 4, 8


def variant(x, head, scale=True, mask=True, dim=-1, swap_qk=False):
    """bigram_v3's head, or one of the usual mistakes, to say which one was made."""
    k, q, v = head.key(x), head.query(x), head.value(x)
    if swap_qk:
        q, k = k, q
    wei = q @ k.transpose(-2, -1) * (HEAD_SIZE**-0.5 if scale else 1.0)
    if mask:
        T = x.shape[1]
        wei = wei.masked_fill(torch.tril(torch.ones(T, T)) == 0, float("-inf"))
    return F.softmax(wei, dim=dim) @ v


MISTAKES = [
    (dict(scale=False), "the scores are not scaled: multiply q @ k^T by head_size ** -0.5 (why: notes/v2-to-v3.md)."),
    (dict(mask=False), "nothing is masked, so position t sees the future: fill the scores above the diagonal "
                       "with -inf before the softmax."),
    (dict(dim=-2), "the softmax runs down the columns (dim=-2 or dim=1); each *row* t is position t's weights, "
                   "so softmax over dim=-1."),
    (dict(swap_qk=True), "queries and keys are swapped: the scores are q @ k^T with q = x @ w_query.T, so row t "
                         "holds how much position t's query matches every key."),
]


def a_head_and_input(T=BLOCK):
    torch.manual_seed(0)
    head = bigram_v3.Head(C, HEAD_SIZE, BLOCK)
    x = torch.randn(2, T, C)  # (B, T, C)
    return head, x


@torch.no_grad()
def test_attention_head_matches_bigram_v3():
    head, x = a_head_and_input()
    out = ex.attention_head(x, head.key.weight, head.query.weight, head.value.weight)
    want = head(x)
    if isinstance(out, torch.Tensor) and out.shape == want.shape and not close_to(out, want):
        for kwargs, message in MISTAKES:
            expect(not close_to(out, variant(x, head, **kwargs)), message)
    same(out, want, "attention_head(x, ...) for x of shape (2, 8, 16)",
         "Compare with bigram_v3.Head.forward line by line: k, q, scaled scores, mask, softmax, @ v.")


@torch.no_grad()
def test_attention_head_cannot_see_the_future():
    head, x = a_head_and_input()
    changed = x.clone()
    changed[:, -1] += 10.0  # only the last position changes
    before = ex.attention_head(x, head.key.weight, head.query.weight, head.value.weight)
    after = ex.attention_head(changed, head.key.weight, head.query.weight, head.value.weight)
    same(after[:, :-1], before[:, :-1], "the outputs of positions 0..T-2 after changing only position T-1",
         "An earlier position must not depend on a later one: mask the scores above the diagonal.")


@torch.no_grad()
def test_attention_head_works_for_any_length():
    head, x = a_head_and_input(T=3)
    same(ex.attention_head(x, head.key.weight, head.query.weight, head.value.weight), head(x),
         "attention_head(x, ...) for a shorter x, (2, 3, 16)", "Build the mask from x's own T.")
