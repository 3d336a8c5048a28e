"""What a run keeps and measures: the best model kept and reported, early stopping, paths, the training clock,
--final-eval, compiled and bfloat16 runs, threads, the slow-step hint and the sample's eval mode, pinned
against bugs the suite once let through. Real script runs on small texts and tiny sizes.
"""

import json
import random
import re
import signal
from types import SimpleNamespace

import pytest
import torch
from torch.testing import assert_close

import runner
from helpers import REPO_ROOT, call_main, one_line_error, printed_sample, script, tiny
from data import split

# On overfit's text val gets worse long before the run ends, so the best model is not the last one.
OVERFIT = tiny("gpt", max_iters=100, eval_iters=2, batch_size=8, n_embd=32, lr=1e-2, warmup_iters=0, dropout=0,
               dtype="float32", max_new_tokens=30, final_eval=None)
TINY = tiny("bigram_v1", max_iters=10, eval_interval=5, block_size=8, max_new_tokens=10, final_eval=None)
slow = pytest.mark.slow


@pytest.fixture(scope="module")
def overfit(tmp_path_factory, small_text):
    """(out, the finished process, its text) of an OVERFIT run with --patience 2 on 9,000 characters of
    Shakespeare, then 1,000 of it backwards: the val split (the last 10%) has the same characters in other
    orders, so what the model learns of English first helps val, then hurts it, and the run stops early."""
    text = tmp_path_factory.mktemp("overfit") / "shifted.txt"
    text.write_text(small_text[:9000] + small_text[:1000][::-1], encoding="utf-8")
    proc = script("gpt", *OVERFIT, "--patience", 2, "--data", text, "--out", text.parent / "out")
    assert proc.returncode == 0, proc.stderr
    return text.parent / "out", proc, text


# ---- keep the best, --patience ---------------------------------------------------------------------------


@slow
def test_the_run_reports_the_model_with_the_lowest_val_estimate_not_the_last_step(overfit):
    out, proc, shifted_text = overfit
    metrics = json.loads((out / "metrics.json").read_text())
    history = metrics["history"]
    best = min(history, key=lambda h: h["val"])
    assert best["iter"] != metrics["iters"], "the setup should make val worse by the end"
    assert metrics["kept"] == best
    assert f"kept the model of step {best['iter']}" in proc.stdout
    kept, last = runner.load_run(out, "gpt"), torch.load(out / "ckpt.pt", weights_only=True)
    assert kept.step == best["iter"] and last["step"] == metrics["iters"]  # --resume still has the last step
    # the reported full-split val loss is the kept weights' own
    _, val = split(torch.tensor(kept.tok.encode(shifted_text.read_text(encoding="utf-8"))))
    assert_close(metrics["val_loss"], runner.full_loss(kept.model, val, kept.cfg["block_size"]))
    # and --sample-only draws from the kept model, as the training run did
    again = script("gpt", "--sample-only", "--out", out, "--seed", 1337, "--max-new-tokens", 30, "--device", "cpu")
    assert again.returncode == 0, again.stderr
    assert printed_sample(again.stdout) == printed_sample(proc.stdout)


@slow
def test_patience_stops_when_val_stops_improving_and_a_resumed_run_stops_at_the_same_step(overfit, tmp_path):
    out, proc, shifted_text = overfit
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["iters"] < 100 and "stopping early (--patience 2)" in proc.stdout  # the rule: the test above
    first = script("gpt", *OVERFIT, "--data", shifted_text, "--out", tmp_path / "b", "--patience", 2, "--stop-at", 20)
    second = script("gpt", "--resume", "--data", shifted_text, "--out", tmp_path / "b", "--device", "cpu")  # no flag
    assert first.returncode == second.returncode == 0, second.stderr
    resumed = json.loads((tmp_path / "b" / "metrics.json").read_text())
    assert metrics["iters"] == resumed["iters"] and metrics["val_loss"] == resumed["val_loss"]
    assert [(h["iter"], h["val"]) for h in metrics["history"]] == [(h["iter"], h["val"]) for h in resumed["history"]]


def test_the_loop_keeps_the_first_best_stops_where_patience_stop_at_or_a_signal_says_and_shows_it_on_its_bar(
        small_text_path, tmp_path, monkeypatch, capsys):
    # the val estimates are scripted, so which evaluation is best, and when patience ends the run, is known
    script, seen = [], []

    def estimate(model, splits, cfg, device, autocast, seed):
        seen.append((device, seed))
        if not script:
            signal.raise_signal(signal.SIGTERM)  # as `kill` would, in the middle of an evaluation
        value = script.pop(0) if script else 9.0
        return {name: value for name in splits}

    def run(vals, *flags):
        script[:], seen[:] = vals, []
        argv = [*tiny("bigram_v1", max_iters=40, eval_interval=5, max_new_tokens=0, final_eval=0), *flags]
        return call_main("bigram_v1", [*argv, "--data", small_text_path, "--out", tmp_path], capsys)

    monkeypatch.setattr(runner.loop, "estimate_loss", estimate)
    code, out, err = run([3.0, 2.0, 2.0, 1.5, 1.6, 1.5], "--patience", 2)
    assert code == 0, err
    assert [line for line in out.splitlines() if line.startswith(("step ", "val has"))] == [
        "step 0: train loss 3.0000, val loss 3.0000", "step 5: train loss 2.0000, val loss 2.0000",
        "step 10: train loss 2.0000, val loss 2.0000 (best 2.0000 at step 5)",  # a tie is no improvement
        "step 15: train loss 1.5000, val loss 1.5000", "step 20: train loss 1.6000, val loss 1.6000 (best 1.5000 at "
        "step 15)", "step 25: train loss 1.5000, val loss 1.5000 (best 1.5000 at step 15)",
        "val has not improved for 2 evaluations (best 1.5000 at step 15): stopping early (--patience 2)"]
    assert seen == [(torch.device("cpu"), 1337 + 1)] * 6  # every evaluation draws the same batches, not training's
    bar = [line for line in re.split("[\r\n]", err) if line.startswith("bigram_v1: ")]
    last = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    assert "25/40 [" in bar[-1] and re.search("[0-9](step/s|s/step)", bar[-1]) and bar[-1].endswith(f"loss {last['step_losses'][-1]:.4f}]")
    assert len(bar) < 12  # no terminal: the bar is drawn again when a line is printed, not at each of 25 steps
    code, out, err = run([3.0, 2.0, 2.0, 1.5, 1.6, 1.5], "--patience", 2, "--max-iters", 25, "--overwrite")
    assert code == 0 and "stopping early" not in out, err  # patience ran out at the last step: nothing to stop
    code, out, err = run([3.0, 2.0], "--stop-at", 7, "--overwrite")
    assert code == 0 and "stopped at step 7 of 40 (--stop-at)" in out, err
    assert torch.load(tmp_path / "ckpt.pt")["step"] == 7 and not (tmp_path / "metrics.json").exists()
    assert run([3.0], "--stop-at", 3, "--overwrite")[0] == 0  # replacing an unfinished run: no metrics to delete
    code, out, err = run([], "--resume")
    assert code == 143 and f"stopped by SIGTERM at step 5; checkpoint saved in {tmp_path}" in err, err
    assert "5/40 [" in [line for line in re.split("[\r\n]", err) if line.startswith("bigram_v1: ")][-1]


# ---- what a learner sees ---------------------------------------------------------------------------------


def test_out_defaults_to_out_stage_beside_the_scripts_wherever_the_command_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # another directory, as `cd notes; python ../gpt.py` would be
    assert runner.cli.default_out(str(REPO_ROOT / "gpt.py"), "gpt") == str(REPO_ROOT / "out" / "gpt")
    code, _, err = call_main("gpt", ["--sample-only", "--out", "nowhere"], capsys)
    # a given --out is taken from here, and every message names it by its absolute path
    one_line_error(code, err, str(tmp_path / "nowhere" / "best.pt"), "no trained model", "train first")


# ---- what a run measures and keeps, pinned against bugs the suite once let through ------------------------


def test_the_training_clock_counts_steps_not_evaluations_and_final_eval_0_skips_the_final_measurement(
        small_text_path, tmp_path, monkeypatch, capsys):
    clock = [0.0]  # a clock that moves only by what the run does: 1 s per step, 1000 s per evaluation

    def ticking(real, seconds):  # real, which now moves the clock on by seconds at each call
        def call(*args, **kwargs):
            clock[0] += seconds
            return real(*args, **kwargs)
        return call

    monkeypatch.setattr(runner.loop, "estimate_loss", ticking(runner.loop.estimate_loss, 1000))
    monkeypatch.setattr(torch.optim.AdamW, "step", ticking(torch.optim.AdamW.step, 1))
    monkeypatch.setattr(runner.loop.time, "perf_counter", lambda: clock[0])
    code, out, err = call_main("bigram_v2", [*TINY, "--final-eval", 0, "--data", small_text_path, "--out", tmp_path],
                               capsys)
    assert code == 0, err
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["train_seconds"] == 10 and [h["seconds"] for h in metrics["history"]] == [0, 5, 10]
    # what a smaller --final-eval measures is checked below, where a compiled run measures 2,000 characters
    assert metrics["final_eval_chars"] == 0 and metrics["val_loss"] is None and "skipped" in out


def test_a_compiled_bfloat16_run_saves_the_plain_weights_and_measures_the_final_loss_in_float32(
        small_text, small_text_path, tmp_path, monkeypatch, capsys):
    real = torch.compile
    monkeypatch.setattr(torch, "compile", lambda model: real(model, backend="eager"))  # no C++ compiler needed
    code, _, err = call_main("bigram_v2", [*TINY, "--compile", "--dtype", "bfloat16", "--final-eval", 2000, "--data",
                                           small_text_path, "--out", tmp_path], capsys)
    assert code == 0, err
    for name in ("ckpt.pt", "best.pt"):
        assert not [k for k in torch.load(tmp_path / name, weights_only=True)["model"] if "_orig_mod" in k]
    metrics, kept = json.loads((tmp_path / "metrics.json").read_text()), runner.load_run(tmp_path, "bigram_v2")
    _, val = split(torch.tensor(kept.tok.encode(small_text)))
    assert metrics["dtype"] == "bfloat16"
    assert_close(metrics["val_loss"], runner.full_loss(kept.model, val[:2001], 8), rtol=1e-6, atol=0)


def test_small_models_train_on_one_thread_unless_threads_says_otherwise_and_the_caller_gets_its_own_back(
        small_text_path, tmp_path, monkeypatch, capsys):
    seen = []
    monkeypatch.setattr(torch, "get_num_threads", lambda: 4)  # a 4-core machine
    monkeypatch.setattr(torch, "set_num_threads", seen.append)
    previous = signal.signal(signal.SIGTERM, mine := lambda signum, frame: None)  # a notebook's own handler
    try:
        for threads in ([], ["--threads", 3]):
            code, _, err = call_main("bigram_v2", [*TINY, "--overwrite", "--data", small_text_path, "--out", tmp_path,
                                                   *threads], capsys)
            assert code == 0, err
        assert signal.getsignal(signal.SIGTERM) is mine  # main() set its own while it ran
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert seen == [1, 4, 3, 4]  # bigram_v2's few parameters: one thread; each run gives back the caller's 4


def test_one_slow_step_hint_once_the_last_20_steps_median_is_over_3x_that_of_steps_5_to_24(capsys):
    # the rule, written out: at step n >= 45 the upper median (index 10 of 20 sorted) of the last 20 step times
    # against that of steps 5-24 (the first five warm up); random times from few values make ties and near-3x cases
    rng = random.Random(0)
    for _ in range(300):
        times = [rng.choice([1.0, 2.0, 3.0]) for _ in range(25)] + [rng.choice(range(1, 11)) for _ in range(25)]
        ratios = [sorted(times[n - 20 : n])[10] / sorted(times[5:25])[10] for n in range(45, 51)]
        expected = next((f"note: steps take {r:.0f}x as long" for r in ratios if r > 3), None)
        run = SimpleNamespace(step_times=[], hinted=False)
        for seconds in times:
            runner.loop.pace(run, seconds)
        out, err = capsys.readouterr()
        assert not out and run.hinted == bool(expected), (times, err)
        assert err.count("note: ") == 1 and expected in err and "fewer threads (--threads 1)" in err if expected else not err


def test_the_sample_after_training_is_drawn_in_eval_mode_as_sample_only_draws_it(small_text_path, tmp_path, capsys):
    flags = ["--n-embd", 16, "--n-head", 2, "--n-layer", 1, "--dropout", 0.8, "--max-new-tokens", 200]
    code, trained, err = call_main("gpt", [*TINY, *flags, "--data", small_text_path, "--out", tmp_path], capsys)
    assert code == 0, err
    code, again, err = call_main("gpt", ["--sample-only", "--out", tmp_path, "--seed", 1337, *flags[-2:]], capsys)
    assert code == 0, err
    assert printed_sample(again) == printed_sample(trained)  # dropout 0.8 left on would change most characters
