"""The train/val split and the random batches every stage trains on."""

import torch

TRAIN_FRACTION = 0.9  # the first 90% of the text trains, the last 10% validates


def split(ids, train_fraction=TRAIN_FRACTION):
    """Split a 1-D tensor of token ids by position: (train, val)."""
    n = int(train_fraction * len(ids))
    return ids[:n], ids[n:]


def get_batch(data, batch_size, block_size, device="cpu", generator=None):
    """Draw batch_size random windows of block_size tokens from data.

    x is a window, y the same window shifted one position to the right, so y[b, t] is the token that
    follows x[b, : t + 1]. A seeded torch.Generator makes the batches reproducible.
    """
    if len(data) < block_size + 1:
        raise ValueError(f"need at least block_size + 1 = {block_size + 1} tokens, got {len(data)}")
    ix = torch.randint(len(data) - block_size, (batch_size,), generator=generator)  # (B,)
    offsets = torch.arange(block_size)  # (T,)
    x = data[ix[:, None] + offsets]  # (B, T)
    y = data[ix[:, None] + offsets + 1]  # (B, T)
    return x.to(device), y.to(device)

