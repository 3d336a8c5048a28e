"""Checks for exercise 12 (exercises/e12_lr_schedule.py): your schedule against runner.lr_at."""

import math

import runner

from .common import Hint, expect, load

ex = load("e12_lr_schedule")

ANSWER = ("if step < warmup_iters: return lr * (step + 1) / warmup_iters; "
          "p = min(1.0, (step - warmup_iters) / max(1, max_iters - warmup_iters)); "
          "return lr * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * p)))")
HINTS = {"lr_at": Hint(
    "Find out first which of the three phases the step is in. The phases must meet: the warmup ends where the "
    "cosine starts, and the cosine's end is where the schedule stays.",
    "`math.cos` and `math.pi`; `min(1.0, p)` keeps the steps after max_iters at the end; "
    "`max(1, max_iters - warmup_iters)` keeps a schedule with no decay phase from dividing by zero.",
    ANSWER)}

CONFIGS = [dict(lr=3e-3, warmup_iters=10, max_iters=50), dict(lr=1.0, warmup_iters=0, max_iters=20),
           dict(lr=0.1, warmup_iters=5, max_iters=5)]


NO_PLUS_ONE = Hint("the warmup line starts at 0 instead of one step up it, so step 0 is wasted.",
                   "`lr * (step + 1) / warmup_iters`.", ANSWER)
TO_ZERO = Hint("the cosine ends at 0, not at min_ratio * lr: half a cosine from 1 to 0 has to be squeezed into the "
               "range from 1 to min_ratio.", "`min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * p))`.",
               ANSWER)
NO_CLAMP = Hint("past max_iters the schedule goes on along the cosine and climbs back up; it should stay at "
                "min_ratio * lr.", "`p = min(1.0, ...)`.", ANSWER)


def slipped(step, lr, warmup, total, min_ratio, slip):
    """runner.lr_at with one of the usual slips, to say which one was made."""
    if step < warmup:
        return lr * (step if slip == "no_plus_one" else step + 1) / warmup
    p = (step - warmup) / max(1, total - warmup)
    p = p if slip == "no_clamp" else min(1.0, p)
    floor = 0.0 if slip == "to_zero" else min_ratio
    return lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * p)))


def diagnosis():
    """The Hint of the slip the learner's lr_at makes on every step of CONFIGS, or the general one."""
    for slip, hint in (("no_plus_one", NO_PLUS_ONE), ("to_zero", TO_ZERO), ("no_clamp", NO_CLAMP)):
        if all(math.isclose(ex.lr_at(step, c["lr"], c["warmup_iters"], c["max_iters"], runner.MIN_LR_RATIO),
                            slipped(step, c["lr"], c["warmup_iters"], c["max_iters"], runner.MIN_LR_RATIO, slip),
                            rel_tol=1e-9, abs_tol=1e-12)
               for c in CONFIGS for step in range(c["max_iters"] + 5)):
            return hint
    return HINTS["lr_at"]


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
                   f"with {cfg}: lr_at({step}) should be {want:.6g}, yours is {mine}. {where_wrong(step, cfg)}.",
                   diagnosis())


def test_lr_schedule_landmarks():
    lr, warmup, total = 3e-3, 10, 50
    expect(ex.lr_at(0, lr, warmup, total) > 0, "step 0 has a learning rate of 0.", diagnosis())
    expect(math.isclose(ex.lr_at(warmup, lr, warmup, total), lr),
           f"at step warmup_iters = {warmup} the decay starts from the full lr = {lr}.", diagnosis())
    expect(math.isclose(ex.lr_at(total, lr, warmup, total), 0.1 * lr),
           f"at max_iters the schedule should end at min_ratio * lr = {0.1 * lr:g}.", diagnosis())
