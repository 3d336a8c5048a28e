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

The other files: bookkeeping.py (the Run the loop's run.* calls go to), config.py (flags from a stage's
table), files.py (the files in --out), console.py (printing, progress, signals), device.py,
distributed.py (torchrun), and runs.py (reading, launching and looking inside runs: what the figures,
the benchmark and the tests use).
"""

import hashlib
import os
import signal
import sys
from contextlib import nullcontext

import torch

import sampling
from data import CharTokenizer, DataError, load_text, split

from . import distributed
from .bookkeeping import Run
from .config import DEFAULT_SEED, UserError, build_parser, config_problem, default_out, defaults, settle
from .console import make_output_forgiving, say
from .device import machine_info, native_bf16, pick_device, pick_dtype
from .files import BEST, CHECKPOINT, METRICS, load_checkpoint, load_weights, out_lock, save_json
from .loop import GRAD_CLIP, MIN_LR_RATIO, bigram_floor, estimate_loss, full_loss, lr_at, make_optimizer, train
from .runs import STAGES, capture, launch, load_run

# Besides what main() uses, these are here for the notes, the figures, the benchmark, the exercises and the
# tests to call as runner.<name>: capture, defaults, estimate_loss, GRAD_CLIP, launch, load_run, lr_at,
# MIN_LR_RATIO, native_bf16, STAGES.


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
        run = configure(stage, table, gpu_table, args)
        if args.sample_only:
            return sample_only(run)
        load_data(run)
        with out_lock(args.out) if distributed.MAIN else nullcontext():  # one run writes in --out at a time
            build(run, build_model)
            model = distributed.wrap(torch.compile(run.model) if args.compile else run.model, run.device)
            train(model, run.optimizer, run.train, run.cfg, run)
            return finish(run)
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
    if device.type == "cuda":
        torch.set_float32_matmul_precision("high")  # TF32 for the few matmuls autocast leaves in float32
    if distributed.MAIN and not args.sample_only:
        how = {"cuda": "CUDA GPU found", "mps": "Apple GPU found"}.get(device.type, "no CUDA or MPS GPU found")
        say(f"device: {device.type} ({'chosen with --device' if args.device != 'auto' else 'auto: ' + how})")
    ckpt = None
    if args.resume:
        ckpt = load_checkpoint(os.path.join(args.out, CHECKPOINT), stage, table)
    cfg = settle(table, gpu_table, device.type == "cuda", ckpt and ckpt["config"], args)
    why = config_problem(cfg, table)
    if why:
        raise UserError(why)
    fresh = int.from_bytes(os.urandom(4), "little") % 1_000_000  # --sample-only: a new text every time
    seed = args.seed if args.seed is not None else fresh if args.sample_only else DEFAULT_SEED
    return Run(stage, args, table, cfg, device, pick_dtype(args.dtype, device), seed, ckpt)


def load_data(run):
    cfg, ckpt, out = run.cfg, run.ckpt, run.args.out
    text = load_text(run.args.data, min_chars=cfg["block_size"] + 1)
    run.tok, run.sha256 = CharTokenizer.from_text(text), hashlib.sha256(text.encode("utf-8")).hexdigest()
    if ckpt is not None and CharTokenizer.from_dict(ckpt["tokenizer"]) != run.tok:
        raise UserError(f"the checkpoint in {out} was trained on a text with another vocabulary; use the same "
                        f"--data or another --out")
    if ckpt is not None and ckpt.get("text_sha256") != run.sha256:
        if not run.args.allow_new_text:
            raise UserError(f"the checkpoint in {out} was trained on another text with the same characters; use "
                            f"the same --data, or pass --allow-new-text to go on anyway")
        say("note: continuing on a text other than the checkpoint's (--allow-new-text)")
    check_prompt(run.tok, run.args.prompt)  # now, not after training
    run.train, run.val = split(torch.tensor(run.tok.encode(text), dtype=torch.long))
    run.splits = {"train": run.train, "val": run.val}
    if len(run.val) < cfg["block_size"] + 1:
        raise UserError(f"the text is too short: its validation split (the last 10%) has {len(run.val)} "
                        f"characters, fewer than block_size + 1 = {cfg['block_size'] + 1}; use a longer text or "
                        f"a smaller --block-size")


def check_prompt(tok, prompt):
    if prompt and any(c not in tok.stoi for c in prompt):
        raise UserError(f"--prompt: {tok.unknown_message(prompt)}; write the prompt with those characters only")


def build(run, build_model):
    """The model, optimizer and batch generator: fresh from the seed, or restored from --out's checkpoint."""
    cfg, vocab_size = run.cfg, run.tok.vocab_size
    if distributed.MAIN:
        check_out(run)
    torch.manual_seed(run.seed)  # the same initial weights on every rank
    run.model = build_model(cfg, vocab_size).to(run.device)
    run.params = sum(p.numel() for p in run.model.parameters())
    run.optimizer = make_optimizer(run.model, cfg, run.device)
    run.batches = torch.Generator().manual_seed(run.seed + distributed.RANK)  # each rank draws its own batches
    torch.manual_seed(run.seed + distributed.RANK)  # and its own dropout masks
    if run.ckpt is not None:
        load_weights(run.model, run.ckpt, run.path(CHECKPOINT))
        run.restore(run.ckpt, run.path(CHECKPOINT))
    if distributed.MAIN:
        if run.ckpt is not None:
            done = f": it has finished; --max-iters above {cfg['max_iters']} trains longer" if run.finished() else ""
            say(f"resuming {run.args.out} at step {run.p.step} of {cfg['max_iters']}{done}")
        matmuls = any(isinstance(m, torch.nn.Linear) for m in run.model.modules())  # bigram_v1 has none
        fmt = f", matmuls in {run.dtype_name}" if matmuls else ""
        procs = f" on {distributed.WORLD} processes" if distributed.WORLD > 1 else ""
        say(f"{run.stage}: {run.params:,} parameters{fmt}{procs}; {len(run.train):,} train and {len(run.val):,} val "
            f"characters; vocabulary {vocab_size}")


def check_out(run):
    """A run already in --out is never replaced without being asked to."""
    names = [n for n in (CHECKPOINT, BEST, METRICS) if os.path.exists(run.path(n))]
    if not names or run.args.resume:
        return
    if not run.args.overwrite:
        what = f"a trained {run.stage} model" if METRICS in names else f"an unfinished {run.stage} run"
        raise UserError(f"{run.args.out} already holds {what}; continue it with --resume, replace it with "
                        f"--overwrite, or keep both by giving this run another --out DIR")
    for name in names:
        os.unlink(run.path(name))


def finish(run):
    """After the loop: report and sample a finished run, or say how to go on with a stopped one."""
    if run.finished():
        if distributed.MAIN:
            report(run)
            sample(run, run.model, run.tok)
        return 0
    signum = run.stop.signum  # None: stopped by --stop-at
    if distributed.MAIN:
        how = f"stopped by {signal.Signals(signum).name}" if signum else "stopped"
        say(f"{how} at step {run.p.step} of {run.cfg['max_iters']}; checkpoint saved in {run.args.out}; continue "
            f"with --resume", file=sys.stderr if signum else sys.stdout)
    return 128 + signum if signum else 0  # the shell's convention: 130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP


def report(run):
    """Measure the kept (best) model on the full splits, beside the bigram floor; write metrics.json."""
    cfg, p, model = run.cfg, run.p, run.model
    kept = p.best or p.history[-1]
    if kept["iter"] != p.step:
        load_weights(model, load_checkpoint(run.path(BEST), run.stage, run.table), run.path(BEST))
        say(f"kept the model of step {kept['iter']} (val estimate {kept['val']:.4f}); the last step's was "
            f"{p.history[-1]['val']:.4f}")
    tokens = p.step * cfg["batch_size"] * cfg["block_size"] * distributed.WORLD
    speed = tokens / p.train_seconds if p.train_seconds else None
    say(f"trained {p.step} steps in {p.train_seconds:.1f} s" + (f": {speed:,.0f} tokens/s" if speed else ""))
    metrics = dict(stage=run.stage, params=run.params, iters=p.step, kept=kept,
                   batch_size=cfg["batch_size"], block_size=cfg["block_size"], device=run.device.type,
                   dtype=run.dtype_name, world_size=distributed.WORLD,
                   train_seconds=p.train_seconds, tokens_per_second=speed, **final_losses(run))
    metrics.update(config=cfg, seed=run.seed, text_sha256=run.sha256, history=p.history,
                   machine=machine_info(run.device))
    save_json(run.path(METRICS), metrics)
    say(f"checkpoints and metrics saved in {run.args.out}")


def final_losses(run):
    """The kept model's loss on every character of each split (or its first --final-eval ones; 0 skips it)."""
    chars, block = run.args.final_eval, run.cfg["block_size"]
    floor = bigram_floor(run.train, run.val, run.tok.vocab_size)
    if chars == 0:
        say(f"final measurement skipped (--final-eval 0); the bigram floor is {floor:.4f}")
        return dict(train_loss=None, val_loss=None, final_eval_chars=0, bigram_floor=floor)
    which = "full splits" if chars is None else f"first {chars:,} characters of each split"
    say(f"measuring the loss on the {which} ...")
    losses = {name: full_loss(run.model, d if chars is None else d[: max(chars, block) + 1], block, run.device,
                              run.autocast) for name, d in run.splits.items()}
    # stages 1 and 2 cannot get far below the bigram floor; 3 and 4 must
    say(f"{which}: train {losses['train']:.4f}, val {losses['val']:.4f}; bigram floor {floor:.4f} "
        f"(this model: {losses['val'] - floor:+.4f})")
    return dict(train_loss=losses["train"], val_loss=losses["val"], final_eval_chars=chars, bigram_floor=floor)


def sample(run, model, tok):
    """Print a sample from model as it is drawn: a stop (Ctrl-C, SIGTERM) keeps what was printed."""
    args = run.args
    ids = tok.encode(args.prompt) if args.prompt else [tok.stoi.get("\n", 0)]  # a newline starts every speech
    model = model.eval()  # dropout off: the sample is the trained model's own
    say(f"---- sample (seed {run.seed}: --seed {run.seed} draws it again) ----")
    say(args.prompt or "", end="")
    for token in sampling.stream(model, torch.tensor([ids], device=run.device), args.max_new_tokens,
                                 args.temperature, args.top_k, torch.Generator().manual_seed(run.seed),
                                 run.cfg["block_size"], run.cfg.get("long_sample", "crop")):
        say(tok.decode(token[0].tolist()), end="")
    say()


def sample_only(run):
    kept = load_run(run.args.out, run.stage)
    check_prompt(kept.tok, run.args.prompt)
    run.cfg = settle(run.table, None, False, kept.cfg, run.args)  # a flag may not contradict its shapes
    say(f"{run.stage}: the model of step {kept.step} (val estimate {kept.val:.4f}) in {kept.path}", file=sys.stderr)
    if kept.busy:
        say(f"note: a run is still training in {run.args.out} (process {kept.busy}); this is its best model so far",
            file=sys.stderr)
    sample(run, kept.model.to(run.device), kept.tok)
    return 0
