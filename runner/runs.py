"""Runs seen from outside: the one way to read a finished run, to start one, and to look inside a model.

The runner (--sample-only), the figures (notes/figures.py), the notes, the benchmark (bench/) and the
tests all use these, so a run directory is read in one place:

    STAGES                      the four stage scripts, in reading order
    load_run(out, stage)        a run's kept model (best.pt, else ckpt.pt) with its tokenizer, config, metrics
    launch(stage, out, flags)   run `python <stage>.py --out out flags...` as a child process; its metrics
    capture(model, modules, x)  what each of modules receives when model(x) runs (forward pre-hooks)
"""

import importlib
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import torch

from data import CharTokenizer

from .config import UserError
from .files import BEST, CHECKPOINT, load_checkpoint, load_weights, lock_holder, read_metrics

STAGES = ("bigram_v1", "bigram_v2", "bigram_v3", "gpt")  # the reading order
ROOT = Path(__file__).resolve().parents[1]  # where the stage scripts are


def load_run(out, stage):
    """The kept model of stage's run in out: best.pt when there is one, else ckpt.pt (a run stopped early).

    Returns a namespace: stage; model (on the CPU, in eval mode); tok; cfg; metrics (metrics.json, or None
    for a run that has not finished); path (the checkpoint the weights came from); step (the step of those
    weights); val (their val estimate, nan before the first evaluation); busy (the pid of a run still
    writing in out, or None).
    """
    out = os.path.abspath(out)
    path = next((os.path.join(out, n) for n in (BEST, CHECKPOINT) if os.path.isfile(os.path.join(out, n))),
                os.path.join(out, BEST))
    module = importlib.import_module(stage)
    ckpt = load_checkpoint(path, stage, module.HYPERPARAMETERS)
    tok = CharTokenizer.from_dict(ckpt["tokenizer"])
    model = module.build_model(ckpt["config"], tok.vocab_size)
    load_weights(model, ckpt, path)
    step = ckpt.get("iter", ckpt.get("step", 0))  # best.pt names its evaluation's step "iter"
    val = ckpt["val"] if "val" in ckpt else (ckpt["history"][-1]["val"] if ckpt.get("history") else float("nan"))
    return SimpleNamespace(stage=stage, model=model.eval(), tok=tok, cfg=ckpt["config"], metrics=read_metrics(out),
                           path=path, step=step, val=val, busy=lock_holder(out))


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
    seen = {}

    def keep(module, args):
        seen[module] = args[0]

    handles = [m.register_forward_pre_hook(keep) for m in modules]
    try:
        model(*inputs)
    finally:
        for h in handles:
            h.remove()
    return [seen.get(m) for m in modules]
