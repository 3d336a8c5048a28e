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
from pathlib import Path

import pytest
import torch

import runner
from helpers import ENV, REPO_ROOT, call_main, printed_sample, script

LONG_FLAGS = ["--max-iters", "100000", "--eval-interval", "50", "--eval-iters", "1", "--batch-size", "4",
              "--block-size", "8", "--device", "cpu"]
TINY_GPT = ["--max-iters", "20", "--eval-interval", "10", "--eval-iters", "1", "--batch-size", "4",
            "--block-size", "16", "--n-embd", "16", "--n-head", "2", "--n-layer", "1", "--device", "cpu",
            "--max-new-tokens", "10", "--final-eval", "500"]
posix = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
slow = pytest.mark.slow


def one_line_error(code, err, *fragments, status=1):
    """Exit status 1 (2: a bad flag) and one line on stderr besides the progress bar's; a fragment that
    starts with "!" must be absent from it."""
    assert code == status, err
    bars = tuple(f"{stage}: " for stage in runner.STAGES)  # tqdm's lines, "gpt:  50%|..."
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith(bars)]
    assert len(lines) == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert (fragment[1:] not in lines[0]) if fragment.startswith("!") else (fragment in lines[0]), lines[0]
    return lines[0]


def start_long_run(stage, data, out, tmp_path, *extra):
    """A run of 100,000 steps, started in the background; returns once it has printed 'step 50:'."""
    log = tmp_path / f"{out.name}.stdout"
    with open(log, "w") as f:
        proc = subprocess.Popen([sys.executable, f"{stage}.py", *LONG_FLAGS, "--data", str(data), "--out", str(out),
                                 *extra], cwd=REPO_ROOT, env=ENV, stdout=f, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 90
    while "step 50:" not in log.read_text():
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline, "no 'step 50:' line within 90 s"
        time.sleep(0.05)
    return proc


def stop(proc):
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def lock_is_free(out):
    with open(out / ".lock", "a+") as f:
        return runner.checkpoints.take(f)


@pytest.fixture(scope="module")
def gpt_run(tmp_path_factory, small_text_path):
    """A finished 20-step gpt run (n_embd 16, 2 heads), shared: copy it before changing it."""
    out = tmp_path_factory.mktemp("gpt_run") / "out"
    proc = script("gpt", *TINY_GPT, "--data", small_text_path, "--out", out)
    assert proc.returncode == 0, proc.stderr
    return out


# ---- signals ------------------------------------------------------------------------------------------


@posix
@slow
@pytest.mark.parametrize("signame, status", [("SIGINT", 130), ("SIGTERM", 143), ("SIGHUP", 129)])
def test_a_stop_signal_stops_between_steps_saves_and_resumes_exactly(signame, status, small_text_path, tmp_path):
    out = tmp_path / "out"
    proc = start_long_run("bigram_v1", small_text_path, out, tmp_path)
    try:
        proc.send_signal(getattr(signal, signame))
        code = proc.wait(timeout=60)
        err = proc.stderr.read()
    finally:
        stop(proc)
    assert code == status, err
    assert "Traceback" not in err and f"stopped by {signame}" in err and "--resume" in err
    ckpt = torch.load(out / "ckpt.pt", weights_only=True)
    assert ckpt["step"] >= 50 and len(ckpt["step_losses"]) == ckpt["step"] and lock_is_free(out)
    if signame != "SIGTERM":
        return  # the same stop as SIGTERM's from here on; resuming it is checked once, for SIGTERM
    stop_at = ckpt["step"] + 5
    resumed = script("bigram_v1", "--resume", "--data", small_text_path, "--out", out, "--stop-at", stop_at)
    assert resumed.returncode == 0, resumed.stderr
    whole = script("bigram_v1", *LONG_FLAGS, "--data", small_text_path, "--out", tmp_path / "whole",
                   "--stop-at", stop_at)
    assert whole.returncode == 0, whole.stderr
    a = torch.load(out / "ckpt.pt", weights_only=True)["step_losses"]
    assert a == torch.load(tmp_path / "whole" / "ckpt.pt", weights_only=True)["step_losses"]


@posix
@slow
def test_a_checkpoint_is_saved_at_every_evaluation_so_kill_9_loses_at_most_one_interval(small_text_path, tmp_path):
    out = tmp_path / "out"
    proc = start_long_run("bigram_v1", small_text_path, out, tmp_path)
    stop(proc)  # SIGKILL: no handler runs
    ckpt = torch.load(out / "ckpt.pt", weights_only=True)
    assert ckpt["step"] >= 50 and ckpt["step"] % 50 == 0
    assert (out / "best.pt").exists() and lock_is_free(out)  # the operating system released the lock


@posix
@slow
@pytest.mark.parametrize("mode", ["sample-only", "training"])
def test_a_stop_while_the_sample_prints_ends_the_line_says_so_and_frees_the_lock(mode, gpt_run, small_text_path,
                                                                                tmp_path):
    out = tmp_path / "out"
    shutil.copytree(gpt_run, out)
    flags = ["--sample-only"] if mode == "sample-only" else ["--resume", "--data", str(small_text_path)]
    proc = subprocess.Popen([sys.executable, "gpt.py", *flags, "--out", str(out), "--device", "cpu",
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
    assert err.decode().strip().splitlines()[-1].startswith("gpt.py: stopped by SIGTERM") and lock_is_free(out)


def test_the_callers_own_signal_handlers_come_back_after_main(small_text_path, tmp_path, capsys):
    def mine(signum, frame):
        pass

    previous = signal.signal(signal.SIGTERM, mine)
    try:
        code, _, err = call_main("bigram_v1", [*TINY_GPT[:10], "--data", small_text_path, "--out", tmp_path], capsys)
        assert code == 0, err
        assert signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGTERM, previous)


# ---- closed streams, full disks and failed saves ----------------------------------------------------------


@posix
@slow
@pytest.mark.parametrize("closed", ["stdout", "stderr"])
def test_a_closed_stdout_or_stderr_does_not_stop_training_or_cost_the_checkpoint(closed, small_text_path, tmp_path):
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "gpt.py", *TINY_GPT, "--max-iters", "200", "--eval-interval", "20",
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
def test_a_file_size_limit_at_save_is_one_line_and_the_previous_checkpoint_survives(gpt_run, small_text_path, tmp_path):
    """The kernel refuses the write (RLIMIT_FSIZE, as a quota would): a real failed write, no mount needed."""
    import resource
    out = tmp_path / "out"
    shutil.copytree(gpt_run, out)
    before = {name: (out / name).read_bytes() for name in ("ckpt.pt", "best.pt")}

    def limit_file_size():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a too-large write then fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))

    proc = script("gpt", *TINY_GPT, "--max-iters", "40", "--resume", "--data", small_text_path, "--out", out,
                  preexec_fn=limit_file_size)
    one_line_error(proc.returncode, proc.stderr, "cannot save", str(out), "File too large",
                   "previous file there is intact")
    assert {name: (out / name).read_bytes() for name in before} == before
    assert not list(out.glob("*.tmp")) and lock_is_free(out)


def test_a_full_disk_at_the_first_save_names_the_path_and_the_cause(monkeypatch, capsys, small_text_path, tmp_path):
    def no_space(tmp):
        Path(tmp).write_bytes(b"x" * 100)  # the disk fills up part way
        raise OSError(28, "No space left on device")

    real = runner.checkpoints.atomic_write
    monkeypatch.setattr(runner.checkpoints, "atomic_write", lambda path, write: real(path, no_space))
    code, _, err = call_main("bigram_v1", [*TINY_GPT[:10], "--data", small_text_path, "--out", tmp_path / "out"],
                             capsys)
    one_line_error(code, err, "No space left on device", str(tmp_path / "out"), "free some space", "!--resume")
    assert not list((tmp_path / "out").glob("*.tmp"))


def test_overwrite_keeps_the_old_run_until_the_new_one_has_its_first_checkpoint(gpt_run, monkeypatch, small_text_path,
                                                                                tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(gpt_run, out)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.name != ".lock"}

    def fails(*args, **kwargs):
        raise MemoryError  # anything that ends the new run before its first checkpoint

    monkeypatch.setattr(runner.loop, "estimate_loss", fails)
    code, _, err = call_main("gpt", [*TINY_GPT, "--overwrite", "--seed", 7, "--data", small_text_path, "--out", out],
                             capsys)
    one_line_error(code, err, "out of memory")
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.name != ".lock"} == before
    monkeypatch.undo()
    code, _, err = call_main("gpt", [*TINY_GPT, "--overwrite", "--seed", 7, "--data", small_text_path, "--out", out],
                             capsys)
    assert code == 0, err
    assert json.loads((out / "metrics.json").read_text())["seed"] == 7


# ---- one writer per --out ---------------------------------------------------------------------------------


@posix
@slow
def test_a_second_run_on_the_same_out_is_refused_naming_the_first_ones_pid(small_text_path, tmp_path, capsys):
    out = tmp_path / "out"
    proc = start_long_run("bigram_v1", small_text_path, out, tmp_path)
    try:
        code, _, err = call_main("bigram_v1", [*TINY_GPT[:10], "--data", small_text_path, "--out", out, "--overwrite"],
                                 capsys)
        one_line_error(code, err, "in use by process", str(proc.pid))
        assert (out / "ckpt.pt").exists()  # --overwrite deleted nothing of the running job's
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    assert lock_is_free(out)  # released on the way out


@pytest.mark.parametrize("content", ["garbage", "1", ""])
def test_a_lock_file_no_process_holds_blocks_nothing(content, small_text_path, tmp_path, capsys):
    (tmp_path / ".lock").write_text(content)  # a dead run's pid, pid 1 (every container's), or nothing
    code, _, err = call_main("bigram_v1", [*TINY_GPT[:10], "--data", small_text_path, "--out", tmp_path], capsys)
    assert code == 0, err


# ---- resuming what the project wrote itself ----------------------------------------------------------------


def test_a_diverged_run_resumes_and_its_metrics_are_json_with_null_for_nan(small_text_path, tmp_path, capsys):
    flags = [*TINY_GPT[:16], "--lr", 10, "--weight-decay", 10, "--max-iters", 50, "--final-eval", 200,
             "--data", small_text_path, "--out", tmp_path]
    code, _, err = call_main("gpt", [*flags, "--stop-at", 30], capsys)
    assert code == 0, err
    assert math.isnan(torch.load(tmp_path / "ckpt.pt", weights_only=True)["history"][-1]["val"])
    code, out, err = call_main("gpt", [*flags, "--resume"], capsys)
    assert code == 0, err  # it reports, and samples, its best model: one from before it diverged
    metrics = json.loads((tmp_path / "metrics.json").read_text(), parse_constant=lambda c: pytest.fail(c))
    assert metrics["iters"] == 50 and metrics["history"][-1]["val"] is None  # NaN, written as null


def test_a_missing_or_damaged_best_model_is_set_aside_at_resume_not_at_the_end(gpt_run, small_text_path, tmp_path,
                                                                                capsys):
    out = tmp_path / "out"
    shutil.copytree(gpt_run, out)
    (out / "best.pt").write_bytes((out / "best.pt").read_bytes()[:1000])  # truncated
    code, stdout, err = call_main("gpt", ["--resume", "--max-iters", 30, "--data", small_text_path, "--out", out],
                                  capsys)
    assert code == 0, err
    assert "note: " in stdout and "best.pt is not a usable gpt checkpoint" in stdout
    assert torch.load(out / "best.pt", weights_only=True)["iter"] == 30


def test_a_resumed_run_keeps_its_best_evaluation(gpt_run, small_text_path, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(gpt_run, out)
    ckpt, best = (torch.load(out / name, weights_only=True) for name in ("ckpt.pt", "best.pt"))
    kept = ckpt["best"] = ckpt["history"][1] = {**ckpt["history"][1], "val": -1.0}  # step 10's, made unbeatable
    best.update(kept)
    torch.save(ckpt, out / "ckpt.pt")
    torch.save(best, out / "best.pt")
    code, _, err = call_main("gpt", ["--resume", "--max-iters", 40, "--data", small_text_path, "--out", out], capsys)
    assert code == 0, err
    assert json.loads((out / "metrics.json").read_text())["kept"] == kept


# ---- every bad input: one line (exit status 1), or argparse's one line for a bad flag (2) ------------------


def edit(name, change):
    """A setup: copy the finished run, then change(checkpoint) in its file name."""
    def setup(run, out):
        shutil.copytree(run, out)
        ckpt = torch.load(out / name, weights_only=True)
        change(ckpt)
        torch.save(ckpt, out / name)
    return setup


def write(name, content):
    def setup(run, out):
        shutil.copytree(run, out)
        (out / name).write_bytes(content) if content is not None else (out / name).unlink()
    return setup


def swap_optimizer_states(ckpt):  # what a version with another parameter order would write
    state = ckpt["optimizer"]["state"]
    state[0], state[1] = state[1], state[0]


def text(content):
    def setup(run, out):
        out.mkdir()
        (out / "text.txt").write_bytes(content)
    return setup


COPY = write("none", b"")
RESUME, SAMPLE = ["--resume", "--data", "{data}"], ["--sample-only"]
CASES = {  # name: (stage, setup, flags, exit status, fragments of the line)
    "seed-over-2**62": ("gpt", None, ["--seed", 2**64], 2, ["--seed", "0 to"]),
    "seed-negative": ("gpt", None, ["--seed", -1], 2, ["--seed"]),
    "max-iters-0": ("gpt", None, ["--max-iters", 0], 2, ["--max-iters", "1 to 100,000,000"]),
    "lr-nan": ("gpt", None, ["--lr", "nan"], 2, ["--lr"]),
    "temperature-101": ("gpt", None, ["--temperature", 101], 2, ["--temperature"]),
    "top-k-0": ("gpt", None, ["--top-k", 0], 2, ["--top-k"]),
    "dropout-1": ("gpt", None, ["--dropout", 1], 2, ["--dropout"]),
    "block-size-1e9": ("gpt", None, ["--block-size", "1e9"], 2, ["--block-size"]),
    "threads-0": ("gpt", None, ["--threads", 0], 2, ["--threads"]),
    "abbreviated-flag": ("gpt", None, ["--max-iter", 5], 2, ["unrecognized arguments: --max-iter 5"]),
    "n-embd-by-n-head": ("gpt", None, ["--n-embd", 10, "--n-head", 3], 1, ["n_embd (10)", "n_head (3)"]),
    "cuda-without-gpu": ("gpt", None, ["--device", "cuda"], 1, ["--device cuda"]),
    "data-missing": ("gpt", None, ["--data", "{out}/nope.txt"], 1, ["nope.txt does not exist"]),
    "data-empty-path": ("gpt", None, ["--data", ""], 1, ["--data is empty"]),
    "data-directory": ("gpt", None, ["--data", "{tmp}"], 1, ["is a directory"]),
    "data-empty": ("bigram_v2", text(b""), ["--data", "{out}/text.txt"], 1, ["is empty"]),
    "data-not-utf8": ("bigram_v2", text(b"caf\xe9 au lait, " * 10), ["--data", "{out}/text.txt"], 1, ["not UTF-8"]),
    "data-too-short": ("bigram_v2", text(b"To be, or not to be, that is the question."),  # 42: val would get 5
                       ["--data", "{out}/text.txt", "--block-size", 16], 1, ["has 42 characters, needs 170"]),
    "sample-prompt-outside-vocabulary": ("gpt", COPY, [*SAMPLE, "--prompt", "First\tCitizen~"], 1, [repr("\t"),
                                                                                                repr("~")]),
    "sample-block-size-against-the-checkpoint": ("gpt", COPY, [*SAMPLE, "--block-size", 32], 1, ["block_size=16",
                                                                                               "--block-size 32"]),
    "prompt-outside-vocabulary": ("gpt", None, ["--prompt", "Zounds\u00e9"], 1, [repr("\u00e9"), "those characters"]),
    "out-is-a-file": ("gpt", text(b""), ["--out", "{out}/text.txt"], 1, ["cannot use --out", "File exists"]),
    "out-under-a-file": ("gpt", text(b""), ["--out", "{out}/text.txt/run"], 1, ["cannot use --out", "Not a directory"]),
    "out-symlink-loop": ("gpt", lambda run, out: out.symlink_to(out), [], 1, ["cannot use --out", "!in use"]),
    "trained-model-there": ("gpt", COPY, [], 1, ["already holds a trained gpt model", "--resume", "--overwrite"]),
    "another-stage-there": ("bigram_v2", COPY, [], 1, ["already holds", "--overwrite", "!--resume"]),
    "finished-run-without-ckpt": ("gpt", write("ckpt.pt", None), RESUME, 1, ["no trained model", "--overwrite"]),
    "resume-nothing": ("gpt", None, RESUME, 1, ["no trained model", "train first"]),
    "sample-nothing": ("bigram_v2", None, SAMPLE, 1, ["no trained model", "train first"]),
    "resume-another-stage": ("bigram_v2", COPY, RESUME, 1, ["written by gpt.py", "a bigram_v2 run"]),
    "sample-another-stage": ("bigram_v2", COPY, SAMPLE, 1, ["written by gpt.py", "a bigram_v2 run"]),
    "resume-garbage": ("gpt", write("ckpt.pt", b"\x00garbage\xff" * 20), RESUME, 1, ["not a usable gpt checkpoint"]),
    "sample-empty-file": ("gpt", write("best.pt", b""), SAMPLE, 1, ["best.pt is not a usable gpt checkpoint"]),
    "sample-a-list": ("gpt", lambda run, out: out.mkdir() or torch.save([1, 2], out / "best.pt"), SAMPLE, 1,
                      ["holds no model"]),
    "resume-max-iters-too-small": ("gpt", COPY, [*RESUME, "--max-iters", 10], 1, ["--max-iters 10 is below", "(20)",
                                                                                  "!delete"]),
    "resume-other-vocabulary": ("gpt", COPY, ["--resume", "--data", "{upper}"], 1, ["another vocabulary"]),
    "resume-another-text": ("gpt", COPY, ["--resume", "--data", "{reversed}"], 1, ["another text", "--allow-new-text"]),
    "sample-n-head-against-the-checkpoint": ("gpt", COPY, [*SAMPLE, "--n-head", 3], 1, ["n_head=2", "--n-head 3",
                                                                                       "drop the flag"]),
    "sample-nan-weights": ("gpt", edit("best.pt", lambda c: c["model"]["lm_head.weight"].fill_(math.nan)), SAMPLE,
                           1, ["not all finite"]),
    "sample-weights-of-other-vocabulary": ("gpt", edit("best.pt", lambda c: c["tokenizer"].update(
        chars=c["tokenizer"]["chars"][:-3])), SAMPLE, 1, ["best.pt", "do not fit"]),
    "best-config-edited": ("gpt", edit("best.pt", lambda c: c["config"].update(n_layer=-1)), SAMPLE, 1,
                           ["best.pt", "n_layer must be in"]),
    "config-n-embd-a-string": ("gpt", edit("ckpt.pt", lambda c: c["config"].update(n_embd="16")), RESUME, 1,
                               ["n_embd must be a whole number"]),
    "config-lr-missing": ("gpt", edit("ckpt.pt", lambda c: c["config"].pop("lr")), RESUME, 1, ["lacks lr"]),
    "config-not-a-dict": ("gpt", edit("ckpt.pt", lambda c: c.update(config="x")), RESUME, 1, ["not a dictionary"]),
    "tokenizer-repeats": ("gpt", edit("ckpt.pt", lambda c: c["tokenizer"].update(chars="aab")), RESUME, 1,
                          ["each character once"]),
    "step-negative": ("gpt", edit("ckpt.pt", lambda c: c.update(step=-3)), RESUME, 1, ["step -3"]),
    "optimizer-missing": ("gpt", edit("ckpt.pt", lambda c: c.pop("optimizer")), RESUME, 1, ["KeyError"]),
    "optimizer-states-swapped": ("gpt", edit("ckpt.pt", swap_optimizer_states), RESUME, 1,
                                 ["optimizer state does not fit"]),
    "optimizer-state-of-another-shape": ("gpt", edit("ckpt.pt", lambda c: c["optimizer"]["state"][2].update(
        exp_avg=torch.zeros(3))), RESUME, 1, ["optimizer state does not fit"]),
    "optimizer-groups-a-string": ("gpt", edit("ckpt.pt", lambda c: c["optimizer"].update(param_groups="x")), RESUME,
                                  1, ["not a usable gpt checkpoint"]),
    "rng-missing": ("gpt", edit("ckpt.pt", lambda c: c.update(rng={})), RESUME, 1, ["not a usable gpt checkpoint"]),
    "rng-batches-wrong": ("gpt", edit("ckpt.pt", lambda c: c["rng"][0].update(batches=torch.zeros(8).byte())), RESUME,
                          1, ["not a usable gpt checkpoint"]),
}


@pytest.mark.parametrize("name", CASES)
def test_every_bad_input_ends_in_one_line_that_says_what_to_do(name, gpt_run, small_text, small_text_path, tmp_path,
                                                                capsys):
    stage, setup, flags, status, fragments = CASES[name]
    out = tmp_path / "out"
    if setup:
        setup(gpt_run, out)
    (tmp_path / "upper.txt").write_text(small_text.upper(), encoding="utf-8")  # no lower case: another vocabulary
    (tmp_path / "reversed.txt").write_text(small_text[::-1], encoding="utf-8")  # the same characters
    places = dict(out=out, tmp=tmp_path, data=small_text_path, upper=tmp_path / "upper.txt",
                  reversed=tmp_path / "reversed.txt")
    argv = ["--data", small_text_path, *TINY_GPT[:10], "--out", out, *[str(f).format(**places) for f in flags]]
    code, stdout, err = call_main(stage, argv, capsys)
    line = one_line_error(code, err, *fragments, status=status)
    assert line.startswith(f"{stage}.py: error: ") and "Traceback" not in stdout


# ---- terminals, texts, numbers -------------------------------------------------------------------------------


@slow
def test_a_terminal_that_cannot_show_a_character_gets_a_question_mark_not_a_crash(tmp_path):
    text = tmp_path / "accents.txt"
    text.write_text("Café au lait, s'il vous plaît. Où est la gare? " * 200, encoding="utf-8")
    proc = subprocess.run([sys.executable, "bigram_v1.py", *TINY_GPT[:10], "--data", str(text),
                           "--out", str(tmp_path / "out"), "--prompt", "Café", "--max-new-tokens", "30"],
                          cwd=REPO_ROOT, env={**ENV, "PYTHONIOENCODING": "ascii"}, capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert b"Caf?" in proc.stdout and b"Traceback" not in proc.stderr


def test_resuming_on_a_changed_text_goes_on_when_allowed_and_says_so(gpt_run, small_text, tmp_path, capsys):
    out = tmp_path / "copy"
    shutil.copytree(gpt_run, out)
    changed = tmp_path / "changed.txt"
    changed.write_text(small_text[::-1], encoding="utf-8")  # the same characters, another text
    code, out_text, err = call_main("gpt", ["--resume", "--data", changed, "--out", out, "--allow-new-text",
                                            "--max-iters", 30, "--final-eval", 0], capsys)
    assert code == 0, err
    assert "--allow-new-text" in out_text


@pytest.mark.parametrize("temperature", ["1e-40", "0"])
def test_a_tiny_or_zero_temperature_samples_the_likeliest_characters(temperature, gpt_run, capsys):
    texts = set()
    for seed in (1, 2):
        code, out, err = call_main("gpt", ["--sample-only", "--out", gpt_run, "--temperature", temperature,
                                           "--seed", seed, "--max-new-tokens", 30], capsys)
        assert code == 0, err
        texts.add(printed_sample(out))
    assert len(texts) == 1  # greedy: the seed no longer matters


def test_sample_only_needs_neither_metrics_json_nor_the_text(gpt_run, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(gpt_run, out)
    (out / "metrics.json").write_text('{"trunc')
    code, stdout, err = call_main("gpt", ["--sample-only", "--out", out, "--max-new-tokens", 5], capsys)
    assert code == 0, err
    assert len(printed_sample(stdout)) == 5


def test_a_reader_testing_the_lock_for_an_instant_does_not_turn_a_starting_run_away(tmp_path):
    # load_run (--sample-only, the figures, the explorer) takes the lock for an instant to see if a run holds it
    from runner import checkpoints

    reader = open(tmp_path / checkpoints.LOCK, "a+", encoding="utf-8")
    assert checkpoints.take(reader)
    threading.Timer(0.1, reader.close).start()  # the reader lets go a tenth of a second later
    checkpoints.lock(str(tmp_path)).close()  # the run waited for it instead of saying "in use"
