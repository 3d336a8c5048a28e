"""The four stages' models, imported and run in-process on tiny sizes, and runner's loss and schedule helpers.

Every model test builds its stage's model from HYPERPARAMETERS with tiny sizes, on a small text (see
conftest.py), so the whole file trains in a few seconds on a CPU.
"""

import copy
import importlib
import math

import pytest
import torch
from torch.nn import functional as F
from torch.testing import assert_close

import bigram_v1
import bigram_v3
import gpt
import runner
import sampling
from helpers import copy_heads_into_batched
from data import CharTokenizer, get_batch, split

STAGES = [importlib.import_module(name) for name in runner.STAGES]  # the modules, in reading order
TINY = dict(batch_size=8, block_size=16, n_embd=32, n_head=4, n_layer=2, dropout=0.0)
STEPS = 40
MIN_DROP = 0.5  # nats; 40 steps lower each stage's loss by 0.8 to 1.6 nats on every seed tried


def tiny_cfg(stage, **changes):
    """The stage's own defaults with tiny sizes; keys a stage does not use are ignored by its build_model."""
    return {**runner.defaults(stage.HYPERPARAMETERS), **TINY, **changes}


def stage_id(stage):
    return stage.__name__


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def corpus(small_text):
    tok = CharTokenizer.from_text(small_text)
    train, val = split(torch.tensor(tok.encode(small_text)))
    return tok, train, val


def train_losses(stage, cfg, train, vocab_size, steps, seed=0):
    """Seed, build, take `steps` AdamW steps on seeded batches; return the model and each step's loss."""
    torch.manual_seed(seed)
    model = stage.build_model(cfg, vocab_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg["lr"])
    g = torch.Generator().manual_seed(seed)
    losses = []
    for _ in range(steps):
        x, y = get_batch(train, cfg["batch_size"], cfg["block_size"], generator=g)
        _, loss = model(x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return model, losses


def spread_gpt(vocab_size, block_size, seed=0):
    """A gpt model whose weights are far from the init, so every token and position moves the logits a lot.

    At init the logits are nearly equal, and a cache bug that mixed up positions could still sample the
    same tokens; with weights ~N(0, 0.5) any such mistake changes what is sampled.
    """
    torch.manual_seed(seed)
    model = gpt.build_model(tiny_cfg(gpt, block_size=block_size), vocab_size).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.5)
    return model


# ---- every stage --------------------------------------------------------------------------------------


@pytest.mark.parametrize("stage", STAGES, ids=stage_id)
def test_logits_are_batch_by_time_by_vocab_and_loss_is_a_scalar_only_with_targets(stage, corpus):
    tok, train, _ = corpus
    cfg = tiny_cfg(stage)
    model = stage.build_model(cfg, tok.vocab_size)
    x, y = get_batch(train, 3, cfg["block_size"], generator=torch.Generator().manual_seed(0))
    logits, loss = model(x, y)
    assert logits.shape == (3, cfg["block_size"], tok.vocab_size)
    assert loss.shape == () and torch.isfinite(loss)
    logits, loss = model(x[:, :5])  # shorter than block_size works too
    assert logits.shape == (3, 5, tok.vocab_size)
    assert loss is None


# The loss of logits z ~ N(0, s^2) over V classes is about ln V + s^2 / 2. gpt (GPT-2 init, std 0.02) and
# bigram_v3 (attention averages, nn.Linear shrinks) start with s^2 near 0, so at ln V. bigram_v1's logits
# *are* nn.Embedding's N(0, 1) table, so it starts half a nat higher, as in the lecture (4.87 vs ln 65 =
# 4.17); bigram_v2 sums two N(0, 1) embeddings through nn.Linear's U(+-1/sqrt(n)) init: s^2 about 2/3.
INIT_LOGIT_VARIANCE = {"bigram_v1": 1.0, "bigram_v2": 2 / 3, "bigram_v3": 0.0, "gpt": 0.0}


@pytest.mark.parametrize("stage", STAGES, ids=stage_id)
def test_initial_loss_is_within_0_3_nats_of_ln_vocab_plus_half_the_init_logit_variance(stage, corpus):
    tok, train, _ = corpus
    cfg = tiny_cfg(stage)
    torch.manual_seed(0)
    model = stage.build_model(cfg, tok.vocab_size)
    x, y = get_batch(train, 32, cfg["block_size"], generator=torch.Generator().manual_seed(0))
    _, loss = model(x, y)
    expected = math.log(tok.vocab_size) + INIT_LOGIT_VARIANCE[stage.__name__] / 2
    assert abs(loss.item() - expected) < 0.3, (loss.item(), expected)


@pytest.mark.parametrize("stage", STAGES, ids=stage_id)
def test_forty_adamw_steps_lower_the_loss_on_a_fixed_batch_by_at_least_half_a_nat(stage, corpus):
    tok, train, _ = corpus
    cfg = tiny_cfg(stage)
    x, y = get_batch(train, 32, cfg["block_size"], generator=torch.Generator().manual_seed(99))
    torch.manual_seed(0)
    _, before = stage.build_model(cfg, tok.vocab_size)(x, y)  # the same init train_losses starts from
    model, _ = train_losses(stage, cfg, train, tok.vocab_size, STEPS)
    _, after = model(x, y)
    assert before.item() - after.item() >= MIN_DROP, (before.item(), after.item())


@pytest.mark.parametrize("stage", STAGES, ids=stage_id)
def test_same_seed_gives_identical_training_losses(stage, corpus):
    tok, train, _ = corpus
    cfg = tiny_cfg(stage, dropout=0.1)  # gpt's dropout draws from the seeded generator too
    _, first = train_losses(stage, cfg, train, tok.vocab_size, 10, seed=3)
    _, second = train_losses(stage, cfg, train, tok.vocab_size, 10, seed=3)
    _, other_seed = train_losses(stage, cfg, train, tok.vocab_size, 10, seed=4)
    assert first == second
    assert first != other_seed


def generate(stage, model, idx, n, g, block_size):
    strategy = "halve" if stage is gpt else "crop"  # only gpt's model takes a KV cache
    return sampling.generate(model, idx, n, generator=g, block_size=block_size, strategy=strategy)


@pytest.mark.parametrize("prompt_chars", [14, 40], ids=["prompt_fits_block", "prompt_longer_than_block"])
@pytest.mark.parametrize("stage", STAGES, ids=stage_id)
def test_sample_is_the_prompt_followed_by_max_new_tokens_characters(stage, corpus, small_text, prompt_chars):
    tok, _, _ = corpus
    prompt = small_text[:prompt_chars]  # block_size is 16
    cfg = tiny_cfg(stage)
    torch.manual_seed(0)
    model = stage.build_model(cfg, tok.vocab_size).eval()
    idx = torch.tensor([tok.encode(prompt)])  # (1, T)
    out = generate(stage, model, idx, 20, torch.Generator().manual_seed(0), cfg["block_size"])
    text = tok.decode(out[0].tolist())
    assert text.startswith(prompt)
    assert len(text) == len(prompt) + 20


@pytest.mark.parametrize("stage", STAGES, ids=stage_id)
def test_logits_up_to_t_ignore_the_tokens_after_t(stage, corpus):
    """Causality: the prediction at t sees tokens 0..t only. bigram_v3 and gpt need their mask for this."""
    tok, _, _ = corpus
    V, T = tok.vocab_size, TINY["block_size"]
    torch.manual_seed(0)
    model = stage.build_model(tiny_cfg(stage), V).eval()
    g = torch.Generator().manual_seed(1)
    idx = torch.randint(V, (2, T), generator=g)
    logits, _ = model(idx)
    for t in range(T - 1):
        changed = idx.clone()
        changed[:, t + 1 :] = (idx[:, t + 1 :] + torch.randint(1, V, (2, T - t - 1), generator=g)) % V  # all differ
        new, _ = model(changed)
        assert_close(new[:, : t + 1], logits[:, : t + 1])
        assert not torch.allclose(new[:, t + 1 :], logits[:, t + 1 :])


# ---- gpt: batched attention, KV cache -----------------------------------------------------------------


def test_gpt_batched_attention_is_bigram_v3_heads_then_proj_in_outputs_and_gradients():
    C, n_head, block_size, B, T = 32, 4, 16, 3, 11  # T < block_size: the mask is sliced, not used whole
    torch.manual_seed(0)
    heads = bigram_v3.MultiHeadAttention(n_embd=C, n_head=n_head, block_size=block_size).double().eval()
    fast = gpt.MultiHeadAttention(n_embd=C, n_head=n_head, dropout=0.0).double().eval()
    copy_heads_into_batched(heads.heads, fast.qkv)
    proj = copy.deepcopy(fast.proj)  # its own copy, so the two paths' gradients do not add up in one tensor

    x_fast = torch.randn(B, T, C, dtype=torch.float64, requires_grad=True)
    x_slow = x_fast.detach().clone().requires_grad_()
    y_fast = fast(x_fast)  # (B, T, C)
    y_slow = proj(heads(x_slow))  # (B, T, C)
    assert_close(y_fast, y_slow)

    upstream = torch.randn(B, T, C, dtype=torch.float64)  # a random loss direction, so every output counts
    (y_fast * upstream).sum().backward()
    (y_slow * upstream).sum().backward()
    assert_close(x_fast.grad, x_slow.grad)
    per_head = [torch.cat([getattr(head, s).weight.grad for head in heads.heads]) for s in ("query", "key", "value")]
    assert_close(fast.qkv.weight.grad, torch.cat(per_head))
    assert_close(fast.proj.weight.grad, proj.weight.grad)
    assert_close(fast.proj.bias.grad, proj.bias.grad)


def test_kv_cache_and_crop_sample_identical_tokens_while_the_text_fits_the_block(corpus):
    tok, _, _ = corpus
    block_size, prompt_len = 16, 5
    n = block_size - prompt_len + 1  # prompt_len + n - 1 == block_size: the last token still fits
    model = spread_gpt(tok.vocab_size, block_size)
    prompt = torch.randint(tok.vocab_size, (2, prompt_len), generator=torch.Generator().manual_seed(1))
    halve = sampling.generate(model, prompt, n, generator=torch.Generator().manual_seed(7), block_size=block_size,
                              strategy="halve")
    crop = sampling.generate(model, prompt, n, generator=torch.Generator().manual_seed(7), block_size=block_size)
    assert halve.shape == (2, prompt_len + n)
    assert torch.equal(halve, crop)
    other = sampling.generate(model, prompt, n, generator=torch.Generator().manual_seed(8), block_size=block_size,
                              strategy="halve")
    assert not torch.equal(halve, other)  # the weights are spread enough that the seed matters


def test_kv_cache_sampling_works_with_block_size_one(corpus):
    # block_size // 2 is 0 here, and idx[:, -0:] is the whole text, not an empty window
    tok, _, _ = corpus
    model = spread_gpt(tok.vocab_size, block_size=1)
    prompt = torch.tensor([[0, 1, 2]])
    out = sampling.generate(model, prompt, 5, generator=torch.Generator().manual_seed(0), block_size=1, strategy="halve")
    assert out.shape == (1, 8)


def test_unknown_sampling_strategy_is_refused(corpus):
    tok, _, _ = corpus
    model = spread_gpt(tok.vocab_size, 8)
    with pytest.raises(ValueError, match="unknown strategy"):
        sampling.generate(model, torch.zeros(1, 1, dtype=torch.long), 3, block_size=8, strategy="shift")


# ---- runner: bigram floor, full-split loss ---------------------------------------------------


def test_bigram_floor_on_tiny_shakespeare_is_2_482(shakespeare_path):
    text = shakespeare_path.read_text(encoding="utf-8")
    tok = CharTokenizer.from_text(text)
    train, val = split(torch.tensor(tok.encode(text)))
    assert abs(runner.bigram_floor(train, val, tok.vocab_size) - 2.482) < 0.002


def test_the_best_smoothed_bigram_table_scores_exactly_the_floor(corpus):
    tok, train, val = corpus
    V = tok.vocab_size
    counts = torch.zeros(V, V, dtype=torch.float64)
    for a, b in zip(train[:-1].tolist(), train[1:].tolist()):
        counts[a, b] += 1
    model, losses = bigram_v1.build_model({}, V), []
    for alpha in (1e-4, 1e-3, 1e-2, 0.1, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0):  # the floor's grid: it takes the best
        with torch.no_grad():
            model.token_embedding_table.weight.copy_(((counts + alpha) / (counts + alpha).sum(1, keepdim=True)).log())
        losses.append(runner.full_loss(model, val, 16))
    assert_close(min(losses), runner.bigram_floor(train, val, V), rtol=1e-5, atol=1e-6)


# 47 tokens, block 8: five full windows (40 predictions), then a short tail window of 6
FULL_LOSS_TOKENS, FULL_LOSS_BLOCK = 47, 8


def test_full_loss_is_the_mean_cross_entropy_over_consecutive_windows_including_the_short_tail(corpus):
    tok, _, _ = corpus
    model = spread_gpt(tok.vocab_size, FULL_LOSS_BLOCK)
    data = torch.randint(tok.vocab_size, (FULL_LOSS_TOKENS,), generator=torch.Generator().manual_seed(1))
    per_token = []
    with torch.no_grad():
        for start in range(0, FULL_LOSS_TOKENS - 1, FULL_LOSS_BLOCK):
            end = min(start + FULL_LOSS_BLOCK, FULL_LOSS_TOKENS - 1)  # the last window stops one short
            logits, _ = model(data[start:end][None])  # (1, end - start, vocab_size)
            for t in range(end - start):
                per_token.append(-F.log_softmax(logits[0, t], dim=-1)[data[start + t + 1]].item())
    assert len(per_token) == FULL_LOSS_TOKENS - 1
    loss = runner.full_loss(model, data, FULL_LOSS_BLOCK, rows=2)
    assert_close(loss, sum(per_token) / len(per_token), rtol=1e-5, atol=1e-6)
