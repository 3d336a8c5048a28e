"""The training loop every stage runs, with the state of its run. Read train() beside the lecture's loop:

    lecture (gpt.py, its 15-line loop)               train() below
    for iter in range(max_iters):                    while True:
        if iter % eval_interval == 0 ...:                if step % eval_interval == 0 or step == max_iters:
            losses = estimate_loss()                         evaluate(run): estimate, print, keep the best, save
            print(f"step {iter}: ...")                   stop at max_iters, --stop-at, a signal or --patience
        xb, yb = get_batch('train')                      lr (warmup, then cosine decay); xb, yb = get_batch(...)
        logits, loss = model(xb, yb)                     logits, loss = model(xb, yb)
        optimizer.zero_grad(set_to_none=True)            optimizer.zero_grad(set_to_none=True)
        loss.backward()                                  loss.backward()
        optimizer.step()                                 clip the gradient norm; optimizer.step()
                                                         count the step, time it, show it on the bar

Everything the loop calls is in this file, but get_batch (data/batches.py) and the file writers
(runner/checkpoints.py). notes/training-loop.md walks through it line by line.
"""

import math
import sys
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch.nn import functional as F
from tqdm import tqdm

from data import get_batch

from . import torchrun
from .checkpoints import BEST, CHECKPOINT, METRICS, TOKENIZER, save_json, save_torch

GRAD_CLIP = 1.0  # the largest gradient norm a step may take: one odd batch cannot throw the weights far
MIN_LR_RATIO = 0.1  # the cosine schedule ends at a tenth of the peak learning rate


@dataclass
class Progress:
    """Where a run stands: everything a checkpoint keeps that is not a tensor."""

    step: int = 0
    history: list = field(default_factory=list)  # one {"iter", "seconds", "train", "val"} per evaluation
    step_losses: list = field(default_factory=list)  # the training loss of every step
    train_seconds: float = 0.0  # optimizer steps only: evaluations and saves are not counted
    best: dict = None  # the evaluation whose weights best.pt holds
    patience: int = None  # --patience, kept so that a resumed run stops where the uninterrupted one would
    early: bool = False  # stopped by --patience: the run is finished


def train(model, optimizer, data, cfg, run):
    """Train run.model (model: what the step calls, run.model compiled or wrapped for torchrun) on data."""
    p, end = run.progress, min(cfg["max_iters"], run.args.stop_at or cfg["max_iters"])
    with tqdm(total=cfg["max_iters"], initial=p.step, desc=run.stage, unit="step", disable=not torchrun.MAIN,
              mininterval=1 if sys.stderr.isatty() else 15) as bar:  # without a terminal, a line every 15 s
        while True:
            if p.step % cfg["eval_interval"] == 0 or p.step == cfg["max_iters"]:
                evaluate(run)  # estimate train/val loss, keep the best model, save a checkpoint
            if p.step >= end or any(torchrun.gather(p.early or run.stop is not None)):  # every rank stops at one step
                break
            start = time.perf_counter()
            for group in optimizer.param_groups:
                group["lr"] = lr_at(p.step, cfg)  # warmup, then cosine decay
            xb, yb = get_batch(data, cfg["batch_size"], cfg["block_size"], run.device, run.batches)  # (B, T) each
            with run.autocast():  # bfloat16 matmuls where the chip has them; weights stay float32
                logits, loss = model(xb, yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
            optimizer.step()
            p.step_losses.append(loss.item())  # .item() waits for the chip, so the clock counts all of the step
            p.step += 1
            p.train_seconds += time.perf_counter() - start
            bar.set_postfix_str(f"loss {p.step_losses[-1]:.4f}", refresh=False)
            bar.update()
            pace(run, time.perf_counter() - start)
    if run.saved != p.step:
        save(run)  # stopped between two evaluations: a checkpoint to --resume from


def evaluate(run):
    """Estimate the losses, print them, keep the weights in best.pt when val is the best so far, and save."""
    p = run.progress
    if run.saved == p.step:
        return  # a run resumed where it was saved has evaluated this step already
    if torchrun.MAIN:
        losses = estimate_loss(run.model, run.splits, run.cfg, run.device, run.autocast, run.seed + 1)
        evaluation = {"iter": p.step, "seconds": p.train_seconds, **losses}
        p.history.append(evaluation)
        improved = p.best is None or evaluation["val"] < p.best["val"]
        if improved:
            p.best = evaluation
            save_torch(run.path(BEST), {**weights(run), **evaluation})
    save(run)
    if torchrun.MAIN:  # printed after the saves: once this line shows, the checkpoint of this step is on disk
        torchrun.say(f"step {p.step}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f}"
                     + ("" if improved else f" (best {p.best['val']:.4f} at step {p.best['iter']})"))
        p.early = bool(p.patience) and sum(h["iter"] > p.best["iter"] for h in p.history) >= p.patience
        if p.early and p.step < run.cfg["max_iters"]:
            torchrun.say(f"val has not improved for {p.patience} evaluations (best {p.best['val']:.4f} at step "
                         f"{p.best['iter']}): stopping early (--patience {p.patience})")


def weights(run):
    return {"stage": run.stage, "model": run.model.state_dict(), "config": run.cfg, "tokenizer": run.tok.to_dict(),
            "text_sha256": run.sha256, "seed": run.seed, "dtype": run.dtype_name}


def save(run):
    """ckpt.pt: the weights, the optimizer, every rank's random generators and the Progress."""
    rngs = torchrun.gather({"torch": torch.get_rng_state(), "batches": run.batches.get_state(),
                            **({"cuda": torch.cuda.get_rng_state_all()} if torch.cuda.is_available() else {})})
    if torchrun.MAIN:
        save_torch(run.path(CHECKPOINT), {**weights(run), "optimizer": run.optimizer.state_dict(),
                                          "world_size": torchrun.WORLD, "rng": rngs, **asdict(run.progress)})
        save_json(run.path(TOKENIZER), run.tok.to_dict())
        if not run.args.resume:  # --overwrite: the old run's metrics.json goes once this run has a checkpoint
            Path(run.path(METRICS)).unlink(missing_ok=True)
    run.saved = run.progress.step


def pace(run, seconds):
    """Once, a hint when steps take far longer than this run's first ones: other work fights for the cores."""
    times = run.step_times
    times.append(seconds)
    first, last = sorted(times[5:25]), sorted(times[-20:])  # medians of steps 5-24 and of the last 20
    if len(times) >= 45 and not run.hinted and last[10] > 3 * first[10]:
        run.hinted = True
        torchrun.say(f"note: steps take {last[10] / first[10]:.0f}x as long as at the start of this run; is other "
                     f"work running? fewer threads (--threads 1) may help", file=sys.stderr)


def lr_at(step, cfg):
    """Linear warmup to cfg['lr'] over warmup_iters steps, then cosine decay to MIN_LR_RATIO * lr at max_iters."""
    lr, warmup, total = cfg["lr"], cfg["warmup_iters"], cfg["max_iters"]
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return lr * (MIN_LR_RATIO + (1 - MIN_LR_RATIO) * 0.5 * (1 + math.cos(math.pi * progress)))


def make_optimizer(model, cfg, device):
    """AdamW; weight decay cfg["weight_decay"] on every parameter (none for a stage without that entry).

    GPT-2 and nanoGPT decay only the weight matrices; on gpt.py's earlier CPU default, decaying every
    parameter ended lower on both seeds tried (notes/running.md, Performance), so it stays; --weight-decay 0
    turns decay off. fused: one kernel updates every parameter, where PyTorch has it.
    """
    fused = {"fused": True} if device.type in ("cpu", "cuda") else {}
    return torch.optim.AdamW(model.parameters(), lr=cfg["lr"], weight_decay=cfg.get("weight_decay", 0.0), **fused)


@torch.no_grad()
def estimate_loss(model, splits, cfg, device="cpu", autocast=nullcontext, seed=0):
    """Mean loss over eval_iters random batches of each split ({"train": tensor, ...}): the same batches every
    time it is called with the same seed. autocast: a context-manager factory (the run's number format).

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
def full_loss(model, data, block_size, device="cpu", rows=64):
    """Mean loss over *every* next-character prediction in data, in consecutive windows of block_size, in
    float32 throughout: the final figure, not an estimate, so no bfloat16 rounding."""
    model.eval()
    n = (len(data) - 1) // block_size
    windows = [(data[: n * block_size].view(n, block_size), data[1 : n * block_size + 1].view(n, block_size))]
    if len(data) - 1 > n * block_size:  # the last, shorter window
        windows.append((data[n * block_size : -1][None], data[n * block_size + 1 :][None]))
    total, count = 0.0, 0
    for x, y in windows:
        for i in range(0, len(x), rows):
            xb, yb = x[i : i + rows].to(device), y[i : i + rows].to(device)
            logits, _ = model(xb)
            total += F.cross_entropy(logits.float().flatten(0, 1), yb.flatten(), reduction="sum").item()
            count += yb.numel()
    model.train()
    return total / count


def bigram_floor(train, val, vocab_size):
    """The val loss of the best counted bigram table: where a model that sees one character stops.

    The table holds next-character frequencies counted on the train split, add-alpha smoothed so that a
    pair never seen in training does not cost infinitely much on val; alpha is the best of a grid, judged
    on val. A yardstick, not a bound: a trained table may land a hair above or below it.
    """
    counts = torch.zeros(vocab_size, vocab_size, dtype=torch.float64)
    counts.index_put_((train[:-1], train[1:]), torch.ones(len(train) - 1, dtype=torch.float64), accumulate=True)
    pairs = torch.zeros_like(counts)
    pairs.index_put_((val[:-1], val[1:]), torch.ones(len(val) - 1, dtype=torch.float64), accumulate=True)

    def val_loss(alpha):
        probs = (counts + alpha) / (counts + alpha).sum(1, keepdim=True)
        return -(pairs * probs.log()).sum().item() / pairs.sum().item()

    return min(val_loss(a) for a in (1e-4, 1e-3, 1e-2, 0.1, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0))
