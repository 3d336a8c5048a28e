"""What a run keeps and what a learner sees on the way: the best model kept and reported, early stopping,
a trained model never silently replaced, paths, seeds, quick final measurements, progress without a
terminal. Real script runs on small texts and tiny sizes.
"""

import json
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch
from torch.testing import assert_close

import gpt
import runner
from helpers import ENV, REPO_ROOT, call_main, printed_sample, printed_seed, script
from data import CharTokenizer, split

# On `shifted_text` val gets worse long before the run ends, so the best model is not the last one.
OVERFIT = ["--max-iters", "100", "--eval-interval", "10", "--eval-iters", "2", "--batch-size", "8", "--block-size", "16",
           "--n-embd", "32", "--n-head", "2", "--n-layer", "1", "--lr", "1e-2", "--warmup-iters", "0", "--dropout", "0",
           "--dtype", "float32", "--device", "cpu", "--max-new-tokens", "30"]
TINY = ["--max-iters", "10", "--eval-interval", "5", "--eval-iters", "1", "--batch-size", "4", "--block-size", "8",
        "--device", "cpu", "--max-new-tokens", "10"]
slow = pytest.mark.slow


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


def test_progress_shows_when_stderr_is_not_a_terminal(small_text_path, tmp_path):
    # a notebook's !python, a log file: no terminal, but the run must still show progress, start and end
    proc = script("bigram_v1", *TINY, "--data", small_text_path, "--out", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "bigram_v1:   0%" in proc.stderr and "| 10/10 [" in proc.stderr


# ---- --sample-only, --out, main() in a notebook ----------------------------------------------------------


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
    assert runner.cli.default_out(str(REPO_ROOT / "gpt.py"), "gpt") == str(REPO_ROOT / "out" / "gpt")
    code, _, err = call_main("gpt", ["--sample-only", "--out", "nowhere"], capsys)
    assert code == 1 and str(tmp_path / "nowhere" / "best.pt") in err  # a given --out is taken from here


def test_main_returns_its_status_in_a_notebook_instead_of_raising(capsys):
    assert runner.main.__module__ == "runner"
    import bigram_v1
    assert bigram_v1.main(["--block-size", "0"]) == 2  # no SystemExit for IPython to warn about
    assert bigram_v1.main(["--help"]) == 0
    capsys.readouterr()


# ---- what a run measures and keeps, pinned against bugs the suite once let through ------------------------


def test_the_training_clock_counts_steps_not_evaluations(small_text_path, tmp_path, monkeypatch, capsys):
    clock = [0.0]  # a clock that moves only by what the run does: 1 s per step, 1000 s per evaluation
    real_estimate, real_step = runner.loop.estimate_loss, torch.optim.AdamW.step

    def estimate(*args, **kwargs):
        clock[0] += 1000
        return real_estimate(*args, **kwargs)

    def step(self, *args, **kwargs):
        clock[0] += 1
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(runner.loop, "estimate_loss", estimate)
    monkeypatch.setattr(torch.optim.AdamW, "step", step)
    monkeypatch.setattr(runner.loop.time, "perf_counter", lambda: clock[0])
    code, _, err = call_main("bigram_v2", [*TINY, "--data", small_text_path, "--out", tmp_path], capsys)
    assert code == 0, err
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["train_seconds"] == 10 and [h["seconds"] for h in metrics["history"]] == [0, 5, 10]


def test_the_final_loss_is_measured_in_float32_even_when_training_ran_in_bfloat16(small_text_path, tmp_path, capsys):
    code, _, err = call_main("bigram_v2", [*TINY, "--dtype", "bfloat16", "--final-eval", 2000, "--data",
                                           small_text_path, "--out", tmp_path], capsys)
    assert code == 0, err
    metrics, kept = json.loads((tmp_path / "metrics.json").read_text()), runner.load_run(tmp_path, "bigram_v2")
    text = small_text_path.read_text(encoding="utf-8")
    _, val = split(torch.tensor(kept.tok.encode(text)))
    assert metrics["dtype"] == "bfloat16"
    assert_close(metrics["val_loss"], runner.full_loss(kept.model, val[:2001], 8), rtol=1e-6, atol=0)


def test_a_compiled_run_saves_the_plain_modules_weights(small_text_path, tmp_path, monkeypatch, capsys):
    real = torch.compile
    monkeypatch.setattr(torch, "compile", lambda model: real(model, backend="eager"))  # no C++ compiler needed
    code, _, err = call_main("bigram_v2", [*TINY, "--compile", "--data", small_text_path, "--out", tmp_path], capsys)
    assert code == 0, err
    for name in ("ckpt.pt", "best.pt"):
        assert not [k for k in torch.load(tmp_path / name, weights_only=True)["model"] if "_orig_mod" in k]
    code, _, err = call_main("bigram_v2", ["--sample-only", "--out", tmp_path, "--max-new-tokens", 5], capsys)
    assert code == 0, err


@slow
def test_a_resumed_patience_run_stops_where_the_uninterrupted_one_did(overfit, shifted_text, tmp_path):
    whole = script("gpt", *OVERFIT, "--data", shifted_text, "--out", tmp_path / "whole", "--patience", 2)
    first = script("gpt", *OVERFIT, "--data", shifted_text, "--out", tmp_path / "b", "--patience", 2, "--stop-at", 20)
    second = script("gpt", "--resume", "--data", shifted_text, "--out", tmp_path / "b", "--device", "cpu")  # no flag
    assert whole.returncode == first.returncode == second.returncode == 0, second.stderr
    a, b = (json.loads((tmp_path / d / "metrics.json").read_text()) for d in ("whole", "b"))
    assert a["iters"] < 100 and a["iters"] == b["iters"] and a["val_loss"] == b["val_loss"]
    assert [(h["iter"], h["val"]) for h in a["history"]] == [(h["iter"], h["val"]) for h in b["history"]]


def test_small_models_train_on_one_thread_unless_threads_says_otherwise(small_text_path, tmp_path, monkeypatch,
                                                                        capsys):
    seen = []
    monkeypatch.setattr(torch, "get_num_threads", lambda: 4)  # a 4-core machine
    monkeypatch.setattr(torch, "set_num_threads", seen.append)
    for threads in ([], ["--threads", 3]):
        code, _, err = call_main("bigram_v2", [*TINY, "--overwrite", "--data", small_text_path, "--out", tmp_path,
                                               *threads], capsys)
        assert code == 0, err
    assert seen == [1, 4, 3, 4]  # bigram_v2's few parameters: one thread; each run gives back the caller's 4


def test_steps_far_slower_than_the_runs_first_ones_bring_one_hint(capsys):
    run = SimpleNamespace(step_times=[], hinted=False)
    for seconds in [1.0] * 30 + [4.0] * 30:
        runner.loop.pace(run, seconds)
    err = capsys.readouterr().err
    assert err.count("note: steps take 4x as long as at the start of this run") == 1 and "--threads 1" in err
    quiet = SimpleNamespace(step_times=[], hinted=False)
    for seconds in [1.0] * 30 + [2.0] * 30:  # twice as slow: within what a busy moment explains
        runner.loop.pace(quiet, seconds)
    assert not quiet.hinted


def test_the_sample_after_training_is_drawn_in_eval_mode_as_sample_only_draws_it(small_text_path, tmp_path, capsys):
    flags = ["--n-embd", 16, "--n-head", 2, "--n-layer", 1, "--dropout", 0.8, "--max-new-tokens", 200]
    code, trained, err = call_main("gpt", [*TINY, *flags, "--data", small_text_path, "--out", tmp_path], capsys)
    assert code == 0, err
    code, again, err = call_main("gpt", ["--sample-only", "--out", tmp_path, "--seed", 1337, *flags[-2:]], capsys)
    assert code == 0, err
    assert printed_sample(again) == printed_sample(trained)  # dropout 0.8 left on would change most characters
