"""What the lesson's code must compute, pinned line by line: each test recomputes one thing by hand.

An independent reviewer planted realistic bugs in the stages, sampling.py and runner/loop.py, and several
passed the rest of the suite: no gradient clipping, an estimate measured with dropout on, the GPT-2 init
forgotten for the residual projections, a post-layer-norm block, a KV-cache refill that kept the wrong
tokens. Each test here writes the formula out (a model's forward pass from its weights, the training loop
step by step, the sampling loop that the KV cache must reproduce) and compares with assert_close or
torch.equal, so a wrong central line in any of those functions fails a test named after what it broke.
mutmut checks that claim: `pip install mutmut==3.8.1 && mutmut run` (configured in pyproject.toml) plants
about 900 small mutants in those files and runs the tests that reach each one; tests/mutation.py plants the
bugs it cannot write. The last test holds every one-line error of these files to its exact words.
"""

import copy
import json
import math
import time
from contextlib import nullcontext
from functools import partial
from types import SimpleNamespace

import pytest
import torch
from torch import nn
from torch.testing import assert_close

import bigram_v1
import bigram_v2
import bigram_v3
import gpt
import runner
import sampling
from data import CharTokenizer, UnknownCharacterError, get_batch, split
from conftest import PROMPT
from helpers import printed_sample, tiny

V, C, N_HEAD, N_LAYER, BLOCK = 11, 16, 4, 2, 8  # vocabulary, width, heads, blocks, block_size
CFG = dict(n_embd=C, n_head=N_HEAD, n_layer=N_LAYER, block_size=BLOCK, dropout=0.0)
CPU = torch.device("cpu")
STAGES = [bigram_v1, bigram_v2, bigram_v3, gpt]


pytestmark = pytest.mark.usefixtures("one_thread")


def spread(model, std=0.3, seed=0):
    """Every parameter (layer norms' gains and biases too) redrawn from N(0, std): far from any init, so a
    swapped, skipped or mis-scaled operation moves the output well beyond assert_close's tolerance."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * std)
    return model


def tokens(*shape, seed=1, vocab=V):
    return torch.randint(vocab, shape, generator=torch.Generator().manual_seed(seed))


def build(stage, seed=0, **changes):
    torch.manual_seed(seed)
    return stage.build_model({**CFG, **changes}, V)


def cross_entropy_by_hand(logits, targets):
    """The mean over every position of -log softmax(logits)[target]."""
    logp = logits - logits.logsumexp(dim=-1, keepdim=True)  # (B, T, V)
    return -logp.gather(-1, targets[..., None]).mean()


def layer_norm_by_hand(x, ln):
    mean, var = x.mean(-1, keepdim=True), x.var(-1, unbiased=False, keepdim=True)
    return (x - mean) / torch.sqrt(var + 1e-5) * ln.weight + ln.bias


def causal_attention_by_hand(q, k, v):
    """softmax(q k^T / sqrt(head_size)) with the future masked out, times v: q, k, v (..., T, head_size)."""
    T = q.size(-2)
    scores = q @ k.transpose(-2, -1) / math.sqrt(k.size(-1))  # (..., T, T)
    future = torch.ones(T, T, dtype=torch.bool).triu(1)
    return scores.masked_fill(future, float("-inf")).softmax(-1) @ v


def gpt_attention_by_hand(sa, x):
    """gpt's MultiHeadAttention from its weights: qkv rows are [q heads | k heads | v heads]."""
    B, T, _ = x.shape
    hs = C // sa.n_head
    q, k, v = (x @ sa.qkv.weight.T).split(C, dim=-1)  # each (B, T, C)
    q, k, v = (t.view(B, T, sa.n_head, hs).transpose(1, 2) for t in (q, k, v))  # (B, n_head, T, hs)
    y = causal_attention_by_hand(q, k, v).transpose(1, 2).reshape(B, T, C)  # heads side by side
    return y @ sa.proj.weight.T + sa.proj.bias


def feed_forward_by_hand(ffwd, x):
    first, second = ffwd.net[0], ffwd.net[2]
    return torch.relu(x @ first.weight.T + first.bias) @ second.weight.T + second.bias


def block_by_hand(block, x):
    x = x + gpt_attention_by_hand(block.sa, layer_norm_by_hand(x, block.ln1))  # pre-layer-norm: ln inside
    return x + feed_forward_by_hand(block.ffwd, layer_norm_by_hand(x, block.ln2))


def embeddings(model, idx):
    """Token plus position embeddings of idx (B, T): (B, T, n_embd)."""
    return model.token_embedding_table.weight[idx] + model.position_embedding_table.weight[: idx.size(1)]


def lm_head_by_hand(model, x):
    return x @ model.lm_head.weight.T + model.lm_head.bias


def heads_by_hand(model, x):
    """bigram_v3's heads, each causal attention over its own q, k, v, side by side: (B, T, n_embd)."""
    return torch.cat([causal_attention_by_hand(x @ h.query.weight.T, x @ h.key.weight.T, x @ h.value.weight.T)
                      for h in model.sa_heads.heads], dim=-1)


def gpt_by_hand(model, idx):
    x = embeddings(model, idx)
    for block in model.blocks:
        x = block_by_hand(block, x)
    return lm_head_by_hand(model, layer_norm_by_hand(x, model.ln_f))


BY_HAND = {  # each stage's logits (B, T, V) from its weights, for idx (B, T)
    "bigram_v1": lambda model, idx: model.token_embedding_table.weight[idx],  # the table's row of each token
    "bigram_v2": lambda model, idx: lm_head_by_hand(model, embeddings(model, idx)),
    "bigram_v3": lambda model, idx: lm_head_by_hand(model, heads_by_hand(model, embeddings(model, idx))),
    "gpt": gpt_by_hand,  # pre-layer-norm blocks, then ln_f, then lm_head
}


# ---- each stage's forward pass, from its weights ------------------------------------------------------


@pytest.mark.parametrize("stage", STAGES, ids=lambda s: s.__name__)
def test_logits_are_each_stages_formula_and_loss_their_mean_cross_entropy(stage):
    # gpt built with dropout 0.5 and put in eval mode: its dropout must then be off
    model = spread(build(stage, dropout=0.5)).eval()
    idx, targets = tokens(2, BLOCK), tokens(2, BLOCK, seed=2)
    logits, loss = model(idx, targets)
    assert_close(logits, BY_HAND[stage.__name__](model, idx))
    assert_close(loss, cross_entropy_by_hand(logits, targets))
    for T in (1, 2, 3):  # short inputs: the first T positions, and the mask, sliced or skipped, still causal
        logits, loss = model(idx[:, :T])
        assert_close(logits, BY_HAND[stage.__name__](model, idx[:, :T]))
        assert loss is None  # no targets, no loss


def test_gpt_training_drops_out_attention_weights_and_both_residual_branches():
    """In train mode each dropout zeroes some activations and scales the rest by 1 / (1 - p)."""
    model = spread(build(gpt, dropout=0.5))
    assert model.blocks[-1].sa.dropout == 0.5 and model.blocks[-1].ffwd.net[3].p == 0.5
    sa, ffwd = model.blocks[0].sa, model.blocks[0].ffwd
    x = torch.randn(2, BLOCK, C, generator=torch.Generator().manual_seed(3))
    for branch in (ffwd, nn.Sequential(sa.proj, sa.resid_dropout)):  # the dropout after each residual branch
        exact = branch.eval()(x)
        torch.manual_seed(0)
        dropped = branch.train()(x)
        zero = dropped == 0
        assert 0.3 < zero.float().mean() < 0.7
        assert_close(dropped[~zero], 2 * exact[~zero])
    sa.resid_dropout = nn.Identity()  # what is left is the dropout on the attention weights
    torch.manual_seed(0)
    assert not torch.allclose(sa.train()(x), sa.eval()(x))
    for block in model.blocks:  # every dropout off: the forward pass in train mode is then exact
        block.sa.dropout, block.sa.resid_dropout, block.ffwd.net[3] = 0.0, nn.Identity(), nn.Identity()
    idx = tokens(2, BLOCK)
    assert_close(model.train()(idx)[0], gpt_by_hand(model, idx))  # no dropout on the embeddings (nanoGPT's 0)


@pytest.mark.parametrize("stage", STAGES, ids=lambda s: s.__name__)
def test_build_model_makes_the_configured_sizes_and_exactly_the_lectures_parameters(stage):
    model = build(stage)
    emb = V * C + BLOCK * C  # token and position tables
    per_block = 2 * 2 * C + 3 * C * C + (C * C + C) + (C * 4 * C + 4 * C) + (4 * C * C + C)  # 2 ln, qkv, proj, ffwd
    expected = {"bigram_v1": V * V, "bigram_v2": emb + C * V + V, "bigram_v3": emb + 3 * C * C + C * V + V,
                "gpt": emb + N_LAYER * per_block + 2 * C + C * V + V}[stage.__name__]
    assert sum(p.numel() for p in model.parameters()) == expected
    if stage is not bigram_v1:
        assert model.position_embedding_table.num_embeddings == BLOCK
    if stage is bigram_v3:
        assert len(model.sa_heads.heads) == N_HEAD and model.sa_heads.heads[0].key.out_features == C // N_HEAD
    if stage is gpt:
        assert len(model.blocks) == N_LAYER and model.blocks[0].sa.n_head == N_HEAD


@pytest.mark.parametrize("stage", STAGES, ids=lambda s: s.__name__)
def test_main_hands_the_stage_its_doc_table_and_model_and_trains_it_in_process(stage, small_text_path, tmp_path,
                                                                              capsys):
    assert stage.main(["--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps the lines its own way
    assert stage.__doc__.split("\n")[0] in out and "--block-size" in out
    assert (" on a GPU" in out) == (stage is gpt)  # gpt's GPU table shows in --help
    argv = tiny(stage.__name__, max_iters=2, eval_interval=1, batch_size=2, block_size=4, max_new_tokens=3,
                final_eval=None)  # the default final measurement: the full splits
    assert stage.main([*argv, "--data", str(small_text_path), "--out", str(tmp_path / "out")]) == 0
    assert stage.__name__ in capsys.readouterr().out and (tmp_path / "out" / runner.METRICS).is_file()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU: on a CPU every device is the CPU")
@pytest.mark.parametrize("stage", STAGES, ids=lambda s: s.__name__)
def test_on_a_cuda_gpu_batches_positions_and_sampled_tokens_all_stay_on_the_gpu(stage):
    cuda = torch.device("cuda")
    x, y = get_batch(tokens(100), 2, BLOCK, cuda, torch.Generator().manual_seed(0))  # (B, T) each
    assert x.device.type == y.device.type == "cuda"
    model = build(stage).to(cuda)
    logits, loss = model(x, y)  # the positions must be made on idx's device too
    assert logits.device.type == loss.device.type == "cuda"
    out = sampling.generate(model.eval(), x[:, :3], 2 * BLOCK, generator=torch.Generator().manual_seed(0),
                            block_size=BLOCK, strategy="halve" if stage is gpt else "crop")
    assert out.device.type == "cuda" and out.shape == (2, 3 + 2 * BLOCK)


# ---- gpt's GPT-2 init --------------------------------------------------------------------------------


def test_gpt_init_is_normal_0_02_with_residual_projections_shrunk_to_0_02_over_sqrt_2_n_layer_and_zero_biases():
    n_embd, n_layer = 256, 4  # wide: 65,536 weights per projection pin their std to within 1%
    torch.manual_seed(0)
    model = gpt.GPTLanguageModel(V, n_embd=n_embd, block_size=BLOCK, n_head=4, n_layer=n_layer, dropout=0.0)
    residual = {id(b.sa.proj) for b in model.blocks} | {id(b.ffwd.net[2]) for b in model.blocks}
    seen = 0
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Embedding)):
            w = module.weight.detach()
            std = 0.02 / math.sqrt(2 * n_layer) if id(module) in residual else 0.02
            assert_close(w.std().item(), std, rtol=0.05, atol=0)
            assert abs(w.mean().item()) < 5 * std / math.sqrt(w.numel())
            if getattr(module, "bias", None) is not None:
                assert torch.equal(module.bias, torch.zeros_like(module.bias))
            seen += 1
        if isinstance(module, nn.LayerNorm):
            assert torch.equal(module.weight, torch.ones(n_embd)) and torch.equal(module.bias, torch.zeros(n_embd))
    assert seen == 2 + 4 * n_layer + 1  # two tables, qkv + proj + two ffwd Linears per block, lm_head


# ---- the KV cache and the sampling loops ----------------------------------------------------------------


def test_gpt_cached_steps_give_the_logits_of_the_full_forward_pass_at_every_position():
    model = spread(build(gpt)).eval()
    idx = tokens(2, BLOCK)
    full = gpt_by_hand(model, idx)  # (B, block_size, V)
    cache = sampling.KVCache(BLOCK)
    with torch.no_grad():
        first, _ = model(idx[:, :3], cache=cache)  # a three-token prompt fills the cache
        cache.length += 3
        assert_close(first, full[:, :3])
        for t in range(3, BLOCK):
            step, _ = model(idx[:, t : t + 1], cache=cache)  # (B, 1, V): position t, from the cache's length
            cache.length += 1
            assert_close(step[:, 0], full[:, t])


def sample_by_hand(model, idx, n, block_size, strategy, temperature, seed):
    """The text stream() must write, each step a full forward pass (no cache) over the context it should
    see: "crop" the last block_size tokens; "halve" the tokens since the last refill, where a refill (when the
    context has filled the block) keeps the last block_size // 2 tokens, at least one."""
    g = torch.Generator().manual_seed(seed)
    context = idx[:, -block_size:]
    for _ in range(n):
        logits, _ = model(context if strategy == "halve" else idx[:, -block_size:])
        nxt = sampling.pick_next(logits[:, -1], temperature, None, g)  # (B, 1)
        idx = torch.cat((idx, nxt), dim=1)
        context = idx[:, -max(1, block_size // 2) :] if context.size(1) == block_size else torch.cat((context, nxt), 1)
    return idx


@pytest.mark.parametrize("block_size, prompt_len", [(8, 3), (8, 11), (7, 2), (1, 3)])
@pytest.mark.parametrize("strategy", ["halve", "crop"])
def test_past_block_size_each_strategy_writes_the_text_of_its_reference_loop(strategy, block_size, prompt_len):
    # seeded draws at temperature 1, not greedy: a random model's greedy text soon repeats one token forever,
    # whatever context it is given, and could not tell a right refill from a wrong one
    model = spread(build(gpt, block_size=block_size), std=0.5).eval()
    prompt, n = tokens(3, prompt_len), 3 * block_size + 5  # refills the cache several times
    expected = sample_by_hand(model, prompt, n, block_size, strategy, 1.0, seed=7)
    out = sampling.generate(model, prompt, n, 1.0, None, torch.Generator().manual_seed(7), block_size, strategy)
    assert torch.equal(out, expected)
    streamed = list(sampling.stream(model, prompt, n, 1.0, None, torch.Generator().manual_seed(7), block_size,
                                    strategy))
    assert [t.shape for t in streamed] == [(3, 1)] * n  # each new token as it is drawn, (B, 1), in text order
    assert torch.equal(torch.cat([prompt, *streamed], dim=1), expected)
    if block_size > 2:  # and the two loops differ once the text is longer than the block: the test can tell
        other = sample_by_hand(model, prompt, n, block_size, {"halve": "crop", "crop": "halve"}[strategy], 1.0, 7)
        assert not torch.equal(out, other)


def test_sampling_defaults_are_temperature_1_no_top_k_and_without_a_block_the_crop_loop_over_the_whole_text():
    logits = torch.randn(500, 6, generator=torch.Generator().manual_seed(0))  # (B, V)
    assert torch.equal(sampling.pick_next(logits, generator=torch.Generator().manual_seed(1)),
                       sampling.pick_next(logits, 1.0, None, torch.Generator().manual_seed(1)))
    # bigram_v1 has no position table, so no block either: each step of "crop" feeds the whole text so far
    model = spread(build(bigram_v1)).eval()
    calls = []
    forward = model.forward
    model.forward = lambda idx, targets=None: calls.append(idx.size(1)) or forward(idx, targets)
    out = sampling.generate(model, tokens(1, 2), 5, temperature=0.0)
    assert calls == [2, 3, 4, 5, 6]
    assert torch.equal(out, sample_by_hand(model, tokens(1, 2), 5, 10**6, "crop", 0.0, seed=0))


# ---- runner/loop.py: the training loop, its schedule and its measurements ------------------------------


class Loud(nn.Module):
    """A model whose loss is multiplied by `scale`: 50 makes every gradient norm far above GRAD_CLIP."""

    def __init__(self, scale):
        super().__init__()
        self.inner, self.scale = spread(build(bigram_v2)), scale

    def forward(self, idx, targets):
        logits, loss = self.inner(idx, targets)
        return logits, loss * self.scale


def test_a_run_stopped_and_resumed_ends_as_the_uninterrupted_one_in_its_files_final_losses_and_sample(
        tmp_path, small_text_path, capsys):
    # gpt with dropout: the batches and the dropout masks must both come back; `--resume` alone brings the sizes
    # and the schedule back from the checkpoint. In pytest's own process, so mutmut sees the loop's bookkeeping.
    flags = [*tiny("gpt", max_iters=24, eval_interval=4, max_new_tokens=20, final_eval=500), "--prompt", PROMPT,
             "--data", str(small_text_path)]
    whole, parts, started = tmp_path / "whole", tmp_path / "parts", time.perf_counter()
    assert gpt.main([*flags, "--out", str(whole)]) == 0
    uninterrupted = capsys.readouterr().out
    assert gpt.main([*flags, "--out", str(parts), "--stop-at", "6"]) == 0  # between two evaluations
    assert gpt.main(["--resume", "--data", str(small_text_path), "--out", str(parts), "--device", "cpu", "--prompt",
                     PROMPT, "--max-new-tokens", "20", "--final-eval", "500"]) == 0
    assert printed_sample(capsys.readouterr().out) == printed_sample(uninterrupted)
    a, b = (torch.load(out / "ckpt.pt", weights_only=True) for out in (whole, parts))
    final = [json.loads((out / "metrics.json").read_text()) for out in (whole, parts)]
    assert (final[1]["train_loss"], final[1]["val_loss"]) == (final[0]["train_loss"], final[0]["val_loss"])
    timeless = [[{k: v for k, v in h.items() if k != "seconds"} for h in c["history"]] for c in (a, b)]
    assert timeless[0] == timeless[1] and [h["iter"] for h in a["history"]] == list(range(0, 25, 4))
    assert a["step"] == b["step"] == len(b["step_losses"]) == 24 and a["step_losses"] == b["step_losses"]
    seconds = [h["seconds"] for h in a["history"]]  # the training clock at each evaluation: it only goes on
    assert seconds[0] == 0 < seconds[1] and seconds == sorted(seconds)
    assert seconds[-1] <= a["train_seconds"] < time.perf_counter() - started and b["train_seconds"] > 0
    best = min(a["history"], key=lambda h: h["val"])  # the first of equals: a tie does not replace the best
    assert best == a["best"] and b["best"]["iter"] == best["iter"] == torch.load(parts / "best.pt")["iter"]
    for key in ("stage", "seed", "dtype", "text_sha256", "config", "tokenizer", "world_size"):
        assert a[key] == b[key] and a[key] is not None, key
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"]) and len(b["rng"]) == 1
    assert json.loads((parts / "tokenizer.json").read_text()) == b["tokenizer"]


@pytest.mark.parametrize("scale, clipped", [(50.0, True), (0.01, False)], ids=["norm_above_clip", "norm_below"])
def test_train_steps_are_warmup_cosine_lr_times_the_gradient_clipped_to_norm_1(scale, clipped, monkeypatch):
    cfg = dict(lr=0.05, warmup_iters=2, max_iters=5, eval_interval=2, batch_size=4, block_size=6)
    train_ids = tokens(200, seed=5)
    model = Loud(scale)
    reference = copy.deepcopy(model)
    optimizer, seen = torch.optim.SGD(model.parameters(), lr=123.0), []  # train() must replace the lr every step
    # at each step(): the learning rate and the gradients it is about to apply
    optimizer.register_step_pre_hook(lambda opt, args, kwargs: seen.append(
        (opt.param_groups[0]["lr"], [p.grad.clone() for p in opt.param_groups[0]["params"]])))
    # the smallest `run` train() accepts: no files, no clock, no signals (evaluate and save are recorded below)
    run = SimpleNamespace(device=CPU, batches=torch.Generator().manual_seed(9), autocast=nullcontext,
                          progress=runner.loop.Progress(), args=SimpleNamespace(stop_at=None), stage="stub",
                          stop=None, saved=None, step_times=[], hinted=False)
    devices, evaluated = [], []  # a CPU cannot tell a batch sent to run.device from one left there: record the call
    monkeypatch.setattr(runner.loop, "get_batch", lambda *a: devices.append(a[3]) or get_batch(*a))

    def evaluate(run):
        evaluated.append(run.progress.step)
        run.saved = run.progress.step  # as the real one does, by saving a checkpoint

    monkeypatch.setattr(runner.loop, "evaluate", evaluate)
    monkeypatch.setattr(runner.loop, "save", lambda run: pytest.fail("saved though it ended at an evaluation"))
    runner.train(model, optimizer, train_ids, cfg, run)
    assert devices == [run.device] * cfg["max_iters"]

    g = torch.Generator().manual_seed(9)  # the batches train() must draw from run.batches
    params = list(reference.parameters())
    assert len(seen) == cfg["max_iters"]
    for step, (lr, grads) in enumerate(seen):
        xb, yb = get_batch(train_ids, 4, 6, CPU, g)
        _, loss = reference(xb, yb)
        assert_close(run.progress.step_losses[step], loss.item())
        raw = torch.autograd.grad(loss, params)
        norm = torch.sqrt(sum((r**2).sum() for r in raw))
        assert (norm > 1.0) == clipped
        expected = [r * (1.0 / (norm + 1e-6)) if clipped else r for r in raw]  # clip_grad_norm_'s formula
        assert_close(grads, expected)
        if clipped:
            assert_close(torch.sqrt(sum((x**2).sum() for x in grads)).item(), 1.0, rtol=1e-5, atol=0)
        assert_close(lr, runner.lr_at(step, cfg))
        with torch.no_grad():
            for p, e in zip(params, expected):
                p -= lr * e
    assert_close(list(model.parameters()), params)
    assert evaluated == [0, 2, 4, 5]  # every eval_interval steps, and after the last


def test_lr_schedule_pins_min_ratio_0_1_and_handles_one_or_no_decay_step():
    cfg = dict(lr=2.0, warmup_iters=3, max_iters=4)
    assert runner.MIN_LR_RATIO == 0.1 and runner.GRAD_CLIP == 1.0  # the values the README and notes state
    assert_close([runner.lr_at(s, cfg) for s in range(6)], [2 / 3, 4 / 3, 2.0, 2.0, 0.2, 0.2])
    assert_close(runner.lr_at(3, dict(cfg, max_iters=3)), 2.0)  # warmup_iters == max_iters: no 0 / 0
    halfway = dict(lr=1.0, warmup_iters=0, max_iters=4)
    assert_close(runner.lr_at(1, halfway), 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi / 4)))


def test_make_optimizer_is_adamw_over_every_parameter_with_the_configs_lr_and_weight_decay():
    model = build(gpt)
    opt = runner.make_optimizer(model, dict(lr=0.004, weight_decay=0.3), CPU)
    assert isinstance(opt, torch.optim.AdamW) and len(opt.param_groups) == 1
    group = opt.param_groups[0]
    assert group["params"] == list(model.parameters())
    assert group["lr"] == 0.004 and group["weight_decay"] == 0.3 and group["fused"] is True
    assert runner.make_optimizer(model, dict(lr=0.004), CPU).param_groups[0]["weight_decay"] == 0.0
    # fused where PyTorch has a fused AdamW (CPU and CUDA; it accepts CPU tensors under a "cuda" device too)
    assert runner.make_optimizer(model, dict(lr=0.004), torch.device("cuda")).param_groups[0]["fused"] is True
    assert not runner.make_optimizer(model, dict(lr=0.004), torch.device("mps")).param_groups[0]["fused"]


SPLITS = {"train": tokens(300, seed=11), "val": tokens(120, seed=12)}


def test_estimate_loss_is_the_eval_mode_mean_over_eval_iters_batches_drawn_from_the_seed_for_each_split():
    model = spread(build(gpt, dropout=0.5)).train()
    cfg = dict(eval_iters=3, batch_size=4, block_size=BLOCK)
    estimate = runner.estimate_loss(model, SPLITS, cfg, CPU, seed=5)
    assert model.training  # back to training afterwards
    assert set(estimate) == {"train", "val"}
    for seed, got in ((5, estimate), (0, runner.estimate_loss(model, SPLITS, cfg))):  # 0: the default seed
        model.eval()
        for name, ids in SPLITS.items():
            g = torch.Generator().manual_seed(seed)
            losses = [cross_entropy_by_hand(gpt_by_hand(model, x), y) for x, y in
                      (get_batch(ids, 4, BLOCK, CPU, g) for _ in range(3))]
            assert_close(got[name], torch.stack(losses).mean().item())
        model.train()
    assert estimate["val"] != runner.estimate_loss(model, SPLITS, cfg)["val"]  # the seed matters


@pytest.mark.parametrize("n_tokens, rows", [(2 * BLOCK + 4, 64), (47, 2)], ids=["one_batch", "batches_of_2_rows"])
def test_full_loss_measures_every_window_and_the_tail_in_eval_mode_and_leaves_the_model_training(n_tokens, rows):
    # the mean cross-entropy of every prediction. 2 * BLOCK + 4 tokens: two full windows and a tail of 3
    # predictions, in one batch; 47: five full windows in batches of 2, 2 and 1 rows, then a tail of 6
    model = spread(build(gpt, dropout=0.5)).train()
    data = tokens(n_tokens, seed=3)
    loss = runner.full_loss(model, data, BLOCK, CPU, rows)
    assert model.training
    model.eval()
    windows = [data[i : min(i + BLOCK, n_tokens - 1)] for i in range(0, n_tokens - 1, BLOCK)]  # the last stops short
    logits = torch.cat([gpt_by_hand(model, w[None])[0] for w in windows])  # (n_tokens - 1, V)
    assert_close(loss, cross_entropy_by_hand(logits[None], data[1:][None]).item())


FLOOR_GRID = (1e-4, 1e-3, 1e-2, 0.1, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0)  # the smoothings bigram_floor tries


@pytest.mark.parametrize("alpha", FLOOR_GRID)
def test_bigram_floor_tries_each_smoothing_of_its_grid_and_keeps_the_best(alpha):
    """Data on which add-alpha smoothing is best at exactly this alpha, so the floor is its val loss.

    Train holds one pair, 0->0. Val holds m pairs 0->0 and k pairs 0->1 (and k pairs 1->0, whose
    probability is 1/2 whatever alpha: train never saw a 1). P(1 | 0) = alpha / (1 + 2 alpha), and the val
    loss is lowest where that equals k / (k + m), at alpha = k / (m - k): k, m are chosen to make it this one.
    """
    k, m = (1, round(1 + 1 / alpha)) if alpha < 1 else (int(alpha), int(alpha) + 1)
    train, val = torch.tensor([0, 0]), torch.tensor([0] * (m + 1) + [1, 0] * k)
    p1 = alpha / (1 + 2 * alpha)
    by_hand = -(k * math.log(p1) + m * math.log(1 - p1) + k * math.log(0.5)) / (len(val) - 1)
    assert_close(runner.bigram_floor(train, val, 2), by_hand)


def test_bigram_floor_normalises_each_characters_row_of_counts():
    # train counts 0->1 once and 1->1 twice: its rows and its columns sum differently, so a table normalised
    # along the wrong axis scores otherwise (on real text the two sums are nearly equal)
    train, val, counts, rows = torch.tensor([0, 1, 1, 1]), torch.tensor([0, 1, 1]), {(0, 1): 1, (1, 1): 2}, [1, 2]

    def val_loss(alpha):  # P(b | a) = (count(a, b) + alpha) / (count(a, any) + 2 alpha), over val's 2 pairs
        p = lambda a, b: (counts.get((a, b), 0) + alpha) / (rows[a] + 2 * alpha)  # noqa: E731
        return -(math.log(p(0, 1)) + math.log(p(1, 1))) / 2

    assert_close(runner.bigram_floor(train, val, 2), min(val_loss(a) for a in FLOOR_GRID))


def test_tiny_shakespeare_has_65_characters_a_90_10_split_and_a_bigram_floor_of_2_482(shakespeare_path):
    # the facts of the real text that the README and the stage docstrings rely on
    text = shakespeare_path.read_text(encoding="utf-8")
    tok = CharTokenizer.from_text(text)
    assert tok.vocab_size == 65
    train, val = split(torch.tensor(tok.encode(text)))
    assert (len(train), len(val)) == (1_003_854, 111_540)
    assert abs(runner.bigram_floor(train, val, tok.vocab_size) - 2.482) < 0.002


# ---- data: the tokenizer and the batches ------------------------------------------------------------


def test_tokenizer_ids_are_places_in_the_vocabulary_and_decode_inverts_encode():
    tok = CharTokenizer("zab")
    assert tok.vocab_size == 3 and tok.encode("abz") == [1, 2, 0] and tok.decode([2, 0, 1, 1]) == "bzaa"
    assert repr(tok) == "CharTokenizer(vocab_size=3)"
    assert tok == CharTokenizer(list("zab")) and tok != CharTokenizer("abz") and tok != "zab"
    assert CharTokenizer.from_text("banana").chars == ["a", "b", "n"]  # each character once, in sorted order


def test_split_is_first_nine_tenths_then_the_rest_and_get_batch_windows_are_shifted_by_one():
    ids = torch.arange(100, 120)
    train, val = split(ids)
    assert torch.equal(train, ids[:18]) and torch.equal(val, ids[18:])
    assert [len(t) for t in split(ids, 0.5)] == [10, 10]
    g = torch.Generator().manual_seed(0)
    x, y = get_batch(ids, 50, 5, generator=g)
    starts = torch.randint(15, (50,), generator=torch.Generator().manual_seed(0))  # 0..14: the last ends at 119
    assert torch.equal(x, 100 + starts[:, None] + torch.arange(5)) and torch.equal(y, x + 1)
    assert get_batch(ids[:6], 2, 5)[1][0, -1] == 105  # exactly block_size + 1 tokens is enough (5: an error below)


# ---- every one-line error of these files, word for word -------------------------------------------------


ERRORS = [  # (what is called, the exception it must raise, its whole message)
    (partial(CharTokenizer.from_text, ""), ValueError, "cannot build a vocabulary from an empty text"),
    (partial(CharTokenizer, "aba"), ValueError, "a vocabulary lists each character once"),
    (partial(CharTokenizer("ab").encode, "abcdc"), UnknownCharacterError,
     "2 character(s) not in the vocabulary: 'c', 'd'; allowed are the 2 characters 'ab'"),
    *[(partial(CharTokenizer.from_dict, saved), ValueError, "not a saved character tokenizer") for saved in
      (None, [], {"type": "bpe", "chars": "ab"}, {"type": "char", "chars": ["a"]}, {"type": "char"})],
    (partial(get_batch, torch.arange(5), 2, 5), ValueError, "need at least block_size + 1 = 6 tokens, got 5"),
    *[(partial(sampling.pick_next, torch.zeros(1, 3), t), ValueError, f"temperature must be in [0, 100], got {t}")
      for t in (-0.5, -0.1, 100.5, math.inf, math.nan)],
    (lambda: next(sampling.stream(build(gpt), tokens(1, 2), 3, block_size=BLOCK, strategy="shift")), ValueError,
     "unknown strategy 'shift': use 'halve' or 'crop'"),
]


@pytest.mark.parametrize("call, error, message", ERRORS)
def test_each_error_is_refused_with_its_reason_in_one_line(call, error, message):
    with pytest.raises(error) as info:
        call()
    assert str(info.value) == message
