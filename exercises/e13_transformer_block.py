"""Exercise 13: a transformer block, communication then computation, each in a residual with layer norm.

Stage: gpt.py    Note: ../notes/heads-to-block.md
Check: python -m pytest exercises -k transformer_block
Hints: a failing check shows one; add --hints 2 (the calls), or --hints 3 (the answer).

Task. gpt.py stacks n_layer copies of one Block. Write it, with gpt.py's names, so the check can copy the
weights of a real gpt.Block into yours:

  FeedForward(n_embd, dropout=0.0)
      the computation every position does on its own: a Linear from n_embd to 4 * n_embd, a ReLU, a
      Linear back to n_embd, then Dropout(dropout). forward(x): (B, T, n_embd) -> (B, T, n_embd).

  Block(n_embd, n_head, dropout=0.0)
      self.sa is given: gpt.py's attention (exercises 6 and 7 build it). Add self.ln1 and self.ln2, two
      nn.LayerNorm(n_embd), and self.ffwd, your FeedForward. forward(x) is the lecture's pre-norm block:
          x = x + sa(ln1(x))       communication: each position gathers from the earlier ones
          x = x + ffwd(ln2(x))     computation: each position thinks about what it gathered
      Each sublayer adds a correction to x (the residual stream) instead of replacing it, so the gradient
      has a straight path to the first layer; the norm sits before each sublayer, not after (the paper's
      post-norm puts it after the addition).

The check copies a gpt.Block's weights into yours and compares the outputs with assert_close.
"""

import torch.nn as nn  # noqa: F401  (you will want it)

import gpt


class FeedForward(nn.Module):
    def __init__(self, n_embd, dropout=0.0):
        super().__init__()
        raise NotImplementedError("not done yet: FeedForward.__init__(n_embd, dropout)")

    def forward(self, x):
        raise NotImplementedError("not done yet: FeedForward.forward(x)")


class Block(nn.Module):
    def __init__(self, n_embd, n_head, dropout=0.0):
        super().__init__()
        self.sa = gpt.MultiHeadAttention(n_embd=n_embd, n_head=n_head, dropout=dropout)  # given
        raise NotImplementedError("not done yet: Block.__init__(n_embd, n_head, dropout): ln1, ln2, ffwd")

    def forward(self, x):
        raise NotImplementedError("not done yet: Block.forward(x)")
