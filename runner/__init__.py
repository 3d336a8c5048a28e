"""What `python <stage>.py` does: the run every stage shares, so a stage script holds only its lesson.

A stage script (bigram_v1.py ... gpt.py) declares its hyperparameters and its model and hands both to
main() here. Keeping the rest in one place is what lets `diff -u bigram_v1.py bigram_v2.py` show only the
idea that is new. A run, in this order, each step a function below:

  main          the flags (runner/cli.py), then a training run or --sample-only; stop signals
  train_run     the device and number format (pick_device), the config, the text (data/), --out's lock
  build         the model and its AdamW optimizer, fresh from the seed or restored from --out's ckpt.pt
  train         the loop: runner/loop.py, the file to read beside the lecture's training loop
  report        the kept (best) model measured on the full train and val splits; metrics.json
  sample        text from the kept model, printed as it is drawn (sampling.py)

The other files: checkpoints.py (the files in --out and its lock; load_run, the one reader of a run
directory) and torchrun.py (several processes, and printing on the first of them).
"""

import hashlib
import os
import signal
import sys
import threading
from contextlib import suppress
from functools import partial
from pathlib import Path

import torch

import sampling
from data import CharTokenizer, DataError, load_text, split

from . import torchrun
from .checkpoints import BEST, CHECKPOINT, METRICS, STAGES, load_run, lock, read_checkpoint, save_json, unusable
from .cli import DEFAULT_SEED, SMALL_MODEL, build_parser, default_out, defaults, settle
from .loop import (GRAD_CLIP, MIN_LR_RATIO, Progress, bigram_floor, estimate_loss, full_loss, lr_at, make_optimizer,
                   train)
from .torchrun import say

# Besides what main() uses, these are here for the notes, the figures, the benchmark, the exercises and the
# tests to call as runner.<name>: defaults, estimate_loss, GRAD_CLIP, load_run, lr_at, MIN_LR_RATIO, STAGES.
# Ctrl-C, `kill` / `timeout` / a cluster's stop (SIGTERM), and a closed terminal (SIGHUP; POSIX only)
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


class Stopped(KeyboardInterrupt):
    """A stop signal outside the training loop, or a second Ctrl-C: the run ends at once."""


class Run:
    """One run: its flags, then the config, text, model and optimizer, and where it stands (progress)."""

    def __init__(self, stage, args, table, build_model):
        self.stage, self.args, self.table, self.build_model, self.progress = stage, args, table, build_model, Progress()
        self.saved = self.stop = self.lock = None  # the step last saved; the signal that asked to stop
        self.training = self.hinted = False
        self.step_times = []  # seconds per step, for loop.pace

    def path(self, name):
        return os.path.join(self.args.out, name)

    def read(self, name):
        """(checkpoint, model, tokenizer) from --out's file name, checked (checkpoints.read_checkpoint)."""
        return read_checkpoint(self.path(name), self.stage, self.table, self.build_model)

    def readable(self, name):
        """The checkpoint in --out's file name, or None where there is no usable one."""
        with suppress(DataError):
            return self.read(name)[0]

    def stop_signal(self, signum, frame):
        """Ctrl-C, SIGTERM or SIGHUP: in the training loop, a stop between two steps (so the checkpoint holds
        whole steps and --resume repeats the run exactly); outside it, or a second Ctrl-C, Stopped at once."""
        if self.training and (self.stop is None or signum != signal.SIGINT):
            self.stop = signum
        else:
            raise Stopped(signum)


def main(script, build_model, table, doc=None, gpu_table=None, argv=None):
    """Parse argv, run, and return the exit status: a mistake a user can fix is one line on stderr."""
    stage = os.path.splitext(os.path.basename(script))[0]
    for name in ("stdout", "stderr"):  # closed (`2>&-`): the null device; a character it cannot show: "?"
        setattr(sys, name, getattr(sys, name) or open(os.devnull, "w", encoding="utf-8"))
        with suppress(AttributeError, ValueError, OSError):
            getattr(sys, name).reconfigure(errors="replace")
    try:
        args = build_parser(stage, doc, table, gpu_table).parse_args(argv)
    except SystemExit as e:  # --help (0) or a bad flag (2): returned, so a notebook gets a status, not an exception
        return e.code
    args.out = os.path.abspath(args.out or default_out(script, stage))
    run, threads, previous = Run(stage, args, table, build_model), torch.get_num_threads(), {}
    if threading.current_thread() is threading.main_thread():  # signals reach the main thread only
        previous = {signum: signal.signal(signum, run.stop_signal) for signum in STOP_SIGNALS}
    try:
        return sample_only(run) if args.sample_only else train_run(run, gpu_table)
    except Stopped as e:  # the shell's convention: 128 + the signal, 130 for Ctrl-C, 143 for SIGTERM
        line = f"{stage}.py: stopped by {signal.Signals(e.args[0]).name}"
        if run.saved is not None:
            line += f" at step {run.saved}; checkpoint saved in {args.out}: continue with --resume"
        say(line, file=sys.stderr)
        return 128 + e.args[0]
    except (DataError, MemoryError, RuntimeError) as e:  # torch.OutOfMemoryError is a RuntimeError, as a CPU's is
        if isinstance(e, RuntimeError) and "alloc" not in str(e):
            raise
        why = e if isinstance(e, DataError) else "out of memory; try a smaller --batch-size, --block-size or --n-embd"
        say(f"{stage}.py: error: {why}", file=sys.stderr)
        return 1
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)  # the caller's own handlers and threads, in a notebook
        torch.set_num_threads(threads)
        if run.lock:
            run.lock.close()  # releases --out
        torchrun.stop(clean=sys.exc_info()[0] is None)


def train_run(run, gpu_table):
    args = run.args
    run.device = torchrun.start(pick_device(args.device))
    if run.device.type == "cuda":
        torch.set_float32_matmul_precision("high")  # TF32 for the few matmuls autocast leaves in float32
    how = {"cuda": "CUDA GPU found", "mps": "Apple GPU found"}.get(run.device.type, "no CUDA or MPS GPU found")
    say(f"device: {run.device.type} ({'chosen with --device' if args.device != 'auto' else 'auto: ' + how})")
    ckpt = run.read(CHECKPOINT)[0] if args.resume else None
    run.cfg = settle(run.table, gpu_table, run.device.type == "cuda", ckpt and ckpt["config"], args)
    stored = ckpt or {}  # a resumed run keeps its seed and number format
    run.seed = stored.get("seed", DEFAULT_SEED) if args.seed is None else args.seed
    native = "bfloat16" if native_bf16(run.device) else "float32"  # --dtype auto
    run.dtype_name = stored.get("dtype", native) if args.dtype == "auto" else args.dtype
    # bfloat16 autocast runs the matmuls in bfloat16 while weights and optimizer stay float32; float32: no-op
    run.autocast = partial(torch.autocast, run.device.type, dtype=torch.bfloat16, enabled=run.dtype_name == "bfloat16")
    load_data(run, ckpt)
    run.lock = torchrun.agree(lambda: check_out(run))
    build(run, ckpt)
    model = torchrun.wrap(torch.compile(run.model) if args.compile else run.model, run.device)
    run.training = True  # run.model stays the plain module: its weights are what the checkpoints keep
    train(model, run.optimizer, run.train, run.cfg, run)
    run.training = False
    p = run.progress
    if run.stop:
        raise Stopped(run.stop)
    if p.step < run.cfg["max_iters"] and not p.early:
        say(f"stopped at step {p.step} of {run.cfg['max_iters']} (--stop-at); checkpoint saved in {args.out}; "
            f"continue with --resume")
    elif torchrun.MAIN:
        report(run)
        sample(run, run.model, run.tok)
    return 0


def load_data(run, ckpt):
    cfg, out = run.cfg, run.args.out
    text = load_text(run.args.data, min_chars=10 * (cfg["block_size"] + 1))  # val, its last 10%, holds a window
    run.tok, run.sha256 = CharTokenizer.from_text(text), hashlib.sha256(text.encode("utf-8")).hexdigest()
    if ckpt is not None and ckpt.get("text_sha256") != run.sha256:  # its tokenizer fits only the same characters
        if not run.args.allow_new_text or CharTokenizer.from_dict(ckpt["tokenizer"]) != run.tok:
            raise DataError(f"the checkpoint in {out} was trained on another text; use the same --data (or, for a "
                            f"text of the same characters, --allow-new-text)")
        say("note: continuing on a text other than the checkpoint's (--allow-new-text)")
    check_prompt(run.tok, run.args.prompt)  # now, not after training
    run.train, run.val = split(torch.tensor(run.tok.encode(text), dtype=torch.long))
    run.splits = {"train": run.train, "val": run.val}


def check_prompt(tok, prompt):
    if prompt and any(c not in tok.stoi for c in prompt):
        raise DataError(f"--prompt: {tok.unknown_message(prompt)}; write the prompt with those characters only")


def check_out(run):
    """Take --out's lock; a run already there is never replaced without being asked to (and with --overwrite,
    nothing of it is deleted before this run's first checkpoint: loop.save). Returns the lock."""
    args = run.args
    held = lock(args.out)
    names = [n for n in (CHECKPOINT, BEST, METRICS) if os.path.exists(run.path(n))]
    if names and not args.resume and not args.overwrite:
        held.close()
        hint = "continue it with --resume, " if run.readable(CHECKPOINT) else ""  # only where it would work
        what = f"a trained {run.stage} model" if METRICS in names else "an unfinished run"
        raise DataError(f"{args.out} already holds {what}; {hint}replace it with --overwrite, or keep both by giving "
                        f"this run another --out DIR")
    return held


def build(run, ckpt):
    """The model, optimizer and batch generator: fresh from the seed, or restored from --out's checkpoint."""
    cfg, vocab_size, args = run.cfg, run.tok.vocab_size, run.args
    torch.manual_seed(run.seed)  # the same initial weights on every rank
    run.model = run.build_model(cfg, vocab_size).to(run.device)
    run.params = sum(p.numel() for p in run.model.parameters())
    torch.set_num_threads(args.threads or (1 if run.params < SMALL_MODEL else torch.get_num_threads()))
    run.optimizer = make_optimizer(run.model, cfg, run.device)
    run.batches = torch.Generator().manual_seed(run.seed + torchrun.RANK)  # each rank draws its own batches
    torch.manual_seed(run.seed + torchrun.RANK)  # and its own dropout masks
    if ckpt is not None:
        restore(run, ckpt)
    run.progress.patience = args.patience or run.progress.patience
    matmuls = any(isinstance(m, torch.nn.Linear) for m in run.model.modules())  # bigram_v1 has none
    fmt = f", matmuls in {run.dtype_name}" if matmuls else ""
    procs = f" on {torchrun.WORLD} processes" if torchrun.WORLD > 1 else ""
    say(f"{run.stage}: {run.params:,} parameters{fmt}{procs}; {len(run.train):,} train and {len(run.val):,} val "
        f"characters; vocabulary {vocab_size}")


def restore(run, ckpt):
    """Continue where ckpt.pt left off. Its parts are checked before use: an optimizer state that does not fit
    the model would crash PyTorch inside its C++ (a segmentation fault), not raise."""
    try:
        run.model.load_state_dict(ckpt["model"])
        p = Progress(**{k: ckpt[k] for k in Progress.__dataclass_fields__ if k in ckpt})
        if len(p.step_losses) != p.step:  # a step or step_losses of another type fails here too
            raise ValueError(f"its step {p.step!r} does not match its {len(p.step_losses)} training losses")
        params, state = list(run.model.parameters()), ckpt["optimizer"]
        if [i for g in state["param_groups"] for i in g["params"]] != list(range(len(params))) or any(
                t.shape != params[i].shape for i, s in state["state"].items() for t in s.values() if t.dim()):
            raise ValueError("its optimizer state does not fit the model")
        run.optimizer.load_state_dict(state)
        rngs = ckpt["rng"]  # one per rank that saved
        rng = rngs[min(torchrun.RANK, len(rngs) - 1)]
        torch.set_rng_state(rng["torch"])
        run.batches.set_state(rng["batches"])
        if "cuda" in rng and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
    except Exception as e:  # an edited file: anything in it may be of the wrong kind
        raise unusable(run.path(CHECKPOINT), run.stage, e) from None
    if p.step > run.cfg["max_iters"]:
        raise DataError(f"--max-iters {run.cfg['max_iters']} is below the step this run has reached ({p.step}); give "
                        f"--max-iters {p.step} or more")
    if len(rngs) != torchrun.WORLD:
        say(f"note: the checkpoint was written by {len(rngs)} process(es), this run has {torchrun.WORLD}: "
            f"training goes on, but its batches differ from an uninterrupted run")
    if p.best and torchrun.MAIN and (run.readable(BEST) or {}).get("iter") != p.best["iter"]:
        say(f"note: {run.path(BEST)} is missing, unusable or not the best model ckpt.pt names (step "
            f"{p.best['iter']}); the best model is kept afresh from here")
        p.best = None
    run.progress, run.saved, last = p, p.step, run.cfg["max_iters"]
    done = f": it has finished; --max-iters above {last} trains longer" if p.early or p.step == last else ""
    say(f"resuming {run.args.out} at step {p.step} of {last}{done}")


def report(run):
    """Measure the kept (best) model on the full splits (or the first --final-eval characters of each; 0 skips
    it), beside the bigram floor; write metrics.json."""
    cfg, p, model, chars = run.cfg, run.progress, run.model, run.args.final_eval
    kept = p.best or p.history[-1]
    if kept["iter"] != p.step:
        model.load_state_dict(run.read(BEST)[0]["model"])
        say(f"kept the model of step {kept['iter']} (val estimate {kept['val']:.4f}); the last step's was "
            f"{p.history[-1]['val']:.4f}")
    tokens = p.step * cfg["batch_size"] * cfg["block_size"] * torchrun.WORLD
    speed = tokens / p.train_seconds if p.train_seconds else None
    say(f"trained {p.step} steps in {p.train_seconds:.1f} s" + (f": {speed:,.0f} tokens/s" if speed else ""))
    floor, losses = bigram_floor(run.train, run.val, run.tok.vocab_size), {"train": None, "val": None}
    which = "full splits" if chars is None else f"first {chars:,} characters of each split"
    if chars == 0:
        say(f"final measurement skipped (--final-eval 0); the bigram floor is {floor:.4f}")
    else:
        say(f"measuring the loss on the {which} ...")
        losses = {name: full_loss(model, d if chars is None else d[: max(chars, cfg["block_size"]) + 1],
                                  cfg["block_size"], run.device) for name, d in run.splits.items()}
        # stages 1 and 2 cannot get far below the bigram floor; 3 and 4 must
        say(f"{which}: train {losses['train']:.4f}, val {losses['val']:.4f}; bigram floor {floor:.4f} "
            f"(this model: {losses['val'] - floor:+.4f})")
    save_json(run.path(METRICS), dict(
        stage=run.stage, params=run.params, iters=p.step, kept=kept, batch_size=cfg["batch_size"],
        block_size=cfg["block_size"], device=run.device.type, dtype=run.dtype_name, world_size=torchrun.WORLD,
        train_seconds=p.train_seconds, tokens_per_second=speed, train_loss=losses["train"], val_loss=losses["val"],
        final_eval_chars=chars, bigram_floor=floor, config=cfg, seed=run.seed, text_sha256=run.sha256,
        history=p.history))
    say(f"checkpoints and metrics saved in {run.args.out}")


def sample(run, model, tok):
    """Print a sample from model, in eval mode (no dropout), as it is drawn: a stop keeps what was printed."""
    args = run.args
    if not all(torch.isfinite(t).all() for t in model.state_dict().values()):
        raise DataError("the model's weights are not all finite numbers (training diverged: try a smaller --lr), so "
                        "it has no sample to give")
    ids = tok.encode(args.prompt) if args.prompt else [tok.stoi.get("\n", 0)]  # a newline starts every speech
    say(f"---- sample (seed {run.seed}: --seed {run.seed} draws it again) ----")
    say(args.prompt or "", end="")
    try:
        for token in sampling.stream(model.eval(), torch.tensor([ids], device=run.device), args.max_new_tokens,
                                     args.temperature, args.top_k, torch.Generator().manual_seed(run.seed),
                                     run.cfg["block_size"], run.cfg.get("long_sample", "crop")):
            say(tok.decode(token[0].tolist()), end="")
    finally:
        say()  # the end of the sample's line, also when a stop cuts it short


def sample_only(run):
    args = run.args
    if not torchrun.MAIN:
        return 0  # under torchrun one process samples
    run.device = pick_device(args.device)
    kept = load_run(args.out, run.stage, run.build_model, run.table, metrics=False)
    check_prompt(kept.tok, args.prompt)
    run.cfg = settle(run.table, None, False, kept.cfg, args)  # a flag may not contradict its shapes
    # a new text every time, unless --seed
    run.seed = int.from_bytes(os.urandom(4), "little") % 1_000_000 if args.seed is None else args.seed
    say(f"{run.stage}: the model of step {kept.step} (val estimate {kept.val:.4f}) in {kept.path}", file=sys.stderr)
    if kept.busy:
        say(f"note: a run is still training in {args.out} (process {kept.busy}); this is its best model so far",
            file=sys.stderr)
    sample(run, kept.model.to(run.device), kept.tok)
    return 0


def pick_device(choice):
    """--device auto: a CUDA GPU, else an Apple GPU (mps), else the CPU."""
    mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if mps else "cpu")
    if (choice == "cuda" and not torch.cuda.is_available()) or (choice == "mps" and not mps):
        raise DataError(f"--device {choice}: PyTorch sees no such GPU here; use --device auto or cpu")
    return torch.device(choice)


def native_bf16(device):
    """Whether the chip computes in bfloat16 natively: recent CUDA GPUs; CPUs whose flags (Linux names them in
    /proc/cpuinfo) include AVX512-BF16 or AMX-BF16. Elsewhere float32 is the safe choice."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    flags = Path("/proc/cpuinfo").read_text() if os.path.isfile("/proc/cpuinfo") else ""
    return device.type == "cpu" and ("avx512_bf16" in flags or "amx_bf16" in flags)
