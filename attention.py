"""The attention core gpt.py calls: softmax(q k^T / sqrt(head_size)) under the causal mask, dropout, @ v.

    y = attention(q, k, v, is_causal=True, dropout_p=0.2)    # q, k, v: (B, n_head, T, head_size)

Almost always this is one PyTorch call, F.scaled_dot_product_attention, which picks a fused kernel: on a
GPU and on a CPU it never stores the (T, T) weights of a head. One case has no fused kernel on a CPU:
training with dropout on the attention weights (the lecture's Head drops them out, and gpt.py's GPU
default does too). PyTorch then falls back to its plain "math" version, which keeps every head's (T, T)
weights, their dropout mask and their softmax for backward: about 300 MB per layer at the lecture's size,
and three times the time of the fused kernel.

So for that one case (a CPU, training, dropout above 0) this file computes the same thing itself, a few
rows of queries at a time. For backward it keeps q (scaled), k, v and the output, all (T, head_size) per
head, and of the (T, T) ones only the dropout mask (one byte per weight, only for the keys each piece can
see); it recomputes the weights from q and k with PyTorch's softmax (one call, no intermediate tensors).
It computes the lecture's attention (the weights of each row sum to 1, each is zeroed with probability
dropout_p and the rest scaled by 1 / (1 - dropout_p)); only which random numbers draw the mask differs,
and in bfloat16 where the rounding falls. tests/test_attention.py checks the output and every gradient
against the plain version with the same mask, and `python -m bench.run --only train` measures the saving
beside the lecture's code.
"""

import torch
from torch.nn import functional as F

ROWS = 64  # queries per piece: each piece's weights are (B, n_head, ROWS, up to T)


def attention(q, k, v, is_causal=False, dropout_p=0.0, scale=None):
    """F.scaled_dot_product_attention's result (the same arguments), without its memory on a CPU with dropout."""
    if q.device.type == "cpu" and q.dtype == torch.bfloat16 and not torch.is_grad_enabled():
        # no gradients in bfloat16 (sampling, and evaluation under autocast): PyTorch's CPU attention kernel
        # is slower in bfloat16 than in float32, two to three times for a sampling step's single query
        # (measured on the CPU of the README's Results); q, k and v are small, so they are widened for the call
        wide = (q.float(), k.float(), v.float())
        return F.scaled_dot_product_attention(*wide, is_causal=is_causal, dropout_p=dropout_p, scale=scale).to(q.dtype)
    if dropout_p == 0 or q.device.type != "cpu" or not torch.is_grad_enabled() or not is_causal:
        return F.scaled_dot_product_attention(q, k, v, is_causal=is_causal, dropout_p=dropout_p, scale=scale)
    # contiguous once here (gpt.py's q, k, v are permuted views), so no piece's matmul copies its slice again
    q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
    # in q's number format, as backward (which runs outside the training step's autocast) recomputes it
    with torch.autocast(q.device.type, enabled=False):
        return CausalDropoutAttention.apply(q, k, v, dropout_p, q.size(-1) ** -0.5 if scale is None else scale)


def weights(q, k, start, end):
    """The softmax weights of queries start:end (q already scaled) over keys 0:end, the future masked out, in
    q's number format (a bfloat16 softmax computes in float32 inside and rounds once, at the end)."""
    s = torch.matmul(q[:, :, start:end], k[:, :, :end].transpose(-1, -2))  # (B, n_head, rows, end)
    future = torch.ones(end - start, end - start, dtype=torch.bool, device=q.device).triu_(1)
    s[..., start:end].masked_fill_(future, float("-inf"))  # only the last rows x rows square has a future
    return torch.softmax(s, dim=-1)


class CausalDropoutAttention(torch.autograd.Function):
    """Causal attention with dropout on the weights, one piece of ROWS queries at a time."""

    @staticmethod
    def forward(ctx, q, k, v, p, scale):
        T = q.size(2)
        out = torch.empty_like(q)
        qs = q * scale  # scaling q once scales every score
        keeps = []
        for start in range(0, T, ROWS):
            end = min(start + ROWS, T)
            w = weights(qs, k, start, end)  # (B, n_head, rows, end)
            keeps.append(torch.rand(w.shape, device=q.device) >= p)  # keep each weight with probability 1 - p
            out[:, :, start:end] = torch.matmul(w.mul_(keeps[-1]), v[:, :, :end])
        # dropout's 1 / (1 - p) divides the small (T, head_size) output, not every (T, T) weight: a matmul is
        # linear, so scaling before or after it gives the same result
        out /= 1 - p
        ctx.save_for_backward(qs, k, v, out, *keeps)
        ctx.p, ctx.scale = p, scale
        return out

    @staticmethod
    def backward(ctx, dout):
        qs, k, v, out, *keeps = ctx.saved_tensors
        # the gradients are summed in float32 (float64 for float64 inputs), so adding up pieces loses no digits;
        # dq's rows are each written by one piece, while every piece adds to dk and dv, which start at zero
        p, scale, wide = ctx.p, ctx.scale, torch.promote_types(qs.dtype, torch.float32)
        dq = torch.empty_like(qs, dtype=wide)
        dk, dv = (torch.zeros_like(t, dtype=wide) for t in (k, v))
        # the softmax's backward needs sum_j w_ij * dw_ij for each row, which equals dout_i . out_i
        row_dot = (dout.to(wide) * out.to(wide)).sum(-1, keepdim=True)  # (B, n_head, T, 1)
        dout = (dout / (1 - p)).to(v.dtype)  # the 1 / (1 - p) that dv and dw both carry, applied once
        for i, start in enumerate(range(0, qs.size(2), ROWS)):
            end, keep = min(start + ROWS, qs.size(2)), keeps[i]
            w = weights(qs, k, start, end)  # the softmax weights again
            dv[:, :, :end] += torch.matmul((w * keep).transpose(-1, -2), dout[:, :, start:end])
            dw = torch.matmul(dout[:, :, start:end], v[:, :, :end].transpose(-1, -2)).mul_(keep)
            # through the softmax: ds_ij = w_ij * (dw_ij - sum_j w_ij * dw_ij), with the weights before dropout
            ds = dw.to(wide).sub_(row_dot[:, :, start:end]).mul_(w).to(qs.dtype)
            dq[:, :, start:end] = torch.matmul(ds, k[:, :, :end])
            dk[:, :, :end] += torch.matmul(ds.transpose(-1, -2), qs[:, :, start:end])  # qs carries the scale
        return (dq * scale).to(qs.dtype), dk.to(k.dtype), dv.to(v.dtype), None, None  # scores = scale * q k^T
