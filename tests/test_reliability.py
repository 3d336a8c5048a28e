"""Nothing lost, whatever ends a run, and every bad input one line: signals, closed pipes, full disks, edited
checkpoints, two runs on one --out, bad flags, texts and paths. Real subprocesses and real signals where the
OS has them; an injected OSError where a test cannot make the real condition (a full disk needs a mount).
"""

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest
import torch

import runner
from runner.checkpoints import lock_holder  # the pid of the run holding --out's lock, or None
from helpers import ENV, REPO_ROOT, call_main, one_line_error, script, tiny

LONG = tiny("bigram_v1", max_iters=100000, eval_interval=50, block_size=8, final_eval=None)
TINY = tiny("bigram_v1")
posix = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
slow = pytest.mark.slow


def start_long_run(data, out):
    """A bigram_v1 run of 100,000 steps, started in the background; returns once it has printed 'step 50:'."""
    log = out.parent / f"{out.name}.stdout"
    with open(log, "w") as f:
        proc = subprocess.Popen([sys.executable, "bigram_v1.py", *LONG, "--data", str(data), "--out", str(out)],
                                cwd=REPO_ROOT, env=ENV, stdout=f, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 90
    while "step 50:" not in log.read_text():
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline, "no 'step 50:' line within 90 s"
        time.sleep(0.05)
    return proc


def stop(proc):
    proc.kill()  # nothing, if it has ended
    proc.wait()


@pytest.fixture
def gpt_run(trained, tmp_path):
    """A copy of conftest's finished 20-step gpt run, to change."""
    out = tmp_path / "out"
    shutil.copytree(trained("gpt")[0], out)
    return out


# ---- signals ------------------------------------------------------------------------------------------


@posix
@slow
@pytest.mark.parametrize("signame, status", [("SIGINT", 130), ("SIGTERM", 143), ("SIGHUP", 129)])
def test_a_stop_signal_stops_between_steps_and_saves_a_checkpoint_to_resume_from(signame, status, small_text_path,
                                                                                  tmp_path):
    out = tmp_path / "out"
    proc = start_long_run(small_text_path, out)
    try:
        proc.send_signal(getattr(signal, signame))
        code = proc.wait(timeout=60)
        err = proc.stderr.read()
    finally:
        stop(proc)
    assert code == status, err
    assert "Traceback" not in err and f"stopped by {signame}" in err and "--resume" in err
    ckpt = torch.load(out / "ckpt.pt", weights_only=True)
    # whole steps only: the stop saves as --stop-at does (the same check in the loop, the same save), and
    # test_scripts.py resumes such a checkpoint exactly
    assert ckpt["step"] >= 50 and len(ckpt["step_losses"]) == ckpt["step"] and lock_holder(out) is None


@posix
@slow
def test_while_a_run_trains_a_second_is_refused_sample_only_warns_and_kill_9_loses_at_most_one_interval(
        small_text_path, tmp_path, capsys):
    out = tmp_path / "out"
    proc = start_long_run(small_text_path, out)
    try:
        code, _, err = call_main("bigram_v1", [*TINY, "--data", small_text_path, "--out", out, "--overwrite"], capsys)
        one_line_error(code, err, "in use by process", str(proc.pid))
        assert (out / "ckpt.pt").exists()  # --overwrite deleted nothing of the running job's
        code, _, err = call_main("bigram_v1", ["--sample-only", "--out", out, "--max-new-tokens", 5], capsys)
        assert code == 0 and f"a run is still training in {out} (process {proc.pid})" in err
    finally:
        stop(proc)  # SIGKILL: no handler runs
    ckpt = torch.load(out / "ckpt.pt", weights_only=True)
    assert ckpt["step"] >= 50 and ckpt["step"] % 50 == 0
    assert (out / "best.pt").exists() and lock_holder(out) is None  # the operating system released the lock


@posix
@slow
@pytest.mark.parametrize("mode", ["sample-only", "training"])
def test_a_stop_while_the_sample_prints_ends_the_line_says_so_and_frees_the_lock(mode, gpt_run, small_text_path):
    (gpt_run / "metrics.json").write_text('{"trunc')  # neither --sample-only nor --resume reads it
    flags = ["--sample-only"] if mode == "sample-only" else ["--resume", "--data", str(small_text_path)]
    proc = subprocess.Popen([sys.executable, "gpt.py", *flags, "--out", str(gpt_run), "--device", "cpu",
                             "--max-new-tokens", "10000000", "--seed", "1"], cwd=REPO_ROOT, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        while not proc.stdout.readline().startswith(b"---- sample (seed 1:"):
            assert proc.poll() is None, proc.stderr.read()
        drawn = proc.stdout.read(40)  # arrives while ten million characters are still to come
        assert len(drawn) == 40 and proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        stdout, err = proc.communicate(timeout=30)
    finally:
        stop(proc)
    assert proc.returncode == 143 and stdout.endswith(b"\n")  # the message is not glued to the sample
    assert err.decode().strip().splitlines()[-1].startswith("gpt.py: stopped by SIGTERM") and lock_holder(gpt_run) is None


# ---- closed streams, full disks and failed saves ----------------------------------------------------------


@posix
@slow
@pytest.mark.parametrize("closed", ["stdout", "stderr"])
def test_a_closed_stdout_or_stderr_does_not_stop_training_or_cost_the_checkpoint(closed, small_text_path, tmp_path):
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "gpt.py", *tiny("gpt", max_iters=200, eval_interval=20),
                             "--data", str(small_text_path), "--out", str(out)], cwd=REPO_ROOT, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=(lambda: os.close(2)) if closed == "stderr" else None)  # `2>&-`
    if closed == "stdout":
        assert proc.stdout.readline().startswith("device:")  # like `| head -1`: read a line, then hang up
        proc.stdout.close()
    proc.communicate(timeout=120)
    assert proc.returncode == 0
    assert json.loads((out / "metrics.json").read_text())["iters"] == 200


@posix
@slow
def test_a_file_size_limit_at_save_is_one_line_and_the_previous_checkpoint_survives(gpt_run, small_text_path):
    """The kernel refuses the write (RLIMIT_FSIZE, as a full disk or a quota would): a real failed write, no
    mount needed, of a partly written temporary file."""
    import resource
    before = {name: (gpt_run / name).read_bytes() for name in ("ckpt.pt", "best.pt")}

    def limit_file_size():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a too-large write then fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))

    proc = script("gpt", *tiny("gpt", max_iters=40), "--resume", "--data", small_text_path, "--out", gpt_run,
                  preexec_fn=limit_file_size)
    one_line_error(proc.returncode, proc.stderr, "cannot save", str(gpt_run), "File too large", "free some space",
                   "intact")
    assert {name: (gpt_run / name).read_bytes() for name in before} == before
    assert not list(gpt_run.glob("*.tmp")) and lock_holder(gpt_run) is None


def test_overwrite_keeps_the_old_run_until_the_new_one_has_its_first_checkpoint(gpt_run, monkeypatch, small_text_path,
                                                                                capsys):
    before = {p.name: p.read_bytes() for p in gpt_run.iterdir() if p.name != ".lock"}

    def fails(*args, **kwargs):
        raise MemoryError  # anything that ends the new run before its first checkpoint

    argv = [*tiny("gpt", n_embd=8), "--overwrite", "--seed", 7, "--data", small_text_path, "--out", gpt_run]
    monkeypatch.setattr(runner.loop, "estimate_loss", fails)
    code, _, err = call_main("gpt", argv, capsys)
    one_line_error(code, err, "out of memory")
    assert {p.name: p.read_bytes() for p in gpt_run.iterdir() if p.name != ".lock"} == before
    monkeypatch.undo()
    code, _, err = call_main("gpt", argv, capsys)
    assert code == 0, err  # --overwrite replaces a trained model, even one of other sizes
    assert json.loads((gpt_run / "metrics.json").read_text())["config"]["n_embd"] == 8


def test_a_reader_testing_the_lock_for_an_instant_or_a_pid_left_in_it_does_not_turn_a_starting_run_away(tmp_path):
    (tmp_path / runner.checkpoints.LOCK).write_text("1")  # pid 1, alive (every container's first process)
    # load_run (--sample-only, the figures, the explorer) takes the lock for an instant to see if a run holds it
    reader = open(tmp_path / runner.checkpoints.LOCK, "a+", encoding="utf-8")
    assert runner.checkpoints.take(reader)
    threading.Timer(0.1, reader.close).start()  # the reader lets go a tenth of a second later
    runner.checkpoints.lock(str(tmp_path)).close()  # the run waited for it instead of saying "in use"


# ---- resuming what the project wrote itself ----------------------------------------------------------------


def test_a_diverged_run_resumes_and_its_metrics_are_json_with_null_for_nan(small_text_path, tmp_path, capsys):
    flags = [*tiny("gpt", max_iters=50, final_eval=200, dropout=None), "--lr", 10, "--weight-decay", 10,
             "--data", small_text_path, "--out", tmp_path]
    code, _, err = call_main("gpt", [*flags, "--stop-at", 30], capsys)
    assert code == 0, err
    assert math.isnan(torch.load(tmp_path / "ckpt.pt", weights_only=True)["history"][-1]["val"])
    code, out, err = call_main("gpt", [*flags, "--resume"], capsys)
    assert code == 0, err  # it reports, and samples, its best model: one from before it diverged
    metrics = json.loads((tmp_path / "metrics.json").read_text(), parse_constant=lambda c: pytest.fail(c))
    assert metrics["iters"] == 50 and metrics["history"][-1]["val"] is None  # NaN, written as null


def test_a_missing_or_damaged_best_model_is_set_aside_at_resume_not_at_the_end(gpt_run, small_text_path, capsys):
    (gpt_run / "best.pt").write_bytes((gpt_run / "best.pt").read_bytes()[:1000])  # truncated
    code, stdout, err = call_main("gpt", ["--resume", "--max-iters", 30, "--data", small_text_path, "--out", gpt_run],
                                  capsys)
    assert code == 0, err
    assert [line for line in stdout.splitlines() if line.startswith("note: ") and "best.pt" in line]
    assert torch.load(gpt_run / "best.pt", weights_only=True)["iter"] == 30


def test_a_resumed_run_keeps_its_best_evaluation_and_goes_on_a_changed_text_when_allowed(gpt_run, small_text, tmp_path,
                                                                                          capsys):
    ckpt, best = (torch.load(gpt_run / name, weights_only=True) for name in ("ckpt.pt", "best.pt"))
    kept = ckpt["best"] = ckpt["history"][1] = {**ckpt["history"][1], "val": -1.0}  # step 10's, made unbeatable
    best.update(kept)
    torch.save(ckpt, gpt_run / "ckpt.pt")
    torch.save(best, gpt_run / "best.pt")
    changed = tmp_path / "changed.txt"
    changed.write_text(small_text[::-1], encoding="utf-8")  # the same characters, another text
    code, stdout, err = call_main("gpt", ["--resume", "--max-iters", 40, "--data", changed, "--out", gpt_run,
                                          "--allow-new-text"], capsys)
    assert code == 0, err
    assert "--allow-new-text" in stdout and json.loads((gpt_run / "metrics.json").read_text())["kept"] == kept


# ---- every bad input: one line (exit status 1), or argparse's one line for a bad flag (2) ------------------


def edit(name, change):
    """A setup: the finished run, with change(checkpoint) saved in its file `name`."""
    def setup(out):
        ckpt = torch.load(out / name, weights_only=True)
        change(ckpt)
        torch.save(ckpt, out / name)
    return setup


def swap_optimizer_states(ckpt):  # what a version with another parameter order would write
    state = ckpt["optimizer"]["state"]
    state[0], state[1] = state[1], state[0]


RUN, RESUME, SAMPLE = lambda out: None, ["--resume", "--data", "{data}"], ["--sample-only"]  # RUN: as it is
# Flag values out of their range: argparse's one line naming the flag, exit status 2.
BAD_FLAGS = [("--seed", 2**64), ("--seed", -1), ("--max-iters", 0), ("--lr", "nan"), ("--temperature", 101),
             ("--top-k", 0), ("--dropout", 1), ("--block-size", "1e9"), ("--threads", 0)]
CASES = {f"{name}={value}": ("gpt", None, [name, value], 2, [name]) for name, value in BAD_FLAGS}
# name: (stage, --out: None (nothing there) or setup(a copy of the finished gpt run), flags, exit status, the line's
# key words)
CASES.update({
    "abbreviated-flag": ("gpt", None, ["--max-iter", 5], 2, ["unrecognized arguments: --max-iter 5"]),
    "n-embd-by-n-head": ("gpt", None, ["--n-embd", 10, "--n-head", 3], 1, ["n_embd (10)", "n_head (3)"]),
    "cuda-without-gpu": ("gpt", None, ["--device", "cuda"], 1, ["--device cuda"]),
    # what load_text says of each unusable text is tested in test_shakespeare.py; here: what the runner passes it
    "data-empty-path": ("gpt", None, ["--data", ""], 1, ["--data is empty"]),  # not "no --data"
    "data-too-short": ("bigram_v2", None, ["--data", "{tmp}/short.txt", "--block-size", 16], 1, ["42 char", "170"]),
    "prompt-outside-vocabulary": ("gpt", None, ["--prompt", "Zounds\u00e9"], 1, [repr("\u00e9")]),
    "sample-prompt-outside-vocabulary": ("gpt", RUN, [*SAMPLE, "--prompt", "First\tCitizen~"], 1, [repr("\t"),
                                                                                               repr("~")]),
    "sample-block-size-against-the-checkpoint": ("gpt", RUN, [*SAMPLE, "--block-size", 32], 1, ["block_size=16",
                                                                                              "--block-size 32"]),
    "sample-n-head-against-the-checkpoint": ("gpt", RUN, [*SAMPLE, "--n-head", 3], 1, ["n_head=2", "--n-head 3"]),
    "out-under-a-file": ("gpt", None, ["--out", "{tmp}/short.txt/run"], 1, ["--out", "Not a directory"]),
    "trained-model-there": ("gpt", RUN, [], 1, ["already holds a trained gpt model", "--resume", "--overwrite"]),
    "another-stage-there": ("bigram_v2", RUN, [], 1, ["already holds", "--overwrite", "!--resume"]),
    "finished-run-without-ckpt": ("gpt", lambda out: (out / "ckpt.pt").unlink(), RESUME, 1,
                                  ["no trained model", "--overwrite"]),
    "resume-nothing": ("gpt", None, RESUME, 1, ["no trained model", "train first"]),
    "resume-another-stage": ("bigram_v2", RUN, RESUME, 1, ["gpt.py"]),
    "resume-max-iters-too-small": ("gpt", RUN, [*RESUME, "--max-iters", 10], 1, ["--max-iters 10", "(20)", "!delete"]),
    "resume-another-text": ("gpt", RUN, ["--resume", "--data", "{tmp}/reversed.txt"], 1,
                            ["another text", "--allow-new-text"]),
    "resume-other-vocabulary-allowed": ("gpt", RUN, ["--resume", "--data", "{tmp}/upper.txt", "--allow-new-text"], 1,
                                        ["another text"]),
    "sample-nan-weights": ("gpt", edit("best.pt", lambda c: c["model"]["lm_head.weight"].fill_(math.nan)), SAMPLE,
                           1, ["not all finite"]),
})
# A file the project did not write as it is: "<file> is not a usable gpt checkpoint (<why>)", whatever the edit.
UNUSABLE = {  # name: (setup, flags, key words)
    "resume-garbage": (lambda out: (out / "ckpt.pt").write_bytes(b"\x00garbage\xff" * 20), RESUME, ["ckpt.pt"]),
    "sample-a-list": (lambda out: torch.save([1, 2], out / "best.pt"), SAMPLE, ["best.pt"]),
    "sample-weights-of-other-vocabulary": (edit("best.pt", lambda c: c["tokenizer"].update(
        chars=c["tokenizer"]["chars"][:-3])), SAMPLE, ["best.pt"]),
    "best-config-edited": (edit("best.pt", lambda c: c["config"].update(n_layer=-1)), SAMPLE, ["best.pt", "n_layer"]),
    "config-n-embd-a-string": (edit("ckpt.pt", lambda c: c["config"].update(n_embd="16")), RESUME, ["n_embd"]),
    "config-lr-missing": (edit("ckpt.pt", lambda c: c["config"].pop("lr")), RESUME, ["lr"]),
    "config-not-a-dict": (edit("ckpt.pt", lambda c: c.update(config="x")), RESUME, ["ckpt.pt"]),
    "tokenizer-repeats": (edit("ckpt.pt", lambda c: c["tokenizer"].update(chars="aab")), RESUME, ["ckpt.pt"]),
    "step-negative": (edit("ckpt.pt", lambda c: c.update(step=-3)), RESUME, ["step"]),
    "optimizer-missing": (edit("ckpt.pt", lambda c: c.pop("optimizer")), RESUME, ["optimizer"]),
    "optimizer-states-swapped": (edit("ckpt.pt", swap_optimizer_states), RESUME, ["optimizer"]),
    "optimizer-groups-a-string": (edit("ckpt.pt", lambda c: c["optimizer"].update(param_groups="x")), RESUME,
                                  ["ckpt.pt"]),
    "rng-missing": (edit("ckpt.pt", lambda c: c.update(rng={})), RESUME, ["ckpt.pt"]),
    "rng-batches-wrong": (edit("ckpt.pt", lambda c: c["rng"][0].update(batches=torch.zeros(8).byte())), RESUME,
                          ["ckpt.pt"]),
}
CASES.update({name: ("gpt", setup, flags, 1, ["not a usable gpt checkpoint", *words])
              for name, (setup, flags, words) in UNUSABLE.items()})


@pytest.mark.parametrize("name", CASES)
def test_every_bad_input_ends_in_one_line_that_says_what_to_do(name, gpt_run, small_text, small_text_path, tmp_path,
                                                                capsys):
    stage, setup, flags, status, words = CASES[name]
    out = gpt_run if setup else tmp_path / "nothing"
    if setup:
        setup(out)
    (tmp_path / "upper.txt").write_text(small_text.upper(), encoding="utf-8")  # no lower case: another vocabulary
    (tmp_path / "reversed.txt").write_text(small_text[::-1], encoding="utf-8")  # the same characters
    (tmp_path / "short.txt").write_text("To be, or not to be, that is the question.")  # 42: val would get 5
    before = {p: p.read_bytes() for p in out.glob("*") if p.is_file() and p.name != ".lock"}
    argv = ["--data", small_text_path, *TINY, "--out", out, *[str(f).format(tmp=tmp_path, data=small_text_path)
                                                              for f in flags]]
    code, stdout, err = call_main(stage, argv, capsys)
    line = one_line_error(code, err, *words, status=status)
    assert line.startswith(f"{stage}.py: error: ") and "Traceback" not in stdout
    assert {p: p.read_bytes() for p in before} == before  # a refused run changes nothing in --out


# ---- terminals, numbers, what --sample-only needs ----------------------------------------------------------


@slow
def test_a_terminal_that_cannot_show_a_character_gets_a_question_mark_not_a_crash(tmp_path):
    text = tmp_path / "accents.txt"
    text.write_text("Café au lait, s'il vous plaît. Où est la gare? " * 200, encoding="utf-8")
    proc = script("bigram_v1", *TINY, "--data", text, "--out", tmp_path / "out", "--prompt", "Café",
                  "--max-new-tokens", 30, env={**ENV, "PYTHONIOENCODING": "ascii"})
    assert proc.returncode == 0, proc.stderr
    assert "Caf?" in proc.stdout and "Traceback" not in proc.stderr
