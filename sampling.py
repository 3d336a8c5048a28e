"""How text is drawn from a trained model, one character at a time.

Every stage predicts logits for the next character. To write text we turn the last position's logits
into probabilities (softmax), draw one character from them (multinomial), append it, and repeat.

    temperature  divides the logits before the softmax: below 1 sharpens the distribution (safer text),
                 above 1 flattens it (wilder text); 0 means "always take the likeliest" (greedy).
    top_k        keeps only the k likeliest characters before drawing.

Two loops, chosen by `strategy`:
  "crop"   runs the whole model over the last block_size characters for every new one (what the
           lecture does: exact, and it repeats almost all of its work each step);
  "halve"  keeps every layer's keys and values in a KVCache, so a new character costs a forward pass
           over one position. gpt.py's model takes the cache (its forward's `cache=`).

Nothing here knows about files or the command line: the runner, the benchmark and the notes call it.
"""

import torch
from torch.nn import functional as F

MAX_TEMPERATURE = 100.0  # beyond this every character is about equally likely: nothing left to learn from


def probabilities(logits, temperature=1.0, top_k=None):
    """The distribution the next token is drawn from: logits (B, vocab_size) -> probabilities (B, vocab_size)."""
    if not 0 <= temperature <= MAX_TEMPERATURE:
        raise ValueError(f"temperature must be in [0, {MAX_TEMPERATURE:g}], got {temperature}")
    if temperature == 0:  # greedy, the limit of a temperature going to 0: everything on the likeliest
        return F.one_hot(logits.argmax(dim=-1), logits.size(-1)).double()
    # the largest logit moved to 0 first, and float64: then even a tiny temperature (1e-40, 5e-324) sends the
    # others to -inf, never to inf - inf = nan; the softmax is the same, since it ignores a shift
    logits = (logits.double() - logits.double().amax(dim=-1, keepdim=True)) / temperature  # (B, vocab_size)
    if top_k is not None and top_k < logits.size(-1):
        kth = torch.topk(logits, top_k).values[:, [-1]]  # (B, 1): the k-th largest logit of each row
        logits = logits.masked_fill(logits < kth, float("-inf"))
    return F.softmax(logits, dim=-1)


def pick_next(logits, temperature=1.0, top_k=None, generator=None):
    """Draw the next token from the last position's logits (B, vocab_size) -> (B, 1)."""
    probs = probabilities(logits, temperature, top_k)  # (B, vocab_size)
    if temperature == 0:  # greedy: no draw needed
        return probs.argmax(dim=-1, keepdim=True)
    probs = probs.cpu()  # sampled on the CPU so a seed gives the same text on any device
    return torch.multinomial(probs, num_samples=1, generator=generator).to(logits.device)


class KVCache:
    """The keys and values of the positions a model has seen, one pair of buffers per attention layer.

    gpt.py's attention hands each call's new keys and values to update(), which stores them after the
    earlier ones and returns all of them; `length` is how many positions are stored, so the model knows
    where the new tokens' positions start. The sampling loop advances it after every forward pass.
    """

    def __init__(self, block_size):
        self.block_size, self.length, self.keys, self.values = block_size, 0, {}, {}

    def update(self, layer, k, v):
        """k, v: (B, n_head, T, head_size) of the new positions -> those of every position so far."""
        if layer not in self.keys:  # buffers for a whole block, written in place from now on
            shape = (*k.shape[:2], self.block_size, k.size(-1))
            self.keys[layer], self.values[layer] = k.new_zeros(shape), v.new_zeros(shape)
        end = self.length + k.size(2)
        self.keys[layer][:, :, self.length : end] = k
        self.values[layer][:, :, self.length : end] = v
        return self.keys[layer][:, :, :end], self.values[layer][:, :, :end]


@torch.inference_mode()  # like no_grad, and it also skips autograd's bookkeeping on every tensor
def stream(model, idx, max_new_tokens, temperature=1.0, top_k=None, generator=None, block_size=None,
           strategy="crop"):
    """Yield max_new_tokens sampled tokens, each (B, 1), that continue idx (B, T), as they are drawn.

    block_size: the model's context, the window "crop" keeps and the cache "halve" fills; None: the model's
    own, the rows of its position table (bigram_v1 has none: it reads one character, so any idx fits).
    """
    if strategy not in ("halve", "crop"):
        raise ValueError(f"unknown strategy {strategy!r}: use 'halve' or 'crop'")
    if block_size is None and hasattr(model, "position_embedding_table"):
        block_size = model.position_embedding_table.num_embeddings
    if strategy == "crop" or max_new_tokens == 0:
        for _ in range(max_new_tokens):
            logits, _ = model(idx if block_size is None else idx[:, -block_size:])  # (B, T, vocab_size)
            idx_next = pick_next(logits[:, -1, :], temperature, top_k, generator)  # (B, 1)
            idx = torch.cat((idx, idx_next), dim=1)  # (B, T+1)
            yield idx_next
        return
    # "halve": while the text fits in block_size this gives exactly the tokens "crop" gives. Once the
    # window is full, positions would have to shift by one every step, which learned absolute positions
    # cannot do in a cache; so it keeps the last half window, refills the cache from it in one pass, and
    # goes on. The model then sees between half a block and a full block of context (notes/running.md, Performance).
    cache, window = KVCache(block_size), idx[:, -block_size:]
    for i in range(max_new_tokens):
        logits, _ = model(window, cache=cache)  # (B, T, vocab_size): only the new positions
        cache.length += window.size(1)
        idx_next = pick_next(logits[:, -1, :], temperature, top_k, generator)  # (B, 1)
        idx = torch.cat((idx, idx_next), dim=1)
        yield idx_next
        window = idx_next
        if cache.length == block_size:  # the window is full: keep its last half and refill the cache
            cache.length, window = 0, idx[:, -max(1, block_size // 2) :]


def generate(model, idx, max_new_tokens, temperature=1.0, top_k=None, generator=None, block_size=None,
             strategy="crop"):
    """idx (B, T) with max_new_tokens sampled tokens appended: (B, T + max_new_tokens)."""
    tokens = stream(model, idx, max_new_tokens, temperature, top_k, generator, block_size, strategy)
    return torch.cat([idx, *tokens], dim=1)
