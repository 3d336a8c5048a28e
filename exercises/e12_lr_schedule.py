"""Exercise 12: the learning-rate schedule of the training loop, warmup then cosine decay.

Stage: runner/loop.py (every stage trains with it)    Note: ../notes/training-loop.md
Check: python -m pytest exercises -k lr_schedule
Hints: a failing check shows one; add --hints 2 (the calls), or --hints 3 (the answer).

Task. The lecture trains at one constant learning rate. runner/loop.py sets it every step instead:

  lr_at(step, lr, warmup_iters, max_iters, min_ratio=0.1) -> a float
      warmup   for step < warmup_iters, rise in a straight line: lr * (step + 1) / warmup_iters, so
               step 0 already trains a little and step warmup_iters - 1 reaches lr.
      decay    from warmup_iters to max_iters, follow half a cosine from lr down to min_ratio * lr:
               progress p = (step - warmup_iters) / (max_iters - warmup_iters), and
               lr_at = lr * (min_ratio + (1 - min_ratio) * 0.5 * (1 + cos(pi * p))).
      after    steps past max_iters stay at min_ratio * lr.

The check compares yours with runner.lr_at at every step of a short run. Why warm up at all: the first
steps' gradients come from random weights, and Adam's running averages have not settled yet.
"""

import math  # noqa: F401  (you will want it)


def lr_at(step, lr, warmup_iters, max_iters, min_ratio=0.1):
    raise NotImplementedError("not done yet: lr_at(step, lr, warmup_iters, max_iters, min_ratio)")
