"""SOLUTION to exercise 14 (exercises/e14_training_loop.py). A spoiler: try the exercise first."""

import torch

from data import get_batch


@torch.no_grad()  # a measurement: no graph for a backward pass
def estimate_loss(model, splits, cfg, seed=0):
    model.eval()  # dropout off: measure the model, not a noisy copy of it
    out = {}
    for name, ids in splits.items():
        g = torch.Generator().manual_seed(seed)  # the same batches at every call
        losses = [model(*get_batch(ids, cfg["batch_size"], cfg["block_size"], generator=g))[1].item()
                  for _ in range(cfg["eval_iters"])]
        out[name] = sum(losses) / len(losses)
    model.train()  # back to training, where the caller had it
    return out


def train(model, optimizer, train_data, cfg, generator):
    losses = []
    for _ in range(cfg["max_iters"]):
        xb, yb = get_batch(train_data, cfg["batch_size"], cfg["block_size"], generator=generator)  # (B, T) each
        logits, loss = model(xb, yb)  # (B, T, vocab_size), and the mean cross-entropy
        optimizer.zero_grad(set_to_none=True)  # else this step's gradient adds to the last one's
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses
