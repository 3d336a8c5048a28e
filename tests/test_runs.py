"""What a run keeps and what a learner sees on the way: the best model kept and reported, early stopping,
a trained model never silently replaced, paths, seeds, quick final measurements, progress without a
terminal. Real script runs on small texts and tiny sizes.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn as nn
from torch.testing import assert_close

import gpt
import runner
from helpers import call_main, printed_sample, printed_seed
from data import CharTokenizer, split

REPO_ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
# On `shifted_text` val gets worse long before the run ends, so the best model is not the last one.
OVERFIT = ["--max-iters", "100", "--eval-interval", "10", "--eval-iters", "2", "--batch-size", "8", "--block-size", "16",
           "--n-embd", "32", "--n-head", "2", "--n-layer", "1", "--lr", "1e-2", "--warmup-iters", "0", "--dropout", "0",
           "--dtype", "float32", "--device", "cpu", "--max-new-tokens", "30"]
TINY = ["--max-iters", "10", "--eval-interval", "5", "--eval-iters", "1", "--batch-size", "4", "--block-size", "8",
        "--device", "cpu", "--max-new-tokens", "10"]
slow = pytest.mark.slow


def script(stage, *args, cwd=REPO_ROOT, env=ENV):
    return subprocess.run([sys.executable, str(REPO_ROOT / f"{stage}.py"), *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=180)


@pytest.fixture(scope="module")
def shifted_text(tmp_path_factory, small_text):
    """9,000 characters of Shakespeare, then 1,000 of it backwards: the val split (the last 10%) has the
    same characters in other orders, so what the model learns of English first helps val, then hurts it."""
    path = tmp_path_factory.mktemp("shifted") / "shifted.txt"
    path.write_text(small_text[:9000] + small_text[:1000][::-1], encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def overfit(tmp_path_factory, shifted_text):
    out = tmp_path_factory.mktemp("overfit") / "out"
    proc = script("gpt", *OVERFIT, "--data", shifted_text, "--out", out)
    assert proc.returncode == 0, proc.stderr
    return out, proc


# ---- keep the best -----------------------------------------------------------------------------------


@slow
def test_the_run_reports_the_model_with_the_lowest_val_estimate_not_the_last_step(overfit, shifted_text):
    out, proc = overfit
    metrics = json.loads((out / "metrics.json").read_text())
    history = metrics["history"]
    best = min(history, key=lambda h: h["val"])
    assert best["iter"] != metrics["iters"], "the setup should make val worse by the end"
    assert metrics["kept"] == best
    assert f"kept the model of step {best['iter']}" in proc.stdout
    kept = torch.load(out / "best.pt", weights_only=True)
    last = torch.load(out / "ckpt.pt", weights_only=True)
    assert kept["iter"] == best["iter"] and last["step"] == metrics["iters"]  # --resume still has the last step
    # the reported full-split val loss is the kept weights' own
    text = shifted_text.read_text(encoding="utf-8")
    tok = CharTokenizer.from_text(text)
    _, val = split(torch.tensor(tok.encode(text)))
    model = gpt.build_model(kept["config"], tok.vocab_size)
    model.load_state_dict(kept["model"])
    val_loss = runner.full_loss(model, val, kept["config"]["block_size"])
    assert_close(metrics["val_loss"], val_loss)


@slow
def test_sample_only_draws_from_the_kept_model_as_the_training_run_did(overfit):
    out, proc = overfit
    again = script("gpt", "--sample-only", "--out", out, "--seed", 1337, "--max-new-tokens", 30, "--device", "cpu")
    assert again.returncode == 0, again.stderr
    assert printed_sample(again.stdout) == printed_sample(proc.stdout)


@slow
def test_patience_stops_when_val_stops_improving_and_says_so(shifted_text, tmp_path):
    proc = script("gpt", *OVERFIT, "--data", shifted_text, "--out", tmp_path / "out", "--patience", 2)
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["iters"] < 100 and "stopping early (--patience 2)" in proc.stdout
    after_best = [h for h in metrics["history"] if h["iter"] > metrics["kept"]["iter"]]
    assert len(after_best) == 2 and all(h["val"] >= metrics["kept"]["val"] for h in after_best)


# ---- the first hour ------------------------------------------------------------------------------------


def test_a_trained_model_is_never_replaced_without_overwrite(small_text_path, tmp_path, capsys):
    out = tmp_path / "out"
    code, _, err = call_main("bigram_v2", [*TINY, "--data", small_text_path, "--out", out], capsys)
    assert code == 0, err
    before = (out / "ckpt.pt").read_bytes()
    code, _, err = call_main("bigram_v2", [*TINY, "--n-embd", 8, "--data", small_text_path, "--out", out], capsys)
    assert code == 1 and "already holds a trained bigram_v2 model" in err
    for hint in ("--resume", "--overwrite", "--out"):
        assert hint in err
    assert (out / "ckpt.pt").read_bytes() == before
    code, _, err = call_main("bigram_v2", [*TINY, "--n-embd", 8, "--data", small_text_path, "--out", out,
                                           "--overwrite"], capsys)
    assert code == 0, err
    assert torch.load(out / "ckpt.pt", weights_only=True)["config"]["n_embd"] == 8


@slow
def test_outputs_are_reported_with_their_absolute_path_from_any_directory(small_text_path, tmp_path):
    proc = script("bigram_v1", *TINY, "--data", small_text_path, "--out", "here", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert f"saved in {tmp_path / 'here'}" in proc.stdout
    assert (tmp_path / "here" / "metrics.json").exists()


@pytest.mark.parametrize("chars", [0, 1000])
def test_final_eval_skips_or_shrinks_the_final_measurement(chars, small_text_path, tmp_path, capsys):
    code, out, err = call_main("bigram_v1", [*TINY, "--data", small_text_path, "--out", tmp_path, "--final-eval", chars],
                               capsys)
    assert code == 0, err
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["final_eval_chars"] == chars
    if chars == 0:
        assert metrics["val_loss"] is None and "skipped" in out
    else:
        assert metrics["val_loss"] > 0 and "first 1,000 characters" in out


def test_sample_only_draws_a_fresh_text_each_time_and_prints_the_seed_to_repeat_it(small_text_path, tmp_path, capsys):
    code, _, err = call_main("bigram_v1", [*TINY, "--data", small_text_path, "--out", tmp_path], capsys)
    assert code == 0, err
    draws = []
    for _ in range(2):
        code, out, err = call_main("bigram_v1", ["--sample-only", "--out", tmp_path, "--max-new-tokens", 60], capsys)
        assert code == 0, err
        draws.append((printed_seed(out), printed_sample(out)))
    assert draws[0][1] != draws[1][1]
    code, out, _ = call_main("bigram_v1", ["--sample-only", "--out", tmp_path, "--max-new-tokens", 60,
                                           "--seed", draws[0][0]], capsys)
    assert printed_sample(out) == draws[0][1]


def test_only_models_with_matmuls_name_a_matmul_number_format(small_text_path, tmp_path, capsys):
    _, out1, _ = call_main("bigram_v1", [*TINY, "--data", small_text_path, "--out", tmp_path / "a"], capsys)
    _, out2, _ = call_main("bigram_v2", [*TINY, "--data", small_text_path, "--out", tmp_path / "b"], capsys)
    assert "matmuls in" not in out1 and "matmuls in" in out2


def test_progress_shows_as_plain_lines_when_stderr_is_not_a_terminal(small_text_path, tmp_path):
    # a notebook's !python, a log file: no terminal, so no tqdm bar, but the run must still show progress
    proc = script("bigram_v1", *TINY, "--data", small_text_path, "--out", tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()  # a line as the run starts, and one as it ends (a short run: none between)
    assert "bigram_v1: step 0/10 (0%), about ? left" in lines and "\r" not in proc.stderr
    assert any(line.startswith("bigram_v1: step 10/10 (100%), loss ") for line in lines)


def test_a_prompt_character_outside_the_vocabulary_says_what_to_do(small_text_path, tmp_path, capsys):
    code, _, err = call_main("bigram_v1", [*TINY, "--data", small_text_path, "--out", tmp_path, "--prompt", "Zé"], capsys)
    assert code == 1 and repr("é") in err and "write the prompt with those characters only" in err


# ---- what gpt.py trains -----------------------------------------------------------------------------------


def test_weight_decay_pulls_every_parameter_as_measured_best_on_the_cpu_default():
    model = gpt.build_model(dict(runner.defaults(gpt.HYPERPARAMETERS), n_embd=16, n_head=2, n_layer=1, block_size=8), 20)
    optimizer = runner.make_optimizer(model, runner.defaults(gpt.HYPERPARAMETERS), torch.device("cpu"))
    decayed = [p for g in optimizer.param_groups if g["weight_decay"] == gpt.HYPERPARAMETERS["weight_decay"][0]
               for p in g["params"]]
    assert {id(p) for p in decayed} == {id(p) for p in model.parameters()} and len(decayed) == len(list(model.parameters()))


def test_attention_drops_out_its_weights_while_training_and_nothing_in_eval():
    torch.manual_seed(0)
    att = gpt.MultiHeadAttention(n_embd=16, n_head=2, dropout=0.5)
    att.resid_dropout = nn.Identity()  # leave only the dropout inside the attention
    x = torch.randn(4000, 6, 16)
    exact = att.eval()(x)
    dropped = att.train()(x)
    assert not torch.allclose(dropped, exact)  # the weights were dropped out...
    # ...and dropout is unbiased (kept weights are scaled by 1 / (1 - p)), so the average is the exact output
    assert_close(dropped.mean(0), exact.mean(0), atol=0.02, rtol=0)


def test_gpt_drops_out_the_embeddings_while_training():
    model = gpt.build_model(dict(runner.defaults(gpt.HYPERPARAMETERS), n_embd=16, n_head=2, n_layer=1, block_size=8, dropout=0.3), 20)
    seen = []
    model.blocks[0].register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    idx = torch.randint(20, (64, 8))
    model.train()(idx)
    zeros = (seen[-1] == 0).float().mean().item()
    assert 0.25 < zeros < 0.35  # about 30% of the embedding channels are zeroed before the first block
    model.eval()(idx)
    assert (seen[-1] == 0).float().mean().item() < 0.01


# ---- the first hour, again (issue 16) --------------------------------------------------------------------


def test_sample_only_says_which_step_and_val_its_model_comes_from(small_text_path, tmp_path, capsys):
    code, _, err = call_main("bigram_v1", [*TINY, "--data", small_text_path, "--out", tmp_path], capsys)
    assert code == 0, err
    kept = json.loads((tmp_path / "metrics.json").read_text())["kept"]
    code, out, err = call_main("bigram_v1", ["--sample-only", "--out", tmp_path, "--max-new-tokens", 5], capsys)
    assert code == 0, err
    assert f"the model of step {kept['iter']} (val estimate {kept['val']:.4f}) in {tmp_path / 'best.pt'}" in err
    assert "still training" not in err


@slow
def test_sample_only_warns_when_a_run_is_still_training_in_that_out(small_text_path, tmp_path):
    out = tmp_path / "out"
    busy = subprocess.Popen([sys.executable, str(REPO_ROOT / "bigram_v1.py"), "--max-iters", "100000",
                             "--eval-interval", "20", "--eval-iters", "1", "--batch-size", "4", "--block-size", "8",
                             "--device", "cpu", "--data", str(small_text_path), "--out", str(out)],
                            env=ENV, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        while "step 20:" not in busy.stdout.readline():  # best.pt exists from step 0; wait for a later one
            assert busy.poll() is None
        proc = script("bigram_v1", "--sample-only", "--out", out, "--max-new-tokens", 5, "--device", "cpu")
        assert proc.returncode == 0, proc.stderr
        assert f"a run is still training in {out} (process {busy.pid})" in proc.stderr
    finally:
        busy.kill()
        busy.wait()


def test_out_defaults_to_out_stage_beside_the_scripts_wherever_the_command_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # another directory, as `cd notes; python ../gpt.py` would be
    assert runner.config.default_out(str(REPO_ROOT / "gpt.py"), "gpt") == str(REPO_ROOT / "out" / "gpt")
    code, _, err = call_main("gpt", ["--sample-only", "--out", "nowhere"], capsys)
    assert code == 1 and str(tmp_path / "nowhere" / "best.pt") in err  # a given --out is taken from here


def test_a_flag_must_be_written_in_full(capsys, tmp_path):
    code, _, err = call_main("gpt", ["--max-iter", "5", "--out", tmp_path / "out"], capsys)
    assert code == 2 and "unrecognized arguments: --max-iter 5" in err and len(err.strip().splitlines()) == 1


def test_main_returns_its_status_in_a_notebook_instead_of_raising(capsys):
    assert runner.main.__module__ == "runner"
    import bigram_v1
    assert bigram_v1.main(["--block-size", "0"]) == 2  # no SystemExit for IPython to warn about
    assert bigram_v1.main(["--help"]) == 0
    capsys.readouterr()
