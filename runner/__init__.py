"""What `python <stage>.py` does: the run every stage shares, so a stage script holds only its lesson.

A stage script (bigram_v1.py ... gpt.py) declares its hyperparameters and its model and hands both to
main() here. Keeping the rest in one place is what lets `diff -u bigram_v1.py bigram_v2.py` show only the
idea that is new. A run, one function each, in this order:

  configure     the device (cuda, then mps, then cpu), the number format, the config (runner/config.py)
  load_data     the text, the character tokenizer, the 90/10 split (data/)
  build         the model and its AdamW optimizer, or both restored from --out's checkpoint
  train         the loop: runner/loop.py, the file to read beside the lecture's training loop
  report        the kept (best) model measured on the full train and val splits; metrics.json
  sample        text from the kept model, printed as it is drawn (sampling.py)

The other files: config.py (flags from the stage's table), bookkeeping.py (what the loop's run.* calls
do), files.py (the files in --out), console.py (printing, progress, signals), device.py, distributed.py
(torchrun), and runs.py: reading, launching and looking inside runs, for the figures, the benchmark,
the exercises and the tests.
"""

import hashlib
import os
import sys
from contextlib import nullcontext
from dataclasses import dataclass
from functools import partial

import torch

import sampling
from data import CharTokenizer, DataError, load_text, split

from . import distributed
from .bookkeeping import Progress, Run
from .config import UserError, build_parser, config_problem, default_out, defaults, settle
from .console import make_output_forgiving, say
from .device import autocast, machine_info, memory, native_bf16, pick_device, pick_dtype
from .files import BEST, CHECKPOINT, METRICS, TOKENIZER, OutLock, load_checkpoint, load_weights, save_json
from .loop import GRAD_CLIP, MIN_LR_RATIO, bigram_floor, estimate_loss, full_loss, lr_at, make_optimizer, train
from .runs import STAGES, capture, launch, load_run

# what the notes, the figures, the benchmark, the exercises and the tests use as runner.<name>
__all__ = ["BEST", "CHECKPOINT", "DEFAULT_SEED", "GRAD_CLIP", "METRICS", "MIN_LR_RATIO", "STAGES", "TOKENIZER",
           "UserError", "autocast", "bigram_floor", "capture", "defaults", "estimate_loss", "full_loss", "launch", "load_run",
           "lr_at", "machine_info", "main", "make_optimizer", "native_bf16", "pick_device", "pick_dtype", "train"]

DEFAULT_SEED = 1337  # training is reproducible by default; --sample-only draws a fresh seed unless given one


@dataclass
class Context:
    """What configure() settled, before any data or weights."""

    stage: str
    args: object  # the parsed command line
    table: dict  # the stage's HYPERPARAMETERS
    cfg: dict  # the run's hyperparameters, settled
    device: torch.device
    dtype: torch.dtype
    seed: int
    ckpt: dict = None  # the checkpoint --resume continues

    def path(self, name):
        return os.path.join(self.args.out, name)

    @property
    def autocast(self):
        return autocast(self.device, self.dtype)


@dataclass
class Data:
    tok: CharTokenizer
    train: torch.Tensor
    val: torch.Tensor
    sha256: str  # of the text, so --resume notices a changed text

    @property
    def splits(self):
        return {"train": self.train, "val": self.val}


def main(script, build_model, table, doc=None, gpu_table=None, argv=None):
    """Parse argv, run, and return the exit status: a mistake a user can fix is one line on stderr."""
    stage = os.path.splitext(os.path.basename(script))[0]
    make_output_forgiving()
    try:
        args = build_parser(stage, doc, table, gpu_table).parse_args(argv)
    except SystemExit as e:  # --help (0) or a bad flag (2): returned, so a notebook gets a status, not an exception
        return e.code
    args.out = os.path.abspath(args.out or default_out(script, stage))
    try:
        ctx = configure(stage, table, gpu_table, args)
        if args.sample_only:
            return sample_only(ctx)
        data = load_data(ctx)
        with OutLock(args.out) if distributed.MAIN else nullcontext():  # one run writes in --out at a time
            run = build(ctx, data, build_model)
            model = distributed.wrap(torch.compile(run.model) if args.compile else run.model, ctx.device)
            train(model, run.optimizer, data.train, ctx.cfg, run)
            if not run.finished():  # stopped early: the checkpoint is saved, nothing to report yet
                return report_stop(ctx, run)
            if distributed.MAIN:
                report(ctx, data, run)
                sample(ctx, run.model, data.tok, "sample")
        return 0
    except (UserError, DataError) as e:
        say(f"{stage}.py: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # a second Ctrl-C: quit at once
        say(f"{stage}.py: interrupted", file=sys.stderr)
        return 130
    finally:
        distributed.stop(clean=sys.exc_info()[0] is None)


def configure(stage, table, gpu_table, args):
    device = distributed.start(pick_device(args.device))
    dtype = pick_dtype(args.dtype, device)
    if device.type == "cuda":
        torch.set_float32_matmul_precision("high")  # TF32 for the few matmuls autocast leaves in float32
    if distributed.MAIN and not args.sample_only:
        how = "chosen with --device" if args.device != "auto" else "auto: " + {
            "cuda": "CUDA GPU found", "mps": "Apple GPU found"}.get(device.type, "no CUDA or MPS GPU found")
        say(f"device: {device.type} ({how})")
    ckpt = None
    if args.resume:
        ckpt = load_checkpoint(os.path.join(args.out, CHECKPOINT), stage, table,
                               hint=f"train first: `python {stage}.py --out {args.out}`")
    cfg = settle(table, gpu_table, device.type == "cuda", ckpt and ckpt["config"], args)
    why = config_problem(cfg, table)
    if why:
        raise UserError(why)
    seed = args.seed if args.seed is not None else (
        int.from_bytes(os.urandom(4), "little") % 1_000_000 if args.sample_only else DEFAULT_SEED)
    return Context(stage, args, table, cfg, device, dtype, seed, ckpt)


def load_data(ctx):
    cfg, ckpt = ctx.cfg, ctx.ckpt
    text = load_text(ctx.args.data, min_chars=cfg["block_size"] + 1)
    tok = CharTokenizer.from_text(text)
    sha = hashlib.sha256(text.encode("utf-8")).hexdigest()
    if ckpt is not None and CharTokenizer.from_dict(ckpt["tokenizer"]) != tok:
        raise UserError(f"the checkpoint in {ctx.args.out} was trained on a text with another vocabulary "
                        f"({len(ckpt['tokenizer']['chars'])} characters, this one has {tok.vocab_size}); use the "
                        f"same --data or another --out")
    if ckpt is not None and ckpt["text_sha256"] != sha:
        if not ctx.args.allow_new_text:
            raise UserError(f"the checkpoint in {ctx.args.out} was trained on another text with the same "
                            f"characters; use the same --data, or pass --allow-new-text to go on anyway")
        say("note: continuing on a text other than the checkpoint's (--allow-new-text)")
    check_prompt(tok, ctx.args.prompt)  # now, not after training
    train_data, val_data = split(torch.tensor(tok.encode(text), dtype=torch.long))
    if len(val_data) < cfg["block_size"] + 1:
        raise UserError(f"the text is too short: its validation split (the last 10%) has {len(val_data)} "
                        f"characters, fewer than block_size + 1 = {cfg['block_size'] + 1}; use a longer text or "
                        f"a smaller --block-size")
    return Data(tok, train_data, val_data, sha)


def check_prompt(tok, prompt):
    if prompt and any(c not in tok.stoi for c in prompt):
        raise UserError(f"--prompt: {tok.unknown_message(prompt)}; write the prompt with those characters only")


def build(ctx, data, build_model):
    """The model and optimizer, fresh (from the seed) or restored from --out's checkpoint."""
    cfg, args = ctx.cfg, ctx.args
    if distributed.MAIN:
        check_out(ctx)
    with torch.device("meta"):  # shapes only, no memory: is there room for the real one?
        params = sum(p.numel() for p in build_model(cfg, data.tok.vocab_size).parameters())
    have = memory(ctx.device)
    if have is not None and 16 * params > have:  # weights, gradients and AdamW's two moments: 16 bytes each
        raise UserError(f"this configuration has {params:,} parameters, which need {16 * params / 2**30:,.1f} GiB "
                        f"to train, more than the {have / 2**30:,.1f} GiB this {ctx.device.type} has; choose smaller "
                        f"sizes (--n-embd, --n-layer, --block-size)")
    torch.manual_seed(ctx.seed)  # the same initial weights on every rank
    model = build_model(cfg, data.tok.vocab_size).to(ctx.device)
    batches = torch.Generator().manual_seed(ctx.seed + distributed.RANK)  # each rank draws its own batches
    torch.manual_seed(ctx.seed + distributed.RANK)  # and its own dropout masks
    run = Run(ctx, model, make_optimizer(model, cfg, ctx.device), data, Progress(), batches)
    if ctx.ckpt is not None:
        load_weights(model, ctx.ckpt, ctx.path(CHECKPOINT))
        run.restore(ctx.ckpt, ctx.path(CHECKPOINT))
        if distributed.MAIN:
            done = run.p.step >= cfg["max_iters"]
            say(f"resuming {args.out} at step {run.p.step} of {cfg['max_iters']}" + (
                f": it has finished; pass --max-iters (more than {cfg['max_iters']}) to train longer" if done else ""))
    if distributed.MAIN:
        matmuls = any(isinstance(m, torch.nn.Linear) for m in model.modules())  # bigram_v1 has none
        fmt = f", matmuls in {str(ctx.dtype).replace('torch.', '')}" if matmuls else ""
        procs = f" on {distributed.WORLD} processes" if distributed.WORLD > 1 else ""
        say(f"{ctx.stage}: {params:,} parameters{fmt}{procs}; {len(data.train):,} train and {len(data.val):,} val "
            f"characters; vocabulary {data.tok.vocab_size}")
    return run


def check_out(ctx):
    """A run already in --out is never replaced without being asked to."""
    names = [n for n in (CHECKPOINT, BEST, METRICS) if os.path.exists(ctx.path(n))]
    if not names or ctx.args.resume:
        return
    if not ctx.args.overwrite:
        what = f"a trained {ctx.stage} model" if METRICS in names else f"an unfinished {ctx.stage} run"
        raise UserError(f"{ctx.args.out} already holds {what}; continue it with --resume, replace it with "
                        f"--overwrite, or keep both by giving this run another --out DIR")
    for name in names:
        os.unlink(ctx.path(name))


def report_stop(ctx, run):
    if distributed.MAIN:
        where = f"checkpoint saved in {ctx.args.out}; continue with --resume"
        if run.stop.requested:
            say(f"stopped by {run.stop.name()} at step {run.p.step}; {where}", file=sys.stderr)
        else:
            say(f"stopped at step {run.p.step} of {ctx.cfg['max_iters']}; {where}")
    return run.stop.exit_status() if run.stop.requested else 0


def report(ctx, data, run):
    """Measure the kept (best) model on the full splits, beside the bigram floor; write metrics.json."""
    cfg, p, model = ctx.cfg, run.p, run.model
    kept = p.best or p.history[-1]
    if kept["iter"] != p.step:
        best = load_checkpoint(ctx.path(BEST), ctx.stage, ctx.table, hint="train again")
        load_weights(model, best, ctx.path(BEST))
        say(f"kept the model of step {kept['iter']} (val estimate {kept['val']:.4f}); the last step's was "
            f"{p.history[-1]['val']:.4f}")
    tokens = p.step * cfg["batch_size"] * cfg["block_size"] * distributed.WORLD
    say(f"trained {p.step} steps in {p.train_seconds:.1f} s" + (
        f": {tokens / p.train_seconds:,.0f} tokens/s" if p.train_seconds else ""))
    metrics = dict(stage=ctx.stage, params=sum(q.numel() for q in model.parameters()), iters=p.step, kept=kept,
                   batch_size=cfg["batch_size"], block_size=cfg["block_size"], device=ctx.device.type,
                   dtype=str(ctx.dtype).replace("torch.", ""), world_size=distributed.WORLD,
                   train_seconds=p.train_seconds,
                   tokens_per_second=tokens / p.train_seconds if p.train_seconds else None)
    metrics.update(final_losses(ctx, data, model))
    metrics.update(config=cfg, seed=ctx.seed, text_sha256=data.sha256, history=p.history,
                   machine=machine_info(ctx.device))
    save_json(ctx.path(METRICS), metrics)
    say(f"checkpoints and metrics saved in {ctx.args.out}")


def final_losses(ctx, data, model):
    """The kept model's loss on every character of each split (or its first --final-eval ones; 0 skips it)."""
    chars, block = ctx.args.final_eval, ctx.cfg["block_size"]
    floor = bigram_floor(data.train, data.val, data.tok.vocab_size)
    if chars == 0:
        say(f"final measurement skipped (--final-eval 0); the bigram floor is {floor:.4f}")
        return dict(train_loss=None, val_loss=None, final_eval_chars=0, bigram_floor=floor)
    which = "full splits" if chars is None else f"first {chars:,} characters of each split"
    say(f"measuring the loss on the {which} ...")
    losses = {name: full_loss(model, d if chars is None else d[: max(chars, block) + 1], block, ctx.device,
                              ctx.autocast) for name, d in data.splits.items()}
    # stages 1 and 2 cannot get far below the bigram floor; 3 and 4 must
    say(f"{which}: train {losses['train']:.4f}, val {losses['val']:.4f}; bigram floor {floor:.4f} "
        f"(this model: {losses['val'] - floor:+.4f})")
    return dict(train_loss=losses["train"], val_loss=losses["val"], final_eval_chars=chars, bigram_floor=floor)


def sample(ctx, model, tok, title):
    """Print a sample from model as it is drawn: a stop (Ctrl-C, SIGTERM) keeps what was printed."""
    args = ctx.args
    ids = tok.encode(args.prompt) if args.prompt else [tok.stoi.get("\n", 0)]  # a newline starts every speech
    say(f"---- {title} (seed {ctx.seed}: --seed {ctx.seed} draws it again) ----")
    say(args.prompt or "", end="")
    model.eval()
    tokens = sampling.stream(model, torch.tensor([ids], device=ctx.device), args.max_new_tokens, args.temperature,
                             args.top_k, torch.Generator().manual_seed(ctx.seed), ctx.cfg["block_size"],
                             ctx.cfg.get("long_sample", "crop"))
    for token in tokens:
        say(tok.decode(token[0].tolist()), end="")
    say()


def sample_only(ctx):
    run = load_run(ctx.args.out, ctx.stage)
    check_prompt(run.tok, ctx.args.prompt)
    ctx.cfg, model = settle(ctx.table, None, False, run.cfg, ctx.args), run.model.to(ctx.device)
    say(f"{ctx.stage}: the model of step {run.step} (val estimate {run.val:.4f}) from {run.path}", file=sys.stderr)
    if run.busy:
        say(f"note: a run is still training in {ctx.args.out} (process {run.busy}); this is its best model so far",
            file=sys.stderr)
    sample(ctx, model, run.tok, "sample")
    return 0
