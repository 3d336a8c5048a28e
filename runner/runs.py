"""Runs seen from outside: the one way to read a finished run, to start one, and to look inside a model.

The runner (--sample-only), the figures (notes/figures.py), the notes, the benchmark (bench/) and the
tests all use these, so a run directory is read in one place:

    STAGES                      the four stage scripts, in reading order
    load_run(out, stage=None)   a run's kept model (best.pt, else ckpt.pt) with its tokenizer, config, metrics
    launch(stage, out, flags)   run `python <stage>.py --out out flags...` as a child process; its metrics
    capture(model, modules, x)  what each of modules receives when model(x) runs (forward pre-hooks)
"""

import importlib
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from data import CharTokenizer

from .config import UserError
from .files import BEST, CHECKPOINT, load_checkpoint, load_weights, lock_holder, read_metrics

STAGES = ("bigram_v1", "bigram_v2", "bigram_v3", "gpt")  # the reading order
ROOT = Path(__file__).resolve().parents[1]  # where the stage scripts are


@dataclass
class LoadedRun:
    stage: str
    model: torch.nn.Module  # on the CPU, in eval mode
    tok: CharTokenizer
    cfg: dict
    metrics: dict  # metrics.json, or None for a run that has not finished
    path: str  # the checkpoint the weights came from
    step: int  # the step of those weights
    val: float  # their val estimate (nan before the first evaluation)
    busy: str = None  # the pid of a run still writing in that directory

    @property
    def finished(self):
        return self.metrics is not None


def load_run(out, stage=None):
    """The kept model of the run in out: best.pt when there is one, else ckpt.pt (a run stopped early)."""
    out = os.path.abspath(out)
    path = next((os.path.join(out, n) for n in (BEST, CHECKPOINT) if os.path.isfile(os.path.join(out, n))),
                os.path.join(out, BEST))
    if stage is None:
        stage = peek_stage(path)
    module = importlib.import_module(stage)
    ckpt = load_checkpoint(path, stage, module.HYPERPARAMETERS,
                           hint=f"train first: `python {stage}.py --out {out}`")
    tok = CharTokenizer.from_dict(ckpt["tokenizer"])
    model = module.build_model(ckpt["config"], tok.vocab_size)
    load_weights(model, ckpt, path)
    step = ckpt.get("iter", ckpt.get("step", 0))  # best.pt names its evaluation's step "iter"
    val = ckpt["val"] if "val" in ckpt else (ckpt["history"][-1]["val"] if ckpt.get("history") else float("nan"))
    return LoadedRun(stage, model.eval(), tok, ckpt["config"], read_metrics(out), path, step, val, lock_holder(out))


def peek_stage(path):
    try:
        return torch.load(path, map_location="cpu", weights_only=True)["stage"]
    except Exception:
        raise UserError(f"no readable checkpoint at {path}; train a stage first") from None


def launch(stage, out, flags=(), log=None):
    """Run a stage script to the end in a child process and return its metrics.json (a dict).

    Its output goes to log (an open file) or, by default, to this process's own stdout and stderr.
    """
    cmd = [sys.executable, str(ROOT / f"{stage}.py"), "--out", str(out), *map(str, flags)]
    done = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT if log else None)
    metrics = read_metrics(out)
    if done.returncode != 0 or metrics is None:
        raise UserError(f"`python {stage}.py --out {out} ...` failed (exit status {done.returncode})"
                        + (f"; its output is in {log.name}" if log else "; its error is above"))
    return metrics


@torch.no_grad()
def capture(model, modules, *inputs):
    """Run model(*inputs) and return what each of modules received as its first argument."""
    seen = [None] * len(modules)

    def keeper(i):
        def hook(module, args):
            seen[i] = args[0]

        return hook

    handles = [m.register_forward_pre_hook(keeper(i)) for i, m in enumerate(modules)]
    try:
        model(*inputs)
    finally:
        for h in handles:
            h.remove()
    return seen
