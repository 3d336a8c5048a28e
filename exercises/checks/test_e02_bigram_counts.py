"""Checks for exercise 2 (exercises/e02_bigram_counts.py): counts, probabilities, and bigram_v1 beside them."""

import math

import torch
from torch.nn import functional as F

import bigram_v1

from .common import Hint, close_to, expect, load, same, shakespeare_ids

ex = load("e02_bigram_counts")

N_CHARS = 10_000

HINTS = {
    "count_bigrams": Hint(
        "Walk the text in pairs, each token with the one right after it, and add 1 to that pair's cell.",
        "The pairs are `zip(ids[:-1], ids[1:])`; `torch.zeros(V, V)` to start; or all at once with "
        "`counts.index_put_((a, b), ones, accumulate=True)`.",
        "counts = torch.zeros(V, V); counts.index_put_((ids[:-1], ids[1:]), torch.ones(len(ids) - 1), "
        "accumulate=True)"),
    "bigram_probs": Hint(
        "Smooth first, then make every row a distribution over the next token: it must sum to 1.",
        "`counts + alpha`, then divide by `.sum(dim=1, keepdim=True)` so the division broadcasts across each row.",
        "smoothed = counts + alpha; return smoothed / smoothed.sum(dim=1, keepdim=True)"),
    "mean_nll": Hint(
        "Look up, for every consecutive pair (a, b) of the text, the probability the table gives b after a; "
        "the loss is the average of minus their logs.",
        "Fancy indexing `probs[ids[:-1], ids[1:]]` picks all of them at once; then `.log()`, `.mean()`, `.item()`.",
        "return -probs[ids[:-1], ids[1:]].log().mean().item()"),
}
TRANSPOSED = Hint(
    "your table is the transpose of the right one: row a is the current token, column b the token that "
    "follows it, so counts[a, b] counts b after a.",
    "Index with (ids[:-1], ids[1:]) in that order.", HINTS["count_bigrams"].answer)


def reference_counts(ids, V):
    counts = torch.zeros(V, V, dtype=torch.float64)
    for a, b in zip(ids[:-1].tolist(), ids[1:].tolist()):
        counts[a, b] += 1
    return counts


def first_wrong():
    """The hint of the first of the three functions that is wrong (the trained-model check uses all three)."""
    ids, tok = shakespeare_ids(N_CHARS)
    want = reference_counts(ids, tok.vocab_size)
    counts = ex.count_bigrams(ids, tok.vocab_size)
    if close_to(counts, want.T) and not close_to(counts, want):
        return TRANSPOSED
    if not close_to(counts, want):
        return HINTS["count_bigrams"]
    smoothed = want + 0.5
    if not close_to(ex.bigram_probs(want, 0.5), smoothed / smoothed.sum(1, keepdim=True)):
        return HINTS["bigram_probs"]
    return HINTS["mean_nll"]


def test_bigram_counts_count_every_pair():
    ids, tok = shakespeare_ids(N_CHARS)
    V = tok.vocab_size
    counts = ex.count_bigrams(ids, V)
    want = reference_counts(ids, V)
    if isinstance(counts, torch.Tensor) and counts.shape == want.shape:
        expect(not close_to(counts, want.T) or close_to(counts, want), "counts is transposed.", TRANSPOSED)
        expect(abs(counts.double().sum().item() - (len(ids) - 1)) < 0.5,
               f"a text of {len(ids)} tokens has {len(ids) - 1} consecutive pairs, so the counts should add "
               f"up to {len(ids) - 1}; yours add up to {counts.double().sum().item():g}.", HINTS["count_bigrams"])
    same(counts, want, "counts", HINTS["count_bigrams"])


def test_bigram_counts_rows_become_probabilities():
    ids, tok = shakespeare_ids(N_CHARS)
    V = tok.vocab_size
    counts = reference_counts(ids, V)
    for alpha in (1.0, 0.1):
        probs = ex.bigram_probs(counts, alpha)
        if isinstance(probs, torch.Tensor) and probs.shape == counts.shape:
            sums = probs.double().sum(dim=1)
            expect(torch.allclose(sums, torch.ones_like(sums)),
                   f"with alpha={alpha} every row should sum to 1 (it is a distribution over the next token); "
                   f"row 0 sums to {sums[0].item():.4g}.", HINTS["bigram_probs"])
        smoothed = counts + alpha
        same(probs, smoothed / smoothed.sum(1, keepdim=True), f"bigram_probs(counts, alpha={alpha})",
             HINTS["bigram_probs"])


def test_bigram_counts_mean_nll_is_the_loss():
    ids, tok = shakespeare_ids(N_CHARS)
    probs = torch.softmax(torch.randn(tok.vocab_size, tok.vocab_size, generator=torch.Generator().manual_seed(0)), 1)
    nll = ex.mean_nll(probs, ids)
    want = F.nll_loss(probs.log()[ids[:-1]], ids[1:]).item()
    expect(isinstance(nll, (float, torch.Tensor)) and math.isclose(float(nll), want, rel_tol=1e-4),
           f"mean_nll should be {want:.4f} nats for these probabilities (what F.cross_entropy would say); "
           f"yours is {nll}, over the {len(ids) - 1} pairs (a, b) = (ids[t], ids[t+1]).", HINTS["mean_nll"])


def test_bigram_counts_trained_bigram_v1_learns_the_counted_table():
    ids, tok = shakespeare_ids(N_CHARS)
    V = tok.vocab_size
    counts = ex.count_bigrams(ids, V)
    counted = ex.mean_nll(ex.bigram_probs(counts, 0.0), ids)  # alpha = 0: the table fitted to this text

    torch.manual_seed(0)
    model = bigram_v1.BigramLanguageModel(V)
    optimizer = torch.optim.Adam(model.parameters(), lr=1.0)  # the whole text every step: a big rate is safe
    for _ in range(100):
        _, loss = model(ids[None, :-1], ids[None, 1:])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        trained = model(ids[None, :-1], ids[None, 1:])[1].item()
        learned = F.softmax(model.token_embedding_table.weight.double(), dim=1)  # (V, V): each row's next-token odds
    expect(trained >= float(counted) - 1e-4,
           f"bigram_v1 trained to a loss of {trained:.4f}, below your counted table's {float(counted):.4f}. "
           f"No bigram model can beat the counted frequencies on the text they were counted on.", first_wrong())
    expect(trained - float(counted) < 0.01,
           f"bigram_v1 reached {trained:.4f} nats; your counted table gets {float(counted):.4f}. They should "
           f"agree within 0.01: training pushes the table towards the counted frequencies.", first_wrong())
    frequent = counts.double().sum(1) > 200  # rows with enough pairs to be learned well in 100 steps
    probs = counts.double() / counts.double().sum(1, keepdim=True).clamp(min=1)
    same(learned[frequent], probs[frequent], "softmax(bigram_v1's table) on the frequent rows, against your counted "
         "rows (after training they should agree)", first_wrong(), atol=0.02, rtol=0)
