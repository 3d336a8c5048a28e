"""SOLUTION to exercise 13 (exercises/e13_transformer_block.py). A spoiler: try the exercise first."""

import torch.nn as nn

import gpt


class FeedForward(nn.Module):
    def __init__(self, n_embd, dropout=0.0):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(n_embd, 4 * n_embd),  # (B, T, 4 * n_embd): wider, to think in
            nn.ReLU(),
            nn.Linear(4 * n_embd, n_embd),  # (B, T, n_embd): back to the residual stream's width
            nn.Dropout(dropout),
        )

    def forward(self, x):
        return self.net(x)


class Block(nn.Module):
    def __init__(self, n_embd, n_head, dropout=0.0):
        super().__init__()
        self.sa = gpt.MultiHeadAttention(n_embd=n_embd, n_head=n_head, dropout=dropout)  # given
        self.ln1 = nn.LayerNorm(n_embd)
        self.ln2 = nn.LayerNorm(n_embd)
        self.ffwd = FeedForward(n_embd, dropout)

    def forward(self, x):
        x = x + self.sa(self.ln1(x))  # (B, T, C): communication, added to the residual stream
        x = x + self.ffwd(self.ln2(x))  # (B, T, C): computation, added too
        return x
