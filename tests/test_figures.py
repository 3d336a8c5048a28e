"""notes/figures.py draws every figure from runs on disk, and what it draws is what the models compute.

The runs are real and tiny: each stage trained here with helpers.tiny's flags at the sizes of TINY, read
back by runner.load_run exactly as the figures read them. One slow test trains bigram_v1 for a few steps
through the figure command itself.
"""

import importlib
import subprocess
import sys
from collections import Counter

import matplotlib.image
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

import gpt
import runner
from notes import figures

from conftest import PROMPT, REPO_ROOT
from helpers import one_line_error, tiny

TINY = {  # stage -> its changes to helpers.tiny's flags; the embeddings at gpt.py's default width, 128
    "bigram_v1": {},
    "bigram_v2": {"n_embd": 128},
    "bigram_v3": {"n_head": 4, "block_size": 24},
    "gpt": {"n_embd": None, "n_layer": None, "n_head": 8, "block_size": 24},  # more heads than the figure shows
}
SHARP = {0: (2, 5), 1: (0, 7)}  # layer -> the gpt heads made focused: the figure must pick exactly these


@torch.no_grad()
def sharpen(model):
    """Scale up the query and key rows of the SHARP heads: big scores, so each row's softmax is near one-hot."""
    for layer, heads in SHARP.items():
        sa = model.blocks[layer].sa
        C = sa.qkv.in_features
        hs = C // sa.n_head
        for h in heads:
            for start in (h * hs, C + h * hs):  # its query rows, then its key rows: [q heads | k heads | v heads]
                sa.qkv.weight[start : start + hs] *= 30


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory, small_text_path):
    """out/<stage>: every stage's finished run as the runner leaves it, evaluated every 5 steps."""
    root = tmp_path_factory.mktemp("runs")
    for stage in runner.STAGES:  # in this process, as `python <stage>.py` would
        argv = [*tiny(stage, eval_interval=5, max_new_tokens=0, **TINY[stage]), "--data", str(small_text_path)]
        assert importlib.import_module(stage).main([*argv, "--out", str(root / stage)]) == 0
    return root


@pytest.fixture(scope="module")
def runs(tiny_root):
    runs = {stage: runner.load_run(tiny_root / stage, stage) for stage in runner.STAGES}
    sharpen(runs["gpt"].model)  # in memory only: the figures drawn from disk see the trained heads
    return runs


def drawn(ax, i=0):
    """The numbers behind an axes' i-th image, as a float64 tensor; blank (masked) cells are NaN."""
    return torch.tensor(np.ma.filled(ax.images[i].get_array().astype(float), np.nan))


def heatmap_axes(fig):
    return [ax for ax in fig.axes if ax.images and ax.get_title()]  # the panels, not the colour bar


def future_blank(w):
    """w with the masked future (above the diagonal) as NaN, as a heatmap draws it."""
    return w.double().masked_fill(torch.ones_like(w, dtype=torch.bool).triu(1), float("nan"))


# ----------------------------------------------------------------------------------------------------
# the command: every figure drawn, readable, and the errors a user can meet


def test_figures_use_the_agg_backend_and_no_stage_script_imports_matplotlib():
    assert matplotlib.get_backend().lower() == "agg"
    probe = "import sys, bigram_v1, bigram_v2, bigram_v3, gpt, runner; assert 'matplotlib' not in sys.modules"
    subprocess.run([sys.executable, "-c", probe], cwd=REPO_ROOT, check=True)  # its AssertionError: exit status 1


def test_every_figure_is_drawn_from_tiny_runs_about_800_pixels_wide_and_not_one_flat_colour(
        tiny_root, small_text_path, tmp_path, capsys):
    img = tmp_path / "img"
    rc = figures.main(["--out-root", str(tiny_root), "--img-dir", str(img), "--data", str(small_text_path),
                       "--no-train", "--prompt", PROMPT])
    assert rc == 0, capsys.readouterr().err
    for name in figures.FIGURES:
        pixels = matplotlib.image.imread(img / f"{name}.png")  # (H, W, 4) floats in [0, 1]
        height, width = pixels.shape[:2]
        assert 700 <= width <= 1000 and 300 <= height <= 1000, (name, width, height)  # read at ~800 wide
        assert pixels[..., :3].std() > 0.05, f"{name} is almost one colour"
    assert capsys.readouterr().out.count("wrote ") == len(figures.FIGURES)


@pytest.mark.parametrize("only,gpt_files,flags,words", [
    ("positions", {}, [], ["no finished gpt run", "`python gpt.py --out "]),  # and nothing trained: --no-train
    ("positions", {runner.CHECKPOINT: None}, [], ["--resume`"]),  # stopped early: no metrics.json
    ("positions", {runner.BEST: None, runner.METRICS: "[1, 2]"}, [], ["metrics.json is unusable"]),
    ("positions", {runner.BEST: None, runner.METRICS: '{"trunc'}, [], ["metrics.json is unusable"]),
    ("bigram-table", None, ["--data", __file__], ["trained on another text"]),  # this file: a text it never saw
    ("attention-v3", None, ["--prompt", "naïve ☃"], ["not in the vocabulary"]),
])
def test_a_figure_that_cannot_be_drawn_is_one_line_that_says_why(tiny_root, tmp_path, capsys, only, gpt_files,
                                                                  flags, words):
    root = tiny_root if gpt_files is None else tmp_path / "out"  # the tiny runs, or out/gpt holding gpt_files
    for name, text in (gpt_files or {}).items():  # text None: the tiny gpt run's checkpoint
        (root / "gpt").mkdir(parents=True, exist_ok=True)
        (root / "gpt" / name).write_bytes((tiny_root / "gpt" / runner.BEST).read_bytes() if text is None else
                                          text.encode())
    img = tmp_path / "img"
    argv = ["--out-root", str(root), "--img-dir", str(img), "--no-train", "--only", only]
    one_line_error(figures.main(argv + flags), capsys.readouterr().err, *words)
    assert not (img / f"{only}.png").exists()


@pytest.mark.slow
def test_a_missing_run_is_trained_by_running_the_stage_script(tmp_path, small_text_path):
    out, img = tmp_path / "out", tmp_path / "img"
    flags = "--max-iters 5 --eval-iters 1 --eval-interval 5 --batch-size 4 --max-new-tokens 0 --final-eval 100"
    cmd = [sys.executable, "-m", "notes.figures", "--only", "bigram-table", "--out-root", str(out),
           "--img-dir", str(img), "--data", str(small_text_path), "--train-args", flags]
    done = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "training bigram_v1: python bigram_v1.py --out " in done.stdout
    assert runner.load_run(out / "bigram_v1", "bigram_v1").metrics["iters"] == 5
    assert (img / "bigram-table.png").stat().st_size > 10_000
    assert not (out / "gpt").exists()  # only the stage this figure needs


# ----------------------------------------------------------------------------------------------------
# what each figure claims


def test_the_loss_curves_show_step_0_on_the_steps_panel_only(runs):
    fig = figures.fig_loss_curves(runs)
    ax_s, ax_i = fig.axes[:2]
    history = runs["gpt"].metrics["history"]
    assert ax_s.get_xscale() == "log"
    curves = [line for line in ax_s.lines if len(line.get_xdata()) > 2]  # not the horizontal reference lines
    assert len(curves) == 2 * len(runs)  # val and train of every stage
    # gpt's val curve: step 0 (at 0 s) left out of the log axis
    assert list(curves[-2].get_xdata()) == [e["seconds"] for e in history if e["iter"] > 0]
    steps = [line for line in ax_i.lines if len(line.get_xdata()) > 2]
    # gpt's val curve, from step 0
    assert list(zip(steps[-2].get_xdata(), steps[-2].get_ydata())) == [(e["iter"], e["val"]) for e in history]
    assert len(fig.legends) == 1  # one legend for both panels


def test_the_bigram_table_draws_the_learned_softmax_and_the_counts_of_the_most_frequent_characters(runs, small_text):
    fig = figures.fig_bigram_table(runs, small_text)
    learned_ax, counted_ax = heatmap_axes(fig)
    tok, train = runs["bigram_v1"].tok, small_text[: int(0.9 * len(small_text))]
    pairs, firsts = Counter(zip(train, train[1:])), Counter(train[:-1])
    top = sorted((c for c, _ in firsts.most_common(figures.TOP_CHARS)), key=tok.stoi.get)  # in vocabulary order
    ids = [tok.stoi[c] for c in top]
    assert [t.get_text() for t in counted_ax.get_xticklabels()] == [figures.show(c) for c in top]
    learned = F.softmax(runs["bigram_v1"].model.token_embedding_table.weight.detach().double(), dim=-1)  # (V, V)
    counted = torch.tensor([[pairs[a, b] / max(firsts[a], 1) for b in tok.chars] for a in tok.chars],
                           dtype=torch.float64)  # (V, V): P(next | current)
    assert_close(drawn(learned_ax), learned[ids][:, ids])
    assert_close(drawn(counted_ax), counted[ids][:, ids])
    # the title's number: half the summed gap between the two full rows, averaged over the characters seen
    seen = [tok.stoi[a] for a in tok.chars if firsts[a]]
    tv = 0.5 * (learned - counted)[seen].abs().sum(dim=1).mean()
    assert f"rows differ by {tv:.3f} in total variation" in fig.get_suptitle()


def test_the_embeddings_figure_places_every_character_along_the_two_widest_directions(runs):
    fig = figures.fig_embeddings(runs)
    for ax, stage in zip(fig.axes, ("bigram_v2", "gpt")):
        # 128 numbers per character, gpt.py's default: wider than V, where a projection on Vh's columns fails
        W = runs[stage].model.token_embedding_table.weight.detach().double()  # (V, 128)
        centred = W - W.mean(dim=0)
        _, vectors = torch.linalg.eigh(centred.T @ centred)  # ascending eigenvalues: the widest directions last
        assert [t.get_text() for t in ax.texts] == [figures.show(c) for c in runs[stage].tok.chars]
        got = torch.tensor([t.get_position() for t in ax.texts], dtype=torch.float64)  # (V, 2)
        assert_close(got.abs(), (centred @ vectors[:, [-1, -2]]).abs())  # an eigenvector's sign is arbitrary
        assert ax.get_legend() is None
    assert len(fig.legends) == 1  # one for both panels


def test_the_masked_average_is_the_softmax_of_zeros_under_the_mask(runs):
    T = len(PROMPT)
    zeros = torch.zeros(1, T, 1)  # q and k of zeros: every score 0
    assert_close(figures.causal_softmax(zeros, zeros)[0], figures.uniform_average(T))
    left = drawn(heatmap_axes(figures.fig_masked_average(runs, PROMPT))[0])
    assert_close(left, future_blank(figures.uniform_average(T)), equal_nan=True)


def test_the_positions_figure_compares_the_cosines_of_the_learned_and_the_sinusoidal_tables(runs):
    learned = runs["gpt"].model.position_embedding_table.weight.detach().double()  # (T, C)
    sinusoidal = figures.sinusoidal_encoding(*learned.shape)
    for ax, table in zip(heatmap_axes(figures.fig_positions(runs)), (learned, sinusoidal), strict=True):
        unit = F.normalize(table, dim=1)  # each row of length 1: unit @ unit.T holds the cosines
        assert_close(drawn(ax), unit @ unit.T)


def test_the_sinusoids_figure_draws_the_papers_formula_at_gpts_size():
    fig = figures.fig_sinusoids()
    T, C = gpt.HYPERPARAMETERS["block_size"][0], gpt.HYPERPARAMETERS["n_embd"][0]  # 128 x 128
    pe = figures.sinusoidal_encoding(T, C)
    # PE(pos, 2i) = sin(pos / 10000^(2i/C)), PE(pos, 2i+1) = cos(...); at 2i = C/2 the divisor is 100, so
    # position 100 turns columns 64 and 65 by exactly one radian (Vaswani et al. 2017, section 3.5)
    by_hand = torch.tensor([np.sin(100), np.cos(100), np.sin(1), np.cos(1)], dtype=torch.float64)
    assert_close(pe[100, [0, 1, C // 2, C // 2 + 1]], by_hand)
    curves, table = fig.axes[:2]
    assert_close(drawn(table), torch.cat([pe[:, 0::2], pe[:, 1::2]], dim=1))  # rows: positions; sin, then cos
    for j, (line, c) in enumerate(zip(curves.lines, figures.SINUSOID_COLUMNS, strict=True)):  # a curve each
        assert_close(torch.tensor(line.get_ydata(), dtype=torch.float64) + figures.SHIFT * j, pe[:, c])
    assert "column 0 (sin):\none turn every 6.28" in [t.get_text() for t in curves.texts]


@pytest.mark.parametrize("stage", ["bigram_v3", "gpt"])
@torch.no_grad()
def test_the_attention_weights_are_each_layers_own_and_the_figures_draw_the_heads_they_name(runs, stage):
    """The weights the figures and the explorer show are the layers' own: each row a distribution over the
    past only, and with the layer's own values (and projection) exactly what the layer outputs. The figure
    draws the prompt's weights (row 0 here) of the heads its panels name."""
    model, ids = runs[stage].model, runs[stage].tok.encode(PROMPT)  # in eval mode: the output is deterministic
    idx = torch.tensor([ids, ids[::-1]])  # (B, T) = (2, 14): the prompt, and a second row
    layers = [model.sa_heads] if stage == "bigram_v3" else [block.sa for block in model.blocks]
    seen = []  # (its input, its output) of each layer
    hooks = [m.register_forward_hook(lambda m, args, out: seen.append((args[0], out))) for m in layers]
    model(idx)
    for hook in hooks:
        hook.remove()
    if stage == "bigram_v3":  # every head
        fig, weights = figures.fig_attention_v3(runs, PROMPT), [figures.bigram_v3_attention(model, idx)]
        heads = {f"head {h}": (0, h) for h in range(TINY[stage]["n_head"])}
    else:  # the most focused of each layer: not the first heads, not the least focused
        fig, weights = figures.fig_attention_gpt(runs, PROMPT), figures.gpt_attention(model, idx)
        heads = {f"layer {layer}, head {h}": (layer, h) for layer, hs in SHARP.items() for h in hs}
        assert "2 most focused of each layer's 8 heads" in fig.get_suptitle()
    for w, layer, (x, out) in zip(weights, layers, seen, strict=True):  # w: (B, n_head, T, T), one per layer
        B, T, C = x.shape
        assert_close(w.sum(-1), torch.ones(w.shape[:-1]))  # every row a weighted average...
        assert (w.triu(1) == 0).all()  # ...of the past only
        if stage == "bigram_v3":
            heads_out = torch.cat([w[:, i] @ head.value(x) for i, head in enumerate(layer.heads)], dim=-1)  # (B, T, C)
        else:
            v = layer.qkv(x).view(B, T, 3, layer.n_head, C // layer.n_head)[:, :, 2].transpose(1, 2)  # (B, nh, T, hs)
            heads_out = layer.proj((w @ v).transpose(1, 2).reshape(B, T, C))  # the heads side by side, mixed
        assert_close(heads_out, out)
    panels = heatmap_axes(fig)
    assert [ax.get_title() for ax in panels] == list(heads)
    for ax, (layer, head) in zip(panels, heads.values()):
        assert_close(drawn(ax), future_blank(weights[layer][0, head]), equal_nan=True)
