"""The training loop every stage runs, and the measurements it makes. Read train() beside the lecture's loop:

    lecture (gpt.py, its 15-line loop)               train() below
    for iter in range(max_iters):                    for step in run.steps():
        if iter % eval_interval == 0 ...:                if step % cfg["eval_interval"] == 0:
            losses = estimate_loss()                         run.evaluate()
            print(f"step {iter}: ...")                   lr (warmup, then cosine decay)
        xb, yb = get_batch('train')                      xb, yb = get_batch(...)
        logits, loss = model(xb, yb)                     logits, loss = model(xb, yb)
        optimizer.zero_grad(set_to_none=True)            optimizer.zero_grad(set_to_none=True)
        loss.backward()                                  loss.backward()
        optimizer.step()                                 clip the gradient norm; optimizer.step()

What ours adds is behind three calls on `run` (runner/bookkeeping.py): run.steps() decides where
to start (0, or a checkpoint's step) and when to stop (max_iters, --stop-at, Ctrl-C, --patience), and
run.evaluate() estimates the losses, prints them, keeps the best model and saves a checkpoint.
notes/training-loop.md walks through it line by line.
"""

import math
from contextlib import nullcontext

import torch
from torch.nn import functional as F

from data import get_batch

GRAD_CLIP = 1.0  # the largest gradient norm a step may take: one odd batch cannot throw the weights far
MIN_LR_RATIO = 0.1  # the cosine schedule ends at a tenth of the peak learning rate


def train(model, optimizer, train_data, cfg, run):
    for step in run.steps():
        if step % cfg["eval_interval"] == 0:
            run.evaluate()  # estimate train/val loss, keep the best model, save a checkpoint
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, cfg)  # warmup, then cosine decay
        xb, yb = get_batch(train_data, cfg["batch_size"], cfg["block_size"], run.device, run.batches)  # (B, T) each
        with run.autocast():  # bfloat16 matmuls where the chip has them; weights stay float32
            logits, loss = model(xb, yb)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
        optimizer.step()
        run.log(loss)  # the progress bar and the clock
    run.evaluate()  # after the last step: estimate and save; a stopped run only saves; nothing if just done


def lr_at(step, cfg):
    """Linear warmup to cfg['lr'] over warmup_iters steps, then cosine decay to MIN_LR_RATIO * lr at max_iters."""
    lr, warmup, total = cfg["lr"], cfg["warmup_iters"], cfg["max_iters"]
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return lr * (MIN_LR_RATIO + (1 - MIN_LR_RATIO) * 0.5 * (1 + math.cos(math.pi * progress)))


def make_optimizer(model, cfg, device):
    """AdamW with weight decay on every parameter.

    GPT-2 and nanoGPT decay only the weight matrices; on gpt.py's earlier CPU default, decaying every
    parameter ended lower on both seeds tried (notes/running.md, Performance), so it stays; --weight-decay 0
    turns decay off. fused: one kernel updates every parameter, where PyTorch has it.
    """
    fused = {"fused": True} if device.type in ("cpu", "cuda") else {}
    return torch.optim.AdamW(model.parameters(), lr=cfg["lr"], weight_decay=cfg.get("weight_decay", 0.0), **fused)


@torch.no_grad()
def estimate_loss(model, splits, cfg, device="cpu", autocast=nullcontext, seed=0):
    """Mean loss over eval_iters random batches of each split ({"train": tensor, ...}): the same batches every
    time it is called with the same seed. autocast: a context-manager factory (runner.device.autocast).

    model.eval() turns dropout off (we measure the model, not a noisy copy of it); no_grad skips the
    bookkeeping backward would need.
    """
    model.eval()
    out = {}
    for name, data in splits.items():
        g = torch.Generator().manual_seed(seed)
        losses = torch.zeros(cfg["eval_iters"], dtype=torch.float64)
        for i in range(cfg["eval_iters"]):
            xb, yb = get_batch(data, cfg["batch_size"], cfg["block_size"], device, g)
            with autocast():
                losses[i] = model(xb, yb)[1].item()
        out[name] = losses.mean().item()
    model.train()
    return out


@torch.no_grad()
def full_loss(model, data, block_size, device="cpu", autocast=nullcontext, rows=64):
    """Mean loss over *every* next-character prediction in data, in consecutive windows of block_size."""
    model.eval()
    n = (len(data) - 1) // block_size
    windows = [(data[: n * block_size].view(n, block_size), data[1 : n * block_size + 1].view(n, block_size))]
    if len(data) - 1 > n * block_size:  # the last, shorter window
        windows.append((data[n * block_size : -1][None], data[n * block_size + 1 :][None]))
    total, count = 0.0, 0
    for x, y in windows:
        for i in range(0, len(x), rows):
            xb, yb = x[i : i + rows].to(device), y[i : i + rows].to(device)
            with autocast():
                logits, _ = model(xb)
            total += F.cross_entropy(logits.float().flatten(0, 1), yb.flatten(), reduction="sum").item()
            count += yb.numel()
    model.train()
    return total / count


def bigram_floor(train, val, vocab_size, alpha=None):
    """The val loss of the best counted bigram table: where a model that sees one character stops.

    The table holds next-character frequencies counted on the train split, add-alpha smoothed so that a
    pair never seen in training does not cost infinitely much on val; alpha is the best of a grid, judged
    on val (or the alpha given). A yardstick, not a bound: a trained table may land a hair above or below it.
    """
    counts = torch.zeros(vocab_size, vocab_size, dtype=torch.float64)
    counts.index_put_((train[:-1], train[1:]), torch.ones(len(train) - 1, dtype=torch.float64), accumulate=True)
    pairs = torch.zeros_like(counts)
    pairs.index_put_((val[:-1], val[1:]), torch.ones(len(val) - 1, dtype=torch.float64), accumulate=True)

    def val_loss(alpha):
        probs = (counts + alpha) / (counts + alpha).sum(1, keepdim=True)
        return -(pairs * probs.log()).sum().item() / pairs.sum().item()

    return min(val_loss(a) for a in ([alpha] if alpha else (1e-4, 1e-3, 1e-2, 0.1, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0)))
