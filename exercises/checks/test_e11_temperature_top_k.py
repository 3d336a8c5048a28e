"""Checks for exercise 11 (exercises/e11_temperature_top_k.py): temperature and top-k probabilities."""

import torch
from torch.nn import functional as F

from .common import close_to, expect, load, same

ex = load("e11_temperature_top_k")

V = 65


def some_logits():
    return 2.0 * torch.randn(3, V, generator=torch.Generator().manual_seed(0))  # (B, V), no ties


def reference(logits, temperature, top_k):
    logits = logits.double() / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        logits = logits.masked_fill(logits < torch.topk(logits, top_k).values[:, [-1]], float("-inf"))
    return F.softmax(logits, dim=-1)


def test_temperature_divides_the_logits():
    logits = some_logits()
    for t in (1.0, 0.5, 2.0):
        probs = ex.next_token_probs(logits, temperature=t)
        if t != 1.0 and isinstance(probs, torch.Tensor) and probs.shape == logits.shape:
            expect(not close_to(probs, reference(logits, 1 / t, None)),
                   f"at temperature {t} you multiplied the logits by it; divide: logits / temperature, so a low "
                   "temperature makes big differences bigger (sharper).")
            expect(not close_to(probs, F.softmax(logits.double(), dim=-1)),
                   f"temperature {t} changed nothing: divide the logits by it before the softmax.")
        same(probs, reference(logits, t, None), f"next_token_probs(logits, temperature={t})",
             "softmax(logits / temperature) over the last dimension; each row sums to 1.")
    cold, warm = ex.next_token_probs(logits, 0.5), ex.next_token_probs(logits, 2.0)
    expect(torch.equal(cold.argsort(dim=-1), warm.argsort(dim=-1)),
           "a temperature should never change the order of the characters, only how far apart they are.")


def test_temperature_zero_is_greedy():
    logits = some_logits()
    probs = ex.next_token_probs(logits, temperature=0)
    want = F.one_hot(logits.argmax(dim=-1), V).double()
    same(probs, want, "next_token_probs(logits, temperature=0)",
         "Temperature 0 is the greedy limit: probability 1 on each row's largest logit (argmax), 0 elsewhere. "
         "Dividing by 0 gives inf and nan; treat 0 on its own.")


def test_temperature_top_k_keeps_the_k_likeliest():
    logits = some_logits()
    for k in (1, 5, 10):
        probs = ex.next_token_probs(logits, temperature=1.0, top_k=k)
        if isinstance(probs, torch.Tensor) and probs.shape == logits.shape:
            kept = (probs > 0).sum(dim=-1)
            expect(torch.all(kept == k),
                   f"with top_k={k} each row should have exactly {k} characters with probability > 0; yours have "
                   f"{kept.tolist()}. Set every logit below the row's k-th largest to -inf before the softmax.")
            expect(torch.equal((probs > 0), (logits >= torch.topk(logits, k).values[:, [-1]])),
                   f"with top_k={k} the characters kept should be the {k} with the *largest* logits.")
        same(probs, reference(logits, 1.0, k), f"next_token_probs(logits, top_k={k})",
             "The kept characters' probabilities are their softmax among themselves: renormalised to sum to 1.")
    same(ex.next_token_probs(logits, temperature=0.7, top_k=5), reference(logits, 0.7, 5),
         "next_token_probs(logits, temperature=0.7, top_k=5)", "Both at once: divide, keep the top 5, softmax.")
    for k in (V, V + 10):
        same(ex.next_token_probs(logits, top_k=k), reference(logits, 1.0, None), f"next_token_probs(logits, top_k={k})",
             f"A top_k of {k} with {V} characters keeps them all (torch.topk refuses k > V: test for it first).")
