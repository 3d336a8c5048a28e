"""SOLUTION to exercise 2 (exercises/e02_bigram_counts.py). A spoiler: try the exercise first."""

import torch


def count_bigrams(ids, vocab_size):
    counts = torch.zeros(vocab_size, vocab_size)  # (V, V): row = this token, column = the next one
    counts.index_put_((ids[:-1], ids[1:]), torch.ones(len(ids) - 1), accumulate=True)
    return counts


def bigram_probs(counts, alpha):
    smoothed = counts + alpha  # (V, V)
    return smoothed / smoothed.sum(dim=1, keepdim=True)  # (V, V) / (V, 1): each row sums to 1


def mean_nll(probs, ids):
    return -probs[ids[:-1], ids[1:]].log().mean().item()  # the probability of each actual next token
