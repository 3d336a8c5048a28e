"""Checks for exercise 6 (exercises/e06_attention_head.py): your head against bigram_v3.Head.

Every check first asks which of the usual mistakes the head makes (diagnosis()), so that every failure
names the mistake actually made: a head that forgot the scale never gets the hint about the mask.
"""

import torch
from torch.nn import functional as F

import bigram_v3

from .common import Hint, load, same, which_mistake

ex = load("e06_attention_head")

C, HEAD_SIZE, BLOCK = 16, 4, 8

ANSWER = ("k, q, v = x @ w_key.T, x @ w_query.T, x @ w_value.T; "
          "scores = q @ k.transpose(-2, -1) * k.shape[-1] ** -0.5; "
          "scores = scores.masked_fill(torch.tril(torch.ones(T, T)) == 0, float('-inf')); "
          "return F.softmax(scores, dim=-1) @ v")
HINTS = {"attention_head": Hint(
    "It is exercise 5's masked softmax with the zeros replaced by scores: how well each position's query "
    "matches every key. Write the four steps of the task one line each, and keep the shapes in a comment.",
    "`x @ w.T` for k, q and v; `k.transpose(-2, -1)`; `torch.tril(torch.ones(T, T))` with `masked_fill(..., "
    "float('-inf'))`; `F.softmax(..., dim=-1)`.",
    ANSWER)}

MISTAKES = [
    (dict(scale=False), Hint(
        "the scores are not scaled: q @ k^T grows with head_size, and an unscaled softmax gets too peaked "
        "(why: notes/v2-to-v3.md).", "Multiply the scores by `head_size ** -0.5` (head_size is `k.shape[-1]`).",
        ANSWER)),
    (dict(scale="C"), Hint(
        "the scores are scaled by the embedding width C; the scale belongs to the vectors being multiplied, "
        "q and k, which are head_size wide.", "`k.shape[-1] ** -0.5`, not `x.shape[-1] ** -0.5`.", ANSWER)),
    (dict(mask=False), Hint(
        "nothing is masked, so position t sees the future.",
        "`scores.masked_fill(torch.tril(torch.ones(T, T)) == 0, float('-inf'))` before the softmax.", ANSWER)),
    (dict(mask="after"), Hint(
        "the future is masked after the softmax: its weights are gone, but the rows no longer sum to 1.",
        "Mask the scores with -inf *before* `F.softmax`, so the softmax shares the weight among 0..t.", ANSWER)),
    (dict(dim=-2), Hint(
        "the softmax runs down the columns; each *row* t holds position t's weights and should sum to 1.",
        "`F.softmax(scores, dim=-1)`.", ANSWER)),
    (dict(swap_qk=True), Hint(
        "queries and keys are swapped: row t of the scores should hold how well position t's *query* matches "
        "every key.", "`q = x @ w_query.T`, `k = x @ w_key.T`, scores `q @ k.transpose(-2, -1)`.", ANSWER)),
]


def variant(x, head, scale=True, mask=True, dim=-1, swap_qk=False):
    """bigram_v3's head, or one of the usual mistakes, to say which one was made."""
    k, q, v = head.key(x), head.query(x), head.value(x)
    if swap_qk:
        q, k = k, q
    factor = {True: HEAD_SIZE**-0.5, False: 1.0, "C": C**-0.5}[scale]
    wei = q @ k.transpose(-2, -1) * factor
    T = x.shape[1]
    future = torch.tril(torch.ones(T, T)) == 0
    if mask is True:
        wei = wei.masked_fill(future, float("-inf"))
    wei = F.softmax(wei, dim=dim)
    if mask == "after":
        wei = wei.masked_fill(future, 0.0)
    return wei @ v


def a_head_and_input(T=BLOCK):
    torch.manual_seed(0)
    head = bigram_v3.Head(C, HEAD_SIZE, BLOCK)
    x = torch.randn(2, T, C)  # (B, T, C)
    return head, x


def mine(head, x):
    return ex.attention_head(x, head.key.weight, head.query.weight, head.value.weight)


@torch.no_grad()
def diagnosis():
    """The Hint of the mistake the learner's head makes, or the general one."""
    head, x = a_head_and_input()
    out = mine(head, x)
    return which_mistake(out, [(variant(x, head, **kwargs), hint) for kwargs, hint in MISTAKES]) or HINTS[
        "attention_head"]


@torch.no_grad()
def test_attention_head_matches_bigram_v3():
    head, x = a_head_and_input()
    same(mine(head, x), head(x), "attention_head(x, ...) for x of shape (2, 8, 16)", diagnosis())


@torch.no_grad()
def test_attention_head_cannot_see_the_future():
    head, x = a_head_and_input()
    changed = x.clone()
    changed[:, -1] += 10.0  # only the last position changes
    same(mine(head, changed)[:, :-1], mine(head, x)[:, :-1],
         "the outputs of positions 0..T-2 after changing only position T-1 (an earlier position must not "
         "depend on a later one)", diagnosis())


@torch.no_grad()
def test_attention_head_works_for_any_length():
    head, x = a_head_and_input(T=3)
    hint = diagnosis()
    if hint is HINTS["attention_head"]:  # right at T = 8, wrong at T = 3: a mask of a fixed size
        hint = Hint("your head is right for T = 8 and wrong for T = 3: something in it has a fixed size.",
                    "`T = x.shape[1]`, and the mask `torch.tril(torch.ones(T, T))` built from it.", ANSWER)
    same(mine(head, x), head(x), "attention_head(x, ...) for a shorter x, (2, 3, 16)", hint)
