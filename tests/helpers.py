"""Small helpers several test files share (pytest puts tests/ on the path, so `from helpers import ...`)."""

import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
# Tiny models gain nothing from a second thread, and on a busy machine two threads wait on each other.
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def script(stage, *args, cwd=REPO_ROOT, **kwargs):
    """Run `python <stage>.py args` as a real subprocess: the CompletedProcess, its output as text."""
    return subprocess.run([sys.executable, str(REPO_ROOT / f"{stage}.py"), *map(str, args)], cwd=cwd, env=ENV,
                          capture_output=True, text=True, timeout=180, **kwargs)


def call_main(stage, argv, capsys):
    """Run `python <stage>.py argv` in this process: (exit status, stdout, stderr)."""
    try:
        code = importlib.import_module(stage).main([str(a) for a in argv])
    except SystemExit as e:  # argparse's exit, for --help and bad flag values
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


@torch.no_grad()
def copy_heads_into_batched(heads, qkv):
    """Copy the key, query and value weights of bigram_v3-style Heads into one batched qkv Linear.

    qkv's rows are [q of heads 0..n_head-1 | k of every head | v of every head], head_size rows each: the
    layout gpt.MultiHeadAttention splits its projection into.
    """
    n_embd = qkv.in_features
    head_size = n_embd // len(heads)
    for h, head in enumerate(heads):
        for s, linear in enumerate((head.query, head.key, head.value)):
            qkv.weight[s * n_embd + h * head_size : s * n_embd + (h + 1) * head_size] = linear.weight


SAMPLE_HEADER = re.compile(r"^---- sample \(seed (\d+): --seed \1 draws it again\) ----\n", re.M)


def printed_sample(stdout):
    """The text a run printed after its '---- sample (seed N: ...) ----' line, without the last newline."""
    match = SAMPLE_HEADER.search(stdout)
    assert match, f"no sample header in {stdout!r}"
    return stdout[match.end():].removesuffix("\n")


def printed_seed(stdout):
    return int(SAMPLE_HEADER.search(stdout).group(1))
