"""Small helpers several test files share (pytest puts tests/ on the path, so `from helpers import ...`)."""

import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import torch

import runner

REPO_ROOT = Path(__file__).resolve().parents[1]
# Tiny models gain nothing from a second thread, and on a busy machine two threads wait on each other.
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def script(stage, *args, cwd=REPO_ROOT, env=ENV, **kwargs):
    """Run `python <stage>.py args` as a real subprocess: the CompletedProcess, its output as text."""
    return subprocess.run([sys.executable, str(REPO_ROOT / f"{stage}.py"), *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=180, **kwargs)


# The smallest model of each stage that still has all its parts; gpt's dropout makes its RNG state matter.
SIZES = {"bigram_v1": {}, "bigram_v2": {"n_embd": 16}, "bigram_v3": {"n_embd": 16, "n_head": 2},
         "gpt": {"n_embd": 16, "n_head": 2, "n_layer": 1, "dropout": 0.1}}


def tiny(stage, **changes):
    """The flags of a tiny run of `stage` on the CPU: 20 steps, evaluated every 10, trained in seconds.
    changes set a flag (max_iters=50 -> --max-iters 50) or, given None, leave it out."""
    flags = dict(max_iters=20, eval_interval=10, eval_iters=1, batch_size=4, block_size=16, device="cpu",
                 max_new_tokens=20, final_eval=500, **SIZES[stage])
    return [str(arg) for name, value in {**flags, **changes}.items() if value is not None
            for arg in (f"--{name.replace('_', '-')}", value)]


def call_main(stage, argv, capsys):
    """Run `python <stage>.py argv` in this process: (exit status, stdout, stderr). main() returns its status,
    --help's and a bad flag's too (a SystemExit would fail the test): a notebook gets no SystemExit to warn of."""
    code = importlib.import_module(stage).main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(code, err, *words, status=1):
    """Exit status 1 (2: a bad flag) and one line on stderr besides the progress bar's, holding every word;
    a word that starts with "!" must be absent from it. Returns the line."""
    assert code == status, err
    bars = tuple(f"{stage}: " for stage in runner.STAGES)  # tqdm's lines, "gpt:  50%|..."
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith(bars)]
    assert len(lines) == 1 and "Traceback" not in err, err
    for word in words:
        assert (word[1:] not in lines[0]) if word.startswith("!") else (word in lines[0]), lines[0]
    return lines[0]


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
