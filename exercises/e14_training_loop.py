"""Exercise 14: the training loop and its loss estimate, as the lecture writes them.

Stage: runner/loop.py (every stage trains with it)    Note: ../notes/training-loop.md
Check: python -m pytest exercises -k training_loop
Hints: a failing check shows one; add --hints 2 (the calls), or --hints 3 (the answer).

Task. The lecture's loop is fifteen lines: every so often estimate the loss, then batch, forward,
zero_grad, backward, step. runner/loop.py runs the same loop with bookkeeping around it. Write the two
pieces yourself:

  estimate_loss(model, splits, cfg, seed=0) -> {"train": float, "val": float}
      splits is {"train": ids, "val": ids} (1-D tensors of token ids); cfg holds "eval_iters", "batch_size"
      and "block_size". For each split: the mean loss over eval_iters batches drawn with
      data.get_batch(ids, batch_size, block_size, generator=g), where g is a fresh
      torch.Generator().manual_seed(seed) for each split, so every call measures the same batches (this is
      how runner.estimate_loss draws them, and the check compares yours with it). Measure the model as it
      is: dropout off, and no graph built for a backward pass that never comes. Leave the model in
      training mode when done.

  train(model, optimizer, train_data, cfg, generator) -> a list of cfg["max_iters"] floats
      cfg["max_iters"] steps of the lecture's loop on train_data, each batch drawn with
      get_batch(train_data, cfg["batch_size"], cfg["block_size"], generator=generator). Return every
      step's training loss as a float.

The check compares estimate_loss with runner.estimate_loss, train with the lecture's loop step by step,
and then trains a tiny GPT with both of yours to see the loss go down.
"""

import torch  # noqa: F401  (you will want it)

from data import get_batch  # noqa: F401


def estimate_loss(model, splits, cfg, seed=0):
    raise NotImplementedError("not done yet: estimate_loss(model, splits, cfg, seed)")


def train(model, optimizer, train_data, cfg, generator):
    raise NotImplementedError("not done yet: train(model, optimizer, train_data, cfg, generator)")
