"""bench/run.py: how fast, and how light on memory, is each idea in this course? Measured on this CPU.

The gpu section, which runs only when named, measures gpt.py's default GPU run on a CUDA GPU.

    python bench/run.py                        # every CPU section (tens of minutes on a 2-core CPU)
    python bench/run.py --only train,sample    # some sections
    python bench/run.py --quick                # tiny sizes, about a minute: checks the benchmark works
    python bench/run.py --only gpu             # the GPU figures (a CUDA GPU only; a few minutes on an H100)

The sections, and why each is there:

  matmul  one large square matmul in float32 and in bfloat16: about the most arithmetic this CPU can do
          per second. It is the yardstick for "fraction of peak" in the train section.
  train   training throughput at the lecture's model (gpt.py's GPU_HYPERPARAMETERS: batch 64,
          block 256, 6 layers, 6 heads, n_embd 384, dropout 0.2) of gpt.py's model, trained through
          runner.make_optimizer and runner.train_step (the very functions every stage script's training
          loop calls), and of the same model with bigram_v3's attention (one Head module per head, each
          storing its (T, T) attention weights) put back in. The two have the same parameters and do the
          same matmuls, so the difference is what batching the heads into one matmul and calling
          F.scaled_dot_product_attention buy, in tokens/s and in memory. Which SDPA kernel runs depends on
          the dropout gpt.py passes it (see sdpa_backend_name): on a CPU, with dropout 0.2 on the attention
          weights, it is the "math" kernel, which stores (T, T) weights too; the table names it.
  sample  characters per second when sampling with gpt.py's KV cache ("halve") and without it ("crop").
  curve   gpt.py's default CPU run, and the seconds of training it takes to reach a few val losses.
  strategy  what the fast "halve" long-sample strategy costs in quality: the curve run's kept model
          writes long samples both ways, and the same model, given the exact full window, scores each text.
  stages  every stage's default run, tabulated as in the README.
  gpu     CUDA only, and only when named (--only gpu): the bf16 matmul peak of the GPU, then gpt.py's
          default GPU run (the lecture's model); ms/step, tokens/s, fraction of that peak, time to val
          estimates of 1.50 and 1.47, and the kept model's full-split val loss, with the card's name.

Every measurement runs in a child process of its own, one after another: then a job's peak memory (the
resident set size, RSS, that the operating system reports for a process) is that job's alone, and no two
jobs compete for the cores (under --quick, which measures nothing, a section's jobs share one child, to
start PyTorch fewer times). Markdown tables go to stdout, progress to stderr, and every number to
bench/results/bench.json. Timings are medians of --repeats runs (--steps training steps), because a median
ignores the odd run slowed down by something else on the machine. Script runs (curve, stages, gpu) train
with --overwrite into --results-dir, replacing what an earlier benchmark trained there (--reuse reads an
earlier run's metrics.json instead).
"""

import argparse
import importlib
import json
import os
import re
import resource
import shlex
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `python bench/run.py` puts bench/ on the path; the stages live one level up

import torch  # noqa: E402  (imported after the path is set, like everything from the repository)
import torch.nn as nn  # noqa: E402

import bigram_v3  # noqa: E402
import gpt  # noqa: E402
import runner  # noqa: E402
import sampling  # noqa: E402
from bench.table import COLUMNS as STAGE_COLUMNS, fmt, markdown_table, read_metrics, stage_row  # noqa: E402
from data import CharTokenizer, DataError, get_batch, load_text, split  # noqa: E402
from data.shakespeare import DEFAULT_CACHE, ENV_VAR  # noqa: E402
from runner.checkpoint import write_json  # noqa: E402
from runner.cli import STAGES  # noqa: E402

CPU_SECTIONS = ("matmul", "train", "sample", "curve", "strategy", "stages")  # the default: all run on a CPU
SECTIONS = (*CPU_SECTIONS, "gpu")  # gpu runs only when --only names it, and only on a CUDA GPU
DEVICE = torch.device("cpu")  # what the CPU sections are about; their script runs get --device cpu too

# The lecture's configuration exactly as gpt.py defines it: its CPU defaults with the GPU ones on top.
LECTURE = {**gpt.HYPERPARAMETERS, **gpt.GPU_HYPERPARAMETERS}
MATMUL_SIZE = 2048  # 2 * 2048^3 = 17 GFLOP per matmul: long enough to time, short enough to repeat
WARMUP_STEPS = 2  # the first steps allocate memory and choose kernels; they are not what training costs
LONG_SAMPLE = 2000  # characters in the long sample
STRATEGY_SAMPLES = 5  # long samples per strategy in the strategy section
SCRIPT_SAMPLE = 200  # characters each script run prints at its end (not timed, kept short)
CURVE_EVAL_INTERVAL = 50  # a loss estimate every 50 steps gives the curve enough points to interpolate
CURVE_THRESHOLDS = ((2.0, None), (1.88, 45.0), (1.70, 300.0))  # (val loss, target seconds to reach it)
CURVE_AT_SECONDS = 300.0  # "what val loss does five minutes of training buy?"

# The gpu section. A GPU does one 8192^2 bf16 matmul (1.1 TFLOP) in a millisecond or two, too short to
# time alone: each repeat times GPU_MATMUL_INNER of them between two synchronizations, after
# GPU_MATMUL_WARMUP untimed ones that let cuBLAS choose its kernel and the clocks settle.
GPU_MATMUL_SIZE = 8192
GPU_MATMUL_INNER = 20
GPU_MATMUL_WARMUP = 50
GPU_EVAL_INTERVAL = 125  # twice gpt.py's eval points: time to a val loss is then read at 125-step resolution
GPU_THRESHOLDS = (1.50, 1.47)  # val estimates: the lecture's ~1.48, and issue 11's target
GPU_RUN = "gpu-gpt"  # the gpu section's run directory, inside --results-dir

# --quick: the same jobs at toy sizes, to check that the benchmark runs, not to measure anything
QUICK_SIZES = dict(batch_size=4, block_size=32, n_embd=48, n_head=2, n_layer=2)
QUICK_RUN = dict(max_iters=20, eval_interval=10, eval_iters=2)
QUICK_MATMUL_SIZE = 256
QUICK_LONG_SAMPLE = 100
QUICK_FINAL_EVAL = 5000  # characters of each split a --quick script run scores at its end (--final-eval)

# What the faster code should achieve; printed beside the measurements (never under --quick, whose toy
# sizes say nothing about them), never enforced.
TARGETS = dict(
    train_speedup=2.0,  # gpt.py's tokens/s at least 2x the per-head model's (float32)
    train_rss_ratio=0.5,  # gpt.py's peak RSS at most half the per-head model's
    kv_cache_speedup=10.0,  # one block with the KV cache at least 10x faster than without
    long_sample_chars_per_second=300.0,  # 2,000 characters at 300 characters/s or more
)
TOY = "— (toy sizes)"  # what a target's "met" column says under --quick

RESULT_MARK = "BENCH_RESULT "  # a child's last stdout line: this, then its result as JSON
EVAL_LINE = re.compile(r"step (\d+): train loss \S+, val loss \S+")  # a stage script's line after each evaluation
WALL_FILE = "bench-wall.json"  # beside a script run's metrics.json: when each of its eval lines appeared


class BenchError(Exception):
    """Something that stops the benchmark, reported as one line."""


# ----------------------------------------------------------------------------------------------------
# the arithmetic: FLOPs, and reading a loss curve


def non_embedding_params(model):
    """Parameters that take part in matmuls: all but the token and position embedding tables.

    An embedding is a table lookup, which costs no multiply-adds, so it does not count towards FLOPs.
    The lm_head is a real matmul (n_embd -> vocab_size) and does count.
    """
    tables = {id(p) for m in model.modules() if isinstance(m, nn.Embedding) for p in m.parameters()}
    return sum(p.numel() for p in model.parameters() if id(p) not in tables)


def train_flops_per_token(n_params, n_layer, n_embd, block_size):
    """Training FLOPs per token: 6 N + 12 n_layer n_embd T (Chowdhery et al. 2022, appendix B).

    6 N: every weight does one multiply-add (2 FLOPs) per token in the forward pass and two in the backward
    pass (one for the gradient of the input, one for the gradient of the weight). 12 n_layer n_embd T:
    the attention scores q k^T and the weighted sum of values, forward and backward, over a context of T
    positions. Like PaLM's, this counts the whole (T, T) attention matrix, although a causal model needs
    only half of it. N is non_embedding_params(model).
    """
    return 6 * n_params + 12 * n_layer * n_embd * block_size


def gpt_flops_per_token(cfg, vocab_size):
    """(N, training FLOPs per token) of gpt.py's model with cfg's sizes, as the train section counts them."""
    model = gpt.build_model(cfg, vocab_size)  # on the CPU: the lecture's 10.8M parameters take 0.1 s and 43 MB
    n = non_embedding_params(model)
    return n, train_flops_per_token(n, cfg["n_layer"], cfg["n_embd"], cfg["block_size"])


def time_to_loss(history, target):
    """Training seconds at which the val estimate first reached target, or None if it never did.

    history is metrics.json's list of eval points {"seconds", "val", ...} in order. The loss is taken to
    fall in a straight line between two eval points, so the answer lies between the last point above
    target and the first at or below it.
    """
    before = None
    for point in history:
        if point["val"] <= target:
            if before is None:
                return point["seconds"]
            s0, v0, s1, v1 = before["seconds"], before["val"], point["seconds"], point["val"]
            return s0 + (v0 - target) / (v0 - v1) * (s1 - s0)  # v0 > target >= v1, so v0 - v1 > 0
        before = point
    return None


def loss_at_time(history, seconds):
    """The val estimate after `seconds` of training, interpolated between eval points; None past the run's end."""
    for before, point in zip(history, history[1:]):
        if before["seconds"] <= seconds <= point["seconds"]:
            span = point["seconds"] - before["seconds"]
            if span == 0:
                return point["val"]
            return before["val"] + (seconds - before["seconds"]) / span * (point["val"] - before["val"])
    if history and history[0]["seconds"] == seconds:
        return history[0]["val"]
    return None


def steady_step_seconds(history):
    """Training seconds per step from the first eval point after step 0 to the last one, or None.

    It leaves out the first interval, which also pays for starting up (allocating memory, choosing
    kernels, a --compile), so it is the step time a longer run would settle at.
    """
    points = [h for h in history if h["iter"] > 0]
    if len(points) < 2 or points[-1]["iter"] <= points[0]["iter"]:
        return None
    return (points[-1]["seconds"] - points[0]["seconds"]) / (points[-1]["iter"] - points[0]["iter"])


def scored_on(metrics):
    """What a run's final val loss was measured on (--final-eval): the whole split unless it was told otherwise."""
    chars = metrics.get("final_eval_chars")
    if chars is None:
        return "the whole val split"
    return "nothing (--final-eval 0)" if chars == 0 else f"the first {chars:,} characters of the val split"


def gpu_figures(metrics, flops_per_token, peak_gflops, wall_seconds=None, evals=()):
    """The gpu section's figures from a run's metrics.json (a dict) and what the benchmark timed around it.

    flops_per_token: gpt_flops_per_token's; peak_gflops: the measured bf16 matmul peak of one GPU;
    wall_seconds: launch to the end of the run (start-up, training, evaluations, the final measurement
    and the sample); evals: [{"iter", "wall"}], the wall seconds from launch at which each eval line was
    printed. Any of the last three may be missing (None, empty): the figures that need it are then None.
    """
    history = metrics.get("history") or []
    iters, train_seconds = metrics.get("iters"), metrics.get("train_seconds")
    world = metrics.get("world_size") or 1
    tokens_per_step = metrics["batch_size"] * metrics["block_size"] * world  # every process's batch
    step = train_seconds / iters if iters and train_seconds else None
    steady = steady_step_seconds(history)

    def per_second(step_seconds):
        return tokens_per_step / step_seconds if step_seconds else None

    def of_peak(tokens_per_second):  # achieved FLOP/s over what the GPUs' matmuls could do
        if not tokens_per_second or not peak_gflops:
            return None
        return flops_per_token * tokens_per_second / (peak_gflops * 1e9 * world)

    tokens_per_second = metrics.get("tokens_per_second") or per_second(step)
    wall_at = {e["iter"]: e["wall"] for e in evals or ()}
    thresholds = []
    for target in GPU_THRESHOLDS:
        first = next((h for h in history if h["val"] <= target), None)  # the eval that first showed it
        thresholds.append(dict(val_loss=target, train_seconds=time_to_loss(history, target),
                               step=first["iter"] if first else None,
                               wall_seconds=wall_at.get(first["iter"]) if first else None))
    return dict(
        iters=iters, train_seconds=train_seconds, world_size=world, flops_per_token=flops_per_token,
        peak_gflops=peak_gflops,
        ms_per_step=1000 * step if step else None, tokens_per_second=tokens_per_second,
        fraction_of_peak=of_peak(tokens_per_second),
        steady_ms_per_step=1000 * steady if steady else None, steady_tokens_per_second=per_second(steady),
        steady_fraction_of_peak=of_peak(per_second(steady)),
        thresholds=thresholds, launch_to_end_seconds=wall_seconds,
        kept=metrics.get("kept"), kept_val_loss=metrics.get("val_loss"), kept_train_loss=metrics.get("train_loss"),
        scored_on=scored_on(metrics),
    )


def gpu_markdown(fig, card, run_text, matmul_note):
    """The gpu section's Markdown from gpu_figures' dict; run_text says which run it is (its command)."""
    kept = fig["kept"] or {}
    kept_text = (f"step {kept['iter']:,} of {fig['iters']:,} (val estimate {kept['val']:.4f})"
                 if kept.get("iter") is not None else "—")
    rows = [
        ["ms/step (train seconds / steps)", fmt(fig["ms_per_step"], ",.2f")],
        ["tokens/s", fmt(fig["tokens_per_second"], ",.0f")],
        ["of the bf16 matmul peak", fmt(fig["fraction_of_peak"], ".1%")],
        ["ms/step after the first eval interval", fmt(fig["steady_ms_per_step"], ",.2f")],
        ["tokens/s after the first eval interval", fmt(fig["steady_tokens_per_second"], ",.0f")],
        ["of the peak, after the first eval interval", fmt(fig["steady_fraction_of_peak"], ".1%")],
        ["train seconds (steps only)", fmt(fig["train_seconds"], ",.1f")],
        ["wall seconds, launch to the end of the run", fmt(fig["launch_to_end_seconds"], ",.1f")],
        ["kept model", kept_text],
        [f"kept model's val loss on {fig['scored_on']}", fmt(fig["kept_val_loss"], ".4f", "— (not measured)")],
    ]
    reach = [[f"≤ {t['val_loss']:.2f}", fmt(t["train_seconds"], ",.1f", "not reached"), fmt(t["step"], ",", "—"),
              fmt(t["wall_seconds"], ",.1f", "—")] for t in fig["thresholds"]]
    return (f"## gpu: gpt.py's default GPU run on {card}\n\n"
            f"{run_text}. {matmul_note} FLOPs per token 6·N + 12·n_layer·n_embd·T = "
            f"{fig['flops_per_token']:,}, as in the train section. Train seconds count the optimizer steps "
            f"only (a --compile included, evaluations not); wall seconds run from launching the script, so "
            f"they add start-up and every evaluation before that point.\n\n"
            + markdown_table(["gpt.py on the GPU", "value"], rows) + "\n\n"
            + markdown_table(["val estimate", "train seconds to reach (interpolated)", "first eval at or below (step)",
                              "wall seconds from launch to that eval"], reach))


# ----------------------------------------------------------------------------------------------------
# bigram_v3's attention in gpt.py's model


class PerHeadAttention(nn.Module):
    """bigram_v3's MultiHeadAttention, with the projection and dropout gpt.py's attention ends with.

    Each head is its own Head module with its own three small Linears, and each computes and keeps its
    (B, T, T) attention weights for the backward pass: the code the lecture starts from. It has the same
    parameters as gpt.MultiHeadAttention (n_head Linears of n_embd -> head_size for each of key, query and
    value hold as many weights as one n_embd -> 3 n_embd Linear), so both models do the same matmuls.
    gpt.py drops out attention weights while training (dropout_p, as the lecture's Head does); bigram_v3's
    heads do not, so at the lecture's dropout 0.2 this model skips one dropout gpt.py does: if anything
    that makes it a little faster and lighter than the lecture's per-head code, never slower.
    """

    def __init__(self, n_embd, n_head, block_size, dropout):
        super().__init__()
        self.heads = bigram_v3.MultiHeadAttention(n_embd=n_embd, n_head=n_head, block_size=block_size)
        self.proj = nn.Linear(n_embd, n_embd)
        self.resid_dropout = nn.Dropout(dropout)

    def forward(self, x, kv_cache=None, start=0):
        # Block passes kv_cache only when sampling, which this model is never used for: ignored
        return self.resid_dropout(self.proj(self.heads(x)))  # (B, T, C)


def per_head_model(cfg, vocab_size):
    """gpt.py's GPTLanguageModel with every block's attention swapped for PerHeadAttention."""
    model = gpt.build_model(cfg, vocab_size)
    for block in model.blocks:
        block.sa = PerHeadAttention(cfg["n_embd"], cfg["n_head"], cfg["block_size"], cfg["dropout"])
    return model


# ----------------------------------------------------------------------------------------------------
# the jobs: each runs in a child process of its own (`bench/run.py --job SPEC`) and returns a dict


def peak_rss_mib():
    """This process's peak resident memory so far, in MiB: the most of it that was ever in RAM at once."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB on Linux


def read_text(path):
    text = load_text(path)
    return text, CharTokenizer.from_text(text)


def device_name(device):
    """The chip's name as metrics.json records it: the GPU's (torch.cuda.get_device_name), else the CPU's."""
    info = runner.machine_info(device)
    return info.get("gpu") or info["cpu"]


def job_matmul(spec):
    """Time (n, n) @ (n, n) in spec["dtype"] on spec["device"] (default cpu): spec["repeats"] repeats of
    spec["inner"] matmuls each, after spec["warmup"] untimed ones."""
    n, dtype = spec["size"], getattr(torch, spec["dtype"])
    device = torch.device(spec.get("device", "cpu"))
    g = torch.Generator(device=device).manual_seed(spec["seed"])
    a = torch.randn(n, n, generator=g, device=device).to(dtype)
    b = torch.randn(n, n, generator=g, device=device).to(dtype)
    c = torch.empty(n, n, dtype=dtype, device=device)  # written in place: no repeat pays for allocating it
    # a GPU runs ahead of Python: wait for it before reading the clock, or only the launches are timed
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    inner = spec.get("inner", 1)
    for _ in range(spec.get("warmup", 2)):  # the first calls pick a kernel and touch fresh memory
        torch.mm(a, b, out=c)
    sync()
    seconds = []  # per matmul
    for _ in range(spec["repeats"]):
        t0 = time.perf_counter()
        for _ in range(inner):
            torch.mm(a, b, out=c)
        sync()
        seconds.append((time.perf_counter() - t0) / inner)
    return {"gflops": 2 * n**3 / statistics.median(seconds) / 1e9, "seconds": seconds, "inner": inner,
            "device": device.type, "device_name": device_name(device)}


def sdpa_backend_name(cfg, dtype, device=DEVICE):
    """Which kernel F.scaled_dot_product_attention picks for a training step of gpt.py at cfg's sizes.

    PyTorch chooses at run time, from the shapes, the dtype, the device and the dropout. gpt.py passes
    dropout_p=cfg["dropout"] while training (dropout on the attention weights, as the lecture's Head does),
    and on a CPU (PyTorch 2.13) the flash-attention kernel, the one that never stores the (T, T) weights,
    has no dropout: with dropout > 0 the choice falls back to the plain "math" kernel, which stores them.
    runner.attention_kernel also asks for the math kernel on a CPU for blocks of 128 or fewer. So this asks
    the choice function with gpt.py's dropout, inside runner's context, and the table names the kernel the
    timings are of.
    """
    head = cfg["n_embd"] // cfg["n_head"]
    # (batch 1: the batch size does not change the choice)
    q = torch.zeros(1, cfg["n_head"], cfg["block_size"], head, dtype=dtype, device=device, requires_grad=True)
    try:
        with runner.attention_kernel(device, cfg):
            choice = torch._fused_sdp_choice(q, q, q, dropout_p=cfg["dropout"], is_causal=True)  # as gpt.py calls it
        return torch.nn.attention.SDPBackend(choice).name.lower()
    except (AttributeError, RuntimeError, TypeError, ValueError):  # a private API: it may change or vanish
        return "unknown"


def job_train(spec):
    """Train spec["steps"] steps after spec["warmup"] ones through runner.make_optimizer and runner.train_step,
    the functions every stage script trains with, so what is timed is what a run does; time each step."""
    cfg, dtype = spec["cfg"], getattr(torch, spec["dtype"])
    text, tok = read_text(spec["data"])
    train_data, _ = split(torch.tensor(tok.encode(text), dtype=torch.long))
    rss_before_model = peak_rss_mib()  # torch, the text and its token ids: the same for every job
    torch.manual_seed(spec["seed"])
    build = per_head_model if spec["attention"] == "per-head" else gpt.build_model
    model = build(cfg, tok.vocab_size).to(DEVICE)
    optimizer = runner.make_optimizer(model, cfg, DEVICE)
    batch_gen = torch.Generator().manual_seed(spec["seed"])  # the same batches for every job
    seconds = []
    for step in range(spec["warmup"] + spec["steps"]):
        runner.set_lr(optimizer, runner.lr_at(step, cfg))
        t0 = time.perf_counter()
        x, y = get_batch(train_data, cfg["batch_size"], cfg["block_size"], DEVICE, batch_gen)
        loss = runner.train_step(model, optimizer, x, y, DEVICE, dtype, cfg)  # forward, backward, clip, step
        loss.item()  # waits for the step to finish (reads the loss back), so the clock times all of it
        seconds.append(time.perf_counter() - t0)
    peak_rss = peak_rss_mib()
    measured = seconds[spec["warmup"]:]
    step_seconds = statistics.median(measured)
    return {
        "params": runner.count_params(model),
        "non_embedding_params": non_embedding_params(model),
        "sdpa_backend": sdpa_backend_name(cfg, dtype) if spec["attention"] == "batched" else None,
        "tokens_per_second": cfg["batch_size"] * cfg["block_size"] / step_seconds,
        "ms_per_step": 1000 * step_seconds,
        "step_seconds": measured,
        "warmup_seconds": seconds[: spec["warmup"]],
        "rss_before_model_mib": rss_before_model,
        "peak_rss_mib": peak_rss,
    }


def job_sample(spec):
    """Time sampling.generate for spec["chars"] new characters from a newline, as gpt.py samples (float32).

    The weights are random: a random model and a trained one do exactly the same arithmetic per
    character, so the speed is the same, and the benchmark needs no checkpoint.
    """
    cfg, n = spec["cfg"], spec["chars"]
    _, tok = read_text(spec["data"])
    torch.manual_seed(spec["seed"])
    model = gpt.build_model(cfg, tok.vocab_size).to(DEVICE).eval()  # eval: no dropout when sampling
    idx = torch.tensor([runner.prompt_ids(tok, None)], dtype=torch.long, device=DEVICE)  # (1, 1): "\n"

    def generate(chars, generator):
        return sampling.generate(model, idx, chars, generator=generator, block_size=cfg["block_size"],
                                 strategy=spec["strategy"])

    generate(min(n, 8), torch.Generator().manual_seed(0))  # warm up
    seconds = []
    for r in range(spec["repeats"]):
        g = torch.Generator().manual_seed(spec["seed"] + r)
        t0 = time.perf_counter()
        out = generate(n, g)  # (1, 1 + n)
        seconds.append(time.perf_counter() - t0)
        assert out.shape == (1, 1 + n), out.shape
    return {"chars": n, "strategy": spec["strategy"], "chars_per_second": n / statistics.median(seconds),
            "seconds": seconds, "peak_rss_mib": peak_rss_mib()}


def window_nll(model, ids, block_size, rows=64):
    """Mean loss of the model on the text ids (1-D), each character predicted from the exact window of up to
    block_size characters before it: what "crop" sampling conditions on."""
    ids = torch.as_tensor(ids, dtype=torch.long)
    first = ids[: block_size + 1]
    logits, _ = model(first[None, :-1])  # (1, T, vocab): positions 1..block_size, context from the start
    losses = [torch.nn.functional.cross_entropy(logits[0], first[1:], reduction="none")]
    starts = torch.arange(1, len(ids) - block_size)  # a full window ends just before each later character
    for i in range(0, len(starts), rows):
        s = starts[i : i + rows]
        x = ids[s[:, None] + torch.arange(block_size)]  # (rows, block_size)
        y = ids[s + block_size]  # (rows,)
        logits, _ = model(x)
        losses.append(torch.nn.functional.cross_entropy(logits[:, -1], y, reduction="none"))
    return torch.cat(losses).mean().item()


def job_strategy(spec):
    """Sample spec["samples"] texts of spec["chars"] characters with each strategy from a trained checkpoint
    (the run's kept model, best.pt), timing them, and score every text with window_nll."""
    ckpt = torch.load(spec["checkpoint"], map_location="cpu", weights_only=True)
    tok = CharTokenizer.from_dict(ckpt["tokenizer"])
    model = gpt.build_model(ckpt["config"], tok.vocab_size).to(DEVICE).eval()
    model.load_state_dict(ckpt["model"])
    block = ckpt["config"]["block_size"]
    idx = torch.tensor([runner.prompt_ids(tok, None)], dtype=torch.long, device=DEVICE)
    out = {}
    with torch.no_grad():
        for strategy in ("halve", "crop"):
            nll, seconds = [], []
            for r in range(spec["samples"]):
                g = torch.Generator().manual_seed(spec["seed"] + r)  # the same seeds for both strategies
                t0 = time.perf_counter()
                ids = sampling.generate(model, idx, spec["chars"], generator=g, block_size=block,
                                        strategy=strategy)[0]
                seconds.append(time.perf_counter() - t0)
                nll.append(window_nll(model, ids.tolist(), block))
            out[strategy] = {"nll": nll, "mean_nll": statistics.mean(nll), "seconds": seconds,
                             "chars_per_second": spec["chars"] / statistics.median(seconds)}
    return {"block_size": block, "chars": spec["chars"], "samples": spec["samples"], **out}


def job_batch(spec):
    """Several jobs one after another in this one process (--quick: a start-up costs more than a toy job)."""
    results = []
    for job in spec["jobs"]:
        result = JOBS[job["kind"]]({"seed": spec["seed"], "data": spec["data"], **job})
        results.append({**result, "threads": torch.get_num_threads()})
    return {"results": results}


JOBS = {"matmul": job_matmul, "train": job_train, "sample": job_sample, "strategy": job_strategy, "batch": job_batch}


def child(spec):
    """Run one job in this (child) process and print its result as the last line of stdout."""
    result = JOBS[spec["kind"]](spec)
    result["threads"] = torch.get_num_threads()
    print(RESULT_MARK + json.dumps(result), flush=True)
    return 0


# ----------------------------------------------------------------------------------------------------
# the parent: starts the jobs and the script runs one at a time, prints the tables, writes the JSON


def progress(msg):
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def ratio_row(name, value, target, at_least, graded=True):
    """A row of a "ratio, target, met" table; graded=False (--quick) shows the target but grades nothing."""
    met = None if value is None else (value >= target if at_least else value <= target)
    sign = "≥" if at_least else "≤"
    verdict = {None: "—", True: "yes", False: "no"}[met] if graded else TOY
    return [name, fmt(value, ".2f") + ("×" if value is not None else ""), f"{sign} {target:g}×", verdict]


def attention_label(row):
    if row["attention"] == "per-head":
        return "one Head per head (bigram_v3)"
    return f"all heads batched, SDPA {row['sdpa_backend']} kernel"


def read_walls(out, metrics):
    """The eval-line times a benchmark run saved beside metrics (WALL_FILE): (wall seconds, evals), or
    (None, []) when there are none or they belong to another run of that directory."""
    try:
        with open(out / WALL_FILE, encoding="utf-8") as f:
            walls = json.load(f)
        if walls.get("train_seconds") == metrics.get("train_seconds"):
            return walls["wall_seconds"], walls["evals"]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass
    return None, []


class Bench:
    def __init__(self, args, data_path, env):
        self.args = args
        self.data = str(data_path)
        self.env = env  # environment of every child: OMP_NUM_THREADS when --threads is given
        self.results = Path(args.results_dir).resolve()
        self.cfg = {**LECTURE, **QUICK_SIZES} if args.quick else dict(LECTURE)
        self.run_flags = QUICK_RUN if args.quick else {}
        self.gpt_default_run = None  # the gpt.py run, shared by the curve and stages sections
        self.report = {}

    # -- running things

    def job(self, name, spec):
        """Run one job in a fresh child process and return its result dict."""
        progress(f"{name} ...")
        spec = {"seed": self.args.seed, "data": self.data, **spec}
        cmd = [sys.executable, str(Path(__file__).resolve()), "--job", json.dumps(spec)]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, env=self.env, stdout=subprocess.PIPE, text=True)  # stderr shows
        if proc.returncode != 0:
            how = (f"was killed by signal {-proc.returncode} (out of memory?)" if proc.returncode < 0
                   else f"failed with exit status {proc.returncode}; its error is above")
            raise BenchError(f"the {name} job {how}")
        lines = [line for line in proc.stdout.splitlines() if line.startswith(RESULT_MARK)]
        if not lines:
            raise BenchError(f"the {name} job printed no result")
        progress(f"{name}: done in {time.perf_counter() - t0:.1f} s")
        return json.loads(lines[-1][len(RESULT_MARK):])

    def jobs(self, named_specs):
        """Run [(name, spec)] jobs one after another, each in a child process of its own, and return their
        results in order. Under --quick all of them share one child: toy sizes measure nothing, and starting
        a process (importing PyTorch) costs more than a toy job."""
        if not self.args.quick:
            return [self.job(name, spec) for name, spec in named_specs]
        names = ", ".join(name for name, _ in named_specs)
        return self.job(names, dict(kind="batch", jobs=[spec for _, spec in named_specs]))["results"]

    def script(self, stage, out, extra=(), device="cpu"):
        """Run `python <stage>.py` with its defaults (plus --quick's and `extra` flags) into out, replacing what
        is there (--overwrite); return {"metrics", "wall", "evals", "command"}.

        wall: seconds from launch to the end; evals: [{"iter", "wall"}], when each eval line appeared on the
        script's stdout (saved beside its metrics.json as WALL_FILE). With --reuse, an existing run's
        metrics.json is read instead (wall None unless a benchmark run saved it).
        """
        if self.args.reuse and (out / runner.METRICS).is_file():
            progress(f"{stage}: reusing {out / runner.METRICS} (--reuse)")
            metrics = read_metrics(out)
            wall, evals = read_walls(out, metrics)
            return dict(metrics=metrics, wall=wall, evals=evals, command=None, reused=True)
        hyperparameters = importlib.import_module(stage).HYPERPARAMETERS  # a stage has only its own flags
        flags = []
        for key, value in {**(QUICK_SIZES if self.args.quick else {}), **self.run_flags}.items():
            if key in hyperparameters:
                flags += [f"--{key.replace('_', '-')}", str(value)]
        if self.args.quick:  # the full splits take longer to score than a toy model takes to train
            flags += ["--final-eval", str(QUICK_FINAL_EVAL)]
        cmd = [sys.executable, str(ROOT / f"{stage}.py"), "--data", self.data, "--out", str(out), "--overwrite",
               "--device", device, "--max-new-tokens", str(SCRIPT_SAMPLE), *flags, *extra]
        out.mkdir(parents=True, exist_ok=True)
        log = out / "stdout.txt"
        command = shlex.join(["python", *cmd[1:]])
        progress(f"{stage}: {command}  (output in {log})")
        env = {**self.env, "PYTHONUNBUFFERED": "1"}  # each line as it is printed, so its time is right
        evals = []
        t0 = time.perf_counter()
        with open(log, "w", encoding="utf-8") as f, subprocess.Popen(
                cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True, encoding="utf-8",
                errors="replace") as proc:  # the progress bar stays on stderr
            for line in iter(proc.stdout.readline, ""):
                seen = time.perf_counter() - t0
                f.write(line)
                match = EVAL_LINE.match(line)
                if match:
                    evals.append({"iter": int(match.group(1)), "wall": seen})
            proc.wait()
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise BenchError(f"{stage}.py failed with exit status {proc.returncode}; its output is in {log}")
        progress(f"{stage}: done in {wall:.1f} s")
        metrics = read_metrics(out)
        write_json(out / WALL_FILE, dict(train_seconds=metrics.get("train_seconds"), wall_seconds=wall, evals=evals))
        return dict(metrics=metrics, wall=wall, evals=evals, command=command, reused=False)

    def gpt_run(self):
        """gpt.py's default run with eval points every CURVE_EVAL_INTERVAL steps: the curve section's run, and
        also gpt's row in the stages table (eval points change what is printed, not how it trains)."""
        if self.gpt_default_run is None:
            out = self.results / "gpt"  # named like the stage, so notes/figures.py --out-root bench/results finds it
            # --quick already sets a small --eval-interval; a real run gets CURVE_EVAL_INTERVAL
            interval = [] if self.args.quick else ["--eval-interval", str(CURVE_EVAL_INTERVAL)]
            extra = [*interval, *shlex.split(self.args.curve_args)]
            self.gpt_default_run = dict(self.script("gpt", out, extra), out=out, extra=extra)
        return self.gpt_default_run

    # -- the sections; each fills self.report[section] and returns its Markdown

    def matmul(self):
        size = QUICK_MATMUL_SIZE if self.args.quick else MATMUL_SIZE
        dtypes = ("float32", "bfloat16")
        results = self.jobs([(f"matmul {dtype}", dict(kind="matmul", size=size, dtype=dtype, repeats=self.args.repeats))
                             for dtype in dtypes])
        r = {"size": size, **dict(zip(dtypes, results))}
        self.report["matmul"] = r
        rows = [[dtype, fmt(r[dtype]["gflops"], ",.1f"), fmt(1000 * statistics.median(r[dtype]["seconds"]), ".1f")]
                for dtype in ("float32", "bfloat16")]
        return (f"## matmul: the peak to compare against\n\n"
                f"({size}, {size}) @ ({size}, {size}), median of {self.args.repeats}.\n\n"
                + markdown_table(["dtype", "GFLOP/s", "ms"], rows))

    def train(self):
        cfg, graded = self.cfg, not self.args.quick
        auto = runner.dtype_name(runner.pick_dtype("auto", DEVICE))  # what gpt.py itself would use here
        jobs = [("gpt", "batched", auto), ("per-head", "per-head", "float32")]
        if auto != "float32":  # the per-head model under gpt.py's bfloat16, to show what the dtype alone buys
            jobs.append(("per-head", "per-head", auto))
        peaks = self.report.get("matmul", {})
        results = self.jobs([(f"train {name} {dtype}", dict(kind="train", cfg=cfg, attention=attention, dtype=dtype,
                                                           warmup=WARMUP_STEPS, steps=self.args.steps))
                             for name, attention, dtype in jobs])
        rows = []
        for (name, attention, dtype), r in zip(jobs, results):
            flops = train_flops_per_token(r["non_embedding_params"], cfg["n_layer"], cfg["n_embd"], cfg["block_size"])
            r.update(name=name, attention=attention, dtype=dtype, flops_per_token=flops,
                     gflops=flops * r["tokens_per_second"] / 1e9)
            peak = peaks.get(dtype, {}).get("gflops")
            r["fraction_of_peak"] = r["gflops"] / peak if peak else None  # None when matmul was not run
            rows.append(r)
        gpt_row, per_head = rows[0], rows[1]
        ratios = {"throughput": gpt_row["tokens_per_second"] / per_head["tokens_per_second"],
                  "peak_rss": gpt_row["peak_rss_mib"] / per_head["peak_rss_mib"]}
        self.report["train"] = dict(config=cfg, warmup_steps=WARMUP_STEPS, steps=self.args.steps, rows=rows,
                                    ratios=ratios, targets={"throughput_at_least": TARGETS["train_speedup"],
                                                            "peak_rss_at_most": TARGETS["train_rss_ratio"]})
        table = markdown_table(
            ["model", "attention", "matmuls in", "tokens/s", "ms/step", "GFLOP/s", "of peak", "peak RSS MiB",
             "RSS before model MiB"],
            [[r["name"], attention_label(r), r["dtype"], fmt(r["tokens_per_second"], ",.0f"),
              fmt(r["ms_per_step"], ",.0f"), fmt(r["gflops"], ",.1f"),
              fmt(r["fraction_of_peak"], ".0%", "— (run matmul)"), fmt(r["peak_rss_mib"], ",.0f"),
              fmt(r["rss_before_model_mib"], ",.0f")] for r in rows])
        compare = markdown_table(["gpt / per-head float32", "ratio", "target", "met"], [
            ratio_row("throughput (tokens/s)", ratios["throughput"], TARGETS["train_speedup"], True, graded),
            ratio_row("peak RSS", ratios["peak_rss"], TARGETS["train_rss_ratio"], False, graded)])
        keys = ("batch_size", "block_size", "n_layer", "n_head", "n_embd", "dropout")
        sizes = ", ".join(f"{k} {cfg[k]}" for k in keys)
        return (f"## train: gpt.py's attention vs bigram_v3's per-head attention\n\n"
                f"{sizes}; vocabulary from the text; each step is runner.train_step with runner.make_optimizer's "
                f"AdamW (fused, weight decay on every parameter), gradient clipping {runner.GRAD_CLIP}, exactly as "
                f"the stage scripts train; {WARMUP_STEPS} warm-up steps, then the median of {self.args.steps}. "
                f"gpt.py drops out attention weights (dropout {cfg['dropout']}), which decides the SDPA kernel "
                f"on a CPU. "
                f"FLOPs per token 6·N + 12·n_layer·n_embd·T = {gpt_row['flops_per_token']:,} "
                f"(N = {gpt_row['non_embedding_params']:,} non-embedding parameters; Chowdhery et al. 2022, "
                f"appendix B). \"of peak\" compares with the matmul of the same dtype.\n\n{table}\n\n{compare}")

    def sample(self):
        cfg, block, graded = self.cfg, self.cfg["block_size"], not self.args.quick
        long = QUICK_LONG_SAMPLE if self.args.quick else LONG_SAMPLE
        default = gpt.HYPERPARAMETERS["long_sample"]
        plan = [("kv_cache", "halve", block, f"one block ({block}), KV cache (\"halve\")"),
                ("no_cache", "crop", block, f"one block ({block}), no cache (\"crop\")"),
                ("long", default, long, f"{long:,} characters, default (\"{default}\")")]
        results = self.jobs([(f"sample {chars} {strategy}", dict(kind="sample", cfg=cfg, strategy=strategy, chars=chars,
                                                                 repeats=self.args.repeats))
                             for _, strategy, chars, _ in plan])
        r = {key: result for (key, *_), result in zip(plan, results)}
        speedup = r["kv_cache"]["chars_per_second"] / r["no_cache"]["chars_per_second"]
        targets = {"kv_cache_speedup_at_least": TARGETS["kv_cache_speedup"],
                   "long_chars_per_second_at_least": TARGETS["long_sample_chars_per_second"]}
        self.report["sample"] = dict(config=cfg, weights="random init", **r, kv_cache_speedup=speedup, targets=targets)
        long_ok = r["long"]["chars_per_second"] >= TARGETS["long_sample_chars_per_second"]
        verdict = ("met" if long_ok else "not met") if graded else TOY
        rows = [[label, fmt(r[key]["chars_per_second"], ",.0f"), fmt(1000 / r[key]["chars_per_second"], ".2f"),
                 f"≥ {TARGETS['long_sample_chars_per_second']:g} ({verdict})" if key == "long" else ""]
                for key, _, _, label in plan]
        compare = markdown_table(["KV cache vs none", "ratio", "target", "met"],
                                 [ratio_row("characters/s, one block", speedup, TARGETS["kv_cache_speedup"], True,
                                            graded)])
        return (f"## sample: characters per second\n\n"
                f"gpt.py's model at the train section's sizes, float32, eval mode, sampling.generate from a "
                f"\"\\n\" prompt, median of {self.args.repeats}. Random weights: a trained model does the same "
                f"arithmetic per character.\n\n"
                + markdown_table(["sampling", "chars/s", "ms/char", "target"], rows) + "\n\n" + compare)

    def curve(self):
        run = self.gpt_run()
        m = run["metrics"]
        history = m["history"]
        thresholds = [dict(val_loss=loss, seconds=time_to_loss(history, loss), target_seconds=target)
                      for loss, target in CURVE_THRESHOLDS]
        at = loss_at_time(history, CURVE_AT_SECONDS)
        kept = m.get("kept")
        self.report["curve"] = dict(out=str(run["out"]), extra_flags=run["extra"], wall_seconds=run["wall"],
                                    thresholds=thresholds, val_at_seconds=CURVE_AT_SECONDS, val_at=at,
                                    final_val_loss=m.get("val_loss"), kept=kept, train_seconds=m["train_seconds"],
                                    iters=m["iters"], config=m["config"], history=history, evals=run["evals"])
        rows = []
        for t in thresholds:
            if self.args.quick:
                met = TOY
            elif t["target_seconds"] is None:
                met = "—"
            else:
                met = "yes" if t["seconds"] is not None and t["seconds"] <= t["target_seconds"] else "no"
            rows.append([f"≤ {t['val_loss']:.2f}", fmt(t["seconds"], ".1f", "not reached"),
                         fmt(t["target_seconds"], "g", "—"), met])
        if at is not None:
            at_text = f"{at:.4f}"
        else:  # the default run is shorter: what it reached by its end is what 5 minutes buy at least
            last = history[-1]
            at_text = (f"the run ended sooner, at {last['seconds']:.1f} s, with a val estimate of "
                       f"{last['val']:.4f}")
        kept_text = (f"step {kept['iter']:,} (val estimate {kept['val']:.4f}, after {kept['seconds']:.1f} train "
                     f"seconds)" if kept else "— (metrics.json from before runs kept their best model)")
        every = f"{m['config']['eval_interval']} steps ({m['config']['eval_iters']} batches each)"
        return (f"## curve: gpt.py's default CPU run\n\n"
                f"Val estimates every {every}; "
                f"seconds are training seconds (optimizer steps only, evaluation not counted), interpolated "
                f"between eval points.\n\n"
                + markdown_table(["val loss", "train seconds to reach", "target seconds", "met"], rows)
                + f"\n\n- val estimate at {CURVE_AT_SECONDS:g} s: {at_text}\n"
                f"- the model the run kept (lowest val estimate): {kept_text}\n"
                f"- its val loss on {scored_on(m)}: {fmt(m.get('val_loss'), '.4f', '— (not measured)')}; the run "
                f"trained {m['iters']:,} steps in {m['train_seconds']:.1f} train seconds")

    def strategy(self):
        run = self.gpt_run()
        chars = QUICK_LONG_SAMPLE if self.args.quick else LONG_SAMPLE
        samples = 1 if self.args.quick else STRATEGY_SAMPLES
        best = run["out"] / runner.BEST  # the kept model, whose val loss the run reports
        checkpoint = best if best.is_file() else run["out"] / runner.CHECKPOINT
        spec = dict(kind="strategy", checkpoint=str(checkpoint), chars=chars, samples=samples)
        r = self.job(f"strategy {samples} x {chars} chars", spec)
        r["checkpoint"] = checkpoint.name
        r["val_loss"] = run["metrics"].get("val_loss")
        r["difference"] = r["halve"]["mean_nll"] - r["crop"]["mean_nll"]
        self.report["strategy"] = r
        rows = [[name, fmt(r[name]["mean_nll"], ".4f"), fmt(r[name]["chars_per_second"], ",.0f")]
                for name in ("halve", "crop")]
        return (f"## strategy: sampling past block_size, \"halve\" (KV cache) vs \"crop\" (exact window)\n\n"
                f"The model gpt.py's default run kept ({checkpoint.name}, block_size {r['block_size']}) writes "
                f"{samples} samples of {chars:,} characters each way, with the same seeds; the same model then "
                f"scores every text given the exact window of up to {r['block_size']} characters before each "
                f"character (loss in nats per character, mean over the samples). Lower means the text is more "
                f"what the model expects with full context. For reference, its val loss on "
                f"{scored_on(run['metrics'])} is {fmt(r['val_loss'], '.4f', '— (not measured)')}.\n\n"
                + markdown_table(["strategy", "loss of its own samples", "chars/s"], rows)
                + f"\n\n- halve minus crop: {r['difference']:+.4f} nats per character")

    def stages(self):
        rows = []
        for stage in STAGES:
            if stage == "gpt":
                run = self.gpt_run()  # the curve run is gpt.py's default run
                out = run["out"]
            else:
                out = self.results / stage
                run = self.script(stage, out)
            metrics = run["metrics"]
            rows.append(dict(stage=stage, out=str(out), wall_seconds=run["wall"], reused=run["reused"],
                             **{k: metrics.get(k) for k in ("params", "val_loss", "train_loss", "bigram_floor", "kept",
                                                            "train_seconds", "tokens_per_second", "iters",
                                                            "device", "dtype", "world_size", "final_eval_chars")}))
        self.report["stages"] = dict(rows=rows)
        scored = {scored_on(r) for r in rows}
        split = scored.pop() if len(scored) == 1 else "what each run scored (--final-eval)"
        return ("## stages: every stage's default run\n\n"
                f"val loss: the kept model's (the run's lowest val estimate, at the kept step) on {split}.\n\n"
                + markdown_table(STAGE_COLUMNS, [stage_row(r) for r in rows]))

    def gpu(self):
        """The bf16 matmul peak of the GPU, then gpt.py's default GPU run, one after the other."""
        device = self.args.gpu_device  # "cuda"; tests run the same code on "cpu" at --quick sizes
        size = QUICK_MATMUL_SIZE if self.args.quick else GPU_MATMUL_SIZE
        inner, warmup = (GPU_MATMUL_INNER, GPU_MATMUL_WARMUP) if device == "cuda" else (1, 2)
        spec = dict(kind="matmul", size=size, dtype="bfloat16", repeats=self.args.repeats, device=device,
                    inner=inner, warmup=warmup)
        peak = self.job(f"gpu matmul bfloat16 {size}", spec)
        # in the log, in case the run that follows fails
        progress(f"bf16 matmul peak on {peak['device_name']}: {peak['gflops'] / 1000:,.1f} TFLOP/s")
        out = self.results / GPU_RUN
        interval = [] if self.args.quick else ["--eval-interval", str(GPU_EVAL_INTERVAL)]
        extra = [*interval, *shlex.split(self.args.gpu_args)]
        run = self.script("gpt", out, extra, device=device)
        m = run["metrics"]
        try:
            vocab_size = CharTokenizer.load(out / runner.TOKENIZER).vocab_size  # the run's own vocabulary
        except (OSError, ValueError):
            vocab_size = read_text(self.data)[1].vocab_size
        n_params, flops = gpt_flops_per_token(m["config"], vocab_size)
        fig = gpu_figures(m, flops, peak["gflops"], run["wall"], run["evals"])
        card = peak["device_name"]
        self.report["gpu"] = dict(card=card, device=device, out=str(out), command=run["command"], extra_flags=extra,
                                  matmul=dict(size=size, **peak), non_embedding_params=n_params, figures=fig,
                                  config=m["config"], dtype=m.get("dtype"), history=m.get("history"),
                                  evals=run["evals"], machine=m.get("machine"))
        run_text = f"`{run['command']}`" if run["command"] else f"The run in {out}, read back (--reuse)"
        matmul_note = (f"bf16 matmul peak: ({size}, {size}) @ ({size}, {size}), median of {self.args.repeats} "
                       f"repeats of {inner}: {peak['gflops'] / 1000:,.1f} TFLOP/s. The run: {m['iters']:,} steps, "
                       f"batch {m['batch_size']} x block {m['block_size']}, matmuls in {m.get('dtype')}; "
                       f"N = {n_params:,} non-embedding parameters.")
        return gpu_markdown(fig, card, run_text, matmul_note)

    # -- the whole run

    def run(self, sections, json_path):
        machine = {**runner.machine_info(DEVICE), "native_bf16": runner.native_bf16(DEVICE)}
        self.report.update(created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                           command=shlex.join(["python", "bench/run.py", *sys.argv[1:]]),
                           quick=self.args.quick, data=self.data, machine=machine,
                           settings=dict(repeats=self.args.repeats, steps=self.args.steps,
                                         warmup_steps=WARMUP_STEPS, seed=self.args.seed, sections=list(sections)))
        quick = (" (--quick: toy sizes, to check that the benchmark works; nothing here is a measurement, and "
                 "no target is graded)" if self.args.quick else "")
        print(f"# gpt-from-scratch benchmark{quick}")
        print()
        print(markdown_table(["CPU", "cores", "threads", "torch", "native bf16"],
                             [[machine["cpu"], machine["cores"], machine["threads"], machine["torch"],
                               "yes" if machine["native_bf16"] else "no"]]), flush=True)
        for section in sections:
            text = getattr(self, section)()
            print()
            print(text, flush=True)
            save_json(json_path, self.report)  # after every section: a long run that breaks keeps what it measured
        progress(f"results written to {json_path}")


def save_json(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, obj)  # atomic: a benchmark stopped mid-write leaves the previous file whole


# ----------------------------------------------------------------------------------------------------
# command line


def section_list(s):
    names = [n.strip() for n in s.split(",") if n.strip()]
    unknown = [n for n in names if n not in SECTIONS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"choose from {','.join(SECTIONS)}, got {s!r}")
    return [n for n in SECTIONS if n in names]  # always in the order above: matmul first, as the yardstick


def build_parser():
    p = argparse.ArgumentParser(prog="bench/run.py", description=__doc__.strip().splitlines()[0],
                                epilog="Run it on a quiet machine: anything else running slows the timings.")
    p.add_argument("--only", type=section_list, default=list(CPU_SECTIONS), metavar="LIST",
                   help=f"comma-separated sections to run, from {','.join(SECTIONS)} (default: "
                        f"{','.join(CPU_SECTIONS)}; gpu needs a CUDA GPU and runs only when named)")
    p.add_argument("--quick", action="store_true",
                   help="toy sizes, 1 repeat, 1 thread, one child process per section, 20-step script runs: "
                        "checks that the benchmark works, in about a minute; grades no target")
    p.add_argument("--repeats", type=runner.positive_int, metavar="N",
                   help="timed repeats for matmul and sample (default: 5)")
    p.add_argument("--steps", type=runner.positive_int, metavar="N",
                   help="timed training steps after the warm-up (default: 5)")
    p.add_argument("--data", metavar="PATH",
                   help="Tiny Shakespeare (or any text), as for the stage scripts (also: environment variable "
                        f"{ENV_VAR})")
    p.add_argument("--results-dir", default=str(ROOT / "bench" / "results"), metavar="DIR",
                   help="where the script runs and the JSON go; their runs there are replaced "
                        "(default: bench/results)")
    p.add_argument("--json", metavar="PATH", help="where to write the results (default: RESULTS_DIR/bench.json)")
    p.add_argument("--reuse", action="store_true",
                   help="curve, stages and gpu: read a run's metrics.json when it exists instead of training again")
    p.add_argument("--curve-args", default="", metavar="FLAGS",
                   help="more flags for the gpt.py run (curve and stages), written with '=': "
                        "--curve-args='--max-iters 1000'")
    p.add_argument("--gpu-args", default="", metavar="FLAGS",
                   help="more flags for the gpu section's gpt.py run, written with '=': --gpu-args='--compile'")
    p.add_argument("--threads", type=runner.positive_int, metavar="N",
                   help="CPU threads for every job and script run (default: PyTorch's choice; 1 with --quick)")
    p.add_argument("--seed", type=int, default=1337, metavar="N",
                   help="seed for weights, batches and samples (default: 1337)")
    p.add_argument("--job", help=argparse.SUPPRESS)  # internal: run one job as a child process
    # internal, for the tests: run the gpu section's code on another device (cpu), where no GPU is at hand
    p.add_argument("--gpu-device", default="cuda", choices=["cuda", "cpu"], help=argparse.SUPPRESS)
    return p


def find_data(path):
    """The text's path, checked by loading it the way the stage scripts do; DataError if it cannot be had."""
    load_text(path, min_chars=LECTURE["block_size"] + 1)  # may download to the cache, like the scripts
    if path is None and os.environ.get(ENV_VAR):
        path = os.environ[ENV_VAR]
    return Path(path).resolve() if path is not None else DEFAULT_CACHE


def no_cuda_problem(args):
    """Why the sections asked for cannot run here (the gpu section without a CUDA GPU), or None."""
    if "gpu" not in args.only or args.gpu_device != "cuda" or torch.cuda.is_available():
        return None
    build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
    return (f"the gpu section needs a CUDA GPU, and PyTorch ({torch.__version__}, {build}) sees none here; "
            f"run it on a machine with one, or leave gpu out of --only")


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.job:
        return child(json.loads(args.job))
    problem = no_cuda_problem(args)
    if problem:
        print(f"bench/run.py: error: {problem}", file=sys.stderr)
        return 1
    args.repeats = args.repeats or (1 if args.quick else 5)
    args.steps = args.steps or (1 if args.quick else 5)
    # --quick is a check, not a measurement: one thread is plenty for toy sizes and leaves a core free
    threads = args.threads or (1 if args.quick else None)
    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)  # PyTorch's default thread count in every child
        torch.set_num_threads(threads)  # and here, so the machine table reports it
    json_path = Path(args.json).resolve() if args.json else Path(args.results_dir).resolve() / "bench.json"
    try:
        data = find_data(args.data)
        Bench(args, data, env).run(args.only, json_path)
    except (BenchError, DataError, runner.CheckpointError) as e:
        print(f"bench/run.py: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench/run.py: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
