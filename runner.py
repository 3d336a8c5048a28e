"""The run plumbing every stage shares: command line, device, training loop, checkpoints, metrics, sampling.

A stage script (bigram_v1.py ... gpt.py) defines its hyperparameters and its model, then hands both to
`main()` here. Keeping this bookkeeping in one place is what lets `diff -u bigram_v1.py bigram_v2.py`
show only the idea that is new; nothing in here is specific to one model.

What a run does:
  1. pick a device (cuda, then mps, then cpu) and a number format (bfloat16 where the chip does it natively);
  2. load the text, build the character tokenizer, split 90/10 by position;
  3. train with AdamW, a warmup + cosine learning-rate schedule and gradient clipping, showing a progress
     bar and printing sampled train/val loss estimates every --eval-interval steps;
  4. save a checkpoint (atomically) in --out, also on Ctrl-C;
  5. measure the loss on the *full* train and val splits and write <out>/metrics.json;
  6. print a sample, starting from --prompt.
"""

import argparse
import contextlib
import json
import math
import os
import platform
import signal
import sys
import tempfile
import threading
import time

import torch
from torch.nn import functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from tqdm import tqdm

from data import CharTokenizer, DataError, UnknownCharacterError, get_batch, load_text, split

CHECKPOINT = "ckpt.pt"
TOKENIZER = "tokenizer.json"
METRICS = "metrics.json"
MIN_LR_RATIO = 0.1  # the cosine schedule ends at a tenth of the peak learning rate
GRAD_CLIP = 1.0  # clip the global gradient norm: one bad batch cannot throw the weights far
# Keys that fix the shapes of a model's weights: a checkpoint can only be resumed with the same ones.
ARCHITECTURE = ("block_size", "n_embd", "n_head", "n_layer")


class UserError(Exception):
    """A mistake on the command line or in the files it names: reported as one line, no traceback."""


# ----------------------------------------------------------------------------------------------------
# command line


def positive_int(s):
    v = int(s)
    if v <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, got {s}")
    return v


def nonnegative_int(s):
    v = int(s)
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {s}")
    return v


def positive_float(s):
    v = float(s)
    if not v > 0 or math.isinf(v):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {s}")
    return v


def probability(s):
    v = float(s)
    if not 0 <= v < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {s}")
    return v


# flag -> (config key, type, help). Flags whose key a stage's hyperparameters lack are not offered.
HYPERPARAMETER_FLAGS = {
    "--max-iters": ("max_iters", positive_int, "training steps"),
    "--eval-interval": ("eval_interval", positive_int, "print train/val loss estimates every N steps"),
    "--eval-iters": ("eval_iters", positive_int, "batches per train/val estimate"),
    "--batch-size": ("batch_size", positive_int, "sequences per step"),
    "--block-size": ("block_size", positive_int, "context length in characters"),
    "--lr": ("lr", positive_float, "peak learning rate"),
    "--warmup-iters": ("warmup_iters", nonnegative_int, "steps of linear learning-rate warmup"),
    "--n-embd": ("n_embd", positive_int, "embedding width"),
    "--n-head": ("n_head", positive_int, "attention heads"),
    "--n-layer": ("n_layer", positive_int, "transformer blocks"),
    "--dropout": ("dropout", probability, "dropout probability while training"),
    "--weight-decay": ("weight_decay", float, "AdamW weight decay"),
    "--long-sample": ("long_sample", ["halve", "crop"], "how to sample past block_size: KV cache refilled "
                      "from the last half window, or the exact window cropped every step"),
}


def build_parser(stage, doc, defaults, gpu_defaults):
    first_line = (doc or stage).strip().splitlines()[0]
    p = argparse.ArgumentParser(
        prog=f"{stage}.py",
        description=first_line,
        epilog="Every flag has a default; `python %(prog)s` alone trains, saves, evaluates and samples.",
    )
    g = p.add_argument_group("hyperparameters (defaults are this stage's)")
    for flag, (key, typ, text) in HYPERPARAMETER_FLAGS.items():
        if key not in defaults:
            continue
        shown = f"{defaults[key]}"
        if gpu_defaults and key in gpu_defaults:
            shown = f"{defaults[key]} on CPU, {gpu_defaults[key]} on a GPU"
        kind = {"choices": typ} if isinstance(typ, list) else {"type": typ, "metavar": "X" if typ in (positive_float, probability, float) else "N"}
        g.add_argument(flag, dest=key, help=f"{text} (default: {shown})", **kind)
    r = p.add_argument_group("run")
    r.add_argument("--seed", type=int, default=1337, help="seed for weights, batches and sampling (default: 1337)")
    r.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"], default="auto",
                   help="auto picks cuda, then mps, then cpu (default: auto)")
    r.add_argument("--dtype", choices=["auto", "float32", "bfloat16"], default="auto",
                   help="number format for the matmuls; auto = bfloat16 where the chip does it natively "
                        "(recent CUDA GPUs, CPUs with AVX512-BF16/AMX), else float32")
    r.add_argument("--compile", action="store_true", help="torch.compile the model (slow start, maybe faster steps)")
    r.add_argument("--data", metavar="PATH",
                   help="a local UTF-8 text to train on instead of downloading Tiny Shakespeare "
                        "(also: environment variable GPT_DATA)")
    r.add_argument("--out", metavar="DIR", help=f"where checkpoint and metrics go (default: out/{stage})")
    r.add_argument("--resume", action="store_true", help="continue training from the checkpoint in --out")
    r.add_argument("--stop-at", type=positive_int, metavar="N",
                   help="stop after step N and save a checkpoint, to continue later with --resume "
                        "(the learning-rate schedule still runs to --max-iters)")
    s = p.add_argument_group("sampling")
    s.add_argument("--sample-only", action="store_true", help="no training: load the checkpoint in --out and generate")
    s.add_argument("--prompt", default=None,
                   help="text to continue (default: start from a single newline)")
    s.add_argument("--max-new-tokens", type=nonnegative_int, default=500, metavar="N",
                   help="characters to generate (default: 500)")
    s.add_argument("--temperature", type=positive_float, default=1.0, metavar="X",
                   help="below 1 is safer, above 1 wilder (default: 1.0)")
    s.add_argument("--top-k", type=positive_int, default=None, metavar="N",
                   help="sample only among the N likeliest characters (default: all)")
    return p


def explicit_hyperparameters(args, defaults):
    return {k: getattr(args, k) for k in defaults if getattr(args, k, None) is not None}


def check_config(cfg):
    if "n_head" in cfg and cfg["n_embd"] % cfg["n_head"]:
        raise UserError(f"n_embd ({cfg['n_embd']}) must be divisible by n_head ({cfg['n_head']}): "
                        f"each head gets n_embd / n_head channels")


# ----------------------------------------------------------------------------------------------------
# device and number format


def pick_device(choice):
    if choice == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if choice == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: PyTorch sees no CUDA GPU here; use --device auto or cpu")
    if choice == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise UserError("--device mps: this PyTorch has no Apple-silicon (MPS) support here; use --device auto or cpu")
    return torch.device(choice)


def native_bf16(device):
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        check = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
        return bool(check and check())
    return False  # mps: float32 is the safe choice


def pick_dtype(choice, device):
    if choice == "auto":
        return torch.bfloat16 if native_bf16(device) else torch.float32
    return getattr(torch, choice)


def attention_kernel(device, cfg):
    """Which kernel F.scaled_dot_product_attention (gpt.py) may use while training.

    PyTorch picks one by itself: on a CPU its flash kernel, which never stores the (T, T) attention
    weights. That saves the most memory and time on long blocks (the lecture's 256), but for blocks of 128
    or fewer the plain "math" kernel trains about 20% faster on a CPU (README, Performance), so it gets to.
    Models that do not call scaled_dot_product_attention are not affected.
    """
    if device.type == "cpu" and cfg["block_size"] <= 128:
        return sdpa_kernel([SDPBackend.MATH])
    return contextlib.nullcontext()


def autocast(device, dtype):
    """bfloat16 autocast runs the matmuls in bf16 while the weights and the optimizer stay float32."""
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=dtype == torch.bfloat16)


# ----------------------------------------------------------------------------------------------------
# learning-rate schedule, losses


def lr_at(step, cfg):
    """Linear warmup to cfg['lr'], then cosine decay to MIN_LR_RATIO * lr at max_iters."""
    lr, warmup, total = cfg["lr"], cfg.get("warmup_iters", 0), cfg["max_iters"]
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return lr * (MIN_LR_RATIO + (1 - MIN_LR_RATIO) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


@torch.no_grad()
def estimate_loss(model, splits, cfg, device, dtype, seed):
    """Mean loss over eval_iters random batches of each split; the same batches every time it is called."""
    model.eval()
    out = {}
    for name, data in splits.items():
        g = torch.Generator().manual_seed(seed)
        losses = []
        for _ in range(cfg["eval_iters"]):
            x, y = get_batch(data, cfg["batch_size"], cfg["block_size"], device, g)
            with autocast(device, dtype):
                _, loss = model(x, y)
            losses.append(loss.item())
        out[name] = sum(losses) / len(losses)
    model.train()
    return out


@torch.no_grad()
def full_loss(model, data, block_size, device, dtype, rows=64):
    """Mean loss over *every* next-character prediction in data, in consecutive windows of block_size."""
    model.eval()
    n = (len(data) - 1) // block_size
    x = data[: n * block_size].view(n, block_size)  # (n, T)
    y = data[1 : n * block_size + 1].view(n, block_size)  # (n, T)
    total, count = 0.0, 0

    def add(xb, yb):
        nonlocal total, count
        with autocast(device, dtype):
            logits, _ = model(xb.to(device))
        total += F.cross_entropy(logits.float().flatten(0, 1), yb.to(device).flatten(), reduction="sum").item()
        count += yb.numel()

    for i in range(0, n, rows):
        add(x[i : i + rows], y[i : i + rows])
    tail = len(data) - 1 - n * block_size
    if tail:
        add(data[n * block_size : -1][None], data[n * block_size + 1 :][None])
    model.train()
    return total / count


def bigram_floor(train, val, vocab_size, alpha=None):
    """The lowest val loss any bigram model trained on `train` can reach, from counts.

    A bigram model predicts the next character from the current one alone, so its best possible
    prediction is the table of next-character frequencies counted on the training split. Add-alpha
    smoothing keeps pairs never seen in training from costing infinitely much on val; alpha is chosen
    on a grid as the one that gives the lowest val loss, so no trained bigram should beat this figure.
    """
    counts = torch.zeros(vocab_size, vocab_size, dtype=torch.float64)
    counts.index_put_((train[:-1], train[1:]), torch.ones(len(train) - 1, dtype=torch.float64), accumulate=True)
    pairs = torch.zeros_like(counts)
    pairs.index_put_((val[:-1], val[1:]), torch.ones(len(val) - 1, dtype=torch.float64), accumulate=True)
    alphas = [alpha] if alpha is not None else [10.0 ** e for e in range(-4, 2)] + [0.5, 2.0, 3.0, 5.0]

    def val_loss(a):
        probs = (counts + a) / (counts + a).sum(1, keepdim=True)
        return -(pairs * probs.log()).sum().item() / pairs.sum().item()

    return min(val_loss(a) for a in alphas)


# ----------------------------------------------------------------------------------------------------
# checkpoints


def atomic_write(path, write):
    """Write to a temporary file beside `path`, then rename: a crash never leaves half a file at `path`."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=os.path.basename(path))
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_checkpoint(out, stage, model, optimizer, cfg, tok, step, batch_gen, history, step_losses, train_seconds):
    state = {
        "stage": stage,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "config": cfg,
        "tokenizer": tok.to_dict(),
        "step": step,
        "rng": {"torch": torch.get_rng_state(), "batches": batch_gen.get_state()},
        "history": history,
        "step_losses": step_losses,
        "train_seconds": train_seconds,
    }
    if torch.cuda.is_available():
        state["rng"]["cuda"] = torch.cuda.get_rng_state_all()
    atomic_write(os.path.join(out, CHECKPOINT), lambda p: torch.save(state, p))
    tok.save(os.path.join(out, TOKENIZER))


def load_checkpoint(out, stage):
    path = os.path.join(out, CHECKPOINT)
    if not os.path.exists(path):
        raise UserError(f"no checkpoint at {path}; train first with `python {stage}.py --out {out}`")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise UserError(f"checkpoint {path} is corrupt or unreadable ({type(e).__name__}); "
                        f"delete it and train again") from None
    if not isinstance(ckpt, dict) or "stage" not in ckpt or "model" not in ckpt:
        raise UserError(f"{path} is not a gpt-from-scratch checkpoint; delete it and train again")
    if ckpt["stage"] != stage:
        raise UserError(f"checkpoint {path} was written by {ckpt['stage']}.py, not {stage}.py; "
                        f"point --out at a {stage} run (default out/{stage})")
    return ckpt


def check_out_writable(out):
    try:
        os.makedirs(out, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=out, prefix=".write-test-")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise UserError(f"cannot write to --out {out} ({e.strerror or e}); choose another directory") from None


# ----------------------------------------------------------------------------------------------------
# sampling


def check_prompt(tok, prompt):
    if prompt and any(c not in tok.stoi for c in prompt):
        raise UserError(f"--prompt: {tok.unknown_message(prompt)}")


def prompt_ids(tok, prompt):
    """An empty prompt (the default) starts from a newline, the character that starts every speech."""
    if not prompt:
        return [tok.stoi["\n"]] if "\n" in tok.stoi else [0]
    return tok.encode(prompt)


@torch.inference_mode()  # like no_grad, and it also skips autograd's bookkeeping on every tensor
def sample(model, idx, max_new_tokens, temperature=1.0, top_k=None, generator=None, block_size=None):
    """Append max_new_tokens sampled tokens to idx (B, T), one forward pass over the last block per token."""
    for _ in range(max_new_tokens):
        idx_cond = idx if block_size is None else idx[:, -block_size:]  # (B, <=block_size)
        logits, _ = model(idx_cond)  # (B, T, vocab_size)
        idx_next = pick_next(logits[:, -1, :], temperature, top_k, generator)  # (B, 1)
        idx = torch.cat((idx, idx_next), dim=1)  # (B, T+1)
    return idx


def pick_next(logits, temperature=1.0, top_k=None, generator=None):
    """Draw the next token from the last position's logits (B, vocab_size) -> (B, 1)."""
    logits = logits.float() / temperature
    if top_k is not None and top_k < logits.size(-1):
        kth = torch.topk(logits, top_k).values[:, [-1]]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = F.softmax(logits, dim=-1).cpu()  # sampled on the CPU so a seed gives the same text on any device
    return torch.multinomial(probs, num_samples=1, generator=generator).to(logits.device)


def generate_text(model, tok, cfg, args, device):
    model.eval()
    ids = prompt_ids(tok, args.prompt)
    idx = torch.tensor([ids], dtype=torch.long, device=device)  # (1, T)
    g = torch.Generator().manual_seed(args.seed)
    if hasattr(model, "generate"):  # gpt.py brings its own, faster generate (a KV cache)
        out = model.generate(idx, args.max_new_tokens, temperature=args.temperature, top_k=args.top_k,
                             generator=g, strategy=cfg["long_sample"])
    else:
        out = sample(model, idx, args.max_new_tokens, args.temperature, args.top_k, g, cfg.get("block_size"))
    new = tok.decode(out[0, len(ids):].tolist())
    return (args.prompt or "") + new


# ----------------------------------------------------------------------------------------------------
# the run


def count_params(model):
    return sum(p.numel() for p in model.parameters())


def run(stage, build_model, defaults, args, gpu_defaults=None):
    torch.manual_seed(args.seed)
    device = pick_device(args.device)
    how = "auto: " + ("CUDA GPU found" if device.type == "cuda" else "Apple GPU found" if device.type == "mps"
                      else "no CUDA or MPS GPU found") if args.device == "auto" else "chosen with --device"
    dtype = pick_dtype(args.dtype, device)
    print(f"device: {device.type} ({how}); matmuls in {str(dtype).replace('torch.', '')}")
    out = args.out or os.path.join("out", stage)

    cfg = dict(defaults)
    if gpu_defaults and device.type == "cuda":
        cfg.update(gpu_defaults)
    explicit = explicit_hyperparameters(args, defaults)
    ckpt = load_checkpoint(out, stage) if (args.resume or args.sample_only) else None
    if ckpt is not None:
        for key in ARCHITECTURE:
            if key in explicit and key in ckpt["config"] and explicit[key] != ckpt["config"][key]:
                raise UserError(f"the checkpoint in {out} has {key}={ckpt['config'][key]}, so --{key.replace('_', '-')} "
                                f"{explicit[key]} cannot load it; drop the flag or use another --out")
        cfg.update(ckpt["config"])
    cfg.update(explicit)
    check_config(cfg)

    if args.sample_only:
        tok = CharTokenizer.from_dict(ckpt["tokenizer"])
        check_prompt(tok, args.prompt)
        model = build_model(cfg, tok.vocab_size).to(device)
        load_weights(model, ckpt, out)
        print(generate_text(model, tok, cfg, args, device))
        return 0

    text = load_text(args.data, min_chars=cfg["block_size"] + 1)
    tok = CharTokenizer.from_text(text)
    if ckpt is not None and CharTokenizer.from_dict(ckpt["tokenizer"]) != tok:
        raise UserError(f"the checkpoint in {out} was trained on a different text (its vocabulary has "
                        f"{len(ckpt['tokenizer']['chars'])} characters, this text's {tok.vocab_size}); "
                        f"use the same --data or another --out")
    check_prompt(tok, args.prompt)  # fail now, not after training
    ids = torch.tensor(tok.encode(text), dtype=torch.long)
    train_data, val_data = split(ids)
    if len(val_data) < cfg["block_size"] + 1:
        raise UserError(f"the text is too short: its validation split (the last 10%) has {len(val_data)} characters, "
                        f"fewer than block_size + 1 = {cfg['block_size'] + 1}; use a longer text or a smaller --block-size")
    check_out_writable(out)

    model = build_model(cfg, tok.vocab_size).to(device)
    params = count_params(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg["lr"], weight_decay=cfg.get("weight_decay", 0.0),
                                  **fused_if_supported(device))
    batch_gen = torch.Generator().manual_seed(args.seed)
    step, history, step_losses, train_seconds = 0, [], [], 0.0
    if ckpt is not None:
        load_weights(model, ckpt, out)
        optimizer.load_state_dict(ckpt["optimizer"])
        torch.set_rng_state(ckpt["rng"]["torch"])
        batch_gen.set_state(ckpt["rng"]["batches"])
        if "cuda" in ckpt["rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(ckpt["rng"]["cuda"])
        step, history = ckpt["step"], ckpt["history"]
        step_losses, train_seconds = ckpt["step_losses"], ckpt["train_seconds"]
        print(f"resuming {out} at step {step} of {cfg['max_iters']}")
    print(f"{stage}: {params:,} parameters; {len(train_data):,} train and {len(val_data):,} val characters; "
          f"vocabulary {tok.vocab_size}")

    train_step = model
    if args.compile:
        train_step = torch.compile(model)
    stop = min(cfg["max_iters"], args.stop_at or cfg["max_iters"])
    splits = {"train": train_data, "val": val_data}

    def save():
        save_checkpoint(out, stage, model, optimizer, cfg, tok, step, batch_gen, history, step_losses, train_seconds)

    bar = tqdm(total=cfg["max_iters"], initial=step, desc=stage, unit="step", dynamic_ncols=True,
               disable=None, file=sys.stderr)
    # Ctrl-C only raises a flag: the loop stops between two steps, so the checkpoint it saves holds a
    # whole number of steps and --resume repeats the uninterrupted run exactly. A second Ctrl-C quits at once.
    stop_requested = []

    def request_stop(signum, frame):
        if stop_requested:
            raise KeyboardInterrupt
        stop_requested.append(signum)

    in_main_thread = threading.current_thread() is threading.main_thread()  # signals go to the main thread only
    previous_handler = signal.signal(signal.SIGINT, request_stop) if in_main_thread else None
    try:
        while step < stop and not stop_requested:
            if step % cfg["eval_interval"] == 0 and not (history and history[-1]["iter"] == step):
                history.append(evaluate(model, splits, cfg, device, dtype, args.seed, step, train_seconds))
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step, cfg)
            t0 = time.perf_counter()
            x, y = get_batch(train_data, cfg["batch_size"], cfg["block_size"], device, batch_gen)
            with autocast(device, dtype), attention_kernel(device, cfg):
                _, loss = train_step(x, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
            optimizer.step()
            loss_value = loss.item()  # waits for the device, so the clock below counts the whole step
            train_seconds += time.perf_counter() - t0
            step_losses.append(loss_value)
            step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss_value:.4f}", refresh=False)
    finally:
        if in_main_thread:
            signal.signal(signal.SIGINT, previous_handler)
        bar.close()
    if stop_requested:
        save()
        print(f"interrupted at step {step}; checkpoint saved in {out}; continue with --resume", file=sys.stderr)
        return 130
    if step < cfg["max_iters"]:
        save()
        print(f"stopped at step {step} of {cfg['max_iters']}; checkpoint saved in {out}; continue with --resume")
        return 0
    if not (history and history[-1]["iter"] == step):
        history.append(evaluate(model, splits, cfg, device, dtype, args.seed, step, train_seconds))
    save()

    print("measuring the loss on the full train and val splits ...")
    metrics = {
        "stage": stage,
        "params": params,
        "iters": step,
        "batch_size": cfg["batch_size"],
        "block_size": cfg["block_size"],
        "device": device.type,
        "dtype": str(dtype).replace("torch.", ""),
        "train_loss": full_loss(model, train_data, cfg["block_size"], device, dtype),
        "val_loss": full_loss(model, val_data, cfg["block_size"], device, dtype),
        "train_seconds": train_seconds,
        "tokens_per_second": step * cfg["batch_size"] * cfg["block_size"] / train_seconds if train_seconds else None,
    }
    line = f"full splits: train {metrics['train_loss']:.4f}, val {metrics['val_loss']:.4f}"
    # Every stage prints the bigram floor: stages 1 and 2 cannot beat it, stages 3 and 4 must.
    metrics["bigram_floor"] = bigram_floor(train_data, val_data, tok.vocab_size)
    line += (f"; the best any bigram model can do on val is {metrics['bigram_floor']:.4f} "
             f"(this model: {metrics['val_loss'] - metrics['bigram_floor']:+.4f})")
    print(line)
    print(f"trained {step} steps in {train_seconds:.1f} s: {metrics['tokens_per_second']:,.0f} tokens/s")
    metrics.update(config=cfg, seed=args.seed, history=history, machine=machine_info(device))
    atomic_write(os.path.join(out, METRICS), lambda p: write_json(p, metrics))
    print(f"checkpoint and metrics saved in {out}")
    print("---- sample ----")
    print(generate_text(model, tok, cfg, args, device))
    return 0


def evaluate(model, splits, cfg, device, dtype, seed, step, train_seconds):
    losses = estimate_loss(model, splits, cfg, device, dtype, seed + 1)
    msg = f"step {step}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f}"
    tqdm.write(msg, file=sys.stdout)
    sys.stdout.flush()  # the line shows up at once even when stdout is a pipe
    return {"iter": step, "seconds": train_seconds, **losses}


def fused_if_supported(device):
    """The fused AdamW updates all parameters in one kernel: fewer passes over memory."""
    return {"fused": True} if device.type in ("cpu", "cuda") else {}


def load_weights(model, ckpt, out):
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError:
        raise UserError(f"the checkpoint in {out} does not fit this model (different sizes or vocabulary); "
                        f"use another --out or train again") from None


def write_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


def machine_info(device):
    info = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name()
    return info


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(script, build_model, defaults, doc=None, gpu_defaults=None, argv=None):
    """Parse the command line and run; errors a user can cause end in one line on stderr and exit status 1.

    `script` is the stage's __file__: its name (bigram_v1, ...) names the stage, its checkpoints and --out.
    """
    stage = os.path.splitext(os.path.basename(script))[0]
    args = build_parser(stage, doc, defaults, gpu_defaults).parse_args(argv)
    try:
        return run(stage, build_model, defaults, args, gpu_defaults)
    except (UserError, DataError, UnknownCharacterError) as e:
        print(f"{stage}.py: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{stage}.py: interrupted", file=sys.stderr)
        return 130
