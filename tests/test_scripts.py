"""The four stage scripts end to end: real runs as subprocesses, on a small text and tiny sizes.

Training runs are shared between tests (module-scoped fixtures), so each stage trains once. Checks that
stop before any training (bad flags, bad files, bad checkpoints) call the stage's main(argv) in-process,
which is the very function `python <stage>.py` runs, and a few of them are repeated as real subprocesses
to prove the exit status and the one-line message hold for the script itself.
"""

import importlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch.testing import assert_close

import runner
from data import CharTokenizer, split
from helpers import call_main, printed_sample

REPO_ROOT = Path(__file__).resolve().parents[1]
STAGES = list(runner.STAGES)
# Tiny models gain nothing from a second thread, and on a busy machine two threads wait on each other.
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
TRAIN_FLAGS = ["--max-iters", "30", "--eval-interval", "10", "--eval-iters", "2", "--batch-size", "4",
               "--block-size", "16", "--max-new-tokens", "20", "--device", "cpu"]
SIZE_FLAGS = {
    "bigram_v1": [],
    "bigram_v2": ["--n-embd", "16"],
    "bigram_v3": ["--n-embd", "16", "--n-head", "2"],
    "gpt": ["--n-embd", "16", "--n-head", "2", "--n-layer", "1", "--dropout", "0.1"],  # dropout: RNG matters
}
COMMON_FLAGS = ["--max-iters", "--eval-interval", "--eval-iters", "--batch-size", "--block-size", "--lr", "--seed",
                "--device", "--data", "--out", "--resume", "--sample-only", "--prompt", "--max-new-tokens",
                "--temperature", "--top-k"]
STAGE_FLAGS = {
    "bigram_v1": [],
    "bigram_v2": ["--n-embd"],
    "bigram_v3": ["--n-embd", "--n-head"],
    "gpt": ["--n-embd", "--n-head", "--n-layer", "--dropout"],
}
METRICS_KEYS = {"stage", "params", "iters", "batch_size", "block_size", "device", "train_loss", "val_loss",
                "train_seconds", "tokens_per_second", "bigram_floor"}
slow = pytest.mark.slow


def run_script(stage, *args):
    return subprocess.run([sys.executable, f"{stage}.py", *map(str, args)], cwd=REPO_ROOT, env=ENV,
                          capture_output=True, text=True, timeout=120)


def train_args(stage, data, out):
    return [*TRAIN_FLAGS, *SIZE_FLAGS[stage], "--data", data, "--out", out]


def assert_one_line_error(code, err, stage, *fragments):
    assert code == 1, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"{stage}.py: error: ")
    for fragment in fragments:
        assert fragment in lines[0]


def assert_argparse_error(code, err, *fragments):
    """A bad flag: exit status 2 and one line that names it, no usage block."""
    assert code == 2, err
    assert "error:" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    for fragment in fragments:
        assert fragment in err


def load_ckpt(out):
    return torch.load(Path(out) / "ckpt.pt", weights_only=True)


def sample_only_output(stdout):
    """What --sample-only printed: nothing but its sample (its notes go to stderr)."""
    assert stdout.startswith("---- sample ("), stdout
    return printed_sample(stdout)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, small_text_path, prompt):
    """trained(stage): that stage's 30-step run on the small text, run once per module and shared."""
    runs = {}

    def get(stage):
        if stage not in runs:
            out = tmp_path_factory.mktemp(f"trained_{stage}")
            proc = run_script(stage, *train_args(stage, small_text_path, out), "--prompt", prompt)
            assert proc.returncode == 0, proc.stderr
            runs[stage] = (out, proc)
        return runs[stage]

    return get


# ---- --help -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stage", STAGES)
def test_help_exits_0_and_lists_every_flag_of_the_stage(stage, capsys):
    code, out, _ = call_main(stage, ["--help"], capsys)
    assert code == 0
    for flag in COMMON_FLAGS + STAGE_FLAGS[stage]:
        assert flag in out, flag
    for flag in {"--n-embd", "--n-head", "--n-layer", "--dropout"} - set(STAGE_FLAGS[stage]):
        assert flag not in out, f"{stage} has no use for {flag}"


# ---- a training run -----------------------------------------------------------------------------------


@slow
@pytest.mark.parametrize("stage", STAGES)
def test_training_run_writes_checkpoint_tokenizer_and_metrics_with_every_key(stage, trained, small_text):
    out, _ = trained(stage)
    metrics = json.loads((out / "metrics.json").read_text())
    assert METRICS_KEYS <= metrics.keys()
    assert (metrics["stage"], metrics["iters"], metrics["batch_size"], metrics["block_size"], metrics["device"]) == (
        stage, 30, 4, 16, "cpu")
    tok = CharTokenizer.from_text(small_text)
    model = importlib.import_module(stage).build_model(metrics["config"], tok.vocab_size)
    assert metrics["params"] == sum(p.numel() for p in model.parameters())
    train, val = split(torch.tensor(tok.encode(small_text)))
    assert_close(metrics["bigram_floor"], runner.bigram_floor(train, val, tok.vocab_size))
    assert all(math.isfinite(metrics[k]) for k in ("train_loss", "val_loss"))
    assert metrics["train_seconds"] > 0 and metrics["tokens_per_second"] > 0

    ckpt = load_ckpt(out)
    assert (ckpt["stage"], ckpt["step"], len(ckpt["step_losses"])) == (stage, 30, 30)
    assert CharTokenizer.load(out / "tokenizer.json") == tok


@slow
@pytest.mark.parametrize("stage", STAGES)
def test_training_run_prints_a_sample_of_the_prompt_and_max_new_tokens_characters(stage, trained, prompt):
    _, proc = trained(stage)
    assert "step 0:" in proc.stdout and "Traceback" not in proc.stderr
    sample = printed_sample(proc.stdout)
    assert sample.startswith(prompt)
    assert len(sample) == len(prompt) + 20


@slow
@pytest.mark.parametrize("stage", ["bigram_v1", "gpt"])  # sampling.sample, and the KV-cache loop
def test_sample_only_prints_the_training_runs_sample_again_without_training(stage, trained, prompt):
    out, train_proc = trained(stage)
    before = {name: (out / name).stat().st_mtime_ns for name in ("ckpt.pt", "metrics.json")}
    proc = run_script(stage, "--sample-only", "--out", out, "--prompt", prompt, "--max-new-tokens", "20",
                      "--device", "cpu", "--seed", "1337")  # the seed training used
    assert proc.returncode == 0, proc.stderr
    assert "step 0" not in proc.stdout
    assert {name: (out / name).stat().st_mtime_ns for name in before} == before
    # the same weights, seed and prompt draw the same characters
    assert sample_only_output(proc.stdout) == printed_sample(train_proc.stdout)


# ---- resuming -----------------------------------------------------------------------------------------


@slow
@pytest.mark.parametrize("stage", ["bigram_v1", "gpt"])  # gpt trains with dropout: the RNG state must resume too
def test_stop_at_then_resume_repeats_the_uninterrupted_runs_losses_exactly(stage, trained, small_text_path, prompt,
                                                                          tmp_path):
    out_a, proc_a = trained(stage)
    out_b = tmp_path / "b"
    first = run_script(stage, *train_args(stage, small_text_path, out_b), "--stop-at", 12, "--prompt", prompt)
    assert first.returncode == 0, first.stderr
    assert "stopped at step 12 of 30" in first.stdout
    assert load_ckpt(out_b)["step"] == 12
    assert not (out_b / "metrics.json").exists()

    # sizes, iterations and dropout all come back from the checkpoint
    second = run_script(stage, "--resume", "--data", small_text_path, "--out", out_b, "--device", "cpu",
                        "--prompt", prompt, "--max-new-tokens", 20)
    assert second.returncode == 0, second.stderr
    assert "resuming" in second.stdout and "at step 12 of 30" in second.stdout

    ckpt_a, ckpt_b = load_ckpt(out_a), load_ckpt(out_b)
    assert ckpt_b["step_losses"] == ckpt_a["step_losses"]
    assert [(h["iter"], h["train"], h["val"]) for h in ckpt_b["history"]] == [
        (h["iter"], h["train"], h["val"]) for h in ckpt_a["history"]]
    metrics_a = json.loads((out_a / "metrics.json").read_text())
    metrics_b = json.loads((out_b / "metrics.json").read_text())
    assert (metrics_b["val_loss"], metrics_b["train_loss"]) == (metrics_a["val_loss"], metrics_a["train_loss"])
    assert printed_sample(second.stdout) == printed_sample(proc_a.stdout)


# ---- Ctrl-C -------------------------------------------------------------------------------------------

# bigram_v1 with an eval line every 50 steps: once "step 50:" is printed, training is well under way
CTRL_C_FLAGS = ["--max-iters", "100000", "--eval-interval", "50", "--eval-iters", "1", "--batch-size", "4",
                "--block-size", "8", "--device", "cpu"]


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory, small_text_path):
    """A bigram_v1 run sent SIGINT mid-training: (out dir, exit status, stderr)."""
    if sys.platform == "win32":
        pytest.skip("sending SIGINT to a child process is POSIX")
    tmp = tmp_path_factory.mktemp("interrupted")
    out, stdout_path, stderr_path = tmp / "out", tmp / "stdout.txt", tmp / "stderr.txt"
    args = [sys.executable, "bigram_v1.py", *CTRL_C_FLAGS, "--data", str(small_text_path), "--out", str(out)]
    with open(stdout_path, "w") as stdout, open(stderr_path, "w") as stderr:
        # unbuffered, so the eval line reaches the file the moment it is printed
        proc = subprocess.Popen(args, cwd=REPO_ROOT, env={**ENV, "PYTHONUNBUFFERED": "1"}, stdout=stdout, stderr=stderr)
        try:
            deadline = time.monotonic() + 60
            while "step 50:" not in stdout_path.read_text():
                assert proc.poll() is None, stderr_path.read_text()
                assert time.monotonic() < deadline, "no 'step 50:' line within 60 s"
                time.sleep(0.05)
            proc.send_signal(signal.SIGINT)
            code = proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return out, code, stderr_path.read_text()


@slow
def test_ctrl_c_exits_130_saves_a_checkpoint_and_says_to_resume(interrupted):
    out, code, err = interrupted
    assert code == 130, err
    assert "Traceback" not in err
    assert "--resume" in err
    ckpt = load_ckpt(out)
    assert ckpt["step"] >= 50
    assert len(ckpt["step_losses"]) == ckpt["step"]


@slow
def test_sample_only_works_on_the_checkpoint_saved_by_ctrl_c(interrupted, capsys, prompt):
    out, _, _ = interrupted
    code, stdout, err = call_main("bigram_v1", ["--sample-only", "--out", out, "--prompt", prompt,
                                                "--max-new-tokens", 20, "--device", "cpu"], capsys)
    assert code == 0, err
    assert sample_only_output(stdout).startswith(prompt)
    assert len(sample_only_output(stdout)) == len(prompt) + 20


@slow
def test_resume_after_ctrl_c_repeats_the_uninterrupted_runs_losses_exactly(interrupted, small_text_path, tmp_path):
    out, _, _ = interrupted
    resumed = tmp_path / "resumed"
    shutil.copytree(out, resumed)
    step = load_ckpt(resumed)["step"]
    stop_at = step + 5  # both runs keep the same 100000-step schedule and stop at the same step
    proc = run_script("bigram_v1", "--resume", "--data", small_text_path, "--out", resumed, "--stop-at", stop_at,
                      "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    whole = tmp_path / "whole"
    proc = run_script("bigram_v1", *CTRL_C_FLAGS, "--data", small_text_path, "--out", whole, "--stop-at", stop_at)
    assert proc.returncode == 0, proc.stderr
    resumed_losses, whole_losses = load_ckpt(resumed)["step_losses"], load_ckpt(whole)["step_losses"]
    assert len(resumed_losses) == len(whole_losses) == stop_at
    first_difference = next((i for i, (a, b) in enumerate(zip(resumed_losses, whole_losses)) if a != b), None)
    assert first_difference is None, f"interrupted at step {step}; the losses part at step {first_difference}"


# ---- bad input: real runs -----------------------------------------------------------------------------


@slow
def test_script_with_a_prompt_character_outside_the_vocabulary_names_it_in_one_line(trained):
    out, _ = trained("gpt")
    proc = run_script("gpt", "--sample-only", "--out", out, "--prompt", "First\tCitizen~", "--device", "cpu")
    assert proc.stdout == ""
    assert_one_line_error(proc.returncode, proc.stderr, "gpt", repr("\t"), repr("~"))


@slow
def test_script_with_a_corrupt_checkpoint_says_so_in_one_line(trained, tmp_path):
    out, _ = trained("bigram_v1")
    broken = tmp_path / "broken"
    shutil.copytree(out, broken)
    for name in ("ckpt.pt", "best.pt"):  # --sample-only reads best.pt, --resume ckpt.pt
        (broken / name).write_bytes(b"\x00garbage, not a checkpoint\xff" * 10)
    proc = run_script("bigram_v1", "--sample-only", "--out", broken, "--device", "cpu")
    assert_one_line_error(proc.returncode, proc.stderr, "bigram_v1", "corrupt")


@slow
def test_script_with_a_missing_data_file_says_so_in_one_line(tmp_path):
    missing = tmp_path / "no-such-file.txt"
    proc = run_script("bigram_v2", "--data", missing, "--out", tmp_path / "out", "--device", "cpu")
    assert_one_line_error(proc.returncode, proc.stderr, "bigram_v2", str(missing), "does not exist")
    assert not (tmp_path / "out").exists()


@slow
def test_script_with_zero_max_iters_is_an_argparse_error(tmp_path):
    proc = run_script("bigram_v3", "--max-iters", 0, "--out", tmp_path / "out")
    assert_argparse_error(proc.returncode, proc.stderr, "--max-iters", "1 to 100,000,000")


# ---- bad input: main(argv) in-process ------------------------------------------------------------------


@pytest.mark.parametrize("flag, value", [
    ("--max-iters", "0"), ("--max-iters", "-5"), ("--batch-size", "0"), ("--batch-size", "-1"),
    ("--block-size", "0"), ("--block-size", "-8"), ("--lr", "0"), ("--lr", "-0.001"), ("--lr", "nan"),
    ("--lr", "inf"), ("--temperature", "101"), ("--temperature", "-1"), ("--eval-iters", "0"),
    ("--eval-interval", "0"), ("--max-new-tokens", "-1"), ("--top-k", "0"), ("--dropout", "1"),
    ("--dropout", "-0.1"), ("--n-embd", "0"), ("--n-head", "0"), ("--n-layer", "0"), ("--stop-at", "0"),
    ("--batch-size", "100000000"), ("--n-embd", "100000"), ("--block-size", "1e9"),
])
def test_a_zero_negative_or_out_of_range_number_is_an_argparse_error_naming_the_flag(flag, value, capsys, tmp_path):
    code, _, err = call_main("gpt", [flag, value, "--out", tmp_path / "out"], capsys)
    assert_argparse_error(code, err, flag)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("stage", ["bigram_v3", "gpt"])
def test_n_embd_not_divisible_by_n_head_is_one_line(stage, capsys, small_text_path, tmp_path):
    code, _, err = call_main(stage, ["--n-embd", 10, "--n-head", 3, "--data", small_text_path,
                                     "--out", tmp_path / "out"], capsys)
    assert_one_line_error(code, err, stage, "n_embd (10)", "n_head (3)")


def test_unknown_prompt_character_is_caught_before_training(capsys, small_text_path, tmp_path):
    code, _, err = call_main("bigram_v1", ["--data", small_text_path, "--out", tmp_path / "out",
                                           "--prompt", "Zounds\u00e9"], capsys)
    assert_one_line_error(code, err, "bigram_v1", repr("\u00e9"))
    assert not (tmp_path / "out" / "ckpt.pt").exists()


def test_empty_prompt_samples_from_a_newline_and_exits_0(trained, capsys):
    out, _ = trained("bigram_v1")
    code, stdout, err = call_main("bigram_v1", ["--sample-only", "--out", out, "--prompt", "",
                                                "--max-new-tokens", 20, "--device", "cpu"], capsys)
    assert code == 0, err
    assert len(sample_only_output(stdout)) == 20


@pytest.mark.parametrize("stage", STAGES)
def test_prompt_longer_than_the_block_is_sampled_from_its_last_block(stage, trained, small_text, capsys):
    out, _ = trained(stage)
    long_prompt = small_text[:40]  # block_size is 16
    code, stdout, err = call_main(stage, ["--sample-only", "--out", out, "--prompt", long_prompt,
                                          "--max-new-tokens", 20, "--device", "cpu"], capsys)
    assert code == 0, err
    assert sample_only_output(stdout).startswith(long_prompt)
    assert len(sample_only_output(stdout)) == 40 + 20


@pytest.mark.parametrize("mode", ["--sample-only", "--resume"])
def test_no_checkpoint_says_to_train_first(mode, capsys, small_text_path, tmp_path):
    code, _, err = call_main("bigram_v2", [mode, "--data", small_text_path, "--out", tmp_path / "empty"], capsys)
    assert_one_line_error(code, err, "bigram_v2", "no trained model", "train first")


@pytest.mark.parametrize("mode", ["--sample-only", "--resume"])
def test_checkpoint_of_another_stage_is_refused_naming_both(mode, trained, capsys, small_text_path):
    out, _ = trained("bigram_v1")
    code, _, err = call_main("bigram_v2", [mode, "--data", small_text_path, "--out", out], capsys)
    assert_one_line_error(code, err, "bigram_v2", "bigram_v1.py", "not bigram_v2.py")


def test_resuming_on_a_text_with_other_characters_is_refused(trained, capsys, small_text, tmp_path):
    out, _ = trained("bigram_v1")
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    other = tmp_path / "upper.txt"
    other.write_text(small_text.upper(), encoding="utf-8")  # no lower-case letters: another vocabulary
    code, _, err = call_main("bigram_v1", ["--resume", "--data", other, "--out", copy], capsys)
    assert_one_line_error(code, err, "bigram_v1", "another vocabulary")


def test_sample_only_with_another_block_size_than_the_checkpoint_is_refused(trained, capsys):
    out, _ = trained("gpt")
    code, _, err = call_main("gpt", ["--sample-only", "--out", out, "--block-size", 32], capsys)
    assert_one_line_error(code, err, "gpt", "block_size=16", "--block-size 32")


@pytest.mark.parametrize("mode", ["--sample-only", "--resume"])
@pytest.mark.parametrize("content", [b"\x00garbage\xff" * 20, b""], ids=["garbage", "empty"])
def test_corrupt_checkpoint_is_one_line(mode, content, trained, capsys, small_text_path, tmp_path):
    out, _ = trained("bigram_v1")
    broken = tmp_path / "broken"
    shutil.copytree(out, broken)
    for name in ("ckpt.pt", "best.pt"):
        (broken / name).write_bytes(content)
    code, _, err = call_main("bigram_v1", [mode, "--data", small_text_path, "--out", broken], capsys)
    assert_one_line_error(code, err, "bigram_v1", "corrupt")


def test_a_torch_file_that_is_not_a_checkpoint_is_one_line(capsys, tmp_path):
    (tmp_path / "out").mkdir()
    torch.save([1, 2, 3], tmp_path / "out" / "ckpt.pt")
    code, _, err = call_main("bigram_v1", ["--sample-only", "--out", tmp_path / "out"], capsys)
    assert_one_line_error(code, err, "bigram_v1", "not a gpt-from-scratch checkpoint")


def test_out_that_cannot_be_written_is_one_line(capsys, small_text_path, tmp_path):
    a_file = tmp_path / "a-file"
    a_file.write_text("not a directory")
    # a path under a regular file: unwritable even for root, which ignores permission bits
    code, _, err = call_main("bigram_v1", ["--data", small_text_path, "--out", a_file / "out"], capsys)
    assert_one_line_error(code, err, "bigram_v1", "cannot write to --out")


@pytest.mark.parametrize("content, fragment", [
    (b"", "is empty"),
    (b"caf\xe9 au lait, " * 10, "is not UTF-8"),
    (b"To be, or no", "needs 17"),  # 12 characters, fewer than block_size + 1 = 17
    (b"To be, or not to be, that is the question.", "validation split"),  # 43: val has 5 < 17
])
def test_unusable_data_file_is_one_line(content, fragment, capsys, tmp_path):
    data = tmp_path / "text.txt"
    data.write_bytes(content)
    code, _, err = call_main("bigram_v2", ["--data", data, "--block-size", 16, "--out", tmp_path / "out"], capsys)
    assert_one_line_error(code, err, "bigram_v2", fragment)


@pytest.mark.parametrize("kind", ["missing", "directory"])
def test_data_path_that_is_no_file_is_one_line(kind, capsys, tmp_path):
    data = tmp_path / "data"
    if kind == "directory":
        data.mkdir()
    code, _, err = call_main("gpt", ["--data", data, "--out", tmp_path / "out"], capsys)
    assert_one_line_error(code, err, "gpt", str(data))


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_device_cuda_without_a_gpu_is_one_line(capsys, small_text_path, tmp_path):
    code, _, err = call_main("bigram_v1", ["--device", "cuda", "--data", small_text_path, "--out", tmp_path / "o"],
                             capsys)
    assert_one_line_error(code, err, "bigram_v1", "--device cuda")
