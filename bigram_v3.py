"""bigram_v3.py: self-attention, so a character can finally look at the ones before it.

Stage 3 of 4. Diff it against the stage before: `diff -u bigram_v2.py bigram_v3.py`.

Each position emits a query ("what am I looking for?") and a key ("what do I contain?"); a query's dot
products with earlier positions' keys (a causal mask hides later ones) weight an average of their values.
Several heads do this side by side. The first stage to use context, so the first to beat the bigram floor.

    python bigram_v3.py               # train, save out/bigram_v3, print a sample
    python bigram_v3.py --help        # every flag
"""

import torch
import torch.nn as nn
from torch.nn import functional as F

import runner

# hyperparameters: name=(default, lowest, highest, what it is); each is also a flag (see --help)
HYPERPARAMETERS = dict(
    batch_size=(32, 1, 65536, "how many independent sequences train in parallel"),
    block_size=(32, 1, 16384, "the longest context a prediction sees"),
    max_iters=(3000, 1, 10**8, "training steps"),
    eval_interval=(300, 1, 10**8, "estimate train/val loss, keep the best model and save a checkpoint this often"),
    eval_iters=(200, 1, 10**6, "batches per estimate"),
    lr=(3e-3, 1e-6, 10.0, "peak learning rate"),
    warmup_iters=(100, 0, 10**8, "steps of linear warmup before the cosine decay"),
    n_embd=(64, 1, 16384, "the width of each token's embedding vector"),
    n_head=(4, 1, 1024, "attention heads, each n_embd // n_head wide"),
)


class Head(nn.Module):
    """One head of causal self-attention."""

    def __init__(self, n_embd, head_size, block_size):
        super().__init__()
        self.key = nn.Linear(n_embd, head_size, bias=False)
        self.query = nn.Linear(n_embd, head_size, bias=False)
        self.value = nn.Linear(n_embd, head_size, bias=False)
        # tril is not a parameter (nothing learns it), so it is a buffer: it moves with .to(device)
        self.register_buffer("tril", torch.tril(torch.ones(block_size, block_size)))

    def forward(self, x):
        B, T, C = x.shape
        k = self.key(x)  # (B, T, head_size)
        q = self.query(x)  # (B, T, head_size)
        # attention scores, scaled by 1/sqrt(head_size) so the softmax does not saturate at init
        wei = q @ k.transpose(-2, -1) * k.shape[-1] ** -0.5  # (B, T, head_size) @ (B, head_size, T) -> (B, T, T)
        wei = wei.masked_fill(self.tril[:T, :T] == 0, float("-inf"))  # (B, T, T): no peeking ahead
        wei = F.softmax(wei, dim=-1)  # (B, T, T): each row sums to 1
        v = self.value(x)  # (B, T, head_size)
        return wei @ v  # (B, T, T) @ (B, T, head_size) -> (B, T, head_size)


class MultiHeadAttention(nn.Module):
    """Several heads of self-attention side by side, their outputs concatenated."""

    def __init__(self, n_embd, n_head, block_size):
        super().__init__()
        head_size = n_embd // n_head
        self.heads = nn.ModuleList([Head(n_embd, head_size, block_size) for _ in range(n_head)])

    def forward(self, x):
        return torch.cat([h(x) for h in self.heads], dim=-1)  # (B, T, n_head * head_size)


class BigramLanguageModel(nn.Module):
    def __init__(self, vocab_size, *, n_embd, block_size, n_head):
        super().__init__()
        # each token looks up a dense vector; so does each position in the block
        self.token_embedding_table = nn.Embedding(vocab_size, n_embd)
        self.position_embedding_table = nn.Embedding(block_size, n_embd)
        self.sa_heads = MultiHeadAttention(n_embd=n_embd, n_head=n_head, block_size=block_size)
        self.lm_head = nn.Linear(n_embd, vocab_size)  # from embedding space to logits

    def forward(self, idx, targets=None):
        B, T = idx.shape
        # idx and targets are both (B, T) tensors of token ids
        tok_emb = self.token_embedding_table(idx)  # (B, T, n_embd)
        pos_emb = self.position_embedding_table(torch.arange(T, device=idx.device))  # (T, n_embd)
        x = tok_emb + pos_emb  # (B, T, n_embd): broadcast adds the same position vectors to every row
        x = self.sa_heads(x)  # (B, T, n_embd): each position now mixes in what came before it
        logits = self.lm_head(x)  # (B, T, vocab_size)
        loss = None
        if targets is not None:
            B, T, C = logits.shape
            loss = F.cross_entropy(logits.view(B * T, C), targets.view(B * T))
        return logits, loss


def build_model(cfg, vocab_size):
    return BigramLanguageModel(vocab_size, n_embd=cfg["n_embd"], block_size=cfg["block_size"], n_head=cfg["n_head"])


def main(argv=None):
    return runner.main(__file__, build_model, HYPERPARAMETERS, doc=__doc__, argv=argv)


if __name__ == "__main__":
    raise SystemExit(main())
