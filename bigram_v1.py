"""bigram_v1.py: the simplest language model, a bigram lookup table.

Stage 1 of 4. Read this first; next, diff it against bigram_v2.py.

Each character looks up a row of a (vocab_size, vocab_size) table, and that row *is* the list of
logits for the character that comes next. Nothing else: no context beyond the current character.
Because a bigram model can only ever learn next-character frequencies, a table counted on the train
split (add-alpha smoothed, alpha picked on val) is the yardstick: the run prints its val loss, the
"bigram floor", beside the trained model's.

Defaults: full-split val loss 2.4827 (the bigram floor is 2.4819) after 2 s of training on a 2-core CPU (README, Results).

    python bigram_v1.py               # train, save out/bigram_v1, print a sample
    python bigram_v1.py --help        # every flag
"""

import torch.nn as nn
from torch.nn import functional as F

import runner

# hyperparameters: this stage's defaults, each also a command-line flag (see --help)
HYPERPARAMETERS = dict(
    batch_size=64,  # how many independent sequences train in parallel
    block_size=8,  # the longest context a prediction sees (a bigram only ever uses 1)
    max_iters=3000,  # training steps
    eval_interval=300,  # print train/val estimates this often
    eval_iters=200,  # batches per estimate
    lr=3e-2,  # peak learning rate
    warmup_iters=0,  # steps of linear warmup before the cosine decay
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
