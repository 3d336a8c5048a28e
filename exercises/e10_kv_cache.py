"""Exercise 10: a KV cache, so one new token costs one position's work, and gives the full forward's answer.

Stage: gpt.py (and sampling.py)    Note: ../notes/scaling-up.md (the KV cache)
Check: python -m pytest exercises -k kv_cache
Hints: a failing check shows one; add --hints 2 (the calls), or --hints 3 (the answer).

Task. When gpt.GPTLanguageModel's forward gets `cache=`, every attention layer computes keys and values
for the new positions only and calls `cache.update(layer, k, v)`, which must store them after the ones
it already holds and return all of them; the model reads `cache.length` to number the new positions.
sampling.KVCache is the project's version: write your own without reading it, then compare.

  KVCache.update(layer, k, v) -> (all_k, all_v)
      layer is the attention module calling (use it as a dict key: each layer has its own keys and
      values). k and v are (B, n_head, T_new, head_size). Return every position stored so far,
      (B, n_head, length + T_new, head_size). Do not change self.length here: the loop does.

  logits_one_at_a_time(model, idx) -> (B, T, vocab_size)
      idx is (B, T). Feed the model one position at a time, `model(idx[:, t : t + 1], cache=cache)`,
      add 1 to cache.length after each call, and collect the logits. They must equal model(idx)'s.
"""

import torch  # noqa: F401  (you will want it)


class KVCache:
    def __init__(self):
        self.length = 0  # how many positions are stored; the model numbers new positions from here
        self.keys, self.values = {}, {}  # one entry per attention layer

    def update(self, layer, k, v):
        raise NotImplementedError("not done yet: KVCache.update(layer, k, v)")


def logits_one_at_a_time(model, idx):
    raise NotImplementedError("not done yet: logits_one_at_a_time(model, idx)")
