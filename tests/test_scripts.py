"""The four stage scripts end to end: real runs as subprocesses, on a small text and tiny sizes.

Each stage trains once per test run (conftest's `trained`), and the tests here read what that run wrote and
printed. Checks that need no training call the stage's main(argv) in-process, which is the very function
`python <stage>.py` runs.
"""

import importlib
import json
import math

import pytest
import torch
from torch.testing import assert_close

import runner
from conftest import PROMPT
from data import CharTokenizer, split
from helpers import SAMPLE_HEADER, SIZES, call_main, printed_sample

STAGES = list(runner.STAGES)
slow = pytest.mark.slow


@pytest.mark.parametrize("stage", STAGES)
def test_help_exits_0_and_lists_the_size_flags_of_the_stage_and_no_others(stage, capsys):
    code, out, _ = call_main(stage, ["--help"], capsys)
    assert code == 0
    for size in SIZES["gpt"]:  # gpt's sizes are every stage's and more
        assert (f"--{size.replace('_', '-')}" in out) == (size in SIZES[stage]), size


@slow
@pytest.mark.parametrize("stage", STAGES)
def test_training_run_writes_checkpoint_tokenizer_and_metrics_and_prints_its_sample(stage, trained, small_text):
    out, proc = trained(stage)
    metrics = json.loads((out / "metrics.json").read_text())
    assert (metrics["stage"], metrics["iters"], metrics["batch_size"], metrics["block_size"], metrics["device"]) == (
        stage, 20, 4, 16, "cpu")
    tok = CharTokenizer.from_text(small_text)
    model = importlib.import_module(stage).build_model(metrics["config"], tok.vocab_size)
    assert metrics["params"] == sum(p.numel() for p in model.parameters())
    train, val = split(torch.tensor(tok.encode(small_text)))
    assert_close(metrics["bigram_floor"], runner.bigram_floor(train, val, tok.vocab_size))
    assert all(math.isfinite(metrics[k]) for k in ("train_loss", "val_loss"))
    ckpt = torch.load(out / "ckpt.pt", weights_only=True)
    assert (ckpt["stage"], ckpt["step"], len(ckpt["step_losses"])) == (stage, 20, 20)
    assert "step 0:" in proc.stdout and "Traceback" not in proc.stderr
    assert ("matmuls in" in proc.stdout) == (stage != "bigram_v1")  # bigram_v1 has no matmul to name a format for
    # stderr is a pipe here (a notebook's !python, a log file): the progress bar still shows its start and end
    assert f"{stage}:   0%" in proc.stderr and "| 20/20 [" in proc.stderr
    # the sample: the prompt, then --max-new-tokens characters
    sample = printed_sample(proc.stdout)
    assert sample.startswith(PROMPT) and len(sample) == len(PROMPT) + 20


@pytest.mark.parametrize("stage, prompt", [("bigram_v1", ""), ("gpt", PROMPT * 3)])  # sampling.sample, the KV cache
def test_sample_only_draws_the_training_sample_with_its_seed_a_new_one_without_and_continues_any_prompt(
        stage, prompt, trained, capsys):
    out, proc = trained(stage)
    before = {name: (out / name).stat().st_mtime_ns for name in ("ckpt.pt", "metrics.json")}

    def sample_only(*flags):  # (the seed it names, its sample, its stderr)
        code, stdout, err = call_main(stage, ["--sample-only", "--out", out, "--max-new-tokens", 20, "--device", "cpu",
                                              *flags], capsys)
        assert code == 0 and stdout.startswith("---- sample ("), err  # no training: nothing but the sample
        return int(SAMPLE_HEADER.search(stdout)[1]), printed_sample(stdout), err

    _, again, err = sample_only("--prompt", PROMPT, "--seed", 1337)  # the training run's prompt and seed
    assert again == printed_sample(proc.stdout)
    kept = json.loads((out / "metrics.json").read_text())["kept"]
    assert f"the model of step {kept['iter']} (val estimate {kept['val']:.4f}) in {out / 'best.pt'}" in err
    assert "still training" not in err
    # an empty prompt starts from a newline; one longer than the block (16) is sampled from its last block
    (seed, first, _), (_, second, _) = sample_only("--prompt", prompt), sample_only("--prompt", prompt)
    assert first != second and sample_only("--prompt", prompt, "--seed", seed)[1] == first
    assert first.startswith(prompt) and len(first) == len(prompt) + 20
    greedy = {sample_only("--temperature", 0, "--seed", seed)[1] for seed in (1, 2)}
    assert len(greedy) == 1  # --temperature 0 takes the likeliest character: the seed no longer matters
    assert {name: (out / name).stat().st_mtime_ns for name in before} == before
