"""The four stage scripts end to end: real runs as subprocesses, on a small text and tiny sizes.

Training runs are shared between tests (module-scoped fixtures), so each stage trains once. Checks that
stop before any training (bad flags, bad files, bad checkpoints) call the stage's main(argv) in-process,
which is the very function `python <stage>.py` runs, and a few of them are repeated as real subprocesses
to prove the exit status and the one-line message hold for the script itself.
"""

import importlib
import json
import math
from pathlib import Path

import pytest
import torch
from torch.testing import assert_close

import runner
from data import CharTokenizer, split
from helpers import call_main, printed_sample, script

STAGES = list(runner.STAGES)
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


def train_args(stage, data, out):
    return [*TRAIN_FLAGS, *SIZE_FLAGS[stage], "--data", data, "--out", out]


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
            proc = script(stage, *train_args(stage, small_text_path, out), "--prompt", prompt)
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
    assert CharTokenizer.from_dict(json.loads((out / "tokenizer.json").read_text(encoding="utf-8"))) == tok


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
    proc = script(stage, "--sample-only", "--out", out, "--prompt", prompt, "--max-new-tokens", "20",
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
    first = script(stage, *train_args(stage, small_text_path, out_b), "--stop-at", 12, "--prompt", prompt)
    assert first.returncode == 0, first.stderr
    assert "stopped at step 12 of 30" in first.stdout
    assert load_ckpt(out_b)["step"] == 12
    assert not (out_b / "metrics.json").exists()

    # sizes, iterations and dropout all come back from the checkpoint
    second = script(stage, "--resume", "--data", small_text_path, "--out", out_b, "--device", "cpu",
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


# ---- prompts --------------------------------------------------------------------------------------------


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
