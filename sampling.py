"""How text is drawn from a trained model, one character at a time.

Every stage predicts logits for the next character. To write text we turn the last position's logits
into probabilities (softmax), draw one character from them (multinomial), append it, and repeat.

    temperature  divides the logits before the softmax: below 1 sharpens the distribution (safer text),
                 above 1 flattens it (wilder text); 0 means "always take the likeliest" (greedy).
    top_k        keeps only the k likeliest characters before drawing.

Two loops live here:
  sample()           runs the whole model over the last block_size characters for every new one
                     (what the lecture does; exact, and it repeats almost all of its work each step);
  generate_cached()  keeps every layer's keys and values in a KV cache, so a new character costs one
                     single-position forward pass. gpt.py's model supports it; see its docstring.

Nothing here knows about files or the command line: the models import it, and so does the runner.
"""

import torch
from torch.nn import functional as F

MAX_TEMPERATURE = 100.0  # beyond this every character is about equally likely: nothing left to learn from


def pick_next(logits, temperature=1.0, top_k=None, generator=None):
    """Draw the next token from the last position's logits (B, vocab_size) -> (B, 1)."""
    if not 0 <= temperature <= MAX_TEMPERATURE:
        raise ValueError(f"temperature must be in [0, {MAX_TEMPERATURE:g}], got {temperature}")
    if temperature == 0:  # greedy: the limit of a temperature going to 0
        return logits.argmax(dim=-1, keepdim=True)
    # float64 so that a tiny temperature (1e-40, say) makes huge logits rather than inf - inf = nan
    logits = logits.double() / temperature  # (B, vocab_size)
    if top_k is not None and top_k < logits.size(-1):
        kth = torch.topk(logits, top_k).values[:, [-1]]  # (B, 1): the k-th largest logit of each row
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = F.softmax(logits, dim=-1).cpu()  # sampled on the CPU so a seed gives the same text on any device
    return torch.multinomial(probs, num_samples=1, generator=generator).to(logits.device)


@torch.inference_mode()  # like no_grad, and it also skips autograd's bookkeeping on every tensor
def sample(model, idx, max_new_tokens, temperature=1.0, top_k=None, generator=None, block_size=None):
    """Append max_new_tokens sampled tokens to idx (B, T), one forward pass over the last block per token."""
    for _ in range(max_new_tokens):
        idx_cond = idx if block_size is None else idx[:, -block_size:]  # (B, <=block_size)
        logits, _ = model(idx_cond)  # (B, T, vocab_size)
        idx_next = pick_next(logits[:, -1, :], temperature, top_k, generator)  # (B, 1)
        idx = torch.cat((idx, idx_next), dim=1)  # (B, T+1)
    return idx


@torch.inference_mode()
def generate_cached(model, idx, max_new_tokens, temperature=1.0, top_k=None, generator=None):
    """Like sample(), with a KV cache: model needs new_kv_cache() and forward(idx, kv_cache=, start=).

    While the text fits in block_size this gives exactly the tokens sample() gives. Once the window is
    full, positions would have to shift by one every step, which learned absolute positions cannot do in
    a cache, so it keeps the last half window, refills the cache from it in one pass, and goes on: the
    model then sees between half a block and a full block of context, not always a full one (the
    "halve" strategy; README, Performance, measures what that costs).
    """
    block_size = model.block_size
    cache = model.new_kv_cache(idx.size(0), idx.device)
    window = idx[:, -block_size:]  # (B, n) with n <= block_size
    n = window.size(1)
    logits, _ = model(window, kv_cache=cache, start=0)  # fill the cache with the prompt
    for i in range(max_new_tokens):
        idx_next = pick_next(logits[:, -1, :], temperature, top_k, generator)  # (B, 1)
        idx = torch.cat((idx, idx_next), dim=1)  # (B, T+1)
        if i == max_new_tokens - 1:
            break
        if n < block_size:
            logits, _ = model(idx_next, kv_cache=cache, start=n)  # one new position
            n += 1
        else:
            window = idx[:, -max(1, block_size // 2) :]  # the window is full: keep its last half
            n = window.size(1)
            logits, _ = model(window, kv_cache=cache, start=0)  # and refill the cache from it
    return idx


def generate(model, idx, max_new_tokens, temperature=1.0, top_k=None, generator=None, block_size=None,
             strategy="halve"):
    """Pick the loop: the KV cache where the model has one and strategy is "halve", else sample()."""
    if strategy not in ("halve", "crop"):
        raise ValueError(f"unknown strategy {strategy!r}: use 'halve' or 'crop'")
    if strategy == "halve" and hasattr(model, "new_kv_cache"):
        return generate_cached(model, idx, max_new_tokens, temperature, top_k, generator)
    block_size = block_size or getattr(model, "block_size", None)  # the window "crop" keeps
    return sample(model, idx, max_new_tokens, temperature, top_k, generator, block_size)
