"""bench/peers.py: the code this course is measured against, run as its authors wrote it.

    ng-video-lecture   the lecture's own gpt.py (https://github.com/karpathy/ng-video-lecture)
    nanoGPT            train.py with its README's CPU recipe (https://github.com/karpathy/nanoGPT)

The benchmark finds them in --peers DIR (default ../peers beside this repository); nothing is downloaded.
This module imports only PyTorch and the standard library, never the project: a lecture job's peak memory
is the lecture code's own.
"""

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch

URLS = {"ng-video-lecture": "https://github.com/karpathy/ng-video-lecture",
        "nanoGPT": "https://github.com/karpathy/nanoGPT"}
ENTRY = {"ng-video-lecture": "gpt.py", "nanoGPT": "train.py"}  # the file that says a peer is there
MODEL_LINE = re.compile(r"^model = (\w+)\(\)[ \t]*$", re.MULTILINE)  # the lecture's first line of training
SIZES = ("batch_size", "block_size", "n_layer", "n_head", "n_embd", "dropout")

# nanoGPT's README, "I only have a macbook": its CPU run of train_shakespeare_char, word for word
NANOGPT_CPU_FLAGS = ("--device=cpu", "--compile=False", "--eval_iters=20", "--log_interval=1", "--block_size=64",
                     "--batch_size=12", "--n_layer=4", "--n_head=4", "--n_embd=128", "--max_iters=2000",
                     "--lr_decay_iters=2000", "--dropout=0.0")
EVAL_LINE = re.compile(r"step (\d+): train loss ([\d.]+), val loss ([\d.]+)")  # printed before step N trains
ITER_LINE = re.compile(r"iter (\d+): loss [\d.]+, time ([\d.]+)ms")  # step N's time, from the end of N - 1


class BenchError(Exception):
    """Something that stops the benchmark, reported as one line."""


def find(peers_dir, name):
    """(the peer's directory, None), or (None, one line saying how to get it)."""
    path = Path(peers_dir) / name
    if (path / ENTRY[name]).is_file():
        return path, None
    return None, f"{name} is not in {path}: get it with `git clone {URLS[name]} {path}`"


def peak_rss_mib(children=False):
    """Peak resident memory of this process (or of its finished children, the largest), in MiB; None on
    Windows, which has no getrusage."""
    try:
        import resource
    except ImportError:
        return None
    usage = resource.getrusage(resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF)
    return usage.ru_maxrss / (2**20 if sys.platform == "darwin" else 2**10)  # bytes on macOS, KiB on Linux


def lecture(script, workdir):
    """Run the lecture's script up to `model = GPTLanguageModel()` in workdir (which holds input.txt):
    its hyperparameters, data and classes. Returns (its globals, a fresh model)."""
    source = Path(script).read_text(encoding="utf-8")
    found = MODEL_LINE.search(source)
    if found is None:
        raise SystemExit(f"bench: {script} has no `model = ...()` line; is it the lecture's gpt.py?")
    os.chdir(workdir)  # it opens 'input.txt' where it runs
    ns = {"__name__": "lecture"}
    exec(compile(source[: found.start()], str(script), "exec"), ns)
    ns["device"] = "cpu"  # it picks cuda when it can; its functions read this global when they run
    return ns, ns[found.group(1)]()


def lecture_train(script, workdir, warmup, steps):
    """Time the lecture's training loop body for warmup + steps steps; tokens/s over the last steps."""
    ns, model = lecture(script, workdir)
    optimizer = torch.optim.AdamW(model.parameters(), lr=ns["learning_rate"])
    seconds = []
    for _ in range(warmup + steps):  # its loop, without the evaluations
        t0 = time.perf_counter()
        xb, yb = ns["get_batch"]("train")
        logits, loss = model(xb, yb)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        seconds.append(time.perf_counter() - t0)
    tokens = ns["batch_size"] * ns["block_size"] * steps
    return {"config": {k: ns[k] for k in SIZES}, "tokens_per_second": tokens / sum(seconds[warmup:]),
            "peak_rss_mib": peak_rss_mib()}


def lecture_sample(script, workdir, chars):
    """Time the lecture's model.generate for chars characters, called as the lecture calls it (train mode,
    autograd on), on fresh weights: a trained model does the same arithmetic per character."""
    ns, model = lecture(script, workdir)
    context = torch.zeros((1, 1), dtype=torch.long)
    model.generate(context, max_new_tokens=8)  # warm-up
    t0 = time.perf_counter()
    out = model.generate(context, max_new_tokens=chars)  # (1, 1 + chars)
    seconds = time.perf_counter() - t0
    return {"config": {k: ns[k] for k in SIZES}, "chars": out.shape[1] - 1, "chars_per_second": chars / seconds}


def nanogpt_history(log):
    """nanoGPT's train.py output as metrics.json's history: [{"iter", "seconds", "train", "val"}].

    seconds: training seconds before that evaluation, the sum of the "time" of each step before it. A step
    that evaluated is left out: nanoGPT times a step from the end of the one before, so the evaluation (and
    any checkpoint save) is inside its time. That leaves out one training step per evaluation as well.
    """
    history, seconds, evaluated = [], 0.0, set()
    for line in log.splitlines():
        if m := EVAL_LINE.match(line):
            evaluated.add(int(m[1]))
            history.append({"iter": int(m[1]), "seconds": seconds, "train": float(m[2]), "val": float(m[3])})
        elif (m := ITER_LINE.match(line)) and int(m[1]) not in evaluated:
            seconds += float(m[2]) / 1000
    return history


def nanogpt_run(peer, text, workdir, flags, log):
    """nanoGPT's shakespeare_char recipe in a copy of it in workdir: prepare.py on our text (as its
    input.txt, so it downloads nothing), then train.py with flags; output to the file log. Its history."""
    shutil.copytree(peer, workdir, ignore=shutil.ignore_patterns(".git", "assets", "out*"))
    shutil.copyfile(text, Path(workdir) / "data" / "shakespeare_char" / "input.txt")
    with open(log, "w", encoding="utf-8") as f:
        for cmd in (["data/shakespeare_char/prepare.py"], ["train.py", "config/train_shakespeare_char.py", *flags]):
            f.write(f"$ python {' '.join(cmd)}\n")
            f.flush()
            if subprocess.run([sys.executable, *cmd], cwd=workdir, stdout=f, stderr=subprocess.STDOUT).returncode:
                raise BenchError(f"nanoGPT's {cmd[0]} failed; its output is in {log}")
    return nanogpt_history(Path(log).read_text(encoding="utf-8"))
