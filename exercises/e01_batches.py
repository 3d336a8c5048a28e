"""Exercise 1: from a stream of token ids to a batch of training examples.

Stage: data/ (before bigram_v1.py)    Note: ../notes/text-to-batches.md
Check: python -m pytest exercises -k batches
Hints: a failing check shows one; add --hints 2 (the calls), or --hints 3 (the answer).

Task. `data` is the whole text as one long 1-D tensor of token ids. Write

  make_batch(data, ix, block_size) -> (x, y)
      ix is a 1-D tensor of B start positions. Row b of x is the window of block_size ids that starts at
      ix[b]; row b of y is the same window moved one position to the right. Both are (B, block_size).

  examples_in_row(x_row, y_row) -> list of (context, target) pairs
      the block_size training examples hidden in one row, as the lecture prints them: the t-th pair is
      (x_row[: t + 1] as a list of ints, y_row[t] as an int).

The check compares make_batch with data.get_batch, which draws ix at random and then does the same.
"""

import torch  # noqa: F401  (you will want it)


def make_batch(data, ix, block_size):
    raise NotImplementedError("not done yet: make_batch(data, ix, block_size)")


def examples_in_row(x_row, y_row):
    raise NotImplementedError("not done yet: examples_in_row(x_row, y_row)")
