"""gpt.py: the full GPT, a stack of transformer blocks.

Stage 4 of 4. Diff it against the stage before: `diff -u bigram_v3.py gpt.py`.

What is new since bigram_v3.py:
  - attention computes all heads in one batched matmul and calls F.scaled_dot_product_attention: the
    same math as bigram_v3's Heads (a test copies the weights across and compares), in fewer, larger
    operations;
  - a feed-forward network after attention: attention gathers information, the MLP thinks about it;
  - residual connections and pre-layer-norm around both, so a deep stack still trains;
  - dropout against overfitting, a final layer norm, and n_layer blocks stacked;
  - a KV cache when sampling, so each new character costs one small forward pass (sampling.py).

On a GPU it uses the lecture's model (batch 64, block 256, 6 layers, 6 heads, n_embd 384, dropout 0.2,
10.8M parameters); on a CPU a laptop configuration that trains in minutes.

Defaults (CPU): full-split val loss 1.5554 (the bigram floor is 2.4819) after 306 s of training on a 2-core CPU (README, Results).

    python gpt.py                     # train, save out/gpt, print a sample
    python gpt.py --sample-only --prompt "ROMEO:" --max-new-tokens 2000
    python gpt.py --help              # every flag
"""

import torch
import torch.nn as nn
from torch.nn import functional as F

import runner

# hyperparameters: this stage's defaults, each also a command-line flag (see --help)
HYPERPARAMETERS = dict(  # a laptop CPU: chosen by measurement to learn the most per second (README, Performance)
    batch_size=16,  # how many independent sequences train in parallel
    block_size=128,  # the longest context a prediction sees
    max_iters=3000,  # training steps
    eval_interval=250,  # print train/val estimates this often
    eval_iters=20,  # batches per estimate
    lr=3e-3,  # peak learning rate
    warmup_iters=50,  # steps of linear warmup before the cosine decay
    n_embd=256,  # the width of each token's embedding vector
    n_head=4,  # attention heads, each n_embd // n_head wide
    n_layer=2,  # transformer blocks: on a CPU, two wide blocks learn faster per second than four narrow ones
    dropout=0.0,  # val is still falling when the default run ends (README, Results): no dropout yet
    weight_decay=0.1,  # AdamW pulls every weight towards zero a little every step
    long_sample="halve",  # past block_size: "halve" (KV cache, refill half a window) or "crop" (exact, slow)
)
GPU_HYPERPARAMETERS = dict(  # the lecture's model, used when a CUDA GPU is found (README, GPU)
    batch_size=64, block_size=256, n_embd=384, n_head=6, n_layer=6, dropout=0.2, lr=1e-3, warmup_iters=100,
    max_iters=2000, eval_interval=250, eval_iters=50,  # with the lecture's dropout, val is lowest near 2,000 steps
)


def residual_projection(layer):
    """Mark a Linear that writes into the residual stream: GPT-2's init shrinks these (see below)."""
    layer.is_residual_projection = True
    return layer


class MultiHeadAttention(nn.Module):
    """All heads of causal self-attention at once: bigram_v3's Heads, batched into one matmul."""

    def __init__(self, n_embd, n_head, dropout):
        super().__init__()
        self.n_head = n_head
        self.dropout = dropout  # on the attention weights, as the lecture's Head does
        # key, query and value of every head in one Linear: rows [q heads | k heads | v heads]
        self.qkv = nn.Linear(n_embd, 3 * n_embd, bias=False)
        self.proj = residual_projection(nn.Linear(n_embd, n_embd))  # mixes the heads' outputs back
        self.resid_dropout = nn.Dropout(dropout)

    def forward(self, x, kv_cache=None, start=0):
        B, T, C = x.shape
        qkv = self.qkv(x).view(B, T, 3, self.n_head, C // self.n_head)  # (B, T, 3, n_head, head_size)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B, n_head, T, head_size)
        if kv_cache is not None:
            # keys and values of earlier positions were stored by earlier calls: compute only the new ones
            assert start == 0 or T == 1, "the cache is filled from position 0, then one token at a time"
            k_all, v_all = kv_cache  # each (B, n_head, block_size, head_size)
            k_all[:, :, start : start + T] = k
            v_all[:, :, start : start + T] = v
            k, v = k_all[:, :, : start + T], v_all[:, :, : start + T]  # (B, n_head, start+T, head_size)
        # dropout(softmax(q k^T / sqrt(head_size)) with the causal mask) v, in one call; a single new token
        # may see every cached position, so it needs no mask
        p = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, is_causal=T > 1, dropout_p=p)  # (B, n_head, T, head_size)
        y = y.transpose(1, 2).reshape(B, T, C)  # (B, T, C): the heads side by side, as torch.cat did
        return self.resid_dropout(self.proj(y))  # (B, T, C)


class FeedForward(nn.Module):
    """A small MLP applied to every position on its own."""

    def __init__(self, n_embd, dropout):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(n_embd, 4 * n_embd),  # (B, T, 4 * n_embd)
            nn.ReLU(),
            residual_projection(nn.Linear(4 * n_embd, n_embd)),  # (B, T, n_embd)
            nn.Dropout(dropout),
        )

    def forward(self, x):
        return self.net(x)


class Block(nn.Module):
    """Transformer block: communication (attention) then computation (feed-forward)."""

    def __init__(self, n_embd, n_head, dropout):
        super().__init__()
        self.ln1 = nn.LayerNorm(n_embd)
        self.sa = MultiHeadAttention(n_embd=n_embd, n_head=n_head, dropout=dropout)
        self.ln2 = nn.LayerNorm(n_embd)
        self.ffwd = FeedForward(n_embd=n_embd, dropout=dropout)

    def forward(self, x, kv_cache=None, start=0):
        # pre-layer-norm residual: each sublayer adds a correction to x instead of replacing it
        x = x + self.sa(self.ln1(x), kv_cache, start)  # (B, T, C)
        x = x + self.ffwd(self.ln2(x))  # (B, T, C)
        return x


class GPTLanguageModel(nn.Module):
    def __init__(self, vocab_size, *, n_embd, block_size, n_head, n_layer, dropout):
        super().__init__()
        self.block_size = block_size
        # each token looks up a dense vector; so does each position in the block
        self.token_embedding_table = nn.Embedding(vocab_size, n_embd)
        self.position_embedding_table = nn.Embedding(block_size, n_embd)
        self.emb_dropout = nn.Dropout(dropout)  # not in the lecture; nanoGPT has it (README, GPU)
        self.blocks = nn.ModuleList([Block(n_embd=n_embd, n_head=n_head, dropout=dropout) for _ in range(n_layer)])
        self.ln_f = nn.LayerNorm(n_embd)  # final layer norm
        self.lm_head = nn.Linear(n_embd, vocab_size)  # from embedding space to logits
        # GPT-2's init: small normal weights, and residual projections shrunk by depth so the
        # residual stream's variance does not grow with every block added
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                std = 0.02 / (2 * n_layer) ** 0.5 if getattr(module, "is_residual_projection", False) else 0.02
                nn.init.normal_(module.weight, mean=0.0, std=std)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)

    def forward(self, idx, targets=None, kv_cache=None, start=0):
        B, T = idx.shape
        # idx and targets are both (B, T) tensors of token ids; start is idx's position in the text window
        tok_emb = self.token_embedding_table(idx)  # (B, T, n_embd)
        pos_emb = self.position_embedding_table(torch.arange(start, start + T, device=idx.device))  # (T, n_embd)
        x = self.emb_dropout(tok_emb + pos_emb)  # (B, T, n_embd): the same position vectors for every row
        for i, block in enumerate(self.blocks):
            x = block(x, None if kv_cache is None else kv_cache[i], start)  # (B, T, n_embd)
        x = self.ln_f(x)  # (B, T, n_embd)
        logits = self.lm_head(x)  # (B, T, vocab_size)
        loss = None
        if targets is not None:
            B, T, C = logits.shape
            loss = F.cross_entropy(logits.view(B * T, C), targets.view(B * T))
        return logits, loss

    def new_kv_cache(self, batch_size, device):
        """One (keys, values) pair of buffers per block, each (B, n_head, block_size, head_size)."""
        caches = []
        for block in self.blocks:
            n_head, C = block.sa.n_head, block.sa.proj.in_features
            shape = (batch_size, n_head, self.block_size, C // n_head)
            caches.append((torch.zeros(shape, device=device), torch.zeros(shape, device=device)))
        return caches


def build_model(cfg, vocab_size):
    return GPTLanguageModel(vocab_size, n_embd=cfg["n_embd"], block_size=cfg["block_size"], n_head=cfg["n_head"],
                            n_layer=cfg["n_layer"], dropout=cfg["dropout"])


def main(argv=None):
    return runner.main(__file__, build_model, HYPERPARAMETERS, doc=__doc__, argv=argv, gpu_defaults=GPU_HYPERPARAMETERS)


if __name__ == "__main__":
    raise SystemExit(main())
