"""Checks for exercise 10 (exercises/e10_kv_cache.py): cached steps against gpt.py's full forward."""

import torch

import gpt

from .common import Hint, close_to, load, same, which_mistake

ex = load("e10_kv_cache")

V, T = 20, 10
# Two layers at least: with one, a cache that mixes up the layers' keys would give the right answer.
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

    def __init__(self, keep=True, shared=False, dim=2):
        self.length, self.keep, self.shared, self.dim, self.kv = 0, keep, shared, dim, {}

    def update(self, layer, k, v):
        layer = "every layer" if self.shared else layer
        if self.keep and layer in self.kv:
            k, v = torch.cat([self.kv[layer][0], k], dim=self.dim), torch.cat([self.kv[layer][1], v], dim=self.dim)
        self.kv[layer] = k, v
        return k, v


def one_at_a_time(model, idx, cache, advance=True):
    steps = []
    for t in range(idx.shape[1]):
        steps.append(model(idx[:, t : t + 1], cache=cache)[0])
        if advance:
            cache.length += 1
    return torch.cat(steps, dim=1)


ANSWER_UPDATE = ("if layer in self.keys: k = torch.cat([self.keys[layer], k], dim=2); "
                 "v = torch.cat([self.values[layer], v], dim=2); then self.keys[layer], self.values[layer] = k, v; "
                 "return k, v")
ANSWER_LOOP = ("cache, steps = KVCache(), []; for t in range(T): logits, _ = model(idx[:, t : t + 1], cache=cache); "
               "cache.length += 1; steps.append(logits); return torch.cat(steps, dim=1)")
HINTS = {
    "KVCache": Hint(
        "update() is called once per layer for every forward pass. Each layer must get back everything it stored "
        "before followed by the new positions, and must never see another layer's keys.",
        "A dict keyed by `layer`; `layer in self.keys` for the first call; `torch.cat([old, new], dim=2)` (dim 2 "
        "of (B, n_head, T, head_size) counts positions).", ANSWER_UPDATE),
    "logits_one_at_a_time": Hint(
        "Feed one position per call, and tell the model where it is: the model reads cache.length to number "
        "the new position. Collect each call's logits along the time dimension.",
        "`model(idx[:, t : t + 1], cache=cache)`, `cache.length += 1`, `torch.cat(steps, dim=1)`.", ANSWER_LOOP),
}
NO_LENGTH = Hint(
    "cache.length never grew, so every token was numbered position 0 and got position 0's embedding.",
    "`cache.length += 1` after each call.", ANSWER_LOOP)
SLIPS = [
    (dict(keep=False), Hint(
        "each token attended only to itself: update() returned just the new keys and values, not the stored "
        "ones with the new ones appended.", HINTS["KVCache"].calls, ANSWER_UPDATE)),
    (dict(shared=True), Hint(
        "the layers share one store, so layer 1 attends over layer 0's keys too: every layer needs its own keys "
        "and values.", "Key the stored tensors by `layer`: `self.keys[layer]`.", ANSWER_UPDATE)),
    (dict(dim=1), Hint(
        "the new keys were appended along the heads' dimension: (B, n_head, T, head_size) counts positions in "
        "dim 2.", "`torch.cat([old, new], dim=2)`.", ANSWER_UPDATE)),
]


@torch.no_grad()
def cache_diagnosis():
    """The Hint of the slip the learner's KVCache makes (fed by a right loop), or the general one."""
    model, idx = a_model_and_tokens()
    try:
        theirs = one_at_a_time(model, idx, ex.KVCache())
    except RuntimeError:  # shapes that do not fit, such as appending along the wrong dimension
        return SLIPS[2][1]
    return which_mistake(theirs, [(one_at_a_time(model, idx, Forgetful(**kw)), hint) for kw, hint in SLIPS[:2]],
                         atol=1e-4) or HINTS["KVCache"]


@torch.no_grad()
def test_kv_cache_one_at_a_time_equals_full_forward():
    model, idx = a_model_and_tokens()
    full = model(idx)[0]  # (B, T, V): every position in one causal pass
    steps = ex.logits_one_at_a_time(model, idx)
    hint = HINTS["logits_one_at_a_time"]
    if not close_to(steps, full, atol=1e-4):
        if close_to(steps, one_at_a_time(model, idx, ex.KVCache(), advance=False), atol=1e-4):
            hint = NO_LENGTH
        elif not close_to(one_at_a_time(model, idx, ex.KVCache()), full, atol=1e-4):
            hint = cache_diagnosis()  # the loop is fine or not; the cache is wrong either way
    same(steps, full, "logits_one_at_a_time(model, idx) against model(idx) (position t: its own query against "
         "the keys and values of 0..t)", hint, atol=1e-4)


@torch.no_grad()
def test_kv_cache_prompt_then_one_at_a_time():
    model, idx = a_model_and_tokens()
    full = model(idx)[0]
    cache = ex.KVCache()
    prompt = 6
    first = model(idx[:, :prompt], cache=cache)[0]  # a whole prompt in one call: T_new = 6
    cache.length += prompt
    same(first, full[:, :prompt], "the logits of a 6-token prompt fed in one call with your cache "
         "(update() gets k and v of shape (B, n_head, 6, head_size) here)", cache_diagnosis(), atol=1e-4)
    for t in range(prompt, T):
        logits = model(idx[:, t : t + 1], cache=cache)[0]
        cache.length += 1
        same(logits[:, 0], full[:, t], f"position {t}, fed alone after the prompt (it should see the prompt's "
             "keys and values, stored by the first call, and every one since)", cache_diagnosis(), atol=1e-4)
