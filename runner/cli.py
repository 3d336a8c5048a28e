"""The command line every stage shares: its flags, their ranges, and one-line errors.

A stage's hyperparameters (its HYPERPARAMETERS dict) become flags; a flag whose key a stage lacks is not
offered, so `python bigram_v1.py --help` lists only what bigram_v1 uses. The same ranges check the config
stored in a checkpoint, so an edited checkpoint cannot ask for a negative block or zero heads.
"""

import argparse
import math

STAGES = ("bigram_v1", "bigram_v2", "bigram_v3", "gpt")  # the reading order


class Number:
    """An argparse type with a range a user can read in --help: Number(int, 1, 4096)("64") -> 64."""

    def __init__(self, kind, lo, hi, lo_open=False, hi_open=False):
        self.kind, self.lo, self.hi, self.lo_open, self.hi_open = kind, lo, hi, lo_open, hi_open
        self.__name__ = kind.__name__  # argparse names the type in some messages

    def describe(self):
        left, right = ("(" if self.lo_open else "["), (")" if self.hi_open else "]")
        if self.kind is int and not (self.lo_open or self.hi_open):
            return f"{self.lo:,} to {self.hi:,}"
        return f"{left}{self.lo:g}, {self.hi:g}{right}"

    def problem(self, value):
        """Why value does not fit, or None when it does."""
        if isinstance(value, bool) or not isinstance(value, (int, float) if self.kind is float else int):
            return f"must be {'a number' if self.kind is float else 'a whole number'}, got {value!r}"
        too_low = value <= self.lo if self.lo_open else value < self.lo
        too_high = value >= self.hi if self.hi_open else value > self.hi
        if math.isnan(value) or too_low or too_high:
            return f"must be in {self.describe()}, got {value}"
        return None

    def __call__(self, s):
        try:
            value = self.kind(s)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"must be {'a number' if self.kind is float else 'a whole number'}, got {s!r}") from None
        problem = self.problem(value)
        if problem:
            raise argparse.ArgumentTypeError(problem)
        return value


# Upper bounds keep a typo (an extra zero or three) from becoming a 100 GB allocation; every real use of
# this course, GPUs included, sits far inside them.
STEPS = Number(int, 1, 10**8)
positive_int = Number(int, 1, 10**9)
nonnegative_int = Number(int, 0, 10**9)

# key -> (type or list of choices, help). Keys a stage's hyperparameters lack get no flag.
HYPERPARAMETERS = {
    "max_iters": (STEPS, "training steps"),
    "eval_interval": (STEPS, "estimate train/val loss, keep the best model and save a checkpoint every N steps"),
    "eval_iters": (Number(int, 1, 10**6), "batches per train/val estimate"),
    "batch_size": (Number(int, 1, 65536), "sequences per step"),
    "block_size": (Number(int, 1, 16384), "context length in characters"),
    "lr": (Number(float, 0, 10, lo_open=True), "peak learning rate"),
    "warmup_iters": (Number(int, 0, 10**8), "steps of linear learning-rate warmup"),
    "n_embd": (Number(int, 1, 16384), "embedding width"),
    "n_head": (Number(int, 1, 1024), "attention heads"),
    "n_layer": (Number(int, 1, 1024), "transformer blocks"),
    "dropout": (Number(float, 0, 1, hi_open=True), "dropout probability while training"),
    "weight_decay": (Number(float, 0, 10), "AdamW weight decay"),
    "long_sample": (["halve", "crop"], "how to sample past block_size: KV cache refilled from the last half "
                    "window, or the exact window cropped every step"),
}


def config_problem(cfg, required):
    """The first thing wrong with a config (a dict of hyperparameters), or None."""
    if not isinstance(cfg, dict):
        return "its config is not a dictionary"
    for key in required:
        if key not in cfg:
            return f"its config lacks {key}"
    for key, value in cfg.items():
        if key not in HYPERPARAMETERS:
            continue
        typ = HYPERPARAMETERS[key][0]
        problem = (None if value in typ else f"must be one of {typ}, got {value!r}") if isinstance(typ, list) \
            else typ.problem(value)
        if problem:
            return f"{key} {problem}"
    if "n_head" in cfg and cfg["n_embd"] % cfg["n_head"]:
        return (f"n_embd ({cfg['n_embd']}) must be divisible by n_head ({cfg['n_head']}): "
                f"each head gets n_embd / n_head channels")
    return None


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad flag ends in one line (exit status 2) instead of a usage block."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser(stage, doc, defaults, gpu_defaults):
    first_line = (doc or stage).strip().splitlines()[0]
    p = OneLineParser(
        prog=f"{stage}.py",
        description=first_line,
        epilog="Every flag has a default; `python %(prog)s` alone trains, saves, evaluates and samples. "
               "Exit status: 0 done, 1 a problem the message explains, 2 a bad flag, 128 + the signal's "
               "number when stopped by Ctrl-C (130), SIGTERM (143) or SIGHUP (129) after saving a checkpoint.",
    )
    g = p.add_argument_group("hyperparameters (defaults are this stage's)")
    for key, (typ, text) in HYPERPARAMETERS.items():
        if key not in defaults:
            continue
        shown = f"{defaults[key]}"
        if gpu_defaults and key in gpu_defaults:
            shown = f"{defaults[key]} on CPU, {gpu_defaults[key]} on a GPU"
        flag = "--" + key.replace("_", "-")
        if isinstance(typ, list):
            g.add_argument(flag, dest=key, choices=typ, help=f"{text} (default: {shown})")
        else:
            g.add_argument(flag, dest=key, type=typ, metavar="X" if typ.kind is float else "N",
                           help=f"{text}; {typ.describe()} (default: {shown})")
    add_run_flags(p.add_argument_group("run"), stage)
    add_sampling_flags(p.add_argument_group("sampling"))
    return p


def add_run_flags(r, stage):
    r.add_argument("--seed", type=int, default=None,
                   help="seed for weights, batches and sampling (default: 1337 when training; "
                        "a fresh one for --sample-only, printed so you can repeat it)")
    r.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"], default="auto",
                   help="auto picks cuda, then mps, then cpu (default: auto)")
    r.add_argument("--dtype", choices=["auto", "float32", "bfloat16"], default="auto",
                   help="number format for the matmuls; auto = bfloat16 where the chip does it natively "
                        "(recent CUDA GPUs, CPUs with AVX512-BF16/AMX), else float32")
    r.add_argument("--compile", action="store_true", help="torch.compile the model (slow start, maybe faster steps)")
    r.add_argument("--data", metavar="PATH",
                   help="a local UTF-8 text (a regular file of at most 64 MiB) to train on instead of "
                        "downloading Tiny Shakespeare (also: environment variable GPT_DATA)")
    r.add_argument("--out", metavar="DIR", help=f"where checkpoints and metrics go (default: out/{stage})")
    r.add_argument("--resume", action="store_true", help="continue training from the last checkpoint in --out")
    r.add_argument("--overwrite", action="store_true",
                   help="replace a model already trained in --out (without it such a run is refused)")
    r.add_argument("--allow-new-text", action="store_true",
                   help="with --resume: continue although the text differs from the one the checkpoint trained on")
    r.add_argument("--stop-at", type=positive_int, metavar="N",
                   help="stop after step N and save a checkpoint, to continue later with --resume "
                        "(the learning-rate schedule still runs to --max-iters)")
    r.add_argument("--patience", type=positive_int, metavar="N",
                   help="stop early once N evaluations in a row have not improved the best val estimate "
                        "(default: train all --max-iters steps; the best model is kept either way)")
    r.add_argument("--final-eval", type=nonnegative_int, metavar="CHARS",
                   help="score only the first CHARS characters of each split at the end; 0 skips it "
                        "(default: every character, the figure the README reports)")


def add_sampling_flags(s):
    s.add_argument("--sample-only", action="store_true",
                   help="no training: load the best model kept in --out and generate")
    s.add_argument("--prompt", default=None, help="text to continue (default: start from a single newline)")
    s.add_argument("--max-new-tokens", type=Number(int, 0, 10**7), default=500, metavar="N",
                   help="characters to generate; 0 to 10,000,000 (default: 500)")
    s.add_argument("--temperature", type=Number(float, 0, 100), default=1.0, metavar="X",
                   help="below 1 is safer, above 1 wilder, 0 always takes the likeliest character; "
                        "[0, 100] (default: 1.0)")
    s.add_argument("--top-k", type=positive_int, default=None, metavar="N",
                   help="sample only among the N likeliest characters (default: all)")


def explicit_hyperparameters(args, defaults):
    """The hyperparameters given on the command line (None means the flag was not given)."""
    return {k: getattr(args, k) for k in defaults if getattr(args, k, None) is not None}
