"""Checks for exercise 16 (exercises/e16_fine_tune.py): the second text in the model's vocabulary, a fine-tune
that leaves the pretrained model alone and starts from its weights, and the comparison with from-scratch:
a tiny GPT pretrained on Tiny Shakespeare for a few seconds, then both runs on the project's notes."""

import functools
import math

import torch

import gpt
import runner
from data import get_batch, split

from .common import Hint, expect, in_repo_text, load, shakespeare_ids

ex = load("e16_fine_tune")

SIZES = dict(n_embd=32, block_size=32, n_head=2, n_layer=1, dropout=0.0)
CFG = dict(batch_size=16, block_size=SIZES["block_size"], eval_iters=8, eval_interval=20)

FT_ANSWER = ("model = copy.deepcopy(pretrained); optimizer = torch.optim.AdamW(model.parameters(), lr=cfg['lr']); "
             "for step in range(cfg['max_iters'] + 1): if step % cfg['eval_interval'] == 0 or step == "
             "cfg['max_iters']: curve.append((step, runner.estimate_loss(model, {'val': val_ids}, cfg)['val'])); "
             "if step == cfg['max_iters']: break; then the lecture's five lines (batch, forward, zero_grad, "
             "backward, step); return model, curve")
HINTS = {
    "to_vocab": Hint(
        "Walk the text and keep a character only if the vocabulary has it.",
        "`set(chars)` for fast membership, a generator expression, `''.join(...)`.",
        "keep = set(chars); return ''.join(c for c in text if c in keep)"),
    "fine_tune": Hint(
        "The same loop as exercise 14's, started from a copy of the pretrained weights, with a measurement of "
        "the val loss before the first step, every eval_interval steps, and after the last.",
        "`copy.deepcopy(pretrained)`, `torch.optim.AdamW(model.parameters(), lr=cfg['lr'])`, "
        "`runner.estimate_loss(model, {'val': val_ids}, cfg)['val']`, then exercise 14's loop.", FT_ANSWER),
}
IN_PLACE = Hint("the pretrained model changed: you trained it, not a copy of it, so nothing is left to compare "
                "with and a second fine-tune would start from the first one's end.",
                "`copy.deepcopy(pretrained)`, and train the copy.", FT_ANSWER)
FRESH = Hint("the curve starts where a model that never trained starts, not at the pretrained model's loss: "
             "the pretrained weights were not used.", "Start from `copy.deepcopy(pretrained)`, not a new model.",
             FT_ANSWER)
NOT_VAL = Hint("the curve's first point is not the pretrained model's val loss on val_ids: measure val_ids, with "
               "runner.estimate_loss and the cfg given.", "`runner.estimate_loss(model, {'val': val_ids}, cfg)"
               "['val']` at step 0, before any training.", FT_ANSWER)
NO_TRAINING = Hint("the val loss did not go down: the copy never trained (no optimizer step, or an optimizer "
                   "over another model's parameters).", "`torch.optim.AdamW(model.parameters(), ...)` for the "
                   "copy you train; `optimizer.step()` every step.", FT_ANSWER)


def pretrained():
    """A tiny GPT trained on Tiny Shakespeare for a few seconds (the lecture's loop), and its tokenizer: a fresh
    copy every call, trained once, so a fine-tune that trains it in place cannot spoil the next check."""
    weights, tok = pretrained_weights()
    model = gpt.GPTLanguageModel(tok.vocab_size, **SIZES)
    model.load_state_dict(weights)
    return model.eval(), tok


@functools.lru_cache(maxsize=None)
def pretrained_weights():
    ids, tok = shakespeare_ids(200_000)
    torch.manual_seed(0)
    model = gpt.GPTLanguageModel(tok.vocab_size, **SIZES)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(0)
    for _ in range(200):
        xb, yb = get_batch(ids, CFG["batch_size"], CFG["block_size"], generator=g)
        _, loss = model(xb, yb)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return model.state_dict(), tok


@functools.lru_cache(maxsize=None)
def notes_splits():
    """The project's notes in the pretrained model's vocabulary (the reference filter), as train and val ids."""
    tok = pretrained()[1]
    keep = set(tok.chars)
    return split(torch.tensor(tok.encode("".join(c for c in in_repo_text() if c in keep))))


def state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def start_diagnosis(curve, model, val, cfg):
    """The Hint for a curve whose first point is not the pretrained model's val loss, else None."""
    start = runner.estimate_loss(model, {"val": val}, cfg)["val"]
    if math.isclose(curve[0][1], start, rel_tol=1e-5):
        return None
    return FRESH if math.isclose(curve[0][1], math.log(pretrained()[1].vocab_size), abs_tol=0.1) else NOT_VAL


def test_fine_tune_to_vocab_keeps_only_the_models_characters():
    chars = "\n !',-.:;?ABCabc"
    text = "Abc: a (b) # c!\n3 cab's é-ca_b?"
    out = ex.to_vocab(text, chars)
    want = "".join(c for c in text if c in chars)
    expect(out == want, f"to_vocab({text!r}, {chars!r}) should be {want!r}; yours is {out!r}.", HINTS["to_vocab"])


def test_fine_tune_starts_from_the_pretrained_weights_and_leaves_them_alone():
    model, _ = pretrained()
    train, val = notes_splits()
    before = state(model)
    cfg = dict(CFG, lr=3e-3, max_iters=20)
    tuned, curve = ex.fine_tune(model, train, val, cfg, torch.Generator().manual_seed(1))
    changed = any(not torch.equal(before[k], v) for k, v in model.state_dict().items())
    expect(not changed, "the pretrained model's weights are not what they were.", IN_PLACE)
    expect(tuned is not model, "fine_tune returned the pretrained model itself.", IN_PLACE)
    expect(isinstance(curve, list) and [s for s, _ in curve] == [0, 20],
           f"with max_iters 20 and eval_interval 20 the curve's steps should be [0, 20]; yours are "
           f"{[p[0] for p in curve] if isinstance(curve, list) else type(curve).__name__}.", HINTS["fine_tune"])
    start = runner.estimate_loss(model, {"val": val}, cfg)["val"]
    hint = start_diagnosis(curve, model, val, cfg)
    expect(hint is None, f"the curve starts at {curve[0][1]:.4f}; the pretrained model's val loss on the notes "
           f"is {start:.4f}.", hint)
    expect(curve[-1][1] < curve[0][1] - 0.05, f"20 steps took the val loss from {curve[0][1]:.3f} to "
           f"{curve[-1][1]:.3f}.", NO_TRAINING)


def test_fine_tune_beats_training_from_scratch():
    model, tok = pretrained()
    train, val = notes_splits()
    cfg = dict(CFG, max_iters=60)
    _, tuned = ex.fine_tune(model, train, val, dict(cfg, lr=3e-3), torch.Generator().manual_seed(1))
    torch.manual_seed(1)
    _, scratch = ex.fine_tune(gpt.GPTLanguageModel(tok.vocab_size, **SIZES), train, val, dict(cfg, lr=1e-2),
                              torch.Generator().manual_seed(1))
    expect([s for s, _ in tuned] == [0, 20, 40, 60] == [s for s, _ in scratch],
           f"with max_iters 60 and eval_interval 20 the curves' steps should be [0, 20, 40, 60]; yours are "
           f"{[s for s, _ in tuned]}.", HINTS["fine_tune"])
    hint = start_diagnosis(tuned, model, val, cfg) or HINTS["fine_tune"]
    for (step, a), (_, b) in zip(tuned, scratch):
        expect(a < b - 0.05, f"after {step} steps on the notes the fine-tuned model's val loss is {a:.3f} and the "
               f"one trained from scratch {b:.3f}: pretraining should have bought more than 0.05.", hint)
