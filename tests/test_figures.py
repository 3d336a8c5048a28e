"""notes/figures.py draws every figure from runs on disk, and what it draws is what the models compute.

The runs are tiny: models built here and saved in the runner's format (best.pt with "stage", "model",
"config", "tokenizer"; metrics.json with a "history", the bigram floor and the text's checksum), read back
by runner.load_run exactly as the figures read them. One slow test trains bigram_v1 for a few steps
through the figure command itself.
"""

import hashlib
import importlib
import json
import math
import subprocess
import sys
from collections import Counter
from types import SimpleNamespace

import matplotlib.image
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

import bigram_v3
import gpt
import runner
from data import CharTokenizer, split
from notes import figures

from conftest import PROMPT, REPO_ROOT

TINY = {  # stage -> sizes small enough to build and draw in a blink
    "bigram_v1": {},
    "bigram_v2": {"n_embd": 8},
    "bigram_v3": {"n_embd": 16, "n_head": 4, "block_size": 24},
    "gpt": {"n_embd": 32, "n_head": 8, "n_layer": 2, "block_size": 24},  # more heads than the figure shows
}
SHARP = {0: (2, 5), 1: (0, 7)}  # layer -> the gpt heads made focused: the figure must pick exactly these


def tiny_config(stage):
    table = importlib.import_module(stage).HYPERPARAMETERS
    return {**{name: entry[0] for name, entry in table.items()}, **TINY[stage]}


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


def save_run(out, stage, text, seed):
    """A finished run as the runner leaves it (best.pt, metrics.json), with the model at its seeded init."""
    torch.manual_seed(seed)
    cfg, tok = tiny_config(stage), CharTokenizer.from_text(text)
    model = importlib.import_module(stage).build_model(cfg, tok.vocab_size)
    if stage == "gpt":
        sharpen(model)
    # step 0 is a hair after 0 s, as in a real run; seconds count training only
    history = [{"iter": i, "seconds": 1e-5 + 0.1 * i, "train": 4.2 - 0.1 * i, "val": 4.25 - 0.09 * i}
               for i in range(0, 12, 3)]
    out.mkdir(parents=True)
    state = {"stage": stage, "model": model.state_dict(), "config": cfg, "tokenizer": tok.to_dict(), **history[-1]}
    torch.save(state, out / runner.BEST)
    train, val = split(torch.tensor(tok.encode(text)))
    metrics = {"history": history, "bigram_floor": runner.bigram_floor(train, val, tok.vocab_size), "config": cfg,
               "text_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest()}
    (out / runner.METRICS).write_text(json.dumps(metrics))


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory, small_text):
    root = tmp_path_factory.mktemp("runs")
    for seed, stage in enumerate(runner.STAGES):
        save_run(root / stage, stage, small_text, seed)
    return root


@pytest.fixture(scope="module")
def runs(tiny_root):
    return {stage: runner.load_run(tiny_root / stage, stage) for stage in runner.STAGES}


def drawn(ax, i=0):
    """The numbers behind an axes' i-th image, as a float64 tensor; blank (masked) cells are NaN."""
    return torch.tensor(np.ma.filled(ax.images[i].get_array().astype(float), np.nan))


def heatmap_axes(fig):
    return [ax for ax in fig.axes if ax.images and ax.get_title()]  # the panels, not the colour bar


def future_blank(w):
    """w with the masked future (above the diagonal) as NaN, as a heatmap draws it."""
    w = w.clone().double()
    w[torch.ones_like(w, dtype=torch.bool).triu(1)] = float("nan")
    return w


# ----------------------------------------------------------------------------------------------------
# the command: every figure drawn, readable, and the errors a user can meet


def test_figures_use_the_agg_backend_and_no_stage_script_imports_matplotlib():
    assert matplotlib.get_backend().lower() == "agg"
    probe = "import sys, bigram_v1, bigram_v2, bigram_v3, gpt, runner; print('matplotlib' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


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


def test_a_missing_run_with_no_training_is_one_line_naming_the_command(tmp_path, capsys):
    rc = figures.main(["--out-root", str(tmp_path / "out"), "--img-dir", str(tmp_path / "img"), "--no-train",
                       "--only", "positions"])
    err = capsys.readouterr().err
    assert rc == 1
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "no finished gpt run" in err and "`python gpt.py --out " in err
    assert not (tmp_path / "img" / "positions.png").exists()


def test_a_run_stopped_early_is_named_with_the_command_that_resumes_it(tiny_root, tmp_path, capsys):
    stopped = tmp_path / "out" / "gpt"
    stopped.mkdir(parents=True)
    (stopped / runner.CHECKPOINT).write_bytes((tiny_root / "gpt" / runner.BEST).read_bytes())  # no metrics.json
    rc = figures.main(["--out-root", str(tmp_path / "out"), "--img-dir", str(tmp_path / "img"), "--no-train",
                       "--only", "positions"])
    assert rc == 1 and "--resume`" in capsys.readouterr().err


@pytest.mark.parametrize("metrics", ["[1, 2]", '{"history": [{"iter": "10"}]}', '{"trunc'])
def test_an_edited_or_truncated_metrics_file_is_one_line(metrics, tiny_root, tmp_path, capsys):
    out = tmp_path / "out" / "gpt"
    out.mkdir(parents=True)
    (out / runner.BEST).write_bytes((tiny_root / "gpt" / runner.BEST).read_bytes())
    (out / runner.METRICS).write_text(metrics)
    rc = figures.main(["--out-root", str(tmp_path / "out"), "--img-dir", str(tmp_path / "img"), "--no-train",
                       "--only", "positions"])
    err = capsys.readouterr().err
    assert rc == 1 and err.count("\n") == 1 and "metrics.json is unusable" in err


def test_the_bigram_table_refuses_a_text_other_than_the_runs(tiny_root, tmp_path, capsys):
    other = tmp_path / "other.txt"
    other.write_text("a text the bigram_v1 run never saw\n" * 100, encoding="utf-8")
    rc = figures.main(["--out-root", str(tiny_root), "--img-dir", str(tmp_path / "img"), "--no-train",
                       "--only", "bigram-table", "--data", str(other)])
    err = capsys.readouterr().err
    assert rc == 1 and err.count("\n") == 1 and "trained on another text" in err


def test_a_prompt_with_a_character_the_vocabulary_lacks_is_one_line(tiny_root, tmp_path, capsys):
    rc = figures.main(["--out-root", str(tiny_root), "--img-dir", str(tmp_path / "img"), "--no-train",
                       "--only", "attention-v3", "--prompt", "naïve ☃"])
    err = capsys.readouterr().err
    assert rc == 1 and err.count("\n") == 1 and "not in the vocabulary" in err


@pytest.mark.slow
def test_a_missing_run_is_trained_by_running_the_stage_script(tmp_path, small_text_path):
    out, img = tmp_path / "out", tmp_path / "img"
    flags = "--max-iters 5 --eval-iters 1 --eval-interval 5 --batch-size 4 --max-new-tokens 0 --final-eval 100"
    cmd = [sys.executable, "-m", "notes.figures", "--only", "bigram-table", "--out-root", str(out),
           "--img-dir", str(img), "--data", str(small_text_path), "--train-args", flags]
    done = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "training bigram_v1: python bigram_v1.py --out " in done.stdout
    assert json.loads((out / "bigram_v1" / "metrics.json").read_text())["iters"] == 5
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
    assert all(min(line.get_xdata()) > 0.05 for line in curves)  # step 0 (at about 0 s) left out of the log axis
    steps = [line for line in ax_i.lines if len(line.get_xdata()) > 2]
    assert list(steps[-2].get_xdata()) == [e["iter"] for e in history]  # gpt's val curve, from step 0
    assert list(steps[-2].get_ydata()) == [e["val"] for e in history]
    assert len(fig.legends) == 1  # one legend for both panels


def test_the_bigram_table_draws_the_learned_softmax_and_the_counts_of_the_most_frequent_characters(runs, small_text):
    fig = figures.fig_bigram_table(runs, small_text)
    learned_ax, counted_ax = heatmap_axes(fig)
    shown = [t.get_text() for t in counted_ax.get_xticklabels()]
    train = small_text[: int(0.9 * len(small_text))]
    top = [c for c, _ in Counter(train[:-1]).most_common(figures.TOP_CHARS)]
    assert sorted(shown) == sorted(figures.show(c) for c in top)
    tok = runs["bigram_v1"].tok
    chars = sorted(top, key=tok.stoi.get)  # in vocabulary order, as drawn
    ids = [tok.stoi[c] for c in chars]
    learned = F.softmax(runs["bigram_v1"].model.token_embedding_table.weight.detach().double(), dim=-1)
    assert_close(drawn(learned_ax), learned[ids][:, ids])
    pairs, firsts = Counter(zip(train, train[1:])), Counter(train[:-1])
    counted = torch.tensor([[pairs[a, b] / firsts[a] for b in chars] for a in chars], dtype=torch.float64)
    assert_close(drawn(counted_ax), counted)
    # the title's number: half the summed gap between the two full rows, averaged over the characters seen
    seen = [a for a in tok.chars if firsts[a]]
    rows = torch.tensor([[pairs[a, b] / firsts[a] for b in tok.chars] for a in seen], dtype=torch.float64)
    tv = 0.5 * (learned[[tok.stoi[a] for a in seen]] - rows).abs().sum(dim=1).mean()
    assert f"rows differ by {tv:.3f} in total variation" in fig.get_suptitle()


def test_the_embeddings_figure_places_every_character_and_has_one_legend(runs):
    fig = figures.fig_embeddings(runs)
    for ax, stage in zip(fig.axes, ("bigram_v2", "gpt")):
        assert sorted(t.get_text() for t in ax.texts) == sorted(figures.show(c) for c in runs[stage].tok.chars)
        assert ax.get_legend() is None
    assert len(fig.legends) == 1


def test_the_bigram_v3_figure_draws_every_heads_weights(runs):
    fig = figures.fig_attention_v3(runs, PROMPT)
    run = runs["bigram_v3"]
    idx = torch.tensor([run.tok.encode(PROMPT)])
    w = figures.bigram_v3_attention(run.model, idx)[0]  # (n_head, T, T)
    panels = heatmap_axes(fig)
    assert [ax.get_title() for ax in panels] == [f"head {i}" for i in range(TINY["bigram_v3"]["n_head"])]
    for i, ax in enumerate(panels):
        assert_close(drawn(ax), future_blank(w[i]), equal_nan=True)


def test_the_gpt_figure_shows_the_most_focused_heads_of_each_layer_and_their_weights(runs):
    fig = figures.fig_attention_gpt(runs, PROMPT)
    run = runs["gpt"]
    idx = torch.tensor([run.tok.encode(PROMPT)])
    layers = figures.gpt_attention(run.model, idx)  # each (1, n_head, T, T)
    panels = heatmap_axes(fig)
    titles = [f"layer {layer}, head {h}" for layer, heads in SHARP.items() for h in heads]
    assert [ax.get_title() for ax in panels] == titles  # not the first heads, not the least focused
    for ax, title in zip(panels, titles):
        layer, head = (int(part.split()[-1]) for part in title.split(","))
        assert_close(drawn(ax), future_blank(layers[layer][0, head]), equal_nan=True)
    assert "2 most focused of each layer's 8 heads" in fig.get_suptitle()


def test_the_most_focused_heads_are_those_with_the_lowest_row_entropy():
    T = 6
    even, sharp = figures.uniform_average(T), torch.eye(T)  # entropy: ln(t + 1) per row, and 0
    mixed = 0.5 * even + 0.5 * sharp
    w = torch.stack([even, sharp, mixed, even, sharp])  # (n_head, T, T)
    assert figures.most_focused(w, 2) == [1, 4]
    assert figures.most_focused(w, 3) == [1, 2, 4]


def test_the_masked_average_is_the_softmax_of_zeros_under_the_mask(runs):
    T = 7
    zeros = torch.zeros(1, T, 1)  # q and k of zeros: every score 0
    assert_close(figures.causal_softmax(zeros, zeros)[0], figures.uniform_average(T))
    fig = figures.fig_masked_average(runs, PROMPT)
    left = drawn(heatmap_axes(fig)[0])
    T = len(PROMPT)
    assert_close(left, future_blank(figures.uniform_average(T)), equal_nan=True)
    assert_close(left[T - 1, 0].item(), 1 / T)  # the last row averages all T characters


def test_the_positions_figure_compares_the_cosines_of_the_learned_and_the_sinusoidal_tables(runs):
    fig = figures.fig_positions(runs)
    learned = runs["gpt"].model.position_embedding_table.weight.detach().double()  # (T, C)
    unit = F.normalize(learned, dim=1)
    left, right = heatmap_axes(fig)
    assert_close(drawn(left), unit @ unit.T)
    pe = F.normalize(figures.sinusoidal_encoding(*learned.shape), dim=1)
    assert_close(drawn(right), pe @ pe.T)


def test_the_sinusoidal_encoding_matches_the_papers_formula_at_hand_computed_points():
    pe = figures.sinusoidal_encoding(101, 4)  # d_model 4: columns sin(pos), cos(pos), sin(pos/100), cos(pos/100)
    double = dict(dtype=torch.float64)
    assert_close(pe[0], torch.tensor([0.0, 1.0, 0.0, 1.0], **double))  # sin 0, cos 0
    assert_close(pe[1], torch.tensor([math.sin(1), math.cos(1), math.sin(0.01), math.cos(0.01)], **double))
    # 10000^(2i/d_model) with i = 1, d_model = 4 is 100: position 100 turns column 2 by exactly one radian
    assert_close(pe[100], torch.tensor([math.sin(100), math.cos(100), math.sin(1), math.cos(1)], **double))
    big = figures.sinusoidal_encoding(50, 512)
    assert_close(big[49, 2 * 128], torch.tensor(math.sin(49 / 10000 ** (256 / 512)), **double))  # i = 128
    assert_close(big[49, 2 * 128 + 1], torch.tensor(math.cos(49 / 100), **double))


def test_the_sinusoids_figure_draws_the_encoding_at_gpts_size():
    fig = figures.fig_sinusoids()
    T, C = gpt.HYPERPARAMETERS["block_size"][0], gpt.HYPERPARAMETERS["n_embd"][0]
    pe = figures.sinusoidal_encoding(T, C)
    curves, table = fig.axes[:2]
    assert_close(drawn(table), torch.cat([pe[:, 0::2], pe[:, 1::2]], dim=1))  # rows: positions; sin, then cos
    assert len(curves.lines) == len(figures.SINUSOID_COLUMNS)
    for j, (line, c) in enumerate(zip(curves.lines, figures.SINUSOID_COLUMNS)):
        assert_close(torch.tensor(line.get_ydata(), dtype=torch.float64) + figures.SHIFT * j, pe[:, c])
    assert "column 0 (sin):\none turn every 6.28" in [t.get_text() for t in curves.texts]


# ----------------------------------------------------------------------------------------------------
# the attention weights drawn are the layers' own: applied to the values, they give each layer's output


def capture_inputs_and_outputs(modules, model, idx):
    seen = []
    handles = [m.register_forward_hook(lambda mod, args, out: seen.append((args[0], out))) for m in modules]
    try:
        with torch.no_grad():
            model(idx)
    finally:
        for h in handles:
            h.remove()
    return seen


def test_gpt_figure_weights_applied_to_v_then_proj_give_each_layers_real_output():
    torch.manual_seed(0)
    cfg = tiny_config("gpt")
    model = gpt.build_model(cfg, 65).eval()  # eval: dropout off, so the layer's output is deterministic
    idx = torch.randint(65, (2, 19))  # (B, T), shorter than block_size
    weights = figures.gpt_attention(model, idx)  # one (B, n_head, T, T) per layer
    real = capture_inputs_and_outputs([b.sa for b in model.blocks], model, idx)  # [(ln1(x), sa output)]
    assert len(weights) == len(real) == cfg["n_layer"]
    for block, w, (h, out) in zip(model.blocks, weights, real):
        sa = block.sa
        B, T, C = h.shape
        assert w.shape == (B, sa.n_head, T, T)
        assert_close(w.sum(-1), torch.ones(B, sa.n_head, T))  # every row is a weighted average...
        assert torch.equal(w.triu(1), torch.zeros_like(w))  # ...of the past only
        with torch.no_grad():
            v = sa.qkv(h).view(B, T, 3, sa.n_head, C // sa.n_head)[:, :, 2].transpose(1, 2)  # (B, nh, T, hs)
            y = (w @ v).transpose(1, 2).reshape(B, T, C)  # the heads side by side
            assert_close(sa.proj(y), out)
    assert not torch.allclose(weights[0], weights[1])  # each layer its own pattern


def test_bigram_v3_figure_weights_applied_to_v_give_every_heads_output():
    torch.manual_seed(0)
    model = bigram_v3.build_model(tiny_config("bigram_v3"), 65).eval()
    idx = torch.randint(65, (2, 17))  # (B, T)
    w = figures.bigram_v3_attention(model, idx)  # (B, n_head, T, T)
    [(x, out)] = capture_inputs_and_outputs([model.sa_heads], model, idx)
    with torch.no_grad():
        heads = [w[:, i] @ h.value(x) for i, h in enumerate(model.sa_heads.heads)]  # each (B, T, head_size)
        assert_close(torch.cat(heads, dim=-1), out)


def test_the_embeddings_figure_projects_on_the_two_widest_directions_at_gpts_default_width(small_text):
    # n_embd 128, the default, wider than the 65 characters: a projection on Vh's columns would not even run
    tok, runs = CharTokenizer.from_text(small_text), {}
    for stage in ("bigram_v2", "gpt"):
        torch.manual_seed(0)
        model = importlib.import_module(stage).build_model({**tiny_config(stage), "n_embd": 128}, tok.vocab_size)
        runs[stage] = SimpleNamespace(model=model, tok=tok)
    fig = figures.fig_embeddings(runs)
    for ax, stage in zip(fig.axes, ("bigram_v2", "gpt")):
        W = runs[stage].model.token_embedding_table.weight.detach().double()  # (V, 128)
        centred = W - W.mean(dim=0)
        _, vectors = torch.linalg.eigh(centred.T @ centred)  # ascending eigenvalues: the widest directions last
        got = torch.tensor([text.get_position() for text in ax.texts], dtype=torch.float64)  # (V, 2)
        assert_close(got.abs(), (centred @ vectors[:, [-1, -2]]).abs())  # an eigenvector's sign is arbitrary
