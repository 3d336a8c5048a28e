"""notes/figures.py draws every figure from runs on disk, and its attention weights are the layers' own.

The runs here are tiny: models built in this process and saved as the runner saves them (a dict with
"model", "config", "tokenizer", "stage"; metrics.json with a "history"), plus one real training of
bigram_v1 for five steps through the figure command itself.
"""

import json
import subprocess
import sys

import matplotlib.image
import pytest
import torch
from torch.testing import assert_close

import bigram_v1
import bigram_v2
import bigram_v3
import gpt
from data import CharTokenizer
from notes import figures

from conftest import PROMPT, REPO_ROOT

TINY = {  # stage -> sizes small enough to build and draw in a blink
    "bigram_v1": {},
    "bigram_v2": {"n_embd": 8},
    "bigram_v3": {"n_embd": 16, "n_head": 4, "block_size": 24},
    "gpt": {"n_embd": 32, "n_head": 4, "n_layer": 2, "block_size": 24, "dropout": 0.2},
}
MODULES = {"bigram_v1": bigram_v1, "bigram_v2": bigram_v2, "bigram_v3": bigram_v3, "gpt": gpt}


def save_run(out_dir, stage, tok, seed=0):
    torch.manual_seed(seed)
    cfg = {**MODULES[stage].HYPERPARAMETERS, **TINY[stage]}
    model = MODULES[stage].build_model(cfg, tok.vocab_size)
    out_dir.mkdir(parents=True)
    # gpt's run keeps a best.pt beside its last step, as the runner does; the others have ckpt.pt only
    names = ["ckpt.pt", "best.pt"] if stage == "gpt" else ["ckpt.pt"]
    for name in names:
        state = {"stage": stage, "model": model.state_dict(), "config": cfg, "tokenizer": tok.to_dict()}
        torch.save(state, out_dir / name)
    history = [{"iter": i, "seconds": 0.1 * i, "train": 4.2 - 0.1 * i, "val": 4.25 - 0.09 * i} for i in range(0, 6)]
    (out_dir / "metrics.json").write_text(json.dumps({"history": history, "bigram_floor": 2.5}))


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory, small_text):
    root = tmp_path_factory.mktemp("runs")
    tok = CharTokenizer.from_text(small_text)
    for seed, stage in enumerate(MODULES):
        save_run(root / stage, stage, tok, seed)
    return root


def test_figures_use_the_agg_backend_and_no_stage_script_imports_matplotlib():
    assert matplotlib.get_backend().lower() == "agg"
    probe = "import sys, bigram_v1, bigram_v2, bigram_v3, gpt, runner; print('matplotlib' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_every_figure_is_drawn_from_tiny_runs_and_is_not_blank(tiny_runs, small_text_path, tmp_path):
    img = tmp_path / "img"
    rc = figures.main(["--out-root", str(tiny_runs), "--img-dir", str(img), "--data", str(small_text_path),
                       "--no-train", "--prompt", PROMPT])
    assert rc == 0
    for name in figures.FIGURES:
        path = img / f"{name}.png"
        assert path.is_file(), name
        assert 10_000 < path.stat().st_size < 400_000, (name, path.stat().st_size)
        pixels = matplotlib.image.imread(path)  # (H, W, 4) floats in [0, 1]
        assert pixels.shape[0] > 300 and pixels.shape[1] > 500, name
        assert pixels[..., :3].std() > 0.05, f"{name} is almost one colour"


def test_a_figure_prefers_the_best_checkpoint_to_the_last_one(tiny_runs):
    assert figures.checkpoint_path(tiny_runs / "gpt").name == "best.pt"
    assert figures.checkpoint_path(tiny_runs / "bigram_v1").name == "ckpt.pt"
    run = figures.load_run("gpt", tiny_runs / "gpt")
    assert run.path.name == "best.pt" and not run.model.training  # loaded in eval mode: dropout off


def test_a_missing_run_with_no_training_is_one_line_naming_the_command(tmp_path, capsys):
    rc = figures.main(["--out-root", str(tmp_path / "out"), "--img-dir", str(tmp_path / "img"), "--no-train",
                       "--only", "positions"])
    err = capsys.readouterr().err
    assert rc == 1
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "no finished gpt run" in err and "python gpt.py --out " in err
    assert not (tmp_path / "img" / "positions.png").exists()


@pytest.mark.slow
def test_a_missing_run_is_trained_by_running_the_stage_script(tmp_path, small_text_path):
    out, img = tmp_path / "out", tmp_path / "img"
    flags = "--max-iters 5 --eval-iters 1 --eval-interval 5 --batch-size 4 --max-new-tokens 0"
    cmd = [sys.executable, "notes/figures.py", "--only", "bigram-table", "--out-root", str(out),
           "--img-dir", str(img), "--data", str(small_text_path), "--train-args", flags]
    done = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "training bigram_v1: python bigram_v1.py --out " in done.stdout
    assert (out / "bigram_v1" / "metrics.json").is_file()
    assert json.loads((out / "bigram_v1" / "metrics.json").read_text())["iters"] == 5
    assert (img / "bigram-table.png").stat().st_size > 10_000
    assert not (out / "gpt").exists()  # only the stage this figure needs


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
    cfg = {**gpt.HYPERPARAMETERS, **TINY["gpt"]}
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
    cfg = {**bigram_v3.HYPERPARAMETERS, **TINY["bigram_v3"]}
    model = bigram_v3.build_model(cfg, 65).eval()
    idx = torch.randint(65, (2, 17))  # (B, T)
    w = figures.bigram_v3_attention(model, idx)  # (B, n_head, T, T)
    [(x, out)] = capture_inputs_and_outputs([model.sa_heads], model, idx)
    with torch.no_grad():
        heads = [w[:, i] @ h.value(x) for i, h in enumerate(model.sa_heads.heads)]  # each (B, T, head_size)
        assert_close(torch.cat(heads, dim=-1), out)


def test_the_masked_average_is_the_softmax_of_zeros_under_the_mask():
    T = 7
    zeros = torch.zeros(1, T, 1)  # q and k of zeros: every score 0
    assert_close(figures.causal_softmax(zeros, zeros)[0], figures.uniform_average(T))
