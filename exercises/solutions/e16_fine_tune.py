"""SOLUTION to exercise 16 (exercises/e16_fine_tune.py). A spoiler: try the exercise first."""

import argparse
import copy
import os

import torch

import runner
from data import get_batch


def to_vocab(text, chars):
    keep = set(chars)
    return "".join(c for c in text if c in keep)  # the model has no id for anything else


def fine_tune(pretrained, train_ids, val_ids, cfg, generator):
    model = copy.deepcopy(pretrained)  # the pretrained model stays as it was, for the comparison
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg["lr"])
    curve = []
    for step in range(cfg["max_iters"] + 1):
        if step % cfg["eval_interval"] == 0 or step == cfg["max_iters"]:
            curve.append((step, runner.estimate_loss(model, {"val": val_ids}, cfg)["val"]))
        if step == cfg["max_iters"]:
            break
        xb, yb = get_batch(train_ids, cfg["batch_size"], cfg["block_size"], generator=generator)
        _, loss = model(xb, yb)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return model, curve


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
