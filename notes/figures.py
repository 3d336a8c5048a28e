"""notes/figures.py: draw every figure the notes show, from the four stages' default runs.

    python notes/figures.py                        # train any stage not yet run, then draw every figure
    python notes/figures.py --only attention-gpt   # redraw one figure
    python notes/figures.py --no-train             # draw from the runs in out/ only
    python notes/figures.py --help                 # every flag

A figure is made from a finished run of a stage: out/<stage>/best.pt (the kept, lowest-val model) or else
ckpt.pt, and out/<stage>/metrics.json. A stage with no finished run is trained first, by running its
script with its default settings (`python gpt.py --out out/gpt`), progress bar and all: seconds for the
bigram stages, a few minutes for gpt.py on a laptop CPU. The images go to notes/img/, where the notes
show them. Matplotlib is needed here and nowhere else: the stage scripts never import it.
"""

import argparse
import json
import math
import shlex
import string
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `python notes/figures.py` puts notes/ on the path; the stages live one up

import matplotlib  # noqa: E402

matplotlib.use("Agg")  # files only, no window: works on a server and in tests
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from matplotlib.colors import PowerNorm  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

import bigram_v1  # noqa: E402
import bigram_v2  # noqa: E402
import bigram_v3  # noqa: E402
import gpt  # noqa: E402
from data import CharTokenizer, DataError, load_text, split  # noqa: E402

STAGES = {"bigram_v1": bigram_v1, "bigram_v2": bigram_v2, "bigram_v3": bigram_v3, "gpt": gpt}
COLORS = {"bigram_v1": "tab:gray", "bigram_v2": "tab:orange", "bigram_v3": "tab:green", "gpt": "tab:blue"}
# A line from the validation split (The Taming of the Shrew, act 5), so no model has trained on it.
PROMPT = "Widow:\nThus I conceive by him."
HEADS_PER_LAYER = 4  # gpt.py's attention figure shows at most this many heads of each layer
LECTURE_VAL = 1.48  # the val loss the lecture's 10.8M-parameter GPT reaches on a GPU


class FigureError(Exception):
    """Something the user can fix (a run to train, a prompt character the vocabulary lacks): one line."""


@dataclass
class Run:
    stage: str
    model: torch.nn.Module
    tok: CharTokenizer
    config: dict
    metrics: dict
    path: Path


def show(c):
    """How a character is written on an axis: visible marks for the space and the newline."""
    return {" ": "␣", "\n": "↵", "$": r"\$"}.get(c, c)


# ----------------------------------------------------------------------------------------------------
# runs: find them, train the missing ones, load them


def checkpoint_path(out_dir):
    """best.pt (the lowest-val model a run kept) if it is there, else ckpt.pt (its last step), else None."""
    for name in ("best.pt", "ckpt.pt"):
        if (out_dir / name).is_file():
            return out_dir / name
    return None


def is_finished(out_dir):
    return checkpoint_path(out_dir) is not None and (out_dir / "metrics.json").is_file()


def shown_path(path):
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def train_command(stage, out_dir, data=None, extra=()):
    cmd = [f"{stage}.py", "--out", shown_path(out_dir)]
    if data:
        cmd += ["--data", str(data)]
    return cmd + list(extra)


def train(stage, out_dir, data, extra):
    """Run the stage's script with its defaults, its progress bar showing; resume a run stopped early."""
    cmd = train_command(stage, out_dir, data, extra)
    if (out_dir / "ckpt.pt").is_file() and not (out_dir / "metrics.json").is_file():
        cmd.append("--resume")  # a checkpoint without metrics: a run that was stopped before the end
    print(f"training {stage}: python {shlex.join(cmd)}", flush=True)
    cmd[0] = str(ROOT / cmd[0])
    done = subprocess.run([sys.executable, *cmd], cwd=Path.cwd())
    if done.returncode != 0 or not is_finished(out_dir):
        raise FigureError(f"training {stage} failed (exit status {done.returncode}); its error is above")


def load_run(stage, out_dir):
    path = checkpoint_path(out_dir)
    if path is None or not (out_dir / "metrics.json").is_file():
        stopped = " --resume" if (out_dir / "ckpt.pt").is_file() else ""  # a run stopped before its end
        raise FigureError(f"no finished {stage} run in {shown_path(out_dir)}; train it with "
                          f"`python {shlex.join(train_command(stage, out_dir))}{stopped}` "
                          f"(or run notes/figures.py without --no-train)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        tok = CharTokenizer.from_dict(ckpt["tokenizer"])
        model = STAGES[stage].build_model(ckpt["config"], tok.vocab_size)
        model.load_state_dict(ckpt["model"])
        metrics = json.loads((out_dir / "metrics.json").read_text(encoding="utf-8"))
    except Exception as e:  # corrupt file, another stage's checkpoint, a model that changed shape
        raise FigureError(f"cannot load the {stage} run in {shown_path(out_dir)} ({type(e).__name__}: "
                          f"{str(e).splitlines()[0][:120]}); delete it and train again") from None
    if ckpt.get("stage", stage) != stage:
        raise FigureError(f"{shown_path(path)} was written by {ckpt['stage']}.py, not {stage}.py")
    model.eval()  # dropout off: the figures show what the model computes when it is used
    return Run(stage, model, tok, ckpt["config"], metrics, path)


def encode_prompt(run, prompt):
    missing = sorted({c for c in prompt if c not in run.tok.stoi})
    if missing:
        raise FigureError(f"--prompt has characters the {run.stage} vocabulary lacks: {missing}")
    ids = run.tok.encode(prompt)[-run.config["block_size"] :]  # a model sees at most block_size characters
    return torch.tensor([ids])  # (1, T)


# ----------------------------------------------------------------------------------------------------
# attention weights, computed from the same queries and keys as the layers themselves


def inputs_of(modules, model, idx):
    """Run model(idx) and return what each of `modules` received as its first argument."""
    seen = [None] * len(modules)

    def keeper(i):
        def hook(module, args, kwargs):
            seen[i] = args[0] if args else next(iter(kwargs.values()))

        return hook

    handles = [m.register_forward_pre_hook(keeper(i), with_kwargs=True) for i, m in enumerate(modules)]
    try:
        with torch.no_grad():
            model(idx)
    finally:
        for h in handles:
            h.remove()
    return seen


def causal_softmax(q, k):
    """softmax(q kᵀ / sqrt(head_size)) with the future masked: (..., T, hs) x2 -> (..., T, T)."""
    T = q.size(-2)
    scores = q @ k.transpose(-2, -1) * k.size(-1) ** -0.5  # (..., T, T)
    future = torch.ones(T, T, dtype=torch.bool).triu(1)  # (T, T): True above the diagonal
    return F.softmax(scores.masked_fill(future, float("-inf")), dim=-1)


@torch.no_grad()
def bigram_v3_attention(model, idx):
    """Every head's weights in bigram_v3: (B, n_head, T, T), from its own key and query."""
    (x,) = inputs_of([model.sa_heads], model, idx)  # (B, T, n_embd): tok_emb + pos_emb
    return torch.stack([causal_softmax(h.query(x), h.key(x)) for h in model.sa_heads.heads], dim=1)


@torch.no_grad()
def gpt_attention(model, idx):
    """Every layer's weights in gpt.py: a list of (B, n_head, T, T), one per block.

    gpt.py never builds these: scaled_dot_product_attention computes the same softmax inside one call.
    Here they come from the very q and k the layer makes, sa.qkv(ln1(x)), split into heads as it splits them.
    """
    inputs = inputs_of([b.sa for b in model.blocks], model, idx)  # each (B, T, C): ln1 of the stream
    weights = []
    for block, h in zip(model.blocks, inputs):
        sa = block.sa
        B, T, C = h.shape
        q, k, _ = sa.qkv(h).view(B, T, 3, sa.n_head, C // sa.n_head).permute(2, 0, 3, 1, 4)  # (B, nh, T, hs)
        weights.append(causal_softmax(q, k))
    return weights


def uniform_average(T):
    """The lecture's "mathematical trick": row t averages positions 0..t equally. (T, T)."""
    tril = torch.tril(torch.ones(T, T))
    return tril / tril.sum(dim=1, keepdim=True)


def most_focused(w, k):
    """Indices of the k heads whose rows have the lowest mean entropy (the least like an even average)."""
    entropy = -(w * w.clamp_min(1e-12).log()).sum(-1).mean(-1)  # (n_head,)
    return sorted(entropy.argsort()[:k].tolist())


def sinusoidal_encoding(T, d_model):
    """Vaswani et al. 2017, section 3.5: sin in even columns, cos in odd ones. (T, d_model)."""
    omega = 10000.0 ** (-torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)  # (d_model/2,)
    angle = torch.arange(T, dtype=torch.float64)[:, None] * omega  # (T, d_model/2)
    pe = torch.zeros(T, d_model, dtype=torch.float64)
    pe[:, 0::2], pe[:, 1::2] = torch.sin(angle), torch.cos(angle)
    return pe


def cosine_matrix(vectors):
    unit = F.normalize(vectors.double(), dim=1)  # (N, D)
    return unit @ unit.T  # (N, N)


def bigram_counts(text, tok):
    train, _ = split(torch.tensor(tok.encode(text)))
    V = tok.vocab_size
    counts = torch.zeros(V, V, dtype=torch.float64)
    counts.index_put_((train[:-1], train[1:]), torch.ones(len(train) - 1, dtype=torch.float64), accumulate=True)
    return counts


def bigram_floor(text, tok):
    """Only if a run's metrics lack it: the best add-alpha count model on a grid of alphas, tuned on val."""
    ids = torch.tensor(tok.encode(text))
    _, val = split(ids)
    counts, V = bigram_counts(text, tok), tok.vocab_size
    pairs = torch.zeros(V, V, dtype=torch.float64)
    pairs.index_put_((val[:-1], val[1:]), torch.ones(len(val) - 1, dtype=torch.float64), accumulate=True)

    def loss(a):
        probs = (counts + a) / (counts + a).sum(1, keepdim=True)
        return -(pairs * probs.log()).sum().item() / pairs.sum().item()

    return min(loss(a) for a in [1e-4, 1e-3, 1e-2, 0.1, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0])


# ----------------------------------------------------------------------------------------------------
# the figures


def char_axes(ax, chars, fontsize):
    labels = [show(c) for c in chars]
    ax.set_xticks(range(len(chars)), labels, fontsize=fontsize)
    ax.set_yticks(range(len(chars)), labels, fontsize=fontsize)
    ax.tick_params(length=0, pad=1)


def heatmap(ax, w, chars, title, norm, cmap="Blues", fontsize=8):
    """A (T, T) attention pattern: row = the position looking, column = the position looked at."""
    T = len(chars)
    w = w.clone().double()
    w[torch.ones(T, T, dtype=torch.bool).triu(1)] = float("nan")  # the masked future: drawn blank
    cmap = plt.get_cmap(cmap).with_extremes(bad="#f2f2f2")
    im = ax.imshow(w.numpy(), cmap=cmap, norm=norm, interpolation="nearest")
    char_axes(ax, chars, fontsize)
    ax.set_title(title, fontsize=9)
    return im


def fig_loss_curves(runs, text, tok):
    fig, (ax_s, ax_i) = plt.subplots(1, 2, figsize=(11.5, 4.6), sharey=True, layout="constrained")
    floor = runs["bigram_v1"].metrics.get("bigram_floor")
    if floor is None:
        floor = bigram_floor(text, tok)
    uniform = math.log(tok.vocab_size)
    for stage, run in runs.items():
        h = run.metrics["history"]
        for ax, key in ((ax_s, "seconds"), (ax_i, "iter")):
            pts = [e for e in h if key == "iter" or e["iter"] > 0]  # step 0 is at 0 s: off a log axis
            xs = [e[key] for e in pts]
            ax.plot(xs, [e["val"] for e in pts], color=COLORS[stage], lw=2, marker="o", ms=3)
            ax.plot(xs, [e["train"] for e in pts], color=COLORS[stage], lw=1, ls="--")
    for ax in (ax_s, ax_i):
        ax.axhline(uniform, color="black", lw=0.8, ls=":")
        ax.axhline(floor, color="crimson", lw=0.8, ls="-.")
        ax.axhline(LECTURE_VAL, color="gray", lw=0.8, ls=":")
        ax.grid(alpha=0.3)
    ax_i.text(ax_i.get_xlim()[1], uniform, f" ln {tok.vocab_size} = {uniform:.2f}: a uniform guess",
              va="center", fontsize=8)
    ax_i.text(ax_i.get_xlim()[1], floor, f" bigram floor {floor:.2f}", va="center", fontsize=8,
              color="crimson")
    ax_i.text(ax_i.get_xlim()[1], LECTURE_VAL, f" the lecture's GPT ≈ {LECTURE_VAL}", va="center", fontsize=8,
              color="gray")
    ax_s.set_xscale("log")
    ax_s.set_xlabel("seconds of training (log scale; optimizer steps only)")
    ax_i.set_xlabel("training step")
    ax_s.set_ylabel("loss (nats per character)")
    handles = [Line2D([], [], color=COLORS[s], lw=2, label=s) for s in runs]
    handles += [Line2D([], [], color="black", lw=2, label="val estimate"),
                Line2D([], [], color="black", lw=1, ls="--", label="train estimate")]
    ax_s.legend(handles=handles, fontsize=8, loc="lower left")
    fig.suptitle("The four stages' default runs: train and val loss estimates", fontsize=11)
    return fig


def fig_bigram_table(runs, text, tok):
    run = runs["bigram_v1"]
    if run.tok != tok:
        raise FigureError("the bigram_v1 run was trained on another text than --data; pass the same text")
    learned = F.softmax(run.model.token_embedding_table.weight.detach().double(), dim=-1)  # (V, V)
    counts = bigram_counts(text, tok)  # (V, V)
    counted = counts / counts.sum(dim=1, keepdim=True).clamp_min(1)
    seen = counts.sum(dim=1) > 0
    tv = 0.5 * (learned - counted).abs().sum(dim=1)[seen]  # per row: 0 identical, 1 disjoint
    fig, axes = plt.subplots(1, 2, figsize=(12.5, 6.4), layout="constrained")
    norm = PowerNorm(gamma=0.4, vmin=0, vmax=1)  # stretches the small probabilities so they show
    for ax, table, title in ((axes[0], learned, "learned by bigram_v1: softmax of each row of its table"),
                             (axes[1], counted, "counted on the train split: P(next | current)")):
        im = ax.imshow(table.numpy(), cmap="magma_r", norm=norm, interpolation="nearest")
        char_axes(ax, tok.chars, 5.5)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("next character")
        ax.set_ylabel("current character")
    fig.colorbar(im, ax=axes, shrink=0.8, label="probability (colour scale stretched for small values)")
    fig.suptitle(f"Gradient descent rediscovers the counts: rows differ by {tv.mean():.3f} in total "
                 f"variation on average (0 = identical)", fontsize=11)
    return fig


CATEGORIES = (  # (label, test, colour)
    ("vowel a e i o u", lambda c: c in "aeiou", "tab:red"),
    ("consonant (lower case)", lambda c: c.islower(), "tab:blue"),
    ("upper case", lambda c: c.isupper(), "tab:purple"),
    ("punctuation", lambda c: c in string.punctuation, "tab:green"),
    ("space, newline, digit", lambda c: True, "black"),
)


def category(c):
    return next((label, colour) for label, test, colour in CATEGORIES if test(c))


def fig_embeddings(runs):
    fig, axes = plt.subplots(1, 2, figsize=(12, 5.6), layout="constrained")
    for ax, stage in zip(axes, ("bigram_v2", "gpt")):
        run = runs[stage]
        W = run.model.token_embedding_table.weight.detach().double()  # (V, n_embd)
        centred = W - W.mean(dim=0)
        _, S, Vh = torch.linalg.svd(centred, full_matrices=False)
        xy = centred @ Vh[:2].T  # (V, 2): the two directions along which the rows differ most
        share = (S[:2] ** 2 / (S**2).sum()).tolist()
        for (x, y), c in zip(xy.tolist(), run.tok.chars):
            ax.text(x, y, show(c), color=category(c)[1], fontsize=9, ha="center", va="center",
                    fontweight="bold" if c in "aeiou" or c in string.punctuation else "normal")
        (x0, y0), (x1, y1) = xy.min(0).values.tolist(), xy.max(0).values.tolist()
        ax.set_xlim(x0 - 0.08 * (x1 - x0), x1 + 0.08 * (x1 - x0))
        ax.set_ylim(y0 - 0.08 * (y1 - y0), y1 + 0.08 * (y1 - y0))
        ax.set_xlabel(f"principal direction 1 ({share[0]:.0%} of the variance)")
        ax.set_ylabel(f"principal direction 2 ({share[1]:.0%})")
        ax.set_title(f"{stage}: token embeddings ({W.shape[1]} numbers each) seen from their widest angle",
                     fontsize=9)
        ax.grid(alpha=0.2)
    handles = [Line2D([], [], ls="", marker="s", color=colour, label=label) for label, _, colour in CATEGORIES]
    axes[1].legend(handles=handles, fontsize=8, loc="best")
    return fig


def fig_attention_v3(runs, prompt):
    run = runs["bigram_v3"]
    idx = encode_prompt(run, prompt)
    w = bigram_v3_attention(run.model, idx)[0]  # (n_head, T, T)
    chars = run.tok.decode(idx[0].tolist())
    n = w.size(0)
    fig, axes = plt.subplots(1, n, figsize=(4.0 * n, 4.4), squeeze=False, layout="constrained")
    norm = PowerNorm(gamma=0.5, vmin=0, vmax=1)
    for i, ax in enumerate(axes[0]):
        im = heatmap(ax, w[i], chars, f"head {i}", norm, fontsize=7)
    axes[0][0].set_ylabel("query: the character looking")
    for ax in axes[0]:
        ax.set_xlabel("key: the character looked at")
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8, label="attention weight")
    fig.suptitle("bigram_v3: every head's attention weights on a line it never trained on", fontsize=11)
    return fig


def fig_attention_gpt(runs, prompt):
    run = runs["gpt"]
    idx = encode_prompt(run, prompt)
    layers = [w[0] for w in gpt_attention(run.model, idx)]  # each (n_head, T, T)
    chars = run.tok.decode(idx[0].tolist())
    chosen = [most_focused(w, HEADS_PER_LAYER) if w.size(0) > HEADS_PER_LAYER else list(range(w.size(0)))
              for w in layers]
    cols = max(len(c) for c in chosen)
    fig, axes = plt.subplots(len(layers), cols, figsize=(3.8 * cols, 3.9 * len(layers)), squeeze=False,
                             layout="constrained")
    norm = PowerNorm(gamma=0.5, vmin=0, vmax=1)
    for layer, (w, heads) in enumerate(zip(layers, chosen)):
        for col in range(cols):
            ax = axes[layer][col]
            if col >= len(heads):
                ax.axis("off")
                continue
            im = heatmap(ax, w[heads[col]], chars, f"layer {layer}, head {heads[col]}", norm, fontsize=6.5)
        axes[layer][0].set_ylabel("query: the character looking")
    for ax in axes[-1]:
        ax.set_xlabel("key: the character looked at")
    fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.6, label="attention weight")
    more = any(w.size(0) > HEADS_PER_LAYER for w in layers)
    fig.suptitle("gpt.py: attention weights of " + ("the most focused heads of each layer" if more else
                 "every head of every layer") + ", from the layer's own q and k", fontsize=11)
    return fig


def fig_positions(runs):
    run = runs["gpt"]
    learned = run.model.position_embedding_table.weight.detach()  # (block_size, n_embd)
    T, C = learned.shape
    fig, axes = plt.subplots(1, 2, figsize=(11, 5), layout="constrained")
    for ax, table, title in ((axes[0], learned, f"gpt.py's learned position embeddings ({T} × {C})"),
                             (axes[1], sinusoidal_encoding(T, C), "the sinusoidal encoding, same size")):
        im = ax.imshow(cosine_matrix(table).numpy(), cmap="RdBu_r", vmin=-1, vmax=1, interpolation="nearest")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("position")
        ax.set_ylabel("position")
    fig.colorbar(im, ax=axes.tolist(), shrink=0.8, label="cosine similarity of the two positions' vectors")
    return fig


def fig_masked_average(runs, prompt):
    run = runs["bigram_v3"]
    idx = encode_prompt(run, prompt)
    chars = run.tok.decode(idx[0].tolist())
    w = bigram_v3_attention(run.model, idx)[0]  # (n_head, T, T)
    avg = uniform_average(len(chars))
    head = int((w - avg).abs().sum(dim=(-2, -1)).argmax())  # the head least like the plain average
    fig, axes = plt.subplots(1, 2, figsize=(10, 5.2), layout="constrained")
    norm = PowerNorm(gamma=0.5, vmin=0, vmax=1)
    heatmap(axes[0], avg, chars, "the trick: softmax of zeros under a causal mask\n(row t averages 0..t)", norm)
    im = heatmap(axes[1], w[head], chars, f"a trained head (bigram_v3, head {head}):\n"
                 "softmax of q·k under the same mask", norm)
    for ax in axes:
        ax.set_xlabel("the character looked at")
    axes[0].set_ylabel("the character looking")
    fig.colorbar(im, ax=axes.tolist(), shrink=0.8, label="weight")
    return fig


# name -> (stages it needs, needs the text, draw)
FIGURES = {
    "loss-curves": (tuple(STAGES), True, lambda runs, a: fig_loss_curves(runs, a.text, a.tok)),
    "bigram-table": (("bigram_v1",), True, lambda runs, a: fig_bigram_table(runs, a.text, a.tok)),
    "embeddings": (("bigram_v2", "gpt"), False, lambda runs, a: fig_embeddings(runs)),
    "attention-v3": (("bigram_v3",), False, lambda runs, a: fig_attention_v3(runs, a.prompt)),
    "attention-gpt": (("gpt",), False, lambda runs, a: fig_attention_gpt(runs, a.prompt)),
    "positions": (("gpt",), False, lambda runs, a: fig_positions(runs)),
    "masked-average": (("bigram_v3",), False, lambda runs, a: fig_masked_average(runs, a.prompt)),
}


def parse_args(argv):
    p = argparse.ArgumentParser(prog="notes/figures.py", description=__doc__.strip().splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", choices=list(FIGURES), action="append",
                   help="draw this figure only (repeat the flag for several)")
    p.add_argument("--data", metavar="PATH", help="the training text (default: GPT_DATA, else Tiny Shakespeare)")
    p.add_argument("--out-root", metavar="DIR", default=str(ROOT / "out"),
                   help="where the runs are, one folder per stage (default: out/ in the repository)")
    p.add_argument("--img-dir", metavar="DIR", default=str(ROOT / "notes" / "img"),
                   help="where the PNGs go (default: notes/img/, where the notes show them)")
    p.add_argument("--no-train", action="store_true", help="never train: a missing run is an error")
    p.add_argument("--train-args", default="", metavar="FLAGS",
                   help="extra flags for the stage scripts when training, e.g. \"--max-iters 300\" for a "
                        "quick preview (the committed figures use none)")
    p.add_argument("--prompt", default=PROMPT, help=f"the text of the attention figures (default: {PROMPT!r})")
    p.add_argument("--dpi", type=int, default=100)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    names = args.only or list(FIGURES)
    out_root, img_dir = Path(args.out_root), Path(args.img_dir)
    needed = [s for s in STAGES if any(s in FIGURES[n][0] for n in names)]
    try:
        for stage in needed:
            if not is_finished(out_root / stage) and not args.no_train:
                train(stage, out_root / stage, args.data, shlex.split(args.train_args))
        runs = {stage: load_run(stage, out_root / stage) for stage in needed}
        args.text = args.tok = None
        if any(FIGURES[n][1] for n in names):
            args.text = load_text(args.data)
            args.tok = CharTokenizer.from_text(args.text)
        img_dir.mkdir(parents=True, exist_ok=True)
        for name in names:
            fig = FIGURES[name][2](runs, args)
            path = img_dir / f"{name}.png"
            fig.savefig(path, dpi=args.dpi, bbox_inches="tight")
            plt.close(fig)
            print(f"wrote {shown_path(path)} ({path.stat().st_size // 1024} KB)")
    except (FigureError, DataError) as e:
        print(f"notes/figures.py: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
