"""The run plumbing every stage shares: `runner.main()` is what `python <stage>.py` calls.

A stage script (bigram_v1.py ... gpt.py) defines its hyperparameters and its model, then hands both to
main() here. Keeping this bookkeeping in one place is what lets `diff -u bigram_v1.py bigram_v2.py` show
only the idea that is new; nothing in here is specific to one model.

What a run does, one function each (read them in this order):
  configure       pick a device (cuda, then mps, then cpu) and a number format; settle the hyperparameters
                  (the stage's defaults, a checkpoint's when resuming, then the flags);
  load_data       load the text, build the character tokenizer, split 90/10 by position;
  build_or_resume build the model and its AdamW optimizer, or restore both from --out's checkpoint;
  train           lr -> batch -> forward -> backward -> clip -> step -> log, with an evaluation, a
                  checkpoint and the best model kept every --eval-interval steps;
  report          measure the kept (best) model on the full train and val splits, write metrics.json;
  generate_text   print a sample from the kept model, starting from --prompt.

The pieces live beside this file: cli.py (flags), device.py, training.py (the step, the optimizer, the
losses), checkpoint.py (files in --out), console.py (printing, progress, signals), distributed.py (torchrun).
"""

import hashlib
import os
import sys
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn

import sampling
from data import CharTokenizer, DataError, UnknownCharacterError, get_batch, load_text, split

from . import distributed
from .checkpoint import (BEST, CHECKPOINT, METRICS, TOKENIZER, CheckpointError, OutLock, Progress, RunState,
                         load, load_weights, restore_rng, rng_state, save_best, save_checkpoint, trained_model_in,
                         write_json)
from .cli import STAGES, build_parser, config_problem, explicit_hyperparameters, nonnegative_int, positive_int
from .console import ProgressBar, StopRequest, make_output_forgiving, say
from .device import (DeviceError, attention_kernel, autocast, available_memory, describe_choice, dtype_name,
                     machine_info, native_bf16, pick_device, pick_dtype)
from .training import (GRAD_CLIP, MIN_LR_RATIO, bigram_floor, count_params, estimate_loss, full_loss, lr_at,
                       make_optimizer, set_lr, train_step)

# What other code (the benchmark, the notes, the tests) uses as runner.<name>
__all__ = ["ARCHITECTURE", "BEST", "CHECKPOINT", "GRAD_CLIP", "METRICS", "MIN_LR_RATIO", "STAGES", "TOKENIZER",
           "UserError", "attention_kernel", "autocast", "bigram_floor", "count_params", "estimate_loss", "full_loss",
           "generate_text", "lr_at", "machine_info", "main", "make_optimizer", "native_bf16", "nonnegative_int",
           "pick_device", "pick_dtype", "positive_int", "prompt_ids", "run", "set_lr", "train_step"]

DEFAULT_SEED = 1337
# Keys that fix the shapes of a model's weights: a checkpoint can only be loaded with the same ones.
ARCHITECTURE = ("block_size", "n_embd", "n_head", "n_layer")
CUDA_SYNC_EVERY = 25  # on a GPU, read the loss back (which waits for the GPU) only every N steps


class UserError(Exception):
    """A mistake on the command line or in the files it names: reported as one line, no traceback."""


ONE_LINE_ERRORS = (UserError, DataError, UnknownCharacterError, CheckpointError, DeviceError)


@dataclass
class Context:
    """What configure() settled: everything a run needs to know before it touches data or weights."""

    stage: str
    args: object  # the parsed command line
    defaults: dict
    cfg: dict
    device: torch.device
    dtype: torch.dtype
    out: str  # absolute path
    seed: int
    ranks: distributed.Ranks
    ckpt: dict = None  # the checkpoint loaded for --resume or --sample-only


@dataclass
class Data:
    tok: CharTokenizer
    train: torch.Tensor
    val: torch.Tensor
    sha256: str  # of the text, so --resume notices a changed text

    @property
    def splits(self):
        return {"train": self.train, "val": self.val}


def main(script, build_model, defaults, doc=None, gpu_defaults=None, argv=None):
    """Parse the command line and run; errors a user can cause end in one line on stderr and exit status 1.

    `script` is the stage's __file__: its name (bigram_v1, ...) names the stage, its checkpoints and --out.
    """
    stage = os.path.splitext(os.path.basename(script))[0]
    make_output_forgiving()
    args = build_parser(stage, doc, defaults, gpu_defaults).parse_args(argv)
    try:
        return run(stage, build_model, defaults, args, gpu_defaults)
    except ONE_LINE_ERRORS as e:
        say(f"{stage}.py: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        say(f"{stage}.py: interrupted", file=sys.stderr)
        return 130
    finally:
        distributed.stop()


def run(stage, build_model, defaults, args, gpu_defaults=None):
    ctx = configure(stage, defaults, gpu_defaults, args)
    if args.sample_only:
        return sample_only(ctx, build_model)
    data = load_data(ctx)
    with OutLock(ctx.out) if ctx.ranks.main else nullcontext():  # creates --out; one run writes there at a time
        state = build_or_resume(ctx, data, build_model)
        status = train(ctx, data, state)
        if status is not None:  # stopped before max_iters: the checkpoint is saved, nothing to report yet
            return status
        if ctx.ranks.main:
            report(ctx, data, state)
            say("---- sample ----")
            say(generate_text(ctx, state.model, data.tok))
    return 0


# ----------------------------------------------------------------------------------------------------
# configure


def configure(stage, defaults, gpu_defaults, args):
    device = pick_device(args.device)
    ranks, device = distributed.start(device)
    dtype = pick_dtype(args.dtype, device)
    if device.type == "cuda":
        torch.set_float32_matmul_precision("high")  # TF32 for the few matmuls autocast leaves in float32
    if ranks.main:
        say(f"device: {device.type} ({describe_choice(device, args.device)})")
    out = os.path.abspath(args.out or os.path.join("out", stage))

    cfg = dict(defaults)
    if gpu_defaults and device.type == "cuda":
        cfg.update(gpu_defaults)
    explicit = explicit_hyperparameters(args, defaults)
    ckpt = None
    if args.resume or args.sample_only:
        best = os.path.join(out, BEST)
        # --sample-only samples the kept (best) model; --resume continues the last step
        path = best if args.sample_only and os.path.exists(best) else os.path.join(out, CHECKPOINT)
        ckpt = load(path, stage, defaults, for_resume=args.resume)
        for key in ARCHITECTURE:
            if key in explicit and key in ckpt["config"] and explicit[key] != ckpt["config"][key]:
                raise UserError(f"the checkpoint in {out} has {key}={ckpt['config'][key]}, so --{key.replace('_', '-')} "
                                f"{explicit[key]} cannot load it; drop the flag or use another --out")
        cfg.update(ckpt["config"])
    cfg.update(explicit)
    problem = config_problem(cfg, required=defaults)
    if problem:
        raise UserError(problem)
    if args.seed is not None:
        seed = args.seed
    elif args.sample_only:  # a fresh text every time, unless --seed asks for a particular one
        seed = int.from_bytes(os.urandom(4), "little") % 1_000_000
    else:
        seed = DEFAULT_SEED  # training is reproducible by default
    return Context(stage, args, defaults, cfg, device, dtype, out, seed, ranks, ckpt)


# ----------------------------------------------------------------------------------------------------
# load_data


def load_data(ctx):
    cfg, ckpt = ctx.cfg, ctx.ckpt
    text = load_text(ctx.args.data, min_chars=cfg["block_size"] + 1)
    tok = CharTokenizer.from_text(text)
    sha = hashlib.sha256(text.encode("utf-8")).hexdigest()
    if ckpt is not None and CharTokenizer.from_dict(ckpt["tokenizer"]) != tok:
        raise UserError(f"the checkpoint in {ctx.out} was trained on a different text (its vocabulary has "
                        f"{len(ckpt['tokenizer']['chars'])} characters, this text's {tok.vocab_size}); "
                        f"use the same --data or another --out")
    if ckpt is not None and ckpt.get("text_sha256") not in (None, sha):
        if not ctx.args.allow_new_text:
            raise UserError(f"the checkpoint in {ctx.out} was trained on another text with the same characters "
                            f"(its checksum differs); use the same --data, or pass --allow-new-text to go on anyway")
        say("note: continuing on a text other than the one the checkpoint trained on (--allow-new-text)")
    check_prompt(tok, ctx.args.prompt)  # fail now, not after training
    ids = torch.tensor(tok.encode(text), dtype=torch.long)
    train_data, val_data = split(ids)
    if len(val_data) < cfg["block_size"] + 1:
        raise UserError(f"the text is too short: its validation split (the last 10%) has {len(val_data)} characters, "
                        f"fewer than block_size + 1 = {cfg['block_size'] + 1}; use a longer text or a smaller --block-size")
    return Data(tok, train_data, val_data, sha)


def check_prompt(tok, prompt):
    if prompt and any(c not in tok.stoi for c in prompt):
        raise UserError(f"--prompt: {tok.unknown_message(prompt)}; write the prompt with those characters only")


# ----------------------------------------------------------------------------------------------------
# build_or_resume


def build_or_resume(ctx, data, build_model):
    cfg, ckpt, ranks = ctx.cfg, ctx.ckpt, ctx.ranks
    if ranks.main:
        check_out(ctx)
    check_memory(ctx, data.tok.vocab_size)
    torch.manual_seed(ctx.seed)  # the same initial weights on every rank
    with out_of_memory_is_one_line():
        model = build_model(cfg, data.tok.vocab_size).to(ctx.device)
    optimizer = make_optimizer(model, cfg, ctx.device)
    batch_gen = torch.Generator().manual_seed(ctx.seed + ranks.rank)  # each rank draws its own batches
    torch.manual_seed(ctx.seed + ranks.rank)  # and its own dropout masks
    progress = Progress()
    if ckpt is not None:
        path = os.path.join(ctx.out, CHECKPOINT)
        load_weights(model, ckpt, path)
        try:
            optimizer.load_state_dict(ckpt["optimizer"])
        except (ValueError, KeyError, RuntimeError):
            raise CheckpointError(f"the optimizer state in {path} does not fit this model (written by an older "
                                  f"version?); train again with --overwrite") from None
        restore_rngs(ctx, ckpt, batch_gen)
        progress = Progress(**{k: ckpt[k] for k in asdict(Progress()) if k in ckpt})
        if ranks.main:
            say(f"resuming {ctx.out} at step {progress.step} of {cfg['max_iters']}")
    state = RunState(ctx.stage, model, optimizer, cfg, data.tok, data.sha256, batch_gen, progress, ranks.world_size)
    if ranks.main:
        has_matmuls = any(isinstance(m, nn.Linear) for m in model.modules())
        fmt = f", matmuls in {dtype_name(ctx.dtype)}" if has_matmuls else ""
        processes = f" on {ranks.world_size} processes" if ranks.active else ""
        say(f"{ctx.stage}: {count_params(model):,} parameters{fmt}{processes}; {len(data.train):,} train and "
            f"{len(data.val):,} val characters; vocabulary {data.tok.vocab_size}")
    return state


def restore_rngs(ctx, ckpt, batch_gen):
    states = ckpt["rng"] if isinstance(ckpt["rng"], list) else [ckpt["rng"]]  # one per rank that saved it
    if ctx.ranks.rank < len(states):
        restore_rng(states[ctx.ranks.rank], batch_gen)
    if len(states) != ctx.ranks.world_size and ctx.ranks.main:
        say(f"note: the checkpoint was written by {len(states)} process(es), this run has {ctx.ranks.world_size}: "
            f"training goes on, but its batches differ from an uninterrupted run")


def check_out(ctx):
    """A trained model in --out is never replaced without being asked to."""
    existing = trained_model_in(ctx.out)
    if existing and not ctx.args.resume:
        if not ctx.args.overwrite:
            raise UserError(f"{ctx.out} already holds a trained {ctx.stage} model; continue it with --resume, "
                            f"replace it with --overwrite, or keep both by giving this run another --out DIR")
        for name in existing + [METRICS]:
            if os.path.exists(os.path.join(ctx.out, name)):
                os.unlink(os.path.join(ctx.out, name))


def check_memory(ctx, vocab_size):
    """Refuse, in one line, a configuration that cannot fit, before allocating anything.

    A typo such as --n-embd 100000 would otherwise end in an allocation failure or, on Linux, in the
    out-of-memory killer ending the process without a word. The estimate is deliberately rough (it
    counts every stage as if it had gpt.py's blocks) and only refuses what needs over twice the memory.
    """
    cfg = ctx.cfg
    width, layers = cfg.get("n_embd", vocab_size), cfg.get("n_layer", 1)
    # embeddings, lm_head and per block about 12 C^2 (attention 4 C^2, feed-forward 8 C^2)
    params = (2 * vocab_size + cfg["block_size"]) * width + 12 * layers * width * width
    tokens = cfg["batch_size"] * cfg["block_size"]
    # weights, gradients and AdamW's two moments: 16 bytes a parameter; activations kept for backward:
    # a rough 40 numbers per channel per layer, the (T, T) attention weights, and the logits
    per_token = 40 * width * layers + 2 * cfg.get("n_head", 0) * cfg["block_size"] * layers + 4 * vocab_size
    need = 16 * params + 4 * tokens * per_token
    free = available_memory(ctx.device)
    if free is not None and need > 2 * free:
        raise UserError(f"this configuration needs about {need / 2**30:,.1f} GiB (about {params:,.0f} parameters, "
                        f"batch {cfg['batch_size']} x block {cfg['block_size']}), far more than the "
                        f"{free / 2**30:,.1f} GiB free on {ctx.device.type}; choose smaller sizes "
                        f"(--batch-size, --block-size, --n-embd, --n-layer)")


class out_of_memory_is_one_line:
    """A context manager: an allocation failure inside it becomes a UserError that suggests smaller sizes."""

    def __enter__(self):
        return self

    def __exit__(self, kind, e, tb):
        if e is None:
            return False
        oom = isinstance(e, (torch.OutOfMemoryError, MemoryError)) or (
            isinstance(e, RuntimeError) and ("alloc" in str(e) or "out of memory" in str(e)))
        if oom:
            raise UserError("out of memory; choose smaller sizes (--batch-size, --block-size, --n-embd, "
                            "--n-layer)") from None
        return False


# ----------------------------------------------------------------------------------------------------
# train


def train(ctx, data, state):
    """The training loop. Returns None when training is over, or an exit status when it stopped early.

    Every step: learning rate -> batch -> forward -> backward -> clip -> step. Every eval_interval steps
    (and at the last): estimate the losses, keep the weights if val is the best so far, save a checkpoint.
    """
    cfg, args, p, ranks = ctx.cfg, ctx.args, state.progress, ctx.ranks
    end = min(cfg["max_iters"], args.stop_at or cfg["max_iters"])
    model = torch.compile(state.model) if args.compile else state.model
    model = distributed.wrap(model, ranks, ctx.device)
    sync_every = CUDA_SYNC_EVERY if ctx.device.type == "cuda" else 1
    bar = ProgressBar(ctx.stage, cfg["max_iters"], p.step, enabled=ranks.main)
    clock = StepClock(p, bar)
    early = False
    try:
        with StopRequest() as stop:
            while True:
                if (p.step % cfg["eval_interval"] == 0 or p.step == cfg["max_iters"]) and not p.evaluated_at(p.step):
                    clock.read()
                    early = evaluate_and_save(ctx, data, state, bar)
                    clock.restart()
                if p.step >= end or early:
                    break
                if p.step % sync_every == 0 and distributed.any_rank(stop.requested, ranks, ctx.device):
                    break
                set_lr(state.optimizer, lr_at(p.step, cfg))
                x, y = get_batch(data.train, cfg["batch_size"], cfg["block_size"], ctx.device, state.batch_gen)
                with out_of_memory_is_one_line():
                    clock.add(train_step(model, state.optimizer, x, y, ctx.device, ctx.dtype, cfg))
                p.step += 1
                if p.step % sync_every == 0:
                    clock.read()
            clock.read()
    finally:
        bar.close()
    return finish_training(ctx, state, stop, early)


class StepClock:
    """Collects the steps' losses and training seconds, reading them back from the device in batches."""

    def __init__(self, progress, bar):
        self.progress, self.bar, self.pending = progress, bar, []
        self.restart()

    def restart(self):
        self.t0 = time.perf_counter()

    def add(self, loss):
        self.pending.append(loss)

    def read(self):
        if self.pending:
            losses = torch.stack(self.pending).float().tolist()  # waits for the device: the clock counts it all
            self.progress.step_losses.extend(losses)
            self.bar.update(len(losses), losses[-1])
            self.pending = []
        self.progress.train_seconds += time.perf_counter() - self.t0
        self.restart()


def evaluate_and_save(ctx, data, state, bar):
    """Estimate train/val loss, keep the best weights, save a checkpoint. Returns True to stop early."""
    p, ranks = state.progress, ctx.ranks
    rngs = distributed.gather(rng_state(state.batch_gen), ranks)  # every rank's generators, for --resume
    evaluation, early = None, False
    if ranks.main:
        losses = estimate_loss(state.model, data.splits, ctx.cfg, ctx.device, ctx.dtype, ctx.seed + 1)
        evaluation = {"iter": p.step, "seconds": p.train_seconds, **losses}
        improved = p.best is None or evaluation["val"] < p.best["val"]
        note = "" if improved else f" (best {p.best['val']:.4f} at step {p.best['iter']})"
        p.history.append(evaluation)
        if improved:
            p.best = evaluation
            save_best(ctx.out, state, evaluation)
        save_checkpoint(ctx.out, state, rngs)
        # printed after the saves: once a user sees this line, the checkpoint of this step is on disk
        bar.write(f"step {p.step}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f}{note}")
        patience = ctx.args.patience
        early = bool(patience) and p.evaluations_since_best() >= patience and p.step < ctx.cfg["max_iters"]
        if early:
            say(f"val has not improved for {patience} evaluations (best {p.best['val']:.4f} at step "
                f"{p.best['iter']}): stopping early (--patience {patience})")
    if ranks.active:  # every rank keeps the same history, and stops together
        evaluation, early, p.best = distributed.from_main((evaluation, early, p.best), ranks)
        if not ranks.main:
            p.history.append(evaluation)
    return early


def finish_training(ctx, state, stop, early):
    p, ranks, cfg = state.progress, ctx.ranks, ctx.cfg
    if p.step >= cfg["max_iters"] or early:
        return None
    rngs = distributed.gather(rng_state(state.batch_gen), ranks)
    if ranks.main:
        save_checkpoint(ctx.out, state, rngs)
    if stop.requested:
        if ranks.main:
            say(f"stopped by {stop.name()} at step {p.step}; checkpoint saved in {ctx.out}; "
                f"continue with --resume", file=sys.stderr)
        return stop.exit_status()
    if ranks.main:
        say(f"stopped at step {p.step} of {cfg['max_iters']}; checkpoint saved in {ctx.out}; continue with --resume")
    return 0


# ----------------------------------------------------------------------------------------------------
# report


def report(ctx, data, state):
    """Load the kept (best) weights into the model, measure them, and write metrics.json."""
    cfg, p, model = ctx.cfg, state.progress, state.model
    kept = p.best or p.history[-1]
    if kept["iter"] != p.step:
        best = load(os.path.join(ctx.out, BEST), ctx.stage, ctx.defaults, for_resume=False)
        load_weights(model, best, os.path.join(ctx.out, BEST))
        say(f"kept the model of step {kept['iter']} (val estimate {kept['val']:.4f}); the last step's was "
            f"{p.history[-1]['val']:.4f}")
    metrics = {
        "stage": ctx.stage,
        "params": count_params(model),
        "iters": p.step,
        "kept": kept,
        "batch_size": cfg["batch_size"],
        "block_size": cfg["block_size"],
        "device": ctx.device.type,
        "dtype": dtype_name(ctx.dtype),
        "world_size": ctx.ranks.world_size,
        "train_seconds": p.train_seconds,
        "tokens_per_second": (p.step * cfg["batch_size"] * cfg["block_size"] * ctx.ranks.world_size / p.train_seconds
                              if p.train_seconds else None),
        **final_losses(ctx, data, model),
    }
    tps = f": {metrics['tokens_per_second']:,.0f} tokens/s" if metrics["tokens_per_second"] else ""
    say(f"trained {p.step} steps in {p.train_seconds:.1f} s{tps}")
    metrics.update(config=cfg, seed=ctx.seed, text_sha256=data.sha256, history=p.history,
                   machine=machine_info(ctx.device))
    write_json(os.path.join(ctx.out, METRICS), metrics)
    say(f"checkpoints and metrics saved in {ctx.out}")


def final_losses(ctx, data, model):
    """Full-split losses of the kept model (or of the first --final-eval characters; 0 skips them)."""
    chars = ctx.args.final_eval
    floor = bigram_floor(data.train, data.val, data.tok.vocab_size)
    if chars == 0:
        say("final measurement skipped (--final-eval 0)")
        return {"train_loss": None, "val_loss": None, "final_eval_chars": 0, "bigram_floor": floor}
    block = ctx.cfg["block_size"]
    part = (lambda d: d) if chars is None else (lambda d: d[: max(chars, block) + 1])
    say("measuring the loss on the " + ("full train and val splits" if chars is None else
                                        f"first {chars:,} characters of each split") + " ...")
    losses = {name: full_loss(model, part(d), block, ctx.device, ctx.dtype) for name, d in data.splits.items()}
    which = "full splits" if chars is None else f"first {chars:,} characters"
    # Every stage prints the bigram floor: stages 1 and 2 cannot get far below it, stages 3 and 4 must.
    say(f"{which}: train {losses['train']:.4f}, val {losses['val']:.4f}; the best counted bigram table scores "
        f"{floor:.4f} on val (this model: {losses['val'] - floor:+.4f})")
    return {"train_loss": losses["train"], "val_loss": losses["val"], "final_eval_chars": chars, "bigram_floor": floor}


# ----------------------------------------------------------------------------------------------------
# sampling


def prompt_ids(tok, prompt):
    """An empty prompt (the default) starts from a newline, the character that starts every speech."""
    if not prompt:
        return [tok.stoi["\n"]] if "\n" in tok.stoi else [0]
    return tok.encode(prompt)


def generate_text(ctx, model, tok):
    model.eval()
    args = ctx.args
    ids = prompt_ids(tok, args.prompt)
    idx = torch.tensor([ids], dtype=torch.long, device=ctx.device)  # (1, T)
    g = torch.Generator().manual_seed(ctx.seed)
    out = sampling.generate(model, idx, args.max_new_tokens, args.temperature, args.top_k, g,
                            ctx.cfg.get("block_size"), ctx.cfg.get("long_sample", "halve"))
    return (args.prompt or "") + tok.decode(out[0, len(ids):].tolist())


def sample_only(ctx, build_model):
    tok = CharTokenizer.from_dict(ctx.ckpt["tokenizer"])
    check_prompt(tok, ctx.args.prompt)
    model = build_model(ctx.cfg, tok.vocab_size).to(ctx.device)
    load_weights(model, ctx.ckpt, ctx.out)
    if ctx.args.seed is None:
        say(f"seed {ctx.seed} (pass --seed {ctx.seed} to draw this text again)", file=sys.stderr)
    say(generate_text(ctx, model, tok))
    return 0
