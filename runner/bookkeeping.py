"""One run: its settings, its state, and the bookkeeping the training loop (runner/loop.py) calls for.

    run.steps()     the step numbers to train, from 0 or a checkpoint's step, until max_iters, --stop-at,
                    a stop request (Ctrl-C, SIGTERM, SIGHUP; checked before each step, on a GPU every 25) or
                    --patience; under torchrun every rank stops at the same step
    run.evaluate()  at an eval point or the last step: estimate train/val loss, print it, keep the weights
                    when val is the best so far (best.pt), save a checkpoint (ckpt.pt); a run stopped
                    between eval points only saves. The clock does not count it.
    run.log(loss)   count the step, time it, show it on the progress bar
    run.autocast(), run.device, run.batches: the number format, the chip, the batches' random generator

A checkpoint is the model, the optimizer, the random generators and a Progress.
"""

import math
import os
import time
from dataclasses import asdict, dataclass, field

import torch

from . import distributed
from .config import UserError
from .console import StopRequest, progress_bar, say, say_above_bar
from .device import autocast
from .files import BEST, CHECKPOINT, TOKENIZER, save_json, save_torch
from .loop import estimate_loss

CUDA_SYNC_EVERY = 25  # on a GPU the loss is read back (which waits for it), and a stop checked, every 25 steps


@dataclass
class Progress:
    """Where a run stands: everything about it that is not a tensor."""

    step: int = 0
    history: list = field(default_factory=list)  # one {"iter", "seconds", "train", "val"} per evaluation
    step_losses: list = field(default_factory=list)  # the training loss of every step
    train_seconds: float = 0.0  # optimizer steps only: evaluations and saves are not counted
    best: dict = None  # the evaluation whose weights best.pt holds


class Run:
    """Filled in three steps by runner/__init__.py: settings (configure), the text (load_data: tok, train,
    val, splits, sha256), then the model, optimizer and batch generator (build)."""

    def __init__(self, stage, args, table, cfg, device, dtype, seed, ckpt=None):
        self.stage, self.args, self.table, self.cfg, self.ckpt = stage, args, table, cfg, ckpt
        self.device, self.dtype, self.seed, self.autocast = device, dtype, seed, autocast(device, dtype)
        self.dtype_name = str(dtype).removeprefix("torch.")  # "bfloat16" or "float32": how messages name it
        self.p, self.pending, self.early, self.stop = Progress(), [], False, StopRequest()

    def path(self, name):
        return os.path.join(self.args.out, name)

    def finished(self):
        return self.p.step >= self.cfg["max_iters"] or self.early

    def steps(self):
        end = min(self.cfg["max_iters"], self.args.stop_at or self.cfg["max_iters"])
        self.sync_every = CUDA_SYNC_EVERY if self.device.type == "cuda" else 1
        self.bar = progress_bar(self.stage, self.cfg["max_iters"], self.p.step, enabled=distributed.MAIN)
        with self.stop:
            self.t0 = time.perf_counter()
            while self.p.step < end and not self.early:
                if self.p.step % self.sync_every == 0 and any(distributed.gather(self.stop.signum is not None)):
                    break
                yield self.p.step
            self.read_back()
        self.bar.refresh()  # the line of the last step (without a terminal the bar's close writes nothing)
        self.bar.close()

    def log(self, loss):
        self.pending.append(loss.detach())
        self.p.step += 1
        if self.p.step % self.sync_every == 0:
            self.read_back()

    def read_back(self):
        """Read the pending losses back from the device (waiting for it, so the clock counts all of it)."""
        if self.pending:
            losses = torch.stack(self.pending).float().tolist()
            self.p.step_losses += losses
            self.bar.update(len(losses))
            self.bar.set_postfix_str(f"loss {losses[-1]:.4f}", refresh=False)
            self.pending = []
        now = time.perf_counter()
        self.p.train_seconds += now - self.t0
        self.t0 = now

    def evaluate(self):
        p = self.p
        if p.history and p.history[-1]["iter"] == p.step:
            return  # evaluated at this step already (a run resumed where it was saved)
        self.read_back()
        due = p.step >= self.cfg["max_iters"] or p.step % self.cfg["eval_interval"] == 0
        rngs = distributed.gather(rng_state(self.batches))  # every rank's generators, for --resume
        if due and distributed.MAIN:
            losses = estimate_loss(self.model, self.splits, self.cfg, self.device, self.autocast, self.seed + 1)
            evaluation = {"iter": p.step, "seconds": p.train_seconds, **losses}
            p.history.append(evaluation)
            improved = p.best is None or evaluation["val"] < p.best["val"]
            if improved:
                p.best = evaluation
                save_torch(self.path(BEST), {**self.weights(), **evaluation})
            self.save(rngs)
            # printed after the saves: once this line shows, the checkpoint of this step is on disk
            say_above_bar(f"step {p.step}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f}"
                          + ("" if improved else f" (best {p.best['val']:.4f} at step {p.best['iter']})"))
            self.check_patience()
        elif distributed.MAIN:
            self.save(rngs)  # stopped between eval points: a checkpoint to --resume from
        if due:  # every rank keeps rank 0's history, and stops with it
            p.history[:], p.best, self.early = distributed.gather((p.history, p.best, self.early))[0]
        self.t0 = time.perf_counter()  # the clock counts training, not this
        self.bar.unpause()  # the evaluation's time does not count towards the bar's rate

    def check_patience(self):
        patience, p = self.args.patience, self.p
        self.early = bool(patience) and sum(h["iter"] > p.best["iter"] for h in p.history) >= patience
        if self.early and p.step < self.cfg["max_iters"]:
            say(f"val has not improved for {patience} evaluations (best {p.best['val']:.4f} at step "
                f"{p.best['iter']}): stopping early (--patience {patience})")

    def weights(self):
        return {"stage": self.stage, "model": self.model.state_dict(), "config": self.cfg,
                "tokenizer": self.tok.to_dict(), "text_sha256": self.sha256}

    def save(self, rngs):
        save_torch(self.path(CHECKPOINT), {**self.weights(), "optimizer": self.optimizer.state_dict(),
                                           "world_size": distributed.WORLD, "rng": rngs, **asdict(self.p)})
        save_json(self.path(TOKENIZER), self.tok.to_dict())  # what CharTokenizer.load reads

    def restore(self, ckpt, path):
        """Continue where ckpt left off; a checkpoint whose state does not fit is one line, not a traceback."""
        missing = [k for k in ("optimizer", "rng", *asdict(Progress())) if k not in ckpt]
        why = f"its {missing[0]} is missing" if missing else None
        try:
            self.optimizer.load_state_dict(ckpt["optimizer"])
            states = ckpt["rng"] if isinstance(ckpt["rng"], list) else [ckpt["rng"]]  # one per rank that saved
            restore_rng(states[min(distributed.RANK, len(states) - 1)], self.batches)
            self.p = Progress(**{k: ckpt[k] for k in asdict(Progress())})
            why = why or progress_problem(self.p, self.cfg)
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError, AttributeError) as e:
            why = why or f"its optimizer or random-number state does not fit ({type(e).__name__})"
        if why:
            raise UserError(f"{path} is malformed: {why}; delete it, or train again with --overwrite")
        if len(states) != distributed.WORLD and distributed.MAIN:
            say(f"note: the checkpoint was written by {len(states)} process(es), this run has {distributed.WORLD}: "
                f"training goes on, but its batches differ from an uninterrupted run")


def progress_problem(p, cfg):
    """The first thing wrong with a resumed Progress, or None."""
    if not (isinstance(p.step, int) and 0 <= p.step <= cfg["max_iters"]):
        return f"its step {p.step!r} is outside 0..max_iters ({cfg['max_iters']})"
    if not isinstance(p.step_losses, list) or len(p.step_losses) != p.step:
        return f"it does not hold one training loss for each of its {p.step} steps"
    points = p.history + [p.best] if isinstance(p.history, list) and p.best is not None else p.history
    if not isinstance(points, list) or not all(
            isinstance(h, dict) and isinstance(h.get("iter"), int) and 0 <= h["iter"] <= p.step
            and all(isinstance(h.get(k), (int, float)) and math.isfinite(h[k]) for k in ("train", "val", "seconds"))
            for h in points):
        return "its history has an entry without a valid iter, train, val and seconds"
    if not (isinstance(p.train_seconds, (int, float)) and p.train_seconds >= 0):
        return "its train_seconds is not a number of seconds"
    return None


def rng_state(batches):
    state = {"torch": torch.get_rng_state(), "batches": batches.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state, batches):
    torch.set_rng_state(state["torch"])
    batches.set_state(state["batches"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
