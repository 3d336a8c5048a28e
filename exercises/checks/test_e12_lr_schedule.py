"""Checks for exercise 12 (exercises/e12_lr_schedule.py): your schedule against runner.lr_at."""

import math

import runner

from .common import expect, load

ex = load("e12_lr_schedule")

CONFIGS = [dict(lr=3e-3, warmup_iters=10, max_iters=50), dict(lr=1.0, warmup_iters=0, max_iters=20),
           dict(lr=0.1, warmup_iters=5, max_iters=5)]


def where_wrong(step, cfg):
    """A sentence about which phase the step is in, for the failure message."""
    if step < cfg["warmup_iters"]:
        return f"step {step} is in the warmup (steps 0..{cfg['warmup_iters'] - 1}): lr * (step + 1) / warmup_iters"
    if step <= cfg["max_iters"]:
        return f"step {step} is in the cosine decay, from lr at step {cfg['warmup_iters']} to min_ratio * lr at " \
               f"step {cfg['max_iters']}"
    return f"step {step} is past max_iters = {cfg['max_iters']}: the schedule stays at min_ratio * lr"


def test_lr_schedule_matches_the_runner():
    for cfg in CONFIGS:
        for step in range(cfg["max_iters"] + 5):
            mine = ex.lr_at(step, cfg["lr"], cfg["warmup_iters"], cfg["max_iters"], runner.MIN_LR_RATIO)
            want = runner.lr_at(step, cfg)
            expect(isinstance(mine, (int, float)) and math.isclose(mine, want, rel_tol=1e-9, abs_tol=1e-12),
                   f"with {cfg}: lr_at({step}) should be {want:.6g}, yours is {mine}. {where_wrong(step, cfg)}.")


def test_lr_schedule_landmarks():
    lr, warmup, total = 3e-3, 10, 50
    expect(ex.lr_at(0, lr, warmup, total) > 0,
           "step 0 has a learning rate of 0, so it is wasted: the warmup line is lr * (step + 1) / warmup_iters.")
    expect(math.isclose(ex.lr_at(warmup, lr, warmup, total), lr),
           f"at step warmup_iters = {warmup} the decay starts from the full lr = {lr}.")
    expect(math.isclose(ex.lr_at(total, lr, warmup, total), 0.1 * lr),
           f"at max_iters the schedule should end at min_ratio * lr = {0.1 * lr:g}, not at 0.")
