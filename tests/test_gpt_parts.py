"""gpt.py's final layer norm (ln_f) does its job: what reaches lm_head is the last block's output normalized
per position, then scaled by ln_f's gain (gamma) and shifted by its bias (beta).

The features are captured on their way into lm_head with a forward pre-hook, so the tests see what the
model really computes, not a copy of its forward pass. Everything runs in float64 and in eval mode
(dropout off), so the comparisons are exact up to rounding.
"""

import pytest
import torch
from torch.testing import assert_close

import gpt
import runner

VOCAB, B, T = 20, 3, 11
SIZES = dict(n_embd=32, n_head=4, n_layer=2, block_size=16, dropout=0.0)


def make_model(seed=0):
    torch.manual_seed(seed)
    return gpt.build_model({**runner.defaults(gpt.HYPERPARAMETERS), **SIZES}, VOCAB).double().eval()


def tokens(seed=1):
    return torch.randint(VOCAB, (B, T), generator=torch.Generator().manual_seed(seed))  # (B, T)


def first_input_of(module, model, idx):
    """Run model(idx); return (what module received as its input, the model's logits)."""
    seen = []
    handle = module.register_forward_pre_hook(lambda mod, args: seen.append(args[0]))
    try:
        with torch.no_grad():
            logits, _ = model(idx)
    finally:
        handle.remove()
    (x,) = seen
    return x, logits


def output_of(module, model, idx):
    seen = []
    handle = module.register_forward_hook(lambda mod, args, out: seen.append(out))
    try:
        with torch.no_grad():
            model(idx)
    finally:
        handle.remove()
    (out,) = seen
    return out


def set_ln_f(model, seed=2):
    """Give ln_f a gain and bias far from their init (1 and 0); return them."""
    g = torch.Generator().manual_seed(seed)
    C = SIZES["n_embd"]
    with torch.no_grad():
        model.ln_f.weight.copy_(1 + 0.5 * torch.randn(C, generator=g, dtype=torch.float64))
        model.ln_f.bias.copy_(0.5 * torch.randn(C, generator=g, dtype=torch.float64))
    return model.ln_f.weight.detach().clone(), model.ln_f.bias.detach().clone()


def test_ln_f_starts_as_gain_one_and_bias_zero():
    model = make_model()
    assert_close(model.ln_f.weight, torch.ones(SIZES["n_embd"], dtype=torch.float64))
    assert_close(model.ln_f.bias, torch.zeros(SIZES["n_embd"], dtype=torch.float64))


def test_features_entering_lm_head_have_mean_0_and_variance_1_at_every_position_at_init():
    model = make_model()
    features, _ = first_input_of(model.lm_head, model, tokens())  # (B, T, n_embd)
    mean = features.mean(-1)  # (B, T)
    var = features.var(-1, unbiased=False)  # (B, T)
    assert_close(mean, torch.zeros(B, T, dtype=torch.float64), atol=1e-9, rtol=0)
    # LayerNorm divides by sqrt(v + eps), eps = 1e-5, so the variance is v / (v + eps), not quite 1. At init
    # the residual stream's variance v is about 8e-4 (two embeddings of std 0.02), which gives about 0.988;
    # without ln_f the features would have that variance of 8e-4 themselves.
    assert ((var > 0.95) & (var <= 1)).all(), var
    stream = output_of(model.blocks[-1], model, tokens())  # (B, T, n_embd): what ln_f normalizes
    v = stream.var(-1, unbiased=False)
    assert_close(var, v / (v + model.ln_f.eps))


def test_lm_head_sees_the_last_blocks_output_normalized_then_scaled_by_gamma_and_shifted_by_beta():
    model = make_model()
    gamma, beta = set_ln_f(model)
    idx = tokens()
    stream = output_of(model.blocks[-1], model, idx)  # (B, T, n_embd)
    features, _ = first_input_of(model.lm_head, model, idx)  # (B, T, n_embd)
    mean = stream.mean(-1, keepdim=True)  # (B, T, 1)
    var = stream.var(-1, unbiased=False, keepdim=True)  # (B, T, 1)
    by_hand = (stream - mean) / torch.sqrt(var + model.ln_f.eps) * gamma + beta  # (B, T, n_embd)
    assert_close(features, by_hand)


def test_changing_ln_f_gain_and_bias_changes_the_logits_exactly_as_an_affine_map_through_lm_head():
    model = make_model()
    idx = tokens()
    normalized, before = first_input_of(model.lm_head, model, idx)  # gamma 1, beta 0: just the normalized stream
    gamma, beta = set_ln_f(model)
    with torch.no_grad():
        after, _ = model(idx)  # (B, T, vocab)
    W, b = model.lm_head.weight.detach(), model.lm_head.bias.detach()  # (vocab, n_embd), (vocab,)
    assert_close(after, (normalized * gamma + beta) @ W.T + b)
    assert not torch.allclose(after, before)  # so ln_f's parameters do reach the logits


@pytest.mark.parametrize("scale", [0.5, 10.0])
def test_logits_do_not_change_when_the_last_blocks_output_is_scaled(scale):
    # ln_f divides out the size of the residual stream, so lm_head sees the same features however large
    # the stream has grown; up to eps, which matters only for a stream far smaller than these
    model = make_model()
    set_ln_f(model)
    with torch.no_grad():
        model.blocks[-1].ffwd.net[2].weight.normal_(0.0, 10.0)  # the stream's variance: 35 or more, far above eps
    idx = tokens()
    with torch.no_grad():
        plain, _ = model(idx)  # (B, T, vocab)
    handle = model.blocks[-1].register_forward_hook(lambda mod, args, out: out * scale)
    try:
        with torch.no_grad():
            scaled, _ = model(idx)
    finally:
        handle.remove()
    assert_close(scaled, plain, rtol=1e-4, atol=1e-6)
    assert plain.std() > 0.1  # logits large enough that a scaled stream without ln_f would show
