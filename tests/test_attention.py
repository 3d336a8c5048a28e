"""attention.py: the lecture's attention (softmax, causal mask, dropout on the weights, @ v), computed piece
by piece on a CPU when training with dropout, must equal the plain version exactly, gradients included."""

import pytest
import torch
from torch.nn import functional as F

import attention
import gpt
import runner


def plain(q, k, v, keep, p, scale):
    """The lecture's Head, batched: weights, causal mask, softmax, dropout with the given mask, @ v."""
    T = q.size(2)
    wei = q @ k.transpose(-2, -1) * scale  # (B, H, T, T)
    wei = wei.masked_fill(torch.tril(torch.ones(T, T, dtype=torch.bool)) == 0, float("-inf")).softmax(-1)
    return (wei * keep / (1 - p)) @ v  # nn.Dropout with this mask


def qkv(T, dtype=torch.float64, B=2, H=3, D=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(B, H, T, D, generator=g, dtype=dtype).requires_grad_() for _ in range(3)]


def recorded_mask(monkeypatch, shape, p):
    """Record the random numbers attention() draws, and return the (B, H, T, T) mask they make (filled in
    when the call has run): the mask the plain version needs to drop exactly the same weights."""
    keep = torch.zeros(shape, dtype=torch.bool)
    draws, rand = [], torch.rand

    def recording_rand(*args, **kwargs):
        draws.append(rand(*args, **kwargs))
        return draws[-1]

    monkeypatch.setattr(torch, "rand", recording_rand)

    def fill():
        for i, start in enumerate(range(0, shape[2], attention.ROWS)):
            keep[:, :, start : start + attention.ROWS, : draws[i].size(-1)] = draws[i] >= p
        return keep

    return fill


@pytest.mark.parametrize("T", [1 + attention.ROWS // 2, attention.ROWS, 2 * attention.ROWS + 5])
@pytest.mark.parametrize("scale", [None, 0.3])
def test_pieces_equal_the_plain_attention_and_its_gradients_with_the_same_mask(monkeypatch, T, scale):
    q, k, v = qkv(T)
    p = 0.3
    mask = recorded_mask(monkeypatch, (2, 3, T, T), p)
    y = attention.attention(q, k, v, is_causal=True, dropout_p=p, scale=scale)
    monkeypatch.undo()
    keep = mask()
    expected = plain(q, k, v, keep, p, 8**-0.5 if scale is None else scale)
    torch.testing.assert_close(y, expected, rtol=1e-12, atol=1e-12)
    g = torch.randn_like(y)
    ours, theirs = torch.autograd.grad(y, (q, k, v), g), torch.autograd.grad(expected, (q, k, v), g)
    for name, a, b in zip("qkv", ours, theirs):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12, msg=f"d{name} differs")
    # and the mask is dropout's: about p of the weights under the causal mask are zeroed
    lower = torch.tril(torch.ones(T, T, dtype=torch.bool)).expand_as(keep)
    assert abs(1 - keep[lower].float().mean().item() - p) < 0.05


def test_it_is_one_pytorch_call_whenever_there_is_no_dropout_to_keep_a_mask_for():
    q, k, v = qkv(40, dtype=torch.float32)
    for kwargs in (dict(is_causal=True), dict(is_causal=False, dropout_p=0.0), dict(is_causal=True, scale=0.3)):
        y = attention.attention(q, k, v, **kwargs)
        assert torch.equal(y, F.scaled_dot_product_attention(q, k, v, **kwargs))
    with torch.no_grad():  # no backward to save anything for: PyTorch's call, same seed, same mask
        torch.manual_seed(0)
        y = attention.attention(q, k, v, is_causal=True, dropout_p=0.5)
        torch.manual_seed(0)
        assert torch.equal(y, F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=0.5))


def saved_bytes(fn, *args):
    """Bytes of the tensors autograd keeps for backward while fn(*args) runs."""
    total = 0

    def pack(t):
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn(*args)
    return total


def test_training_with_dropout_keeps_a_fraction_of_what_pytorchs_math_kernel_keeps():
    q, k, v = qkv(256, dtype=torch.float32, B=4, H=6, D=64)
    ours = saved_bytes(lambda: attention.attention(q, k, v, is_causal=True, dropout_p=0.2))
    theirs = saved_bytes(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=0.2))
    weights, inputs = 4 * 6 * 256 * 256 * 4, 4 * 6 * 256 * 64 * 4  # bytes: float32 (T, T) per head; q, k or v
    assert theirs >= 2 * weights  # the math kernel keeps the weights and more of that size
    # ours keeps q (scaled), k, v, the output and a one-byte mask of the keys each query sees
    assert ours - 4 * inputs < weights / 4


def test_bfloat16_pieces_stay_close_to_the_exact_attention(monkeypatch):
    q, k, v = qkv(100)
    mask = recorded_mask(monkeypatch, (2, 3, 100, 100), 0.2)
    y = attention.attention(*(t.detach().bfloat16().requires_grad_() for t in (q, k, v)), is_causal=True, dropout_p=0.2)
    monkeypatch.undo()
    expected = plain(q, k, v, mask(), 0.2, 8**-0.5)
    assert y.dtype == torch.bfloat16
    torch.testing.assert_close(y.double(), expected, rtol=0.05, atol=0.05)


def test_gpt_training_with_dropout_on_a_cpu_takes_the_pieces_and_stays_reproducible(monkeypatch):
    cfg = {**runner.defaults(gpt.HYPERPARAMETERS), "n_embd": 32, "n_head": 4, "n_layer": 2, "block_size": 16,
           "dropout": 0.2}
    model = gpt.build_model(cfg, 65).train()
    calls = []
    monkeypatch.setattr(attention.CausalDropoutAttention, "apply",
                        lambda *a, apply=attention.CausalDropoutAttention.apply: calls.append(1) or apply(*a))
    idx = torch.randint(65, (3, 16), generator=torch.Generator().manual_seed(1))
    losses = []
    for _ in range(2):
        torch.manual_seed(0)
        _, loss = model(idx, idx)
        loss.backward()
        losses.append((loss.item(), model.blocks[0].sa.qkv.weight.grad.clone()))
        model.zero_grad()
    assert len(calls) == 2 * cfg["n_layer"]
    assert losses[0][0] == losses[1][0] and torch.equal(losses[0][1], losses[1][1])


def test_sampling_in_bfloat16_widens_to_float32_and_returns_bfloat16():
    q, k, v = (t.detach().bfloat16() for t in qkv(30))
    with torch.inference_mode():
        y = attention.attention(q[:, :, -1:], k, v)  # one new query against every stored key: a sampling step
        full = attention.attention(q, k, v, is_causal=True)
    assert y.dtype == full.dtype == torch.bfloat16
    wide = [t.float() for t in (q, k, v)]
    assert torch.equal(y, F.scaled_dot_product_attention(wide[0][:, :, -1:], *wide[1:]).bfloat16())
    assert torch.equal(full, F.scaled_dot_product_attention(*wide, is_causal=True).bfloat16())
    torch.testing.assert_close(y, full[:, :, -1:])  # the last row of the causal attention, as the cache needs
    with torch.inference_mode():  # and it passes the scale and the dropout on
        assert torch.equal(attention.attention(q, k, v, scale=0.3),
                           F.scaled_dot_product_attention(*wide, scale=0.3).bfloat16())
        torch.manual_seed(0)
        dropped = attention.attention(q, k, v, is_causal=True, dropout_p=0.5)
        torch.manual_seed(0)
        assert torch.equal(dropped, F.scaled_dot_product_attention(*wide, is_causal=True, dropout_p=0.5).bfloat16())
        assert not torch.equal(dropped, full)


def test_bfloat16_gradients_come_back_in_bfloat16_close_to_the_exact_ones(monkeypatch):
    q, k, v = qkv(2 * attention.ROWS + 5)
    T = q.size(2)
    mask = recorded_mask(monkeypatch, (2, 3, T, T), 0.2)
    low = [t.detach().bfloat16().requires_grad_() for t in (q, k, v)]
    y = attention.attention(*low, is_causal=True, dropout_p=0.2)
    monkeypatch.undo()
    expected = plain(q, k, v, mask(), 0.2, 8**-0.5)
    g = torch.randn_like(expected)
    y.backward(g.bfloat16())
    for name, ours, exact in zip("qkv", low, torch.autograd.grad(expected, (q, k, v), g)):
        assert ours.grad.dtype == torch.bfloat16
        torch.testing.assert_close(ours.grad.double(), exact, rtol=0.05, atol=0.05, msg=f"d{name} differs")


def test_rows_whose_scores_differ_by_thousands_still_get_their_own_softmax(monkeypatch):
    # each row's softmax must be shifted by that row's own largest score before exp: a hand-written softmax
    # that shifted every row by the largest score of the whole tensor would underflow the rows far below it
    q, k, v = qkv(20, dtype=torch.float32)
    with torch.no_grad():
        q[:, :, ::2] *= 400.0  # every other query's scores are hundreds of times larger than its neighbours'
    mask = recorded_mask(monkeypatch, (2, 3, 20, 20), 0.1)
    y = attention.attention(q, k, v, is_causal=True, dropout_p=0.1)
    monkeypatch.undo()
    torch.testing.assert_close(y, plain(q, k, v, mask(), 0.1, 8**-0.5), rtol=1e-4, atol=1e-5)


def test_under_autocast_the_pieces_compute_in_the_inputs_format_as_their_backward_does():
    # backward runs outside the training step's autocast, so forward must not let autocast lower its matmuls
    q, k, v = qkv(70, dtype=torch.float32)
    torch.manual_seed(0)
    plain_y = attention.attention(q, k, v, is_causal=True, dropout_p=0.2)
    torch.manual_seed(0)  # the same dropout mask
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = attention.attention(q, k, v, is_causal=True, dropout_p=0.2)
    assert y.dtype == torch.float32
    torch.testing.assert_close(y, plain_y, rtol=1e-6, atol=1e-6)  # bfloat16 matmuls would differ by ~1e-2
