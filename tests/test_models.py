"""The four stages' models, imported and run in-process on tiny sizes: the loss each starts from, that
training lowers it and repeats it exactly from a seed, causality, and gpt's batched attention against
bigram_v3's heads. (What each forward pass computes, line by line, is pinned in test_pinned.py.)

Every model test builds its stage's model from HYPERPARAMETERS with tiny sizes, on a small text (see
conftest.py), so the whole file trains in a few seconds on a CPU.
"""

import copy
import importlib
import math

import pytest
import torch
from torch.testing import assert_close

import bigram_v3
import gpt
import runner
from data import CharTokenizer, get_batch, split
from helpers import copy_heads_into_batched

STAGES = [importlib.import_module(name) for name in runner.STAGES]  # the modules, in reading order
TINY = dict(batch_size=8, block_size=16, n_embd=32, n_head=4, n_layer=2, dropout=0.0)
STEPS = 40
MIN_DROP = 0.5  # nats; 40 steps lower each stage's loss by 0.8 to 1.6 nats on every seed tried


def tiny_cfg(stage, **changes):
    """The stage's own defaults with tiny sizes; keys a stage does not use are ignored by its build_model."""
    return {**runner.defaults(stage.HYPERPARAMETERS), **TINY, **changes}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def corpus(small_text):
    tok = CharTokenizer.from_text(small_text)
    train, _ = split(torch.tensor(tok.encode(small_text)))
    return tok, train


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


# ---- every stage --------------------------------------------------------------------------------------


# The loss of logits z ~ N(0, s^2) over V classes is about ln V + s^2 / 2. gpt (GPT-2 init, std 0.02) and
# bigram_v3 (attention averages, nn.Linear shrinks) start with s^2 near 0, so at ln V. bigram_v1's logits
# *are* nn.Embedding's N(0, 1) table, so it starts half a nat higher, as in the lecture (4.87 vs ln 65 =
# 4.17); bigram_v2 sums two N(0, 1) embeddings through nn.Linear's U(+-1/sqrt(n)) init: s^2 about 2/3.
INIT_LOGIT_VARIANCE = {"bigram_v1": 1.0, "bigram_v2": 2 / 3, "bigram_v3": 0.0, "gpt": 0.0}


@pytest.mark.parametrize("stage", STAGES, ids=lambda s: s.__name__)
def test_loss_starts_within_0_3_nats_of_ln_vocab_plus_half_the_init_logit_variance_and_40_steps_lower_it_half_a_nat(
        stage, corpus):
    tok, train = corpus
    cfg = tiny_cfg(stage)
    x, y = get_batch(train, 32, cfg["block_size"], generator=torch.Generator().manual_seed(99))  # a fixed batch
    torch.manual_seed(0)
    _, before = stage.build_model(cfg, tok.vocab_size)(x, y)  # the same init train_losses starts from
    expected = math.log(tok.vocab_size) + INIT_LOGIT_VARIANCE[stage.__name__] / 2
    assert abs(before.item() - expected) < 0.3, (before.item(), expected)
    model, _ = train_losses(stage, cfg, train, tok.vocab_size, STEPS)
    _, after = model(x, y)
    assert before.item() - after.item() >= MIN_DROP, (before.item(), after.item())


@pytest.mark.parametrize("stage", STAGES, ids=lambda s: s.__name__)
def test_same_seed_gives_identical_training_losses(stage, corpus):
    tok, train = corpus
    cfg = tiny_cfg(stage, dropout=0.1)  # gpt's dropout draws from the seeded generator too
    _, first = train_losses(stage, cfg, train, tok.vocab_size, 10, seed=3)
    _, second = train_losses(stage, cfg, train, tok.vocab_size, 10, seed=3)
    _, other_seed = train_losses(stage, cfg, train, tok.vocab_size, 10, seed=4)
    assert first == second
    assert first != other_seed


@pytest.mark.parametrize("stage", STAGES, ids=lambda s: s.__name__)
def test_logits_up_to_t_ignore_the_tokens_after_t(stage, corpus):
    """Causality: the prediction at t sees tokens 0..t only. bigram_v3 and gpt need their mask for this."""
    tok, _ = corpus
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


# ---- gpt: batched attention ---------------------------------------------------------------------------


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
