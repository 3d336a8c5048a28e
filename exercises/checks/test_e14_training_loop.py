"""Checks for exercise 14 (exercises/e14_training_loop.py): your estimate against runner.estimate_loss, your
loop against the lecture's, step by step, and the loss going down when both of yours train a tiny GPT."""

import math

import torch

import gpt
import runner
from data import get_batch, split

from .common import Hint, expect, load, shakespeare_ids

ex = load("e14_training_loop")

SIZES = dict(n_embd=32, block_size=16, n_head=2, n_layer=1)
CFG = dict(eval_iters=4, batch_size=8, block_size=SIZES["block_size"], max_iters=25)

ESTIMATE_ANSWER = ("@torch.no_grad() above the def; model.eval(); for name, ids in splits.items(): "
                   "g = torch.Generator().manual_seed(seed); losses = [model(*get_batch(ids, cfg['batch_size'], "
                   "cfg['block_size'], generator=g))[1].item() for _ in range(cfg['eval_iters'])]; "
                   "out[name] = sum(losses) / len(losses); then model.train(); return out")
TRAIN_ANSWER = ("for _ in range(cfg['max_iters']): xb, yb = get_batch(train_data, cfg['batch_size'], "
                "cfg['block_size'], generator=generator); logits, loss = model(xb, yb); "
                "optimizer.zero_grad(set_to_none=True); loss.backward(); optimizer.step(); losses.append(loss.item())")
HINTS = {
    "estimate_loss": Hint(
        "A measurement, not a training step: switch off what only training needs (dropout, the graph for "
        "backward), draw each split's batches from a generator seeded afresh, average, and put the model back "
        "as you found it.",
        "`model.eval()` and `model.train()`; `@torch.no_grad()` (or `with torch.no_grad():`); "
        "`torch.Generator().manual_seed(seed)`; `get_batch(ids, B, T, generator=g)`; `model(xb, yb)[1].item()`.",
        ESTIMATE_ANSWER),
    "train": Hint(
        "Five lines a step, in the lecture's order: a batch, the forward pass with its loss, clear the old "
        "gradients, compute the new ones, take the step.",
        "`get_batch(..., generator=generator)`, `model(xb, yb)`, `optimizer.zero_grad(set_to_none=True)`, "
        "`loss.backward()`, `optimizer.step()`, `loss.item()`.", TRAIN_ANSWER),
}
TRAIN_MODE = Hint(
    "the model was in training mode while you measured it, so dropout was on: the estimate measured a noisy "
    "copy of the model.", "`model.eval()` before measuring, `model.train()` after.", ESTIMATE_ANSWER)
NOT_BACK = Hint("the model was left in evaluation mode: the training that follows would run without dropout.",
                "`model.train()` before returning.", ESTIMATE_ANSWER)
GRAPH = Hint("the forward passes built autograd's graph, which a measurement never uses (memory and time).",
             "`@torch.no_grad()` above the def, or `with torch.no_grad():` around the loop.", ESTIMATE_ANSWER)
ONE_GENERATOR = Hint(
    "train is right and val is not: both splits drew their batches from one generator, so val's batches "
    "depend on how many train drew first.", "A fresh `torch.Generator().manual_seed(seed)` inside the loop "
    "over the splits.", ESTIMATE_ANSWER)
NO_ZERO_GRAD = Hint(
    "the gradients were never cleared, so every step added its gradient to all the earlier ones.",
    "`optimizer.zero_grad(set_to_none=True)` before `loss.backward()`.", TRAIN_ANSWER)
ZERO_AFTER_BACKWARD = Hint(
    "the model never changed: the gradients were cleared after backward() and before step(), so every step "
    "had nothing to step with.", "The order: `optimizer.zero_grad(...)`, `loss.backward()`, `optimizer.step()`.",
    TRAIN_ANSWER)
NO_STEP = Hint("the model never changed: the loop computes gradients but never takes a step with them.",
               "`optimizer.step()` after `loss.backward()`.", TRAIN_ANSWER)
ONE_BATCH = Hint("every step trained on the same batch: draw a new one inside the loop.",
                 "`get_batch(..., generator=generator)` as the first line of the loop body.", TRAIN_ANSWER)


def a_model(dropout=0.0, seed=0):
    torch.manual_seed(seed)
    return gpt.GPTLanguageModel(shakespeare_ids()[1].vocab_size, dropout=dropout, **SIZES)


def splits():
    train, val = split(shakespeare_ids()[0])
    return {"train": train, "val": val}


def lecture_loop(model, optimizer, data, cfg, generator, zero="before", step=True, one_batch=False):
    """The lecture's loop, or one of the usual slips in it, to say which one was made."""
    losses, batch = [], None
    for _ in range(cfg["max_iters"]):
        if batch is None or not one_batch:
            batch = get_batch(data, cfg["batch_size"], cfg["block_size"], generator=generator)
        _, loss = model(*batch)
        if zero == "before":
            optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if zero == "after":
            optimizer.zero_grad(set_to_none=True)
        if step:
            optimizer.step()
        losses.append(loss.item())
    return losses


def run_loop(loop, **slip):
    """loop (yours or the lecture's, with a slip) from the same model, optimizer and batches."""
    model = a_model()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    return loop(model, optimizer, splits()["train"], CFG, torch.Generator().manual_seed(5), **slip)


def watch(model):
    """Record (training mode, grad enabled) at every forward pass of model."""
    seen = []
    model.register_forward_hook(lambda module, args, out: seen.append((module.training, torch.is_grad_enabled())))
    return seen


def test_training_loop_estimate_equals_the_runners():
    model = a_model(dropout=0.3)  # with dropout on, a measurement in training mode comes out different
    seen = watch(model)
    mine = ex.estimate_loss(model, splits(), CFG, seed=3)
    want = runner.estimate_loss(model, splits(), CFG, seed=3)
    expect(isinstance(mine, dict) and set(mine) == {"train", "val"},
           f"estimate_loss should return a dict with the keys 'train' and 'val', got {mine!r}.",
           HINTS["estimate_loss"])
    expect(not any(training for training, _ in seen[: 2 * CFG["eval_iters"]]), "dropout was on.", TRAIN_MODE)
    for name in ("train", "val"):
        if name == "val" and math.isclose(float(mine["train"]), want["train"], rel_tol=1e-6):
            hint = ONE_GENERATOR
        else:
            hint = HINTS["estimate_loss"]
        expect(math.isclose(float(mine[name]), want[name], rel_tol=1e-6),
               f"estimate_loss(...)['{name}'] is {float(mine[name]):.6f}; runner.estimate_loss gives "
               f"{want[name]:.6f} for the same model, splits, cfg and seed.", hint)


def test_training_loop_estimate_measures_without_a_graph_and_leaves_train_mode():
    model = a_model()
    seen = watch(model)
    ex.estimate_loss(model, splits(), CFG, seed=0)
    expect(len(seen) == 2 * CFG["eval_iters"],
           f"estimate_loss should run the model eval_iters = {CFG['eval_iters']} times per split, "
           f"{2 * CFG['eval_iters']} in all; it ran it {len(seen)} times.", HINTS["estimate_loss"])
    expect(not any(grad for _, grad in seen), "autograd was recording.", GRAPH)
    expect(model.training, "after estimate_loss the model is in eval mode.", NOT_BACK)


def same_losses(a, b):
    return len(a) == len(b) and all(math.isclose(x, y, rel_tol=1e-5, abs_tol=1e-6) for x, y in zip(a, b))


def train_diagnosis(mine):
    """The Hint of the slip in the learner's loop, given its losses from run_loop, or the general one."""
    slips = [(dict(zero="none"), NO_ZERO_GRAD), (dict(zero="after"), ZERO_AFTER_BACKWARD),
             (dict(step=False), NO_STEP), (dict(one_batch=True), ONE_BATCH)]
    return next((hint for slip, hint in slips if same_losses(mine, run_loop(lecture_loop, **slip))), HINTS["train"])


def test_training_loop_train_matches_the_lectures_loop():
    mine = run_loop(ex.train)
    want = run_loop(lecture_loop)
    expect(isinstance(mine, list) and len(mine) == CFG["max_iters"],
           f"train should return a list of max_iters = {CFG['max_iters']} losses, got "
           f"{len(mine) if isinstance(mine, list) else type(mine).__name__}.", HINTS["train"])
    mine = [float(v) for v in mine]
    if same_losses(mine, want):
        return
    step = next(i for i, (a, b) in enumerate(zip(mine, want)) if not math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-6))
    expect(False, f"step {step}'s loss is {mine[step]:.5f}; the lecture's loop, from the same model, optimizer "
                  f"and batches, gets {want[step]:.5f}.", train_diagnosis(mine))


def test_training_loop_loss_goes_down():
    model = a_model()
    data = splits()
    cfg = dict(CFG, max_iters=150)
    before = ex.estimate_loss(model, data, cfg)["val"]
    ex.train(model, torch.optim.AdamW(model.parameters(), lr=1e-2), data["train"], cfg,
             torch.Generator().manual_seed(0))
    after = ex.estimate_loss(model, data, cfg)["val"]
    expect(after < before - 0.8,
           f"150 steps of your loop took the val loss from {before:.3f} to {after:.3f} (your estimate); the "
           f"lecture's loop drops it by well over 0.8.", train_diagnosis([float(v) for v in run_loop(ex.train)]))
