"""bigram_v2.py: token embeddings, a linear head, and learned position embeddings.

Stage 2 of 4. Diff it against the stage before: `diff -u bigram_v1.py bigram_v2.py`.

Each character now looks up a dense vector of n_embd numbers (its embedding), a position looks up one of
its own, the two are added, and a linear layer turns the sum into logits. Still no context: this stage
builds the plumbing that attention (bigram_v3.py) will use, so it ends on the bigram floor.

    python bigram_v2.py               # train, save out/bigram_v2, print a sample
    python bigram_v2.py --help        # every flag
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
    lr=(3e-2, 1e-6, 10.0, "peak learning rate"),
    warmup_iters=(100, 0, 10**8, "steps of linear warmup before the cosine decay"),
    n_embd=(32, 1, 16384, "the width of each token's embedding vector"),
)


class BigramLanguageModel(nn.Module):
    def __init__(self, vocab_size, *, n_embd, block_size):
        super().__init__()
        # each token looks up a dense vector; so does each position in the block
        self.token_embedding_table = nn.Embedding(vocab_size, n_embd)
        self.position_embedding_table = nn.Embedding(block_size, n_embd)
        self.lm_head = nn.Linear(n_embd, vocab_size)  # from embedding space to logits

    def forward(self, idx, targets=None):
        B, T = idx.shape
        # idx and targets are both (B, T) tensors of token ids
        tok_emb = self.token_embedding_table(idx)  # (B, T, n_embd)
        pos_emb = self.position_embedding_table(torch.arange(T, device=idx.device))  # (T, n_embd)
        x = tok_emb + pos_emb  # (B, T, n_embd): broadcast adds the same position vectors to every row
        logits = self.lm_head(x)  # (B, T, vocab_size)
        loss = None
        if targets is not None:
            B, T, C = logits.shape
            loss = F.cross_entropy(logits.view(B * T, C), targets.view(B * T))
        return logits, loss


def build_model(cfg, vocab_size):
    return BigramLanguageModel(vocab_size, n_embd=cfg["n_embd"], block_size=cfg["block_size"])


def main(argv=None):
    return runner.main(__file__, build_model, HYPERPARAMETERS, doc=__doc__, argv=argv)


if __name__ == "__main__":
    raise SystemExit(main())
