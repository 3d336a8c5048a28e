"""Nothing lost, whatever ends a run: signals, closed pipes, full disks, edited checkpoints, two runs on
one --out, terminals that cannot show every character. Real subprocesses and real signals where the OS
has them; an injected OSError where a test cannot make the real condition (a full disk needs a mount).
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import runner
from helpers import call_main, printed_sample
from data.atomic import TEMP_PREFIX

REPO_ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
LONG_FLAGS = ["--max-iters", "100000", "--eval-interval", "50", "--eval-iters", "1", "--batch-size", "4",
              "--block-size", "8", "--device", "cpu"]
TINY_GPT = ["--max-iters", "20", "--eval-interval", "10", "--eval-iters", "1", "--batch-size", "4",
            "--block-size", "16", "--n-embd", "16", "--n-head", "2", "--n-layer", "1", "--device", "cpu",
            "--max-new-tokens", "10", "--final-eval", "500"]
posix = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
slow = pytest.mark.slow


def one_line_error(code, err, *fragments, after_progress=False):
    """Exit status 1 and one error line; after_progress: progress lines of a run may come before it."""
    assert code == 1, err
    lines = err.strip().splitlines()
    if after_progress:
        lines = [line for line in lines if not line.startswith(("gpt: step", "bigram_v1: step"))]
    assert len(lines) == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def start_long_run(stage, data, out, tmp_path, *extra, stdout=None):
    """A run of 100,000 steps, started in the background; returns once it has printed 'step 50:'."""
    log = tmp_path / f"{out.name}.stdout"
    f = open(log, "w")
    proc = subprocess.Popen([sys.executable, f"{stage}.py", *LONG_FLAGS, "--data", str(data), "--out", str(out), *extra],
                            cwd=REPO_ROOT, env=ENV, stdout=stdout or f, stderr=subprocess.PIPE, text=True)
    proc.log = log
    if stdout is None:
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


# ---- signals ------------------------------------------------------------------------------------------


@posix
@slow
@pytest.mark.parametrize("signame, status", [("SIGTERM", 143), ("SIGHUP", 129)])
def test_sigterm_and_sighup_stop_between_steps_save_and_resume_exactly(signame, status, small_text_path, tmp_path):
    out = tmp_path / "out"
    proc = start_long_run("bigram_v1", small_text_path, out, tmp_path)
    try:
        proc.send_signal(getattr(signal, signame))
        code = proc.wait(timeout=60)
        err = proc.stderr.read()
    finally:
        stop(proc)
    assert code == status, err
    assert "Traceback" not in err and signame in err and "--resume" in err
    ckpt = torch.load(out / "ckpt.pt", weights_only=True)
    assert ckpt["step"] >= 50 and len(ckpt["step_losses"]) == ckpt["step"]
    if signame == "SIGHUP":
        return  # the same stop as SIGTERM's from here on; resuming it is checked once, below, for SIGTERM
    stop_at = ckpt["step"] + 5
    resumed = subprocess.run([sys.executable, "bigram_v1.py", "--resume", "--data", str(small_text_path), "--out",
                              str(out), "--stop-at", str(stop_at), "--device", "cpu"],
                             cwd=REPO_ROOT, env=ENV, capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    whole = subprocess.run([sys.executable, "bigram_v1.py", *LONG_FLAGS, "--data", str(small_text_path), "--out",
                            str(tmp_path / "whole"), "--stop-at", str(stop_at)],
                           cwd=REPO_ROOT, env=ENV, capture_output=True, text=True, timeout=120)
    assert whole.returncode == 0, whole.stderr
    a = torch.load(out / "ckpt.pt", weights_only=True)["step_losses"]
    b = torch.load(tmp_path / "whole" / "ckpt.pt", weights_only=True)["step_losses"]
    assert a == b


@posix
@slow
def test_a_checkpoint_is_saved_at_every_evaluation_so_kill_9_loses_at_most_one_interval(small_text_path, tmp_path):
    out = tmp_path / "out"
    proc = start_long_run("bigram_v1", small_text_path, out, tmp_path)
    stop(proc)  # SIGKILL: no handler runs
    ckpt = torch.load(out / "ckpt.pt", weights_only=True)
    assert ckpt["step"] >= 50 and ckpt["step"] % 50 == 0
    assert (out / "best.pt").exists()


@posix
@slow
def test_a_closed_stdout_does_not_stop_training_or_cost_the_checkpoint(small_text_path, tmp_path):
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "gpt.py", *TINY_GPT, "--max-iters", "200", "--eval-interval", "20",
                             "--data", str(small_text_path), "--out", str(out)],
                            cwd=REPO_ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = proc.stdout.readline()  # like `| head -1`: read a line, then hang up
    proc.stdout.close()
    err = proc.stderr.read()
    code = proc.wait(timeout=120)
    assert first.startswith("device:")
    assert code == 0, err
    assert "Traceback" not in err and "BrokenPipeError" not in err
    assert json.loads((out / "metrics.json").read_text())["iters"] == 200


# ---- full disks and failed saves -------------------------------------------------------------------------


@posix
@slow
def test_a_file_size_limit_at_save_is_one_line_and_the_previous_checkpoint_survives(small_text_path, tmp_path):
    """The kernel refuses the write (RLIMIT_FSIZE, as a quota would): a real failed write, no mount needed."""
    import resource
    out = tmp_path / "out"
    first = subprocess.run([sys.executable, "gpt.py", *TINY_GPT, "--data", str(small_text_path), "--out", str(out)],
                           cwd=REPO_ROOT, env=ENV, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    before = {name: (out / name).read_bytes() for name in ("ckpt.pt", "best.pt")}

    def limit_file_size():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a too-large write then fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))

    proc = subprocess.run([sys.executable, "gpt.py", *TINY_GPT, "--max-iters", "40", "--resume",
                           "--data", str(small_text_path), "--out", str(out)],
                          cwd=REPO_ROOT, env=ENV, capture_output=True, text=True, timeout=120, preexec_fn=limit_file_size)
    line = one_line_error(proc.returncode, proc.stderr, "cannot save", str(out), "File too large",
                          "previous file there is intact", after_progress=True)
    assert line.split("cannot save ")[1].split(" ")[0] in (str(out / "ckpt.pt"), str(out / "best.pt"))
    assert {name: (out / name).read_bytes() for name in before} == before
    assert not [p for p in out.iterdir() if p.name.startswith(TEMP_PREFIX)]


def test_a_full_disk_at_save_names_the_path_and_the_cause(monkeypatch, capsys, small_text_path, tmp_path):
    def no_space(tmp):
        Path(tmp).write_bytes(b"x" * 100)  # the disk fills up part way
        raise OSError(28, "No space left on device")

    real = runner.files.atomic_write
    monkeypatch.setattr(runner.files, "atomic_write", lambda path, write: real(path, no_space))
    code, _, err = call_main("bigram_v1", [*TINY_GPT[:10], "--data", small_text_path, "--out", tmp_path / "out"], capsys)
    one_line_error(code, err, "No space left on device", str(tmp_path / "out"), "free some space", after_progress=True)
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(TEMP_PREFIX)]


@posix
def test_temp_files_left_by_a_killed_save_are_removed_by_the_next_run(small_text_path, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    leftover = out / f"{TEMP_PREFIX}{dead.pid}-abcd1234-ckpt.pt"
    leftover.write_bytes(b"half a checkpoint")
    mine = out / "notes.txt"
    mine.write_text("not ours to delete")
    code, _, err = call_main("bigram_v1", [*TINY_GPT[:10], "--data", small_text_path, "--out", out], capsys)
    assert code == 0, err
    assert not leftover.exists() and mine.exists()


# ---- edited and foreign checkpoints -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def gpt_run(tmp_path_factory, small_text_path):
    out = tmp_path_factory.mktemp("gpt_run") / "out"
    proc = subprocess.run([sys.executable, "gpt.py", *TINY_GPT, "--data", str(small_text_path), "--out", str(out)],
                          cwd=REPO_ROOT, env=ENV, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return out


def set_in(ckpt, path, value):
    *parents, last = path.split(".")
    d = ckpt
    for key in parents:
        d = d[int(key) if key.isdigit() else key]
    if value is KeyError:
        del d[last]
    else:
        d[last] = value


EDITS = [
    ("config.n_embd", "16", "n_embd must be a whole number"),
    ("config.n_head", 0, "n_head must be in"),
    ("config.eval_interval", 0, "eval_interval must be in"),
    ("config.block_size", -8, "block_size must be in"),
    ("config.block_size", 10**9, "block_size must be in"),
    ("config.lr", KeyError, "lacks lr"),
    ("config.dropout", 1.5, "dropout must be in"),
    ("tokenizer.chars", "aab", "tokenizer is unusable"),
    ("step", -3, "step -3"),
    ("step", 10**6, "step 1000000"),
    ("history", [{"train": 1.0, "val": 1.0, "seconds": 0.0}], "history"),
    ("optimizer", KeyError, "optimizer is missing"),
    ("config", "not a dict", "config is not a dictionary"),
    # what a probe of the first redesign found ending in tracebacks: the random-number and optimizer state
    ("rng", {}, "random-number state does not fit"),
    ("rng.0.batches", torch.zeros(8, dtype=torch.uint8), "random-number state does not fit"),
    ("optimizer.param_groups", "x", "optimizer or random-number state does not fit"),
]


@pytest.mark.parametrize("key, value, fragment", EDITS, ids=[f"{k}={v!r}"[:40] for k, v, _ in EDITS])
def test_an_edited_checkpoint_is_refused_in_one_line_before_anything_is_built(key, value, fragment, gpt_run,
                                                                               small_text_path, tmp_path, capsys):
    out = tmp_path / "edited"
    shutil.copytree(gpt_run, out)
    ckpt = torch.load(out / "ckpt.pt", weights_only=True)
    set_in(ckpt, key, value)
    torch.save(ckpt, out / "ckpt.pt")
    code, _, err = call_main("gpt", ["--resume", "--data", small_text_path, "--out", out], capsys)
    one_line_error(code, err, "malformed", fragment)


def test_an_edited_best_model_is_refused_by_sample_only(gpt_run, tmp_path, capsys):
    out = tmp_path / "edited"
    shutil.copytree(gpt_run, out)
    best = torch.load(out / "best.pt", weights_only=True)
    best["config"]["n_layer"] = -1
    torch.save(best, out / "best.pt")
    code, _, err = call_main("gpt", ["--sample-only", "--out", out], capsys)
    one_line_error(code, err, "best.pt", "n_layer must be in")


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
    assert not (out / ".lock").exists()  # released on the way out


def test_a_lock_left_by_a_dead_process_is_taken_over(small_text_path, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (out / ".lock").write_text(str(dead.pid))
    code, _, err = call_main("bigram_v1", [*TINY_GPT[:10], "--data", small_text_path, "--out", out], capsys)
    assert code == 0, err
    assert not (out / ".lock").exists()


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


def test_resuming_on_a_changed_text_with_the_same_characters_is_refused_unless_allowed(gpt_run, small_text,
                                                                                       tmp_path, capsys):
    out = tmp_path / "copy"
    shutil.copytree(gpt_run, out)
    changed = tmp_path / "changed.txt"
    changed.write_text(small_text[::-1], encoding="utf-8")  # the same characters, another text
    code, _, err = call_main("gpt", ["--resume", "--data", changed, "--out", out], capsys)
    one_line_error(code, err, "another text", "--allow-new-text")
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


# ---- what a probe of a fresh clone found (issue 15): each ends in one line and blocks nothing after it ----


@posix
@slow
def test_a_run_that_starts_on_a_full_disk_is_one_line_and_leaves_no_lock_behind(small_text_path, tmp_path):
    """Not even the lock's few bytes can be written (RLIMIT_FSIZE 0, as on a full disk): one line, and the
    next run on that --out, with room to write, is not refused by a lock left empty."""
    import resource
    out = tmp_path / "out"

    def no_room():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write then fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))

    cmd = [sys.executable, "bigram_v1.py", *TINY_GPT[:10], "--data", str(small_text_path), "--out", str(out)]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=ENV, capture_output=True, text=True, timeout=120, preexec_fn=no_room)
    one_line_error(proc.returncode, proc.stderr, "cannot write to --out", "File too large")
    assert not (out / ".lock").exists()
    again = subprocess.run(cmd, cwd=REPO_ROOT, env=ENV, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr


def test_out_naming_an_existing_file_is_one_line(small_text_path, tmp_path, capsys):
    a_file = tmp_path / "a-file"
    a_file.write_text("keep me")
    code, _, err = call_main("bigram_v1", [*TINY_GPT[:10], "--data", small_text_path, "--out", a_file], capsys)
    one_line_error(code, err, str(a_file), "is a file, not a directory")
    assert a_file.read_text() == "keep me"


def test_an_empty_lock_is_respected_while_fresh_and_taken_over_once_stale(small_text_path, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / ".lock").write_text("")  # its writer died between creating it and writing its pid
    code, _, err = call_main("bigram_v1", [*TINY_GPT[:10], "--data", small_text_path, "--out", out], capsys)
    one_line_error(code, err, "in use by process (unknown)", "delete the lock file")
    old = time.time() - 120
    os.utime(out / ".lock", (old, old))
    code, _, err = call_main("bigram_v1", [*TINY_GPT[:10], "--data", small_text_path, "--out", out], capsys)
    assert code == 0, err


def test_a_best_model_that_does_not_fit_its_vocabulary_is_named_by_its_file(gpt_run, tmp_path, capsys):
    out = tmp_path / "edited"
    shutil.copytree(gpt_run, out)
    best = torch.load(out / "best.pt", weights_only=True)
    best["tokenizer"]["chars"] = best["tokenizer"]["chars"][:-3]  # three characters fewer than the weights have
    torch.save(best, out / "best.pt")
    code, _, err = call_main("gpt", ["--sample-only", "--out", out], capsys)
    one_line_error(code, err, str(out / "best.pt"), "does not fit")


@posix
@slow
def test_sample_only_prints_each_character_as_it_is_drawn_so_a_stop_keeps_them(gpt_run):
    proc = subprocess.Popen([sys.executable, "gpt.py", "--sample-only", "--out", str(gpt_run), "--device", "cpu",
                             "--max-new-tokens", "10000000", "--seed", "1"], cwd=REPO_ROOT, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        header = proc.stdout.readline()
        assert header.startswith(b"---- sample (seed 1:"), header + proc.stderr.read()
        drawn = proc.stdout.read(40)  # arrives while ten million characters are still to come
        assert len(drawn) == 40 and proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == -signal.SIGTERM
