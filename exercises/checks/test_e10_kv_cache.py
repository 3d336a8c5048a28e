"""Checks for exercise 10 (exercises/e10_kv_cache.py): cached steps against gpt.py's full forward."""

import torch

import gpt

from .common import close_to, expect, load, same

ex = load("e10_kv_cache")

V, T = 20, 10
SIZES = dict(n_embd=16, block_size=T, n_head=2, n_layer=2, dropout=0.0)


def a_model_and_tokens():
    torch.manual_seed(0)
    model = gpt.GPTLanguageModel(V, **SIZES).eval()
    with torch.no_grad():  # gpt.py starts with tiny weights; bigger ones make every mistake show in the logits
        for p in model.parameters():
            p.normal_(0.0, 0.3)
    idx = torch.randint(V, (2, T), generator=torch.Generator().manual_seed(1))  # (B, T)
    return model, idx


class Forgetful:
    """A cache with one of the usual slips, to say which one was made."""

    def __init__(self, keep=True, shared=False):
        self.length, self.keep, self.shared, self.kv = 0, keep, shared, {}

    def update(self, layer, k, v):
        layer = "every layer" if self.shared else layer
        if self.keep and layer in self.kv:
            k, v = torch.cat([self.kv[layer][0], k], dim=2), torch.cat([self.kv[layer][1], v], dim=2)
        self.kv[layer] = k, v
        return k, v


def one_at_a_time(model, idx, cache, advance=True):
    steps = []
    for t in range(idx.shape[1]):
        steps.append(model(idx[:, t : t + 1], cache=cache)[0])
        if advance:
            cache.length += 1
    return torch.cat(steps, dim=1)


SLIPS = [
    (dict(cache=Forgetful(), advance=False),
     "cache.length never grew, so every token was numbered position 0: add 1 to cache.length after each call."),
    (dict(cache=Forgetful(keep=False)),
     "each token attended only to itself: update() must return the stored keys and values with the new ones "
     "appended, not just the new ones."),
    (dict(cache=Forgetful(shared=True)),
     "the layers share one store: every layer has its own keys and values, so keep them apart by `layer`."),
]


@torch.no_grad()
def test_kv_cache_one_at_a_time_equals_full_forward():
    model, idx = a_model_and_tokens()
    full = model(idx)[0]  # (B, T, V): every position in one causal pass
    steps = ex.logits_one_at_a_time(model, idx)
    if isinstance(steps, torch.Tensor) and steps.shape == full.shape and not close_to(steps, full, atol=1e-4):
        expect(close_to(steps[:, 0], full[:, 0], atol=1e-4),
               "already position 0 differs, where the cache is still empty: does update() return the new k and v "
               "when the layer has nothing stored yet?")
        for kwargs, message in SLIPS:
            expect(not close_to(steps, one_at_a_time(model, idx, **kwargs), atol=1e-4), message)
    same(steps, full, "logits_one_at_a_time(model, idx)", atol=1e-4,
         hint="Position t should get model(idx)[0][:, t]: its own query against the keys and values of 0..t. "
              "Check that update() appends along dim 2 and keeps a separate store for each layer.")


@torch.no_grad()
def test_kv_cache_prompt_then_one_at_a_time():
    model, idx = a_model_and_tokens()
    full = model(idx)[0]
    cache = ex.KVCache()
    prompt = 6
    first = model(idx[:, :prompt], cache=cache)[0]  # a whole prompt in one call: T_new = 6
    cache.length += prompt
    same(first, full[:, :prompt], "the logits of a 6-token prompt fed in one call with your cache", atol=1e-4,
         hint="update() gets k and v of shape (B, n_head, 6, head_size) here: store all 6 positions, and keep "
              "each layer's apart (layer 0's keys must not turn up in layer 1's attention).")
    for t in range(prompt, T):
        logits = model(idx[:, t : t + 1], cache=cache)[0]
        cache.length += 1
        same(logits[:, 0], full[:, t], f"position {t}, fed alone after the prompt", atol=1e-4,
             hint="It should see the prompt's keys and values, stored by the first call, and every one since.")
