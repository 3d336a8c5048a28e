"""bigram_v1.py: the simplest language model, a bigram lookup table.

Stage 1 of 4. Read this first; next, diff it against bigram_v2.py.

Each character looks up a row of a (vocab_size, vocab_size) table, and that row *is* the list of
logits for the character that comes next. Nothing else: no context beyond the current character.
Because a bigram model can only ever learn next-character frequencies, a table of counted pairs is the
yardstick: the run prints its val loss, the "bigram floor", beside the trained model's.

    python bigram_v1.py               # train, save out/bigram_v1, print a sample
    python bigram_v1.py --help        # every flag
"""

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
)


class BigramLanguageModel(nn.Module):
    def __init__(self, vocab_size):
        super().__init__()
        # each token reads the logits for the next token straight out of a lookup table
        self.token_embedding_table = nn.Embedding(vocab_size, vocab_size)

    def forward(self, idx, targets=None):
        # idx and targets are both (B, T) tensors of token ids
        logits = self.token_embedding_table(idx)  # (B, T, vocab_size)
        loss = None
        if targets is not None:
            B, T, C = logits.shape
            loss = F.cross_entropy(logits.view(B * T, C), targets.view(B * T))
        return logits, loss


def build_model(cfg, vocab_size):
    return BigramLanguageModel(vocab_size)


def main(argv=None):
    return runner.main(__file__, build_model, HYPERPARAMETERS, doc=__doc__, argv=argv)


if __name__ == "__main__":
    raise SystemExit(main())
