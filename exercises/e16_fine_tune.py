"""Exercise 16 (the lecture's EX3): pretrain on one text, fine-tune on another, and see what it bought.

Stage: runner/loop.py and gpt.py (after exercise 14)    Note: ../notes/to-chatgpt.md
Check: python -m pytest exercises -k fine_tune
Hints: a failing check shows one; add --hints 2 (the calls), or --hints 3 (the answer).
Curve: python -m exercises.e16_fine_tune    (1,500 + 2 x 300 steps of a small GPT; draws out/fine-tune.png)

Task. The lecture's EX3: pretrain a model on a big text, then start from its weights on a second text,
with fewer steps and a lower learning rate. Does the second text's val loss get lower than training
from scratch gets it? The second text here is this project's own notes (notes/*.md, their prose without
the code blocks): they are on every learner's machine, in English like Shakespeare (so spelling, spaces
and common words carry over) but in another register (modern technical prose, no speakers, no verse),
and at about 120,000 characters small enough that a model trained on them alone soon runs out of text.

  to_vocab(text, chars) -> str
      text with every character that is not in chars (the pretrained model's vocabulary) dropped, the
      rest in order. Digits, `#`, `*`, brackets and the like are not among Shakespeare's 65 characters;
      the pretrained model has no id, no embedding and no logit for them.

  fine_tune(pretrained, train_ids, val_ids, cfg, generator) -> (model, curve)
      Train a copy of pretrained on train_ids for cfg["max_iters"] steps of the lecture's loop (AdamW at
      cfg["lr"], batches from get_batch(train_ids, cfg["batch_size"], cfg["block_size"],
      generator=generator)). The pretrained model itself must not change: the comparison needs it.
      curve is a list of (step, val loss) pairs: runner.estimate_loss(model, {"val": val_ids}, cfg)["val"]
      at step 0 (before any training), after every cfg["eval_interval"] steps, and at the end.

Trained from scratch is the same function given a fresh model: `python -m exercises.e16_fine_tune` runs
both and draws the two curves; the check runs both on tiny sizes and compares them.
"""

import argparse
import copy  # noqa: F401  (you will want it)
import os

import torch

import runner  # noqa: F401
from data import get_batch  # noqa: F401


def to_vocab(text, chars):
    raise NotImplementedError("not done yet: to_vocab(text, chars)")


def fine_tune(pretrained, train_ids, val_ids, cfg, generator):
    raise NotImplementedError("not done yet: fine_tune(pretrained, train_ids, val_ids, cfg, generator)")


def main(argv=None):
    """Pretrain a small gpt.py model on Tiny Shakespeare, then fine-tune vs from scratch on the notes."""
    import gpt
    from data import CharTokenizer, load_text, split
    from exercises.checks.common import in_repo_text

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--pretrain-steps", type=int, default=1500)
    parser.add_argument("--steps", type=int, default=300, help="fine-tuning steps, and from-scratch steps")
    parser.add_argument("--out", default="out/fine-tune.png")
    args = parser.parse_args(argv)
    sizes = dict(n_embd=64, block_size=64, n_head=4, n_layer=2, dropout=0.0)
    cfg = dict(batch_size=32, block_size=sizes["block_size"], eval_iters=20)

    text = load_text()
    tok = CharTokenizer.from_text(text)
    shakespeare_train, shakespeare_val = split(torch.tensor(tok.encode(text)))
    notes_train, notes_val = split(torch.tensor(tok.encode(to_vocab(in_repo_text(), tok.chars))))

    torch.manual_seed(0)
    print(f"pretraining on Tiny Shakespeare, {args.pretrain_steps} steps ...")
    pretrained, curve = fine_tune(gpt.GPTLanguageModel(tok.vocab_size, **sizes), shakespeare_train, shakespeare_val,
                                  dict(cfg, lr=3e-3, max_iters=args.pretrain_steps, eval_interval=250),
                                  torch.Generator().manual_seed(0))
    print(f"  Shakespeare val loss {curve[-1][1]:.3f}")
    second = dict(cfg, max_iters=args.steps, eval_interval=max(1, args.steps // 15))
    curves = {}
    for name, start, lr in (("fine-tuned from the pretrained model", pretrained, 1e-3),
                            ("trained from scratch", gpt.GPTLanguageModel(tok.vocab_size, **sizes), 3e-3)):
        _, curves[name] = fine_tune(start, notes_train, notes_val, dict(second, lr=lr),
                                    torch.Generator().manual_seed(1))
        print(f"{name}: notes val loss {curves[name][0][1]:.3f} at step 0, {curves[name][-1][1]:.3f} at step "
              f"{curves[name][-1][0]}")

    import matplotlib
    matplotlib.use("Agg")  # a file, no window
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for name, curve in curves.items():
        ax.plot([s for s, _ in curve], [v for _, v in curve], marker=".", label=name)
    ax.set_xlabel("steps on the second text (the project's notes)")
    ax.set_ylabel("val loss on the notes (nats)")
    ax.set_title("EX3: pretrained on Tiny Shakespeare, then fine-tuned")
    ax.legend()
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    fig.savefig(args.out, dpi=120, bbox_inches="tight")
    print(f"the curves: {args.out}")


if __name__ == "__main__":
    main()
