"""gpt.py: the full GPT, a stack of transformer blocks.

Stage 4 of 4. Diff it against the stage before: `diff -u bigram_v3.py gpt.py`.

Batched attention and a feed-forward network in residual blocks with layer norm, dropout, a KV cache to sample.

    python gpt.py                     # train, save out/gpt, print a sample
    python gpt.py --help              # every flag
"""

import torch
import torch.nn as nn
from torch.nn import functional as F

import runner

# hyperparameters: name=(default, lowest, highest, what it is); each is also a flag (see --help)
HYPERPARAMETERS = dict(
    batch_size=(16, 1, 65536, "how many independent sequences train in parallel"),
    block_size=(128, 1, 16384, "the longest context a prediction sees"),
    max_iters=(3000, 1, 10**8, "training steps"),
    eval_interval=(300, 1, 10**8, "estimate train/val loss, keep the best model and save a checkpoint this often"),
    eval_iters=(20, 1, 10**6, "batches per estimate"),
    lr=(3e-3, 1e-6, 10.0, "peak learning rate"),
    warmup_iters=(100, 0, 10**8, "steps of linear warmup before the cosine decay"),
    n_embd=(128, 1, 16384, "the width of each token's embedding vector"),
    n_head=(4, 1, 1024, "attention heads, each n_embd // n_head wide"),
    n_layer=(2, 1, 1024, "transformer blocks"),
    dropout=(0.0, 0.0, 0.9, "the share of activations zeroed while training"),
    weight_decay=(0.1, 0.0, 10.0, "AdamW pulls every weight towards zero a little every step"),
    long_sample=("halve", ("halve", "crop"), "past block_size: KV cache refilled from half a window, or exact"),
)
GPU_HYPERPARAMETERS = dict(batch_size=64, block_size=256, n_embd=384, n_head=6, n_layer=6, dropout=0.2, lr=1e-3,
                           max_iters=2000, eval_iters=50)  # on a CUDA GPU: the lecture's model (notes/running.md)


class MultiHeadAttention(nn.Module):
    """All heads of causal self-attention at once: bigram_v3's Heads, batched into one matmul."""

    def __init__(self, n_embd, n_head, dropout):
        super().__init__()
        self.n_head = n_head
        self.dropout = dropout  # on the attention weights, as the lecture's Head does
        self.qkv = nn.Linear(n_embd, 3 * n_embd, bias=False)  # all heads' q, k, v: rows [q heads | k heads | v heads]
        self.proj = nn.Linear(n_embd, n_embd)  # mixes the heads' outputs back
        self.resid_dropout = nn.Dropout(dropout)

    def forward(self, x, cache=None):
        B, T, C = x.shape
        qkv = self.qkv(x).view(B, T, 3, self.n_head, C // self.n_head)  # (B, T, 3, n_head, head_size)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B, n_head, T, head_size)
        if cache is not None:  # sampling (sampling.py's KVCache): a lone new token sees every stored position
            k, v = cache.update(self, k, v)  # each (B, n_head, positions so far, head_size)
        # bigram_v3's Head in one call: softmax(q k^T / sqrt(head_size)) under the causal mask, dropout, @ v
        y = F.scaled_dot_product_attention(q, k, v, is_causal=T > 1, dropout_p=self.dropout if self.training else 0)
        y = y.transpose(1, 2).reshape(B, T, C)  # (B, T, C): the heads side by side, as torch.cat did
        return self.resid_dropout(self.proj(y))  # (B, T, C)


class FeedForward(nn.Module):
    """A small MLP applied to every position on its own."""

    def __init__(self, n_embd, dropout):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(n_embd, 4 * n_embd),  # (B, T, 4 * n_embd)
            nn.ReLU(),
            nn.Linear(4 * n_embd, n_embd),  # (B, T, n_embd)
            nn.Dropout(dropout),
        )

    def forward(self, x):
        return self.net(x)


class Block(nn.Module):
    """Transformer block: communication (attention), then computation (feed-forward), each added to x (residual)."""

    def __init__(self, n_embd, n_head, dropout):
        super().__init__()
        self.ln1 = nn.LayerNorm(n_embd)
        self.sa = MultiHeadAttention(n_embd=n_embd, n_head=n_head, dropout=dropout)
        self.ln2 = nn.LayerNorm(n_embd)
        self.ffwd = FeedForward(n_embd=n_embd, dropout=dropout)

    def forward(self, x, cache=None):
        x = x + self.sa(self.ln1(x), cache)  # (B, T, C): layer norm first (pre-norm), then a correction to x
        x = x + self.ffwd(self.ln2(x))  # (B, T, C)
        return x


class GPTLanguageModel(nn.Module):
    def __init__(self, vocab_size, *, n_embd, block_size, n_head, n_layer, dropout):
        super().__init__()
        # each token looks up a dense vector; so does each position in the block
        self.token_embedding_table = nn.Embedding(vocab_size, n_embd)
        self.position_embedding_table = nn.Embedding(block_size, n_embd)
        self.blocks = nn.ModuleList([Block(n_embd=n_embd, n_head=n_head, dropout=dropout) for _ in range(n_layer)])
        self.ln_f = nn.LayerNorm(n_embd)  # final layer norm
        self.lm_head = nn.Linear(n_embd, vocab_size)  # from embedding space to logits
        # GPT-2's init: N(0, 0.02), zero biases, and the layers that write into the residual stream shrunk by depth
        for name, module in self.named_modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                std = 0.02 / (2 * n_layer) ** 0.5 if name.endswith(("sa.proj", "ffwd.net.2")) else 0.02
                nn.init.normal_(module.weight, mean=0.0, std=std)
                if getattr(module, "bias", None) is not None:
                    nn.init.zeros_(module.bias)

    def forward(self, idx, targets=None, cache=None):
        B, T = idx.shape
        # idx and targets are both (B, T) tensors of token ids
        start = 0 if cache is None else cache.length  # with a cache, idx goes on from the positions stored there
        tok_emb = self.token_embedding_table(idx)  # (B, T, n_embd)
        pos_emb = self.position_embedding_table(torch.arange(start, start + T, device=idx.device))  # (T, n_embd)
        x = tok_emb + pos_emb  # (B, T, n_embd): broadcast adds the same position vectors to every row
        for block in self.blocks:
            x = block(x, cache)  # (B, T, n_embd)
        x = self.ln_f(x)  # (B, T, n_embd)
        logits = self.lm_head(x)  # (B, T, vocab_size)
        loss = None
        if targets is not None:
            B, T, C = logits.shape
            loss = F.cross_entropy(logits.view(B * T, C), targets.view(B * T))
        return logits, loss


def build_model(cfg, vocab_size):
    return GPTLanguageModel(vocab_size, n_embd=cfg["n_embd"], block_size=cfg["block_size"], n_head=cfg["n_head"],
                            n_layer=cfg["n_layer"], dropout=cfg["dropout"])


def main(argv=None):
    return runner.main(__file__, build_model, HYPERPARAMETERS, doc=__doc__, argv=argv, gpu_table=GPU_HYPERPARAMETERS)


if __name__ == "__main__":
    raise SystemExit(main())
