"""One training step, the optimizer, the learning-rate schedule, and the ways a run measures its loss.

The runner's loop and the benchmark (bench/run.py) both train through make_optimizer() and train_step(),
so what the benchmark times is exactly what a stage script runs.
"""

import math

import torch
from torch.nn import functional as F

from data import get_batch

from .device import attention_kernel, autocast

MIN_LR_RATIO = 0.1  # the cosine schedule ends at a tenth of the peak learning rate
GRAD_CLIP = 1.0  # clip the global gradient norm: one bad batch cannot throw the weights far


def lr_at(step, cfg):
    """Linear warmup to cfg['lr'], then cosine decay to MIN_LR_RATIO * lr at max_iters."""
    lr, warmup, total = cfg["lr"], cfg.get("warmup_iters", 0), cfg["max_iters"]
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return lr * (MIN_LR_RATIO + (1 - MIN_LR_RATIO) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def make_optimizer(model, cfg, device):
    """AdamW with weight decay on every parameter.

    GPT-2 and nanoGPT decay only the weight matrices. We measured both on gpt.py's CPU default (two seeds,
    README, Results): decaying every parameter ended 0.014 lower in full-split val loss on average, so it
    stays; `--weight-decay 0` turns decay off altogether.
    """
    fused = {"fused": True} if device.type in ("cpu", "cuda") else {}  # one kernel for all parameters
    return torch.optim.AdamW(model.parameters(), lr=cfg["lr"], weight_decay=cfg.get("weight_decay", 0.0), **fused)


def set_lr(optimizer, lr):
    for group in optimizer.param_groups:
        group["lr"] = lr


def train_step(model, optimizer, x, y, device, dtype, cfg):
    """forward -> backward -> clip -> step on one batch; returns the loss, still on the device."""
    with autocast(device, dtype), attention_kernel(device, cfg):
        _, loss = model(x, y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
    optimizer.step()
    return loss.detach()


def count_params(model):
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def estimate_loss(model, splits, cfg, device, dtype, seed):
    """Mean loss over eval_iters random batches of each split; the same batches every time it is called."""
    model.eval()
    out = {}
    for name, data in splits.items():
        g = torch.Generator().manual_seed(seed)
        losses = torch.zeros(cfg["eval_iters"], dtype=torch.float64)
        for i in range(cfg["eval_iters"]):
            x, y = get_batch(data, cfg["batch_size"], cfg["block_size"], device, g)
            with autocast(device, dtype):
                _, loss = model(x, y)
            losses[i] = loss.item()
        out[name] = losses.mean().item()
    model.train()
    return out


@torch.no_grad()
def full_loss(model, data, block_size, device, dtype, rows=64):
    """Mean loss over *every* next-character prediction in data, in consecutive windows of block_size."""
    model.eval()
    n = (len(data) - 1) // block_size
    x = data[: n * block_size].view(n, block_size)  # (n, T)
    y = data[1 : n * block_size + 1].view(n, block_size)  # (n, T)
    total, count = 0.0, 0

    def add(xb, yb):
        nonlocal total, count
        with autocast(device, dtype):
            logits, _ = model(xb.to(device))
        total += F.cross_entropy(logits.float().flatten(0, 1), yb.to(device).flatten(), reduction="sum").item()
        count += yb.numel()

    for i in range(0, n, rows):
        add(x[i : i + rows], y[i : i + rows])
    tail = len(data) - 1 - n * block_size
    if tail:
        add(data[n * block_size : -1][None], data[n * block_size + 1 :][None])
    model.train()
    return total / count


def bigram_floor(train, val, vocab_size, alpha=None):
    """The val loss of the best counted bigram table: a yardstick for what a bigram model can reach.

    A bigram model predicts the next character from the current one alone, so the natural bigram is the
    table of next-character frequencies counted on the train split. Add-alpha smoothing keeps pairs never
    seen in training from costing infinitely much on val; alpha is picked from a grid by its val loss.
    That makes this figure the best add-alpha count model on that grid, tuned on val, not a proof that
    no bigram can do better: a trained table may land a hair above or below it.
    """
    counts = torch.zeros(vocab_size, vocab_size, dtype=torch.float64)
    counts.index_put_((train[:-1], train[1:]), torch.ones(len(train) - 1, dtype=torch.float64), accumulate=True)
    pairs = torch.zeros_like(counts)
    pairs.index_put_((val[:-1], val[1:]), torch.ones(len(val) - 1, dtype=torch.float64), accumulate=True)
    alphas = [alpha] if alpha is not None else [10.0 ** e for e in range(-4, 2)] + [0.5, 2.0, 3.0, 5.0]

    def val_loss(a):
        probs = (counts + a) / (counts + a).sum(1, keepdim=True)
        return -(pairs * probs.log()).sum().item() / pairs.sum().item()

    return min(val_loss(a) for a in alphas)
