"""The command line every stage shares, built from the stage's own table of hyperparameters.

A stage declares each hyperparameter once, in its HYPERPARAMETERS table, as

    name=(default, lowest, highest, "what it is")       a number: int or float, from the default's type
    name=(default, ("choice", ...), "what it is")       one of a few words

and everything else is derived from that one entry: the flag (--name-with-dashes), its type and range,
its --help line, and the check of the config stored in a checkpoint. Adding a hyperparameter to a stage
touches the stage file only.

A run's configuration is settled in one order, each source overriding the one before:

    1. the stage's HYPERPARAMETERS defaults;
    2. on a CUDA GPU, the stage's GPU_HYPERPARAMETERS (gpt.py: the lecture's model);
    3. with --resume or --sample-only, the config stored in the checkpoint;
    4. the flags given on the command line (checked as they are parsed).
"""

import argparse
import os

from data import DataError
from sampling import MAX_TEMPERATURE

DEFAULT_SEED = 1337  # training is reproducible by default; --sample-only draws a fresh seed unless given one


EPILOG = ("Every flag has a default: `python %(prog)s` alone trains, saves, evaluates and samples. Exit status: "
          "0 done, 1 a problem the message explains, 2 a bad flag, 128 + the signal's number when stopped by "
          "Ctrl-C (130), SIGTERM (143) or SIGHUP (129) after saving a checkpoint.")


def defaults(table):
    return {name: entry[0] for name, entry in table.items()}


def describe(entry):
    """The range of a table entry as --help shows it: "1 to 65,536", "[0, 0.9]" or "halve, crop"."""
    if len(entry) == 3:
        return ", ".join(entry[1])
    return f"{entry[1]:,} to {entry[2]:,}" if isinstance(entry[0], int) else f"[{entry[1]:g}, {entry[2]:g}]"


def problem(value, entry):
    """Why value does not fit the table entry, or None when it does."""
    if len(entry) == 3:
        return None if value in entry[1] else f"must be one of {describe(entry)}, got {value!r}"
    whole = isinstance(entry[0], int)
    if isinstance(value, bool) or not isinstance(value, int if whole else (int, float)):
        return f"must be {'a whole number' if whole else 'a number'}, got {value!r}"
    if not entry[1] <= value <= entry[2]:  # a NaN fails this too
        return f"must be in {describe(entry)}, got {value}"
    return None


def config_problem(cfg, table):
    """The first thing wrong with a config (flags merged, or a checkpoint's), or None."""
    if not isinstance(cfg, dict):
        return "its config is not a dictionary"
    for name, entry in table.items():
        if name not in cfg:
            return f"its config lacks {name}"
        if why := problem(cfg[name], entry):
            return f"{name} {why}"
    if "n_head" in cfg and cfg["n_embd"] % cfg["n_head"]:
        return f"n_embd ({cfg['n_embd']}) must be divisible by n_head ({cfg['n_head']}): each head gets n_embd / n_head"
    return None


def flag_type(entry):
    """An argparse type for a table entry: the text read as the default's type, then checked against the entry.
    A text that is no number ends in argparse's own line ("invalid int value: '1.5'")."""

    def parse(text):
        value = type(entry[0])(text)
        if why := problem(value, entry):
            raise argparse.ArgumentTypeError(why)
        return value

    parse.__name__ = type(entry[0]).__name__  # the name argparse's "invalid ... value" line gives the type
    return parse


SMALL_MODEL = 100_000  # parameters: below this one CPU thread is faster than several, on a busy machine most of all
# the run's own numeric flags, written as table entries so they are checked and shown the same way
POSITIVE, NONNEGATIVE = (1, 1, 10**9, ""), (0, 0, 10**9, "")


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad flag ends in one line (exit status 2) instead of a usage block."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser(stage, doc, table, gpu_table=None):
    p = OneLineParser(prog=f"{stage}.py", description=(doc or stage).strip().splitlines()[0], epilog=EPILOG,
                      allow_abbrev=False)  # --max-iter is a typo, not --max-iters
    g = p.add_argument_group("hyperparameters (this stage's table; defaults are its own)")
    for name, entry in table.items():
        shown = f"{entry[0]} on a CPU, {gpu_table[name]} on a GPU" if name in (gpu_table or {}) else f"{entry[0]}"
        metavar = "{" + ",".join(entry[1]) + "}" if len(entry) == 3 else "N" if isinstance(entry[0], int) else "X"
        g.add_argument("--" + name.replace("_", "-"), dest=name, type=flag_type(entry), metavar=metavar,
                       help=f"{entry[-1]}; {describe(entry)} (default: {shown})")
    r = p.add_argument_group("run")
    r.add_argument("--seed", type=flag_type((0, 0, 2**62, "")), metavar="N", help=f"seed of weights, batches and "
                   f"sampling; 0 to 2**62 (default: {DEFAULT_SEED}; a new one for --sample-only)")
    r.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"], default="auto",
                   help="auto picks cuda, then mps, then cpu (default: auto)")
    r.add_argument("--dtype", choices=["auto", "float32", "bfloat16"], default="auto",
                   help="number format of the matmuls; auto: bfloat16 where the chip has it natively, else float32")
    r.add_argument("--threads", type=flag_type(POSITIVE), metavar="N", help="CPU threads (default: 1 for a model "
                   f"under {SMALL_MODEL:,} parameters, where more threads wait on each other, else PyTorch's choice)")
    r.add_argument("--compile", action="store_true", help="torch.compile the model (slow start, maybe faster steps)")
    r.add_argument("--data", metavar="PATH", help="a UTF-8 text (at most 64 MiB) to train on instead (or: GPT_DATA)")
    r.add_argument("--out", metavar="DIR", help=f"where the run's files go (default: out/{stage} beside the scripts)")
    r.add_argument("--resume", action="store_true", help="continue training from the last checkpoint in --out")
    r.add_argument("--overwrite", action="store_true", help="replace a run already in --out (without it, refused)")
    r.add_argument("--allow-new-text", action="store_true",
                   help="with --resume: go on although the text differs from the checkpoint's")
    r.add_argument("--stop-at", type=flag_type(POSITIVE), metavar="N",
                   help="stop after step N and save, to continue with --resume (the schedule still runs to max-iters)")
    r.add_argument("--patience", type=flag_type(POSITIVE), metavar="N",
                   help="stop once N evaluations in a row have not improved the best val estimate")
    r.add_argument("--final-eval", type=flag_type(NONNEGATIVE), metavar="CHARS",
                   help="at the end, score only the first CHARS characters of each split; 0 skips it (default: all)")
    s = p.add_argument_group("sampling")
    s.add_argument("--sample-only", action="store_true", help="no training: sample the best model kept in --out")
    s.add_argument("--prompt", help="text to continue (default: a single newline)")
    s.add_argument("--max-new-tokens", type=flag_type((500, 0, 10**7, "")), default=500, metavar="N",
                   help="characters to generate; 0 to 10,000,000 (default: 500)")
    s.add_argument("--temperature", type=flag_type((1.0, 0.0, MAX_TEMPERATURE, "")), default=1.0, metavar="X",
                   help="below 1 safer, above 1 wilder, 0 always the likeliest character; [0, 100] (default: 1.0)")
    s.add_argument("--top-k", type=flag_type(POSITIVE), metavar="N",
                   help="sample only among the N likeliest characters (default: all)")
    return p


def settle(table, gpu_table, on_gpu, stored, args):
    """The run's config, in the order the module docstring gives; a flag that contradicts the shapes of the
    checkpoint's weights, or n_embd and n_head that do not divide, is a DataError."""
    cfg = defaults(table)
    if on_gpu:
        cfg.update(gpu_table or {})
    flags = {name: getattr(args, name) for name in table if getattr(args, name, None) is not None}
    if stored is not None:
        for name, value in flags.items():
            if name in SHAPES and stored[name] != value:
                raise DataError(f"the checkpoint in {args.out} has {name}={stored[name]}, so "
                                f"--{name.replace('_', '-')} {value} cannot load it; drop the flag")
        cfg.update({name: stored[name] for name in table})
    cfg.update(flags)
    if why := config_problem(cfg, table):  # each flag was checked as it was parsed: only n_embd / n_head is left
        raise DataError(why)
    return cfg


SHAPES = ("block_size", "n_embd", "n_head", "n_layer")  # they fix the weights' shapes: a checkpoint keeps them


def default_out(script, stage):
    """out/<stage> beside the stage scripts (like the cached text), wherever the command runs from."""
    return os.path.join(os.path.dirname(os.path.abspath(script)), "out", stage)
