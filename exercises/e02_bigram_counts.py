"""Exercise 2: count the bigram table, then watch bigram_v1 learn the same thing.

Stage: bigram_v1.py    Note: ../notes/v1-to-v2.md (and ../notes/reading-the-loss.md, the bigram floor)
Check: python -m pytest exercises -k bigram_counts
Hints: a failing check shows one; add --hints 2 (the calls), or --hints 3 (the answer).

Task. A bigram model predicts the next character from the current one alone, so the best it can do on
a text is to know how often each character follows each other one. Count it:

  count_bigrams(ids, vocab_size) -> counts, a (vocab_size, vocab_size) float tensor
      counts[a, b] = how many times token b comes right after token a in ids (a 1-D tensor).

  bigram_probs(counts, alpha) -> probs, the same shape
      each row turned into probabilities: (counts + alpha), divided by its row's sum. alpha > 0 is
      "add-alpha smoothing": a pair never seen still gets a little probability.

  mean_nll(probs, ids) -> a float: the mean of -log probs[a, b] over every consecutive pair (a, b) in ids.
      This is the loss a bigram model with these probabilities gets on ids, in nats.

The check then trains bigram_v1 on the same text and compares: its loss can come close to your counted
table's, never below it, and its softmaxed rows end up as your counted rows.
"""

import torch  # noqa: F401  (you will want it)


def count_bigrams(ids, vocab_size):
    raise NotImplementedError("not done yet: count_bigrams(ids, vocab_size)")


def bigram_probs(counts, alpha):
    raise NotImplementedError("not done yet: bigram_probs(counts, alpha)")


def mean_nll(probs, ids):
    raise NotImplementedError("not done yet: mean_nll(probs, ids)")
