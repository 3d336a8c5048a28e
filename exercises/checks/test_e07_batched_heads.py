"""Checks for exercise 7 (exercises/e07_batched_heads.py): batched heads against bigram_v3 and gpt.py."""

import torch

import bigram_v3
import gpt

from .common import close_to, expect, load, same

ex = load("e07_batched_heads")

C, N_HEAD, BLOCK = 16, 4, 8
HS = C // N_HEAD


def v3_attention():
    torch.manual_seed(0)
    return bigram_v3.MultiHeadAttention(n_embd=C, n_head=N_HEAD, block_size=BLOCK)


def reference_stack(heads):
    return torch.cat([torch.cat([getattr(h, part).weight for h in heads]) for part in ("query", "key", "value")])


@torch.no_grad()
def test_batched_heads_stack_in_gpts_order():
    mha = v3_attention()
    stacked = ex.stack_weights(list(mha.heads))
    want = reference_stack(mha.heads)
    if isinstance(stacked, torch.Tensor) and stacked.shape == want.shape:
        per_head = torch.cat([torch.cat([h.query.weight, h.key.weight, h.value.weight]) for h in mha.heads])
        expect(not close_to(stacked, per_head),
               "you stacked head by head ([q0 k0 v0 | q1 k1 v1 | ...]); gpt.py's order is part by part: "
               "all queries first, then all keys, then all values.")
        kqv = torch.cat([torch.cat([getattr(h, p).weight for h in mha.heads]) for p in ("key", "query", "value")])
        expect(not close_to(stacked, kqv), "the order is queries, keys, values: you put the keys first.")
    same(stacked, want, f"stack_weights(heads) for {N_HEAD} heads of size {HS}",
         f"Rows 0..{C - 1} are the queries of heads 0..{N_HEAD - 1} ({HS} rows each), then the keys, then the values.")


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
                   f"columns {cols.start}..{cols.stop - 1} should be head {h}'s output and are not. If every head "
                   f"is wrong, check the scale (head_size ** -0.5, not C ** -0.5), the mask and the softmax dim; "
                   f"if only some are, check the view/permute and the final transpose(1, 2) before reshape.")
    same(out, want, "batched_attention(x, qkv, n_head) against bigram_v3.MultiHeadAttention(x)",
         "Your output's columns should be the heads' outputs side by side, head 0 first.")
    same(ex.batched_attention(x[:, :3], reference_stack(mha.heads), N_HEAD), mha(x[:, :3]),
         "batched_attention for a shorter x, (2, 3, 16)", "Build the mask from x's own T.")


@torch.no_grad()
def test_batched_heads_load_into_gpt():
    mha = v3_attention().eval()
    gpt_mha = gpt.MultiHeadAttention(n_embd=C, n_head=N_HEAD, dropout=0.0).eval()
    stacked = ex.stack_weights(list(mha.heads))
    expect(isinstance(stacked, torch.Tensor) and stacked.shape == gpt_mha.qkv.weight.shape,
           f"stack_weights should give gpt.MultiHeadAttention's qkv weight shape {tuple(gpt_mha.qkv.weight.shape)}")
    gpt_mha.qkv.weight.copy_(stacked)
    x = torch.randn(2, BLOCK, C, generator=torch.Generator().manual_seed(2))
    same(gpt_mha(x), gpt_mha.proj(mha(x)), "gpt.MultiHeadAttention with your stacked weights",
         "gpt.py's attention should be bigram_v3's heads followed by its output projection, proj.")
