"""notes/figures.py: draw every figure the notes show, from the four stages' default runs.

Run it from the repository root:

    python -m notes.figures                        # train any stage not yet run, then draw every figure
    python -m notes.figures --only attention-gpt   # redraw one figure (repeat --only for several)
    python -m notes.figures --no-train             # draw from the runs already in out/ only
    python -m notes.figures --help                 # every flag

A figure is drawn from a finished run of a stage, out/<stage>/, read by runner.load_run: the model the run
kept (best.pt) and its metrics.json. A stage with no finished run is trained first with its default
settings (`python gpt.py --out out/gpt`), progress bar and all: seconds for the bigram stages, a few
minutes for gpt.py on a laptop CPU. The sinusoids figure needs no run: it is the paper's formula.

The figures (--only NAME): loss-curves, every stage's train and val loss; bigram-table, bigram_v1's learned
table beside the counted one; embeddings, the token embeddings of bigram_v2 and gpt.py in two dimensions;
attention-v3 and attention-gpt, attention weights on a line of a play; positions, how alike gpt.py's
learned position vectors are, beside the sinusoidal ones; sinusoids, the sinusoidal encoding itself;
masked-average, the lecture's averaging trick beside a trained head.

The images go to notes/img/, where the notes show them. Each is drawn to be read at about 800 pixels wide,
the width a browser gives it. Matplotlib is needed here and nowhere else: the stage scripts never import it.
"""

import argparse
import hashlib
import math
import shlex
import string
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no window: works on a server and in tests
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from matplotlib.colors import PowerNorm  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

import gpt  # noqa: E402
import runner  # noqa: E402
from data import DataError, load_text, split  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
COLORS = {"bigram_v1": "tab:gray", "bigram_v2": "tab:orange", "bigram_v3": "tab:green", "gpt": "tab:blue"}
# A short speech from the validation split (The Taming of the Shrew, act 4), so no model has trained on it;
# short, so that each character's row and column can be read
PROMPT = "GRUMIO:\nWhere is he?"
HEADS_PER_LAYER = 2  # gpt.py's attention figure shows this many heads of each layer, the most focused ones
TOP_CHARS = 30  # the bigram table shows the most frequent characters only, so that each cell can be read
LECTURE_VAL = 1.48  # the val loss the lecture's 10.8M-parameter GPT reaches on a GPU
WIDTH, DPI = 8.5, 100  # inches and dots per inch: 850 pixels, close to the 800 a browser shows
STYLE = {"font.size": 10, "axes.titlesize": 10, "xtick.labelsize": 9, "ytick.labelsize": 9, "legend.fontsize": 9}


def show(c):
    """How a character is written on an axis: visible marks for the space and the newline."""
    return {" ": "␣", "\n": "↵", "$": r"\$"}.get(c, c)


def shown(path):
    """A path as the user would type it: relative to the current directory when it is inside it."""
    path = Path(path).resolve()
    return str(path.relative_to(Path.cwd().resolve())) if path.is_relative_to(Path.cwd().resolve()) else str(path)


# ----------------------------------------------------------------------------------------------------
# runs: load the finished ones, train the missing ones


def finished_run(stage, args):
    """The finished run of stage under --out-root, trained first (with the stage's defaults) if need be."""
    out = Path(args.out_root) / stage
    started = any((out / name).is_file() for name in (runner.BEST, runner.CHECKPOINT))
    run = runner.load_run(out, stage) if started else None  # a broken checkpoint: load_run's one line
    if run is not None and run.metrics is not None:  # metrics.json: the run has finished
        return run
    flags = (["--data", args.data] if args.data else []) + shlex.split(args.train_args)
    flags += ["--resume"] if run is not None else []  # a checkpoint without metrics: a run stopped early
    cmd = shlex.join([f"{stage}.py", "--out", shown(out), *flags])
    if args.no_train:
        raise DataError(f"no finished {stage} run in {shown(out)}; train it with `python {cmd}` (or draw "
                        f"the figures without --no-train)")
    print(f"training {stage}: python {cmd}", flush=True)
    from bench.run import launch  # here: the benchmark's imports are needed only to train

    launch(stage, out, flags)
    return runner.load_run(out, stage)


def encode_prompt(run, prompt):
    if any(c not in run.tok.stoi for c in prompt):
        raise DataError(f"--prompt for {run.stage}: {run.tok.unknown_message(prompt)}")
    ids = run.tok.encode(prompt)[-run.cfg["block_size"] :]  # a model sees at most block_size characters
    return torch.tensor([ids])  # (1, T)


# ----------------------------------------------------------------------------------------------------
# what the figures show, computed apart from the drawing so that the tests can check it


def capture(model, modules, *inputs):
    """Run model(*inputs) and return what each of modules received as its first argument."""
    seen = {}
    handles = [m.register_forward_pre_hook(lambda module, args: seen.setdefault(module, args[0])) for m in modules]
    try:
        model(*inputs)
    finally:
        for h in handles:
            h.remove()
    return [seen.get(m) for m in modules]


def causal_softmax(q, k):
    """softmax(q kᵀ / sqrt(head_size)) with the future masked: (..., T, hs) x2 -> (..., T, T)."""
    T = q.size(-2)
    scores = q @ k.transpose(-2, -1) * k.size(-1) ** -0.5  # (..., T, T)
    future = torch.ones(T, T, dtype=torch.bool).triu(1)  # (T, T): True above the diagonal
    return F.softmax(scores.masked_fill(future, float("-inf")), dim=-1)


@torch.no_grad()
def bigram_v3_attention(model, idx):
    """Every head's weights in bigram_v3: (B, n_head, T, T), from its own key and query."""
    (x,) = capture(model, [model.sa_heads], idx)  # (B, T, n_embd): tok_emb + pos_emb
    return torch.stack([causal_softmax(h.query(x), h.key(x)) for h in model.sa_heads.heads], dim=1)


@torch.no_grad()
def gpt_attention(model, idx):
    """Every layer's weights in gpt.py: a list of (B, n_head, T, T), one per block.

    gpt.py never builds these: scaled_dot_product_attention computes the same softmax inside one call.
    Here they come from the very q and k the layer makes, sa.qkv(ln1(x)), split into heads as it splits them.
    """
    inputs = capture(model, [b.sa for b in model.blocks], idx)  # each (B, T, C): ln1 of the stream
    weights = []
    for sa, h in zip([b.sa for b in model.blocks], inputs):
        B, T, C = h.shape
        q, k, _ = sa.qkv(h).view(B, T, 3, sa.n_head, C // sa.n_head).permute(2, 0, 3, 1, 4)  # (B, nh, T, hs)
        weights.append(causal_softmax(q, k))
    return weights


def uniform_average(T):
    """The lecture's "mathematical trick": row t averages positions 0..t equally. (T, T)."""
    tril = torch.tril(torch.ones(T, T))
    return tril / tril.sum(dim=1, keepdim=True)


def most_focused(w, k):
    """Of w's heads, (n_head, T, T), the k whose rows have the lowest mean entropy: the least like an even
    average, so the most telling to look at. In head order."""
    entropy = -(w * w.clamp_min(1e-12).log()).sum(-1).mean(-1)  # (n_head,)
    return sorted(entropy.argsort()[:k].tolist())


def sinusoidal_encoding(T, d_model):
    """Vaswani et al. 2017, section 3.5: PE(pos, 2i) = sin(pos / 10000^(2i/d_model)), PE(pos, 2i+1) = cos(...).
    (T, d_model), float64."""
    omega = 10000.0 ** (-torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)  # (d_model/2,)
    angle = torch.arange(T, dtype=torch.float64)[:, None] * omega  # (T, d_model/2)
    pe = torch.zeros(T, d_model, dtype=torch.float64)
    pe[:, 0::2], pe[:, 1::2] = torch.sin(angle), torch.cos(angle)
    return pe


# ----------------------------------------------------------------------------------------------------
# the figures: each takes what it shows and returns a matplotlib Figure


def char_axes(ax, chars):
    labels = [show(c) for c in chars]
    ax.set_xticks(range(len(chars)), labels)
    ax.set_yticks(range(len(chars)), labels)
    ax.tick_params(length=0, pad=2)


def heatmap(ax, w, chars, title, norm):
    """A (T, T) attention pattern: row = the position looking, column = the position looked at."""
    T = len(chars)
    w = w.clone().double()
    w[torch.ones(T, T, dtype=torch.bool).triu(1)] = float("nan")  # the masked future: drawn blank
    cmap = plt.get_cmap("Blues").with_extremes(bad="#f2f2f2")
    im = ax.imshow(w.numpy(), cmap=cmap, norm=norm, interpolation="nearest")
    char_axes(ax, chars)
    ax.set_title(title)
    return im


def attention_grid(panels, chars, cols, title):
    """One heatmap per (weights (T, T), title) in panels, cols to a row; tick labels on the outer edges only."""
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(WIDTH, rows * (WIDTH - 1.5) / cols + 1.2), squeeze=False,
                             sharex=True, sharey=True, layout="constrained")
    norm = PowerNorm(gamma=0.5, vmin=0, vmax=1)  # stretches the small weights so they show
    for ax, (w, name) in zip(axes.flat, panels):
        im = heatmap(ax, w, chars, name, norm)
    for ax in axes.flat[len(panels) :]:
        ax.axis("off")
    fig.supylabel("query: the character looking")
    fig.supxlabel("key: the character looked at")
    fig.colorbar(im, ax=axes, shrink=0.7, label="attention weight")
    fig.suptitle(title)
    return fig


def fig_loss_curves(runs):
    fig, (ax_s, ax_i) = plt.subplots(1, 2, figsize=(WIDTH, 4.6), sharey=True, layout="constrained")
    floor, V = runs["bigram_v1"].metrics["bigram_floor"], runs["bigram_v1"].tok.vocab_size
    for stage, run in runs.items():
        history = run.metrics["history"]
        later = [e for e in history if e["iter"] > 0]  # step 0 is at 0 s, which a log axis cannot show
        for ax, key, points in ((ax_s, "seconds", later), (ax_i, "iter", history)):
            xs = [e[key] for e in points]
            ax.plot(xs, [e["val"] for e in points], color=COLORS[stage], lw=2, marker="o", ms=3, label=stage)
            ax.plot(xs, [e["train"] for e in points], color=COLORS[stage], lw=1, ls="--")
    lines = ((math.log(V), f"ln {V} = {math.log(V):.2f}: a uniform guess", "black", ":", "bottom"),
             (floor, f"bigram floor {floor:.2f}", "crimson", "-.", "top"),
             (LECTURE_VAL, f"the lecture's GPT ≈ {LECTURE_VAL}", "dimgray", ":", "top"))
    for y, label, colour, style, where in lines:
        for ax in (ax_s, ax_i):
            ax.axhline(y, color=colour, lw=0.9, ls=style)
        ax_i.text(0.98, y, label, color=colour, ha="right", va=where, transform=ax_i.get_yaxis_transform())
    for ax in (ax_s, ax_i):
        ax.grid(alpha=0.3)
    ax_s.set_xscale("log")
    ax_s.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # labels at 1, 10, 100 s only
    ax_s.set_xlabel("seconds of training (log scale)")
    ax_i.set_xlabel("training step (step 0 is on this side only)")
    ax_s.set_ylabel("loss (nats per character)")
    styles = [Line2D([], [], color="black", lw=2, label="val"),  # the legend's last two entries: line styles
              Line2D([], [], color="black", lw=1, ls="--", label="train")]
    fig.legend(handles=ax_i.get_legend_handles_labels()[0] + styles, ncol=len(runs) + 2,
               loc="outside lower center")
    fig.suptitle("The four stages' default runs: train and val loss estimates")
    return fig


def fig_bigram_table(runs, text):
    run = runs["bigram_v1"]
    if hashlib.sha256(text.encode("utf-8")).hexdigest() != run.metrics["text_sha256"]:
        raise DataError(f"the bigram_v1 run in {shown(Path(run.path).parent)} was trained on another "
                        f"text; pass that text with --data")
    train, _ = split(torch.tensor(run.tok.encode(text)))
    counts = torch.zeros(len(run.tok.chars), len(run.tok.chars), dtype=torch.float64)  # (V, V): b after a
    counts.index_put_((train[:-1], train[1:]), torch.ones(len(train) - 1, dtype=torch.float64), accumulate=True)
    freq = counts.sum(dim=1)  # (V,): how often each character is followed by another
    learned = F.softmax(run.model.token_embedding_table.weight.detach().double(), dim=-1)  # (V, V)
    counted = counts / freq[:, None].clamp_min(1)  # (V, V): P(next | current)
    tv = 0.5 * (learned - counted).abs().sum(dim=1)[freq > 0].mean()  # per row: 0 identical, 1 disjoint
    top = freq.argsort(descending=True)[:TOP_CHARS].sort().values  # the most frequent, in vocabulary order
    chars = [run.tok.chars[i] for i in top]
    fig, axes = plt.subplots(1, 2, figsize=(WIDTH, 5.2), sharey=True, layout="constrained")
    norm = PowerNorm(gamma=0.4, vmin=0, vmax=1)  # stretches the small probabilities so they show
    for ax, table, title in ((axes[0], learned, "learned by bigram_v1:\nsoftmax of each row of its table"),
                             (axes[1], counted, "counted on the train split:\nP(next | current)")):
        im = ax.imshow(table[top][:, top].numpy(), cmap="magma_r", norm=norm, interpolation="nearest")
        char_axes(ax, chars)
        ax.set_title(title)
        ax.set_xlabel("next character")
    axes[0].set_ylabel("current character")
    fig.colorbar(im, ax=axes, shrink=0.7, label="probability (scale stretched for small values)")
    fig.suptitle(f"Gradient descent rediscovers the counts: rows differ by {tv:.3f} in total variation on\n"
                 f"average (0 = identical). Shown: the {len(top)} most frequent characters, "
                 f"{freq[top].sum() / freq.sum():.0%} of the text")
    return fig


CATEGORIES = (  # (label, test, colour)
    ("vowel a e i o u", lambda c: c in "aeiou", "tab:red"),
    ("consonant (lower case)", lambda c: c.islower(), "tab:blue"),
    ("upper case", lambda c: c.isupper(), "tab:purple"),
    ("punctuation", lambda c: c in string.punctuation, "tab:green"),
    ("space, newline, digit", lambda c: True, "black"),
)


def embedding_map(table):
    """A (N, C) table's rows along the two directions in which they differ most, as the embeddings figure and
    the explorer draw them (PCA: the SVD of the centred table). Returns (N, 2) points and each direction's share
    of the variance."""
    W = table.detach().double()
    centred = W - W.mean(dim=0)
    _, S, Vh = torch.linalg.svd(centred, full_matrices=False)
    xy = centred @ Vh[:2].T  # (N, 2), or (N, 1) for a table one column wide
    share = (S[:2] ** 2 / (S**2).sum()).nan_to_num(0.0)  # nan for a table whose rows are all alike
    pad = 2 - xy.size(1)
    return F.pad(xy, (0, pad)), F.pad(share, (0, pad))


def fig_embeddings(runs):
    fig, axes = plt.subplots(1, 2, figsize=(WIDTH, 4.8), layout="constrained")
    for ax, stage in zip(axes, ("bigram_v2", "gpt")):
        run = runs[stage]
        W = run.model.token_embedding_table.weight  # (V, n_embd)
        xy, share = embedding_map(W)  # (V, 2): the two directions along which the rows differ most
        for (x, y), c in zip(xy.tolist(), run.tok.chars):
            colour = next(colour for _, test, colour in CATEGORIES if test(c))
            ax.text(x, y, show(c), color=colour, fontsize=10, ha="center", va="center")
        ax.scatter(*xy.T.numpy(), s=0)  # invisible points: text does not widen the axes, points do
        ax.set_xlabel(f"direction 1 ({share[0]:.0%} of the variance)")
        ax.set_ylabel(f"direction 2 ({share[1]:.0%})")
        ax.set_title(f"{stage}: {W.shape[1]} numbers per character")
        ax.grid(alpha=0.2)
    handles = [Line2D([], [], ls="", marker="s", color=colour, label=label) for label, _, colour in CATEGORIES]
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), handletextpad=0.2)
    fig.suptitle("Token embeddings seen from their widest angle: the two directions of most variance")
    return fig


def fig_attention_v3(runs, prompt):
    run = runs["bigram_v3"]
    idx = encode_prompt(run, prompt)
    w = bigram_v3_attention(run.model, idx)[0]  # (n_head, T, T)
    return attention_grid([(w[i], f"head {i}") for i in range(w.size(0))], run.tok.decode(idx[0].tolist()),
                          min(2, w.size(0)), "bigram_v3: each head's attention weights on a line it never trained on")


def fig_attention_gpt(runs, prompt):
    run = runs["gpt"]
    idx = encode_prompt(run, prompt)
    layers = [w[0] for w in gpt_attention(run.model, idx)]  # each (n_head, T, T)
    n = layers[0].size(0)
    k = min(HEADS_PER_LAYER, n)
    panels = [(w[h], f"layer {layer}, head {h}") for layer, w in enumerate(layers) for h in most_focused(w, k)]
    which = f"the {k} most focused of each layer's {n} heads" if k < n else "every head of every layer"
    return attention_grid(panels, run.tok.decode(idx[0].tolist()), k,
                          f"gpt.py: {which}, weights from the layer's own q and k")


def fig_positions(runs):
    learned = runs["gpt"].model.position_embedding_table.weight.detach()  # (block_size, n_embd)
    T, C = learned.shape
    fig, axes = plt.subplots(1, 2, figsize=(WIDTH, 4.4), sharey=True, layout="constrained")
    for ax, table, title in ((axes[0], learned, f"gpt.py's learned table ({T} × {C})"),
                             (axes[1], sinusoidal_encoding(T, C), "the sinusoidal encoding, same size")):
        unit = F.normalize(table.double(), dim=1)  # (T, C): every position's vector scaled to length 1
        im = ax.imshow((unit @ unit.T).numpy(), cmap="RdBu_r", vmin=-1, vmax=1, interpolation="nearest")
        ax.set_title(title)
        ax.set_xlabel("position")
    axes[0].set_ylabel("position")
    fig.colorbar(im, ax=axes, shrink=0.8, label="cosine similarity of two positions' vectors")
    return fig


SINUSOID_COLUMNS = (0, 1, 16, 32, 64)  # the columns drawn as curves: one sin/cos pair, then slower ones
SHIFT = 2.5  # each curve drawn this far below the one before


def fig_sinusoids():
    T, C = gpt.HYPERPARAMETERS["block_size"][0], gpt.HYPERPARAMETERS["n_embd"][0]  # gpt.py's default size
    pe = sinusoidal_encoding(T, C)  # (T, C)
    fig, (ax_c, ax_t) = plt.subplots(1, 2, figsize=(WIDTH, 4.6), layout="constrained")
    for j, c in enumerate(SINUSOID_COLUMNS):
        ax_c.plot(pe[:, c].numpy() - SHIFT * j, lw=1.5)
        period = 2 * math.pi * 10000 ** ((c - c % 2) / C)  # positions per turn: 2π / ω_i, with 2i = c - c % 2
        ax_c.text(-4, -SHIFT * j, f"column {c} ({'cos' if c % 2 else 'sin'}):\none turn every {period:.3g}",
                  ha="right", va="center")
    ax_c.set(yticks=[], xlabel="position", title="a few columns against position")
    # the sin columns, then the cos columns: side by side, a sin and a cos column would draw as thin stripes
    halves = torch.cat([pe[:, 0::2], pe[:, 1::2]], dim=1)  # (T, C)
    im = ax_t.imshow(halves.numpy(), cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto", interpolation="nearest")
    ax_t.axvline(C / 2 - 0.5, color="black", lw=1)
    ax_t.set_xticks([0, C // 4, C // 2, 3 * C // 4], ["sin\ni = 0", f"{C // 4}", "cos\ni = 0", f"{C // 4}"])
    ax_t.set(xlabel="i: column 2i is sin, column 2i + 1 is cos", ylabel="position",
             title="all columns: one row per position")
    fig.colorbar(im, ax=ax_t, label="value")
    fig.suptitle(f"The sinusoidal encoding at gpt.py's size: {T} positions × {C} dimensions")
    return fig


def fig_masked_average(runs, prompt):
    run = runs["bigram_v3"]
    idx = encode_prompt(run, prompt)
    w = bigram_v3_attention(run.model, idx)[0]  # (n_head, T, T)
    avg = uniform_average(idx.size(1))
    head = int((w - avg).abs().sum(dim=(-2, -1)).argmax())  # the head least like the plain average
    panels = [(avg, "the trick: softmax of zeros\nunder a causal mask"),
              (w[head], f"bigram_v3's head {head}: softmax\nof q·k under the same mask")]
    return attention_grid(panels, run.tok.decode(idx[0].tolist()), 2,
                          "An even average of the past, and a trained head's weights")


# name -> (the stages it needs, draw(runs, args))
FIGURES = {
    "loss-curves": (runner.STAGES, lambda runs, a: fig_loss_curves(runs)),
    "bigram-table": (("bigram_v1",), lambda runs, a: fig_bigram_table(runs, load_text(a.data))),
    "embeddings": (("bigram_v2", "gpt"), lambda runs, a: fig_embeddings(runs)),
    "attention-v3": (("bigram_v3",), lambda runs, a: fig_attention_v3(runs, a.prompt)),
    "attention-gpt": (("gpt",), lambda runs, a: fig_attention_gpt(runs, a.prompt)),
    "positions": (("gpt",), lambda runs, a: fig_positions(runs)),
    "sinusoids": ((), lambda runs, a: fig_sinusoids()),
    "masked-average": (("bigram_v3",), lambda runs, a: fig_masked_average(runs, a.prompt)),
}


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m notes.figures", description=__doc__.strip().splitlines()[0])
    p.add_argument("--only", choices=list(FIGURES), action="append", metavar="NAME",
                   help=f"draw this figure only; repeat for several; one of: {', '.join(FIGURES)}")
    p.add_argument("--out-root", metavar="DIR", default=str(ROOT / "out"),
                   help="where the runs are, one folder per stage (default: out/ in the repository)")
    p.add_argument("--img-dir", metavar="DIR", default=str(ROOT / "notes" / "img"),
                   help="where the PNGs go (default: notes/img/, where the notes show them)")
    p.add_argument("--no-train", action="store_true",
                   help="never train: a missing run is an error that names the command to train it")
    p.add_argument("--data", metavar="PATH", help="the training text (default: GPT_DATA, else Tiny Shakespeare)")
    p.add_argument("--train-args", default="", metavar="FLAGS",
                   help='extra flags for the stage scripts when they train, e.g. "--max-iters 300" for a quick '
                        "preview (the committed figures use none)")
    p.add_argument("--prompt", default=PROMPT, help=f"the text of the attention figures (default: {PROMPT!r})")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    names = list(dict.fromkeys(args.only or FIGURES))  # each once, in the order asked
    try:
        runs = {s: finished_run(s, args) for s in runner.STAGES if any(s in FIGURES[n][0] for n in names)}
        Path(args.img_dir).mkdir(parents=True, exist_ok=True)
        for name in names:
            path = Path(args.img_dir) / f"{name}.png"
            with plt.rc_context(STYLE):  # sizes for a figure read at 800 pixels wide
                fig = FIGURES[name][1](runs, args)
                fig.savefig(path, dpi=DPI, bbox_inches="tight")
            plt.close(fig)
            print(f"wrote {shown(path)} ({path.stat().st_size // 1024} KB)")
    except DataError as e:
        print(f"notes.figures: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
