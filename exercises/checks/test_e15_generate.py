"""Checks for exercise 15 (exercises/e15_generate.py): your tokens against sampling.generate's, same seed.

Every check that fails first asks which of the usual mistakes generate makes (diagnosis()), so the hint
names the mistake made: no crop, the wrong end cropped, the first position's logits, argmax, and so on.
"""

import torch
from torch.nn import functional as F

import gpt
import sampling

from .common import Hint, expect, fail, load

ex = load("e15_generate")

V, BLOCK = 20, 8
SIZES = dict(n_embd=16, block_size=BLOCK, n_head=2, n_layer=2)

ANSWER = ("for _ in range(max_new_tokens): logits, _ = model(idx[:, -block_size:]); "
          "probs = F.softmax(logits[:, -1, :], dim=-1); "
          "idx = torch.cat((idx, torch.multinomial(probs, num_samples=1, generator=generator)), dim=1); "
          "return idx (with @torch.no_grad() above the def and model.eval() first)")
HINTS = {"generate": Hint(
    "Do the six steps of the task in order, once per new token, and write each tensor's shape beside it: "
    "the model's input must never be longer than block_size, and one token per row is drawn from the last "
    "position's distribution.",
    "`idx[:, -block_size:]`, `model(...)`, `logits[:, -1, :]`, `F.softmax(..., dim=-1)`, "
    "`torch.multinomial(probs, num_samples=1, generator=generator)`, `torch.cat((idx, idx_next), dim=1)`; "
    "`model.eval()` and `@torch.no_grad()`.",
    ANSWER)}
NO_CROP = Hint(
    "the model was fed more than block_size positions and failed (its position table has block_size rows): "
    "the context is not cropped.", "`idx[:, -block_size:]` before every forward pass.", ANSWER)
MISTAKES = {
    "front": Hint("the context is cropped at the wrong end: it keeps the first block_size tokens, so the newest "
                  "ones never reach the model.", "`idx[:, -block_size:]`: the *last* block_size.", ANSWER),
    "first": Hint("the next token is drawn from the first position's logits; the last position is the one that "
                  "has seen the whole context and predicts what comes next.", "`logits[:, -1, :]`.", ANSWER),
    "greedy": Hint("every token is the likeliest one (argmax): that is greedy decoding, not sampling. Draw from "
                   "the distribution.", "`torch.multinomial(probs, num_samples=1, generator=generator)`.", ANSWER),
    "softmax_dim0": Hint("the softmax runs over the batch instead of the vocabulary: each row's probabilities "
                         "over the vocab_size tokens must sum to 1.", "`F.softmax(logits, dim=-1)`.", ANSWER),
}
NO_SOFTMAX = Hint("torch.multinomial refused the logits: they are not probabilities (negative, or not summing "
                  "to 1).", "`F.softmax(logits, dim=-1)` before `torch.multinomial`.", ANSWER)
NO_GENERATOR = Hint("the same seed gave different tokens: the draws ignore the generator passed in.",
                    "`torch.multinomial(..., generator=generator)`.", ANSWER)
TRAIN_MODE = Hint("the model ran in training mode, so dropout changed its predictions while sampling.",
                  "`model.eval()` before the loop.", ANSWER)
GRAPH = Hint("autograd recorded every forward pass: sampling never calls backward.",
             "`@torch.no_grad()` above the def, or `with torch.no_grad():` around the loop.", ANSWER)


def a_model(dropout=0.0):
    torch.manual_seed(0)
    model = gpt.GPTLanguageModel(V, dropout=dropout, **SIZES).eval()
    with torch.no_grad():  # gpt.py starts with tiny weights; big ones make each token's odds depend on the context
        for p in model.parameters():
            p.normal_(0.0, 1.0)
    return model


def a_prompt(T):
    return torch.randint(V, (2, T), generator=torch.Generator().manual_seed(T))  # (B, T)


@torch.no_grad()
def variant(model, idx, n, kind, seed):
    g = torch.Generator().manual_seed(seed)
    for _ in range(n):
        logits, _ = model(idx[:, :BLOCK] if kind == "front" else idx[:, -BLOCK:])
        logits = logits[:, 0 if kind == "first" else -1, :]
        if kind == "greedy":
            nxt = logits.argmax(dim=-1, keepdim=True)
        else:
            nxt = torch.multinomial(F.softmax(logits, dim=0 if kind == "softmax_dim0" else -1), 1, generator=g)
        idx = torch.cat((idx, nxt), dim=1)
    return idx


def mine(model, idx, n, seed):
    """The learner's tokens; a failure with the matching hint where generate raises one of the usual errors."""
    try:
        return ex.generate(model, idx, n, BLOCK, generator=torch.Generator().manual_seed(seed))
    except IndexError:  # the position table looked up past block_size
        problem, hint = f"generate(model, a ({idx.shape[0]}, {idx.shape[1]}) prompt, {n}, block_size={BLOCK}) " \
                        "raised IndexError.", NO_CROP
    except RuntimeError as err:
        if "multinomial" not in str(err) and "probability" not in str(err):
            raise
        problem, hint = f"torch.multinomial raised: {str(err).splitlines()[0]}", NO_SOFTMAX
    fail(problem, hint)  # outside the except: pytest would print the error above as the failure's context


def diagnosis(model, idx, n, seed, out):
    """The Hint of the mistake out shows, or the general one."""
    again = ex.generate(model, idx, n, BLOCK, generator=torch.Generator().manual_seed(seed))
    if isinstance(out, torch.Tensor) and isinstance(again, torch.Tensor) and not torch.equal(out, again):
        return NO_GENERATOR
    for kind, hint in MISTAKES.items():
        if isinstance(out, torch.Tensor) and torch.equal(out, variant(model, idx, n, kind, seed)):
            return hint
    return HINTS["generate"]


def compare(T, n, seed):
    model = a_model()
    idx = a_prompt(T)
    out = mine(model, idx, n, seed)
    want = sampling.generate(model, idx, n, generator=torch.Generator().manual_seed(seed), block_size=BLOCK)
    expect(isinstance(out, torch.Tensor) and out.shape == want.shape,
           f"generate should return (B, T + max_new_tokens) = {tuple(want.shape)}, got "
           f"{tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__}.", HINTS["generate"])
    expect(torch.equal(out[:, :T], idx), "the result should start with the prompt itself, unchanged.",
           HINTS["generate"])
    if not torch.equal(out, want):
        t = int((out != want).any(dim=0).nonzero()[0])
        expect(False, f"a ({idx.shape[0]}, {T}) prompt, {n} new tokens, block_size {BLOCK}: position {t} holds "
                      f"{out[:, t].tolist()}, sampling.generate drew {want[:, t].tolist()} with the same seed.",
               diagnosis(model, idx, n, seed, out))


def test_generate_matches_sampling_generate():
    compare(T=3, n=12, seed=1)  # 3 + 12 > block_size: the crop starts to matter while it generates


def test_generate_crops_a_prompt_longer_than_block_size():
    compare(T=3 * BLOCK, n=5, seed=2)


def test_generate_samples_in_eval_mode_without_a_graph():
    model = a_model(dropout=0.5).train()  # as a model is right after training
    seen = []
    model.register_forward_hook(lambda module, args, out: seen.append((module.training, torch.is_grad_enabled())))
    mine(model, a_prompt(4), 3, seed=3)
    expect(seen and not any(training for training, _ in seen), "the model sampled in training mode.", TRAIN_MODE)
    expect(not any(grad for _, grad in seen), "autograd was recording.", GRAPH)
