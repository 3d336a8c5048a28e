"""SOLUTION to exercise 1 (exercises/e01_batches.py). A spoiler: try the exercise first."""

import torch


def make_batch(data, ix, block_size):
    x = torch.stack([data[i : i + block_size] for i in ix])  # (B, T)
    y = torch.stack([data[i + 1 : i + block_size + 1] for i in ix])  # (B, T): each the next token
    return x, y


def examples_in_row(x_row, y_row):
    # one window of T tokens holds T examples: every prefix, with the token that follows it
    return [(x_row[: t + 1].tolist(), y_row[t].item()) for t in range(len(x_row))]
