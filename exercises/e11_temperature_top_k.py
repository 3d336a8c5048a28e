"""Exercise 11: temperature and top-k, from logits to the probabilities a character is drawn from.

Stage: sampling.py (every stage samples with it)    Note: ../notes/sampling.md
Check: python -m pytest exercises -k temperature
Hints: a failing check shows one; add --hints 2 (the calls), or --hints 3 (the answer).

Task. The model gives logits (B, V) for the next character. `python gpt.py --temperature 0.8 --top-k 10`
reshapes them before the draw. Write what sampling.pick_next does before torch.multinomial:

  next_token_probs(logits, temperature=1.0, top_k=None) -> (B, V) probabilities, each row summing to 1
      temperature  divide the logits by it before the softmax: below 1 sharpens, above 1 flattens.
                   0 means greedy: probability 1 on each row's largest logit, 0 elsewhere.
      top_k        when given, keep only each row's k largest logits (the others get probability 0)
                   and renormalise. A top_k as large as V, or larger, keeps everything.
"""

import torch  # noqa: F401  (you will want it)
from torch.nn import functional as F  # noqa: F401


def next_token_probs(logits, temperature=1.0, top_k=None):
    raise NotImplementedError("not done yet: next_token_probs(logits, temperature, top_k)")
