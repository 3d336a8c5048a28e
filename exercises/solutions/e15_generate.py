"""SOLUTION to exercise 15 (exercises/e15_generate.py). A spoiler: try the exercise first."""

import torch
from torch.nn import functional as F


@torch.no_grad()  # sampling never calls backward
def generate(model, idx, max_new_tokens, block_size, generator=None):
    model.eval()  # dropout off while drawing
    for _ in range(max_new_tokens):
        idx_cond = idx[:, -block_size:]  # (B, <= block_size): the positions the model has embeddings for
        logits, _ = model(idx_cond)  # (B, T, vocab_size)
        logits = logits[:, -1, :]  # (B, vocab_size): the last position predicts the next token
        probs = F.softmax(logits, dim=-1)  # (B, vocab_size)
        idx_next = torch.multinomial(probs, num_samples=1, generator=generator)  # (B, 1)
        idx = torch.cat((idx, idx_next), dim=1)  # (B, T + 1)
    return idx
