"""Exercise 15: generate, the lecture's sampling loop, with the context cropped to block_size.

Stage: sampling.py (every stage samples with it)    Note: ../notes/sampling.md
Check: python -m pytest exercises -k generate
Hints: a failing check shows one; add --hints 2 (the calls), or --hints 3 (the answer).

Task. A model gives logits for every position; text comes from drawing one character at a time and
feeding it back. Write the lecture's generate:

  generate(model, idx, max_new_tokens, block_size, generator=None) -> (B, T + max_new_tokens)
      idx is (B, T) token ids. Repeat max_new_tokens times:
        crop      the model has position embeddings for block_size positions only: keep idx's last
                  block_size tokens (all of them while idx is shorter)
        forward   the model gives logits (B, T', vocab_size) for the cropped context
        last      only the last position's logits predict the next token
        softmax   turn them into probabilities
        draw      one token per row, torch.multinomial(probs, num_samples=1, generator=generator)
        append    add it to the end of idx
      Sample in evaluation mode and without building autograd's graph.

The check compares your tokens with sampling.generate's, drawn with the same seeded generator, also for a
prompt longer than block_size.
"""

import torch  # noqa: F401  (you will want it)
from torch.nn import functional as F  # noqa: F401


def generate(model, idx, max_new_tokens, block_size, generator=None):
    raise NotImplementedError("not done yet: generate(model, idx, max_new_tokens, block_size, generator)")
