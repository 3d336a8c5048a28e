"""Checks for exercise 11 (exercises/e11_temperature_top_k.py): temperature and top-k probabilities."""

import torch
from torch.nn import functional as F

from .common import Hint, close_to, expect, load, same

ex = load("e11_temperature_top_k")

V = 65

ANSWER = ("if temperature == 0: return F.one_hot(logits.argmax(dim=-1), V).float(); logits = logits / temperature; "
          "if top_k is not None and top_k < V: kth = torch.topk(logits, top_k).values[:, [-1]]; "
          "logits = logits.masked_fill(logits < kth, float('-inf')); return F.softmax(logits, dim=-1)")
HINTS = {"next_token_probs": Hint(
    "Three steps in order: reshape the logits with the temperature, knock out all but the k likeliest, turn "
    "what is left into probabilities. Temperature 0 cannot be divided by: what is its limit?",
    "`logits / temperature`; `torch.topk(logits, k).values` for the k-th largest; `masked_fill(..., "
    "float('-inf'))`; `F.softmax(..., dim=-1)`; `argmax` and `F.one_hot` for temperature 0.",
    ANSWER)}
MULTIPLIED = Hint(
    "you multiplied the logits by the temperature; dividing makes a low temperature sharpen the distribution.",
    "`logits / temperature`.", ANSWER)
IGNORED = Hint("the temperature changed nothing: it must reshape the logits before the softmax.",
               "`F.softmax(logits / temperature, dim=-1)`.", ANSWER)


def some_logits():
    return 2.0 * torch.randn(3, V, generator=torch.Generator().manual_seed(0))  # (B, V), no ties


def reference(logits, temperature, top_k):
    logits = logits.double() / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        logits = logits.masked_fill(logits < torch.topk(logits, top_k).values[:, [-1]], float("-inf"))
    return F.softmax(logits, dim=-1)


SMALLEST = Hint("you kept the k *smallest* logits.", "Compare with the k-th *largest*: "
                "`torch.topk(logits, k).values[:, [-1]]`, and mask what is below it.", ANSWER)
AFTER_SOFTMAX = Hint("the tail's probabilities were set to 0 after the softmax, so the kept ones no longer sum to 1.",
                     "Mask the *logits* with -inf before `F.softmax`.", ANSWER)


def diagnosis():
    """The Hint of the mistake next_token_probs makes, or the general one."""
    logits = some_logits()
    hot = ex.next_token_probs(logits, temperature=0.5)
    if close_to(hot, reference(logits, 2.0, None)):
        return MULTIPLIED
    if close_to(hot, reference(logits, 1.0, None)):
        return IGNORED
    top = ex.next_token_probs(logits, temperature=1.0, top_k=5)
    kth_smallest = torch.topk(logits.double(), 5, largest=False).values[:, [-1]]  # (B, 1)
    if close_to(top, F.softmax(logits.double().masked_fill(logits > kth_smallest, float("-inf")), dim=-1)):
        return SMALLEST
    if close_to(top, F.softmax(logits.double(), dim=-1).masked_fill(reference(logits, 1.0, 5) == 0, 0.0)):
        return AFTER_SOFTMAX
    return HINTS["next_token_probs"]


def test_temperature_divides_the_logits():
    logits = some_logits()
    for t in (1.0, 0.5, 2.0):
        probs = ex.next_token_probs(logits, temperature=t)
        if t != 1.0 and isinstance(probs, torch.Tensor) and probs.shape == logits.shape:
            expect(not close_to(probs, reference(logits, 1 / t, None)), f"temperature {t} went the wrong way.",
                   MULTIPLIED)
            expect(not close_to(probs, F.softmax(logits.double(), dim=-1)), f"temperature {t} did nothing.", IGNORED)
        same(probs, reference(logits, t, None), f"next_token_probs(logits, temperature={t})", diagnosis())
    cold, warm = ex.next_token_probs(logits, 0.5), ex.next_token_probs(logits, 2.0)
    expect(torch.equal(cold.argsort(dim=-1), warm.argsort(dim=-1)),
           "a temperature should never change the order of the characters, only how far apart they are.",
           diagnosis())


def test_temperature_zero_is_greedy():
    logits = some_logits()
    probs = ex.next_token_probs(logits, temperature=0)
    want = F.one_hot(logits.argmax(dim=-1), V).double()
    same(probs, want, "next_token_probs(logits, temperature=0)",
         Hint("temperature 0 is the greedy limit: probability 1 on each row's largest logit, 0 elsewhere. Dividing "
              "by 0 gives inf and nan, so it needs a branch of its own.",
              "`if temperature == 0:` then `logits.argmax(dim=-1)` and `F.one_hot(..., V)`.", ANSWER))


def test_temperature_top_k_keeps_the_k_likeliest():
    logits = some_logits()
    for k in (1, 5, 10):
        probs = ex.next_token_probs(logits, temperature=1.0, top_k=k)
        if isinstance(probs, torch.Tensor) and probs.shape == logits.shape:
            kept = (probs > 0).sum(dim=-1)
            expect(torch.all(kept == k),
                   f"with top_k={k} each row should have exactly {k} characters with probability > 0; yours have "
                   f"{kept.tolist()}.", diagnosis())
            expect(torch.equal((probs > 0), (logits >= torch.topk(logits, k).values[:, [-1]])),
                   f"with top_k={k} the characters kept should be the {k} with the *largest* logits.", SMALLEST)
            zeroed = F.softmax(logits.double(), dim=-1).masked_fill(probs == 0, 0.0)
            expect(not close_to(probs, zeroed), f"with top_k={k} the kept probabilities do not sum to 1.",
                   AFTER_SOFTMAX)
        same(probs, reference(logits, 1.0, k), f"next_token_probs(logits, top_k={k})", diagnosis())
    same(ex.next_token_probs(logits, temperature=0.7, top_k=5), reference(logits, 0.7, 5),
         "next_token_probs(logits, temperature=0.7, top_k=5): both at once", diagnosis())
    for k in (V, V + 10):
        same(ex.next_token_probs(logits, top_k=k), reference(logits, 1.0, None), f"next_token_probs(logits, "
             f"top_k={k}): a top_k of {k} with {V} characters keeps them all",
             Hint("a top_k as large as the vocabulary, or larger, keeps everything.", "torch.topk refuses k > V: "
                  "`if top_k is not None and top_k < logits.shape[-1]:` first.", ANSWER))
