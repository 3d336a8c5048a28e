"""The sampling knobs do what sampling.py says: temperature reshapes the distribution as softmax(logits / T),
top_k draws only from the k largest logits and from every one of them, and both reach every loop.

The distribution tests draw N = 20,000 tokens in one pick_next call (the logits repeated N times) with a
seeded torch.Generator, and compare each token's share with its exact probability p. One share has a
standard deviation of sqrt(p (1 - p) / N), at most 0.0035 here; the tests allow 5 of those plus one draw
(see assert_drawn_as), so a correct pick_next fails a check by chance with odds below one in a million per
token, whatever the seed. The mistakes they are meant to catch are 10 to 100 of them wide: ignoring the
temperature moves the likeliest token's share by 0.14 at T = 0.7, and one candidate too many in top_k
gives a token that must never be drawn hundreds of draws.
"""

import math

import pytest
import torch
from torch.nn import functional as F

import gpt
import sampling
from sampling import pick_next

N = 20_000  # draws per distribution
SIGMAS = 5  # allowed distance from the exact probability, in standard deviations of a share
# Six logits, deliberately not in order, with gaps that make every temperature below visibly different.
LOGITS = torch.tensor([0.0, 2.0, -1.0, 1.2, -0.4, 0.5])
ARGMAX = 1


def draw(logits, temperature=1.0, top_k=None, n=N, seed=0):
    """Draw n tokens from one row of logits in a single call; return how often each token came up (V,)."""
    rows = logits.expand(n, -1)  # (n, V): the same distribution n times, drawn independently
    picked = pick_next(rows, temperature, top_k, generator=torch.Generator().manual_seed(seed))  # (n, 1)
    assert picked.shape == (n, 1) and picked.dtype == torch.long
    return torch.bincount(picked[:, 0], minlength=logits.numel())  # (V,)


def assert_drawn_as(counts, probs):
    """Every token's share of the draws is within SIGMAS standard deviations of its exact probability,
    plus one draw: a token as unlikely as 1e-7 (expected 0.002 times in N) may still come up once, where
    the normal approximation behind "standard deviations" no longer holds. A token of probability exactly
    0 (cut by top_k) must never be drawn at all.
    """
    probs = probs.double()
    n = counts.sum().item()
    shares = counts.double() / n
    allowed = torch.where(probs == 0, 0.0, SIGMAS * (probs * (1 - probs) / n).sqrt() + 1 / n)
    worst = ((shares - probs).abs() - allowed).argmax().item()
    assert ((shares - probs).abs() <= allowed).all(), (
        f"token {worst} drawn with share {shares[worst]:.4f}, expected {probs[worst]:.4f} +- {allowed[worst]:.4f}; "
        f"all shares {shares.numpy().round(4)}, expected {probs.numpy().round(4)}")


def softmax_of(logits, temperature):
    return F.softmax(logits.double() / temperature, dim=-1)


# ---- temperature ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("temperature", [0.05, 0.3, 0.7, 1.0, 2.5, 100.0])
def test_draws_follow_softmax_of_logits_divided_by_the_temperature(temperature):
    assert_drawn_as(draw(LOGITS, temperature), softmax_of(LOGITS, temperature))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("temperature", [0.0, 1e-40, 5e-324])  # 5e-324: the smallest float64 above 0
def test_temperature_zero_or_a_tiny_one_such_as_1e_40_is_greedy_the_argmax_of_each_row_without_nan(dtype, temperature):
    # in float32, 2.0 / 1e-40 is inf, and softmax's inf - inf would be nan (multinomial then raises)
    logits = torch.randn(50, 11, generator=torch.Generator().manual_seed(1)).to(dtype)  # (B, V)
    logits[0, :3] = torch.tensor([1e30, 3e38, -3e38])  # near float32's largest: still no inf, no nan
    expected = logits.argmax(dim=-1, keepdim=True)  # (B, 1)
    assert torch.equal(pick_next(logits, temperature, generator=torch.Generator().manual_seed(0)), expected)
    assert torch.equal(pick_next(logits, temperature, top_k=5), expected)  # top_k cannot change the likeliest
    # the distribution itself (what the explorer shows): everything on the likeliest, every token a column
    assert torch.equal(sampling.probabilities(logits, temperature), F.one_hot(expected[:, 0], 11).double())
    assert sampling.probabilities(torch.tensor([[2.0, 1.0, 0.0]]), temperature).tolist() == [[1.0, 0.0, 0.0]]


# ---- top_k ---------------------------------------------------------------------------------------------


def top_k_probs(logits, k, temperature=1.0):
    """softmax(logits / T) over the tokens whose logit is at least the k-th largest, 0 elsewhere."""
    kth = logits.sort(descending=True).values[min(k, logits.numel()) - 1]
    return softmax_of(logits.masked_fill(logits < kth, -math.inf), temperature)


# Eight logits between 0 and 1.5 in shuffled order: every token is likely enough (>= 0.05) to be drawn
# hundreds of times, so "each of the k is drawn" is a real check, and the k largest are not the first k.
SPREAD = torch.linspace(1.5, 0.0, 8)[torch.tensor([5, 2, 7, 0, 3, 6, 1, 4])]


# every k below the vocabulary (8), at or above it (every token kept), and with a sharpening or flattening
# temperature (the top k drawn from softmax(logits / T) among themselves)
@pytest.mark.parametrize("k, temperature", [(k, 1.0) for k in (1, 2, 3, 4, 5, 6, 7, 8, 9, 1000)]
                         + [(3, 0.5), (3, 2.5), (5, 100.0)])
def test_top_k_draws_only_the_k_largest_logits_and_each_of_them(k, temperature):
    counts = draw(SPREAD, temperature, top_k=k)
    top = set(SPREAD.topk(min(k, len(SPREAD))).indices.tolist())
    drawn = set(counts.nonzero()[:, 0].tolist())
    assert drawn == top, f"top_k={k}: drew {sorted(drawn)}, the {k} largest are {sorted(top)}"
    assert_drawn_as(counts, top_k_probs(SPREAD, k, temperature))  # in the proportions softmax gives them


def test_top_k_keeps_each_rows_own_k_largest():
    rows = torch.stack([SPREAD, SPREAD.flip(0)])  # (2, V): the second row's largest are other tokens
    picked = pick_next(rows.repeat(N // 2, 1), 1.0, top_k=3, generator=torch.Generator().manual_seed(0))  # (N, 1)
    for r in range(2):
        drawn = set(picked[r::2, 0].tolist())
        assert drawn == set(rows[r].topk(3).indices.tolist()), (r, drawn)


@pytest.mark.parametrize("logits, k, kept", [
    ([0.0, 1.0, -1.0, 1.0, 2.0], 2, {1, 3, 4}),  # a tie for the 2nd place: both tied tokens stay
    ([1.0, 0.0, 1.0], 1, {0, 2}),  # a tie for the top: both stay, drawn half the time each
    ([0.5, 0.5, 0.5, 0.5], 2, {0, 1, 2, 3}),  # all equal: nothing to prefer, so nothing is cut
])
def test_top_k_keeps_every_token_tied_with_the_kth_largest(logits, k, kept):
    # Cutting one of two equal logits would be a choice by token id, not by the model: like nanoGPT, the
    # tokens tied with the k-th largest logit are all kept, so top_k may keep more than k, never fewer.
    logits = torch.tensor(logits)
    counts = draw(logits, 1.0, top_k=k)
    assert set(counts.nonzero()[:, 0].tolist()) == kept
    assert_drawn_as(counts, top_k_probs(logits, k))


# ---- the sampling loops pass both knobs on ------------------------------------------------------------


BLOCK = 16  # the tiny model's block_size


@pytest.fixture(scope="module")
def model():
    """A tiny gpt whose weights are spread far from the init, so that its logits differ clearly (no near
    ties for argmax to trip on) and the likeliest next token depends on the context, not only on the last
    token: then a KV cache that mixes up positions changes the greedy text too."""
    torch.manual_seed(0)
    m = gpt.GPTLanguageModel(65, n_embd=32, n_head=4, n_layer=2, block_size=BLOCK, dropout=0.0).eval()
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0.0, 0.3)
    return m


def greedy(model, idx, n):
    """The likeliest next token, n times, each predicted from the last block_size tokens."""
    with torch.no_grad():
        for _ in range(n):
            logits, _ = model(idx[:, -BLOCK :])  # (B, T, V)
            idx = torch.cat((idx, logits[:, -1].argmax(-1, keepdim=True)), dim=1)  # (B, T+1)
    return idx


PROMPT = torch.randint(65, (6, 5), generator=torch.Generator().manual_seed(1))  # (B, T)


@pytest.mark.parametrize("loop", ["crop", "halve"])
@pytest.mark.parametrize("knobs", [dict(temperature=0.0), dict(temperature=1e-40), dict(top_k=1)],
                         ids=["temperature_0", "temperature_1e-40", "top_k_1"])
def test_greedy_settings_make_both_loops_write_the_argmax_text_of_the_uncached_model(model, loop, knobs):
    # "halve" refills its KV cache past block_size, so both loops are compared while the text fits
    n = BLOCK - PROMPT.size(1) + 1
    expected = greedy(model, PROMPT, n)
    g = torch.Generator().manual_seed(0)
    out = sampling.generate(model, PROMPT, n, generator=g, block_size=BLOCK, strategy=loop, **knobs)
    assert torch.equal(out, expected)
    # and the comparison can fail: at temperature 1 with no top_k, the same seed draws other tokens
    plain = sampling.generate(model, PROMPT, n, generator=torch.Generator().manual_seed(0), block_size=BLOCK)
    assert not torch.equal(plain, expected)


@pytest.mark.parametrize("strategy", ["halve", "crop"])
def test_without_block_size_generate_uses_the_models_own_context_past_the_end_of_its_block(model, strategy):
    # block_size=None: the model's own context (its position table's rows), so a text longer than the block
    # is drawn as with block_size=BLOCK instead of failing inside nn.Embedding
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    out = sampling.generate(model, PROMPT, 3 * BLOCK, generator=g(), strategy=strategy)
    assert torch.equal(out, sampling.generate(model, PROMPT, 3 * BLOCK, generator=g(), block_size=BLOCK,
                                              strategy=strategy))
    assert out.shape == (PROMPT.size(0), PROMPT.size(1) + 3 * BLOCK)
    # the defaults, given in their order: temperature 1, every token, the model's own context, "crop"
    assert torch.equal(sampling.generate(model, PROMPT, 3 * BLOCK, generator=g()),
                       sampling.generate(model, PROMPT, 3 * BLOCK, 1.0, None, g(), BLOCK, "crop"))
    for block_size in (None, BLOCK):  # and no new tokens give back the prompt
        assert torch.equal(sampling.generate(model, PROMPT, 0, block_size=block_size, strategy=strategy), PROMPT)
