"""SOLUTION to exercise 12 (exercises/e12_lr_schedule.py). A spoiler: try the exercise first."""

import math


def lr_at(step, lr, warmup_iters, max_iters, min_ratio=0.1):
    if step < warmup_iters:
        return lr * (step + 1) / warmup_iters  # a straight line up: step 0 is not wasted at lr = 0
    p = min(1.0, (step - warmup_iters) / max(1, max_iters - warmup_iters))  # 0 -> 1 over the decay phase
    return lr * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * p)))  # lr -> min_ratio * lr
