"""Checks for exercise 7 (exercises/e07_batched_heads.py): batched heads against bigram_v3 and gpt.py."""

import torch

import bigram_v3
import gpt

from .common import Hint, close_to, expect, load, same, which_mistake

ex = load("e07_batched_heads")

C, N_HEAD, BLOCK = 16, 4, 8
HS = C // N_HEAD

HINTS = {
    "stack_weights": Hint(
        "Each head's query weight is a (head_size, C) block of rows; gpt.py's (3 * C, C) matrix is all the "
        "query blocks one under the other, then all the key blocks, then all the value blocks.",
        "`torch.cat(list_of_matrices)` stacks along dim 0; a head's weights are `h.query.weight`, `h.key.weight`, "
        "`h.value.weight`.",
        "return torch.cat([h.query.weight for h in heads] + [h.key.weight for h in heads] "
        "+ [h.value.weight for h in heads])"),
    "batched_attention": Hint(
        "Write down the shape after every line. The (B, T, 3 * C) result of the one matmul holds, for every "
        "position, 3 parts of n_head heads of head_size numbers each; the attention wants a (B, n_head, T, hs) "
        "tensor per part, so the heads become a batch dimension. At the end, undo it the same way.",
        "`.view(...)` to split the last dimension, `.permute(...)` to reorder dimensions, "
        "`.transpose(-2, -1)` for k^T, and `.transpose(...)` then `.reshape(B, T, C)` at the end.",
        "qkv = (x @ qkv_weight.T).view(B, T, 3, n_head, C // n_head); q, k, v = qkv.permute(2, 0, 3, 1, 4); "
        "scores = q @ k.transpose(-2, -1) * k.shape[-1] ** -0.5; "
        "wei = F.softmax(scores.masked_fill(torch.tril(torch.ones(T, T)) == 0, float('-inf')), dim=-1); "
        "return (wei @ v).transpose(1, 2).reshape(B, T, C)"),
}
PER_HEAD = Hint(
    "you stacked head by head ([q0 k0 v0 | q1 k1 v1 | ...]); gpt.py's order is part by part: all queries "
    "first, then all keys, then all values.", HINTS["stack_weights"].calls, HINTS["stack_weights"].answer)
KEYS_FIRST = Hint("the order is queries, keys, values: you put the keys first.",
                  HINTS["stack_weights"].calls, HINTS["stack_weights"].answer)
SCALE_C = Hint(
    "every head is scaled by the model's width C; each head's scores are q @ k^T of head_size-wide vectors.",
    "`k.shape[-1] ** -0.5` (head_size), not `C ** -0.5`.", HINTS["batched_attention"].answer)
MIXED = Hint(
    "some columns are not the head they should be: the heads' numbers got mixed when the last dimension was "
    "split, or when the heads were put back side by side.",
    "Split as (B, T, 3, n_head, head_size) and move dimensions with `.permute`, never with `.view` alone; "
    "before `.reshape(B, T, C)` at the end the order must be (B, T, n_head, head_size): `.transpose(1, 2)`.",
    HINTS["batched_attention"].answer)


def v3_attention():
    torch.manual_seed(0)
    return bigram_v3.MultiHeadAttention(n_embd=C, n_head=N_HEAD, block_size=BLOCK)


def reference_stack(heads):
    return torch.cat([torch.cat([getattr(h, part).weight for h in heads]) for part in ("query", "key", "value")])


def stack_diagnosis(stacked, heads):
    """The Hint of the order stack_weights got wrong, or the general one."""
    per_head = torch.cat([torch.cat([h.query.weight, h.key.weight, h.value.weight]) for h in heads])
    kqv = torch.cat([torch.cat([getattr(h, p).weight for h in heads]) for p in ("key", "query", "value")])
    return which_mistake(stacked, [(per_head, PER_HEAD), (kqv, KEYS_FIRST)]) or HINTS["stack_weights"]


def scaled_like(mha, x, scale):
    """bigram_v3's heads with another scale on the scores, to recognise C ** -0.5."""
    T = x.shape[1]
    outs = []
    for h in mha.heads:
        wei = h.query(x) @ h.key(x).transpose(-2, -1) * scale
        wei = torch.softmax(wei.masked_fill(torch.tril(torch.ones(T, T)) == 0, float("-inf")), dim=-1)
        outs.append(wei @ h.value(x))
    return torch.cat(outs, dim=-1)


@torch.no_grad()
def test_batched_heads_stack_in_gpts_order():
    mha = v3_attention()
    stacked = ex.stack_weights(list(mha.heads))
    want = reference_stack(mha.heads)
    same(stacked, want, f"stack_weights(heads) for {N_HEAD} heads of size {HS} (rows 0..{C - 1} are the queries "
         f"of heads 0..{N_HEAD - 1}, {HS} rows each, then the keys, then the values)",
         stack_diagnosis(stacked, mha.heads))


@torch.no_grad()
def test_batched_heads_equal_bigram_v3s_heads():
    mha = v3_attention()
    x = torch.randn(2, BLOCK, C, generator=torch.Generator().manual_seed(1))  # (B, T, C)
    out = ex.batched_attention(x, reference_stack(mha.heads), N_HEAD)
    want = mha(x)
    if isinstance(out, torch.Tensor) and out.shape == want.shape:
        for h in range(N_HEAD):
            cols = slice(h * HS, (h + 1) * HS)
            expect(close_to(out[..., cols], want[..., cols]),
                   f"columns {cols.start}..{cols.stop - 1} should be head {h}'s output and are not.",
                   SCALE_C if close_to(out, scaled_like(mha, x, C**-0.5)) else MIXED)
    same(out, want, "batched_attention(x, qkv, n_head) against bigram_v3.MultiHeadAttention(x) (the heads' "
         "outputs side by side, head 0 first)", HINTS["batched_attention"])
    same(ex.batched_attention(x[:, :3], reference_stack(mha.heads), N_HEAD), mha(x[:, :3]),
         "batched_attention for a shorter x, (2, 3, 16)",
         Hint("right for T = 8, wrong for T = 3: something has a fixed size.", "Build the mask from x's own T: "
              "`torch.tril(torch.ones(T, T))`.", HINTS["batched_attention"].answer))


@torch.no_grad()
def test_batched_heads_load_into_gpt():
    mha = v3_attention().eval()
    gpt_mha = gpt.MultiHeadAttention(n_embd=C, n_head=N_HEAD, dropout=0.0).eval()
    stacked = ex.stack_weights(list(mha.heads))
    expect(isinstance(stacked, torch.Tensor) and stacked.shape == gpt_mha.qkv.weight.shape,
           f"stack_weights should give gpt.MultiHeadAttention's qkv weight shape {tuple(gpt_mha.qkv.weight.shape)}.",
           stack_diagnosis(stacked, mha.heads))
    gpt_mha.qkv.weight.copy_(stacked)
    x = torch.randn(2, BLOCK, C, generator=torch.Generator().manual_seed(2))
    same(gpt_mha(x), gpt_mha.proj(mha(x)), "gpt.MultiHeadAttention with your stacked weights (it should be "
         "bigram_v3's heads followed by its output projection, proj)", stack_diagnosis(stacked, mha.heads))
