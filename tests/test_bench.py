"""The benchmark runs end to end, and the arithmetic it reports (FLOPs, time to a loss) is right.

The end-to-end tests run `python bench/run.py --quick` as a subprocess, the way a user runs it, at toy
sizes: they prove that every section runs and reports positive numbers, not how fast anything is (speed is
what the benchmark itself measures, on a quiet machine). They need the real Tiny Shakespeare text, found
through conftest.py's shakespeare_path, and are skipped with a note when it is not at hand.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import gpt
import runner
from bench.run import (PerHeadAttention, SECTIONS, loss_at_time, non_embedding_params, per_head_model,
                       time_to_loss, train_flops_per_token, window_nll)
from data.shakespeare import ENV_VAR

ROOT = Path(__file__).resolve().parents[1]

# a loss curve as metrics.json stores it: eval points at cumulative training seconds
HISTORY = [
    {"iter": 0, "seconds": 0.0, "train": 4.2, "val": 4.2},
    {"iter": 50, "seconds": 10.0, "train": 2.5, "val": 2.4},
    {"iter": 100, "seconds": 20.0, "train": 2.0, "val": 2.0},
    {"iter": 150, "seconds": 30.0, "train": 1.5, "val": 1.6},
]


# ----------------------------------------------------------------------------------------------------
# time to a loss


def test_time_to_loss_interpolates_linearly_between_the_eval_points_either_side():
    # val falls from 2.4 at 10 s to 2.0 at 20 s, so it passes 2.2 halfway, at 15 s
    assert time_to_loss(HISTORY, 2.2) == pytest.approx(15.0)
    # from 2.0 at 20 s to 1.6 at 30 s: 1.9 is a quarter of the way
    assert time_to_loss(HISTORY, 1.9) == pytest.approx(22.5)


def test_time_to_loss_is_the_eval_time_of_a_point_exactly_at_the_target():
    assert time_to_loss(HISTORY, 2.0) == pytest.approx(20.0)


def test_time_to_loss_is_zero_when_the_first_eval_already_meets_the_target():
    assert time_to_loss(HISTORY, 5.0) == 0.0


def test_time_to_loss_is_none_when_the_target_is_never_reached():
    assert time_to_loss(HISTORY, 1.5) is None
    assert time_to_loss([], 2.0) is None


def test_time_to_loss_reports_the_first_crossing_when_the_loss_goes_back_up():
    bumpy = [{"seconds": 0.0, "val": 3.0}, {"seconds": 10.0, "val": 1.9}, {"seconds": 20.0, "val": 2.1},
             {"seconds": 30.0, "val": 1.8}]
    # 3.0 -> 1.9 crosses 2.0 at (3.0 - 2.0) / (3.0 - 1.9) of the way from 0 s to 10 s
    assert time_to_loss(bumpy, 2.0) == pytest.approx(10 / 1.1)


def test_loss_at_time_interpolates_and_is_none_past_the_end_of_the_run():
    assert loss_at_time(HISTORY, 25.0) == pytest.approx(1.8)
    assert loss_at_time(HISTORY, 0.0) == pytest.approx(4.2)
    assert loss_at_time(HISTORY, 30.0) == pytest.approx(1.6)
    assert loss_at_time(HISTORY, 30.1) is None


# ----------------------------------------------------------------------------------------------------
# FLOPs, and a fair comparison


def test_train_flops_per_token_is_six_n_plus_twelve_layers_width_context():
    # 6 * 1000 + 12 * 2 * 4 * 8 = 6000 + 768
    assert train_flops_per_token(1000, n_layer=2, n_embd=4, block_size=8) == 6768


def test_non_embedding_params_of_a_tiny_gpt_match_a_count_by_hand():
    cfg = dict(n_embd=4, n_head=2, n_layer=1, block_size=5, dropout=0.0)
    model = gpt.build_model(cfg, vocab_size=3)
    # block: ln1 2*4, qkv 4*12, proj 4*4 + 4, ln2 2*4, ffwd 4*16 + 16 and 16*4 + 4 = 232
    # then ln_f 2*4 and lm_head 4*3 + 3: the lm_head is a matmul, so it counts
    assert non_embedding_params(model) == 232 + 8 + 15
    # the two tables left out are the lookups: tokens 3*4, positions 5*4
    assert runner.count_params(model) == 232 + 8 + 15 + 3 * 4 + 5 * 4


def test_per_head_model_has_exactly_the_parameters_of_gpt_so_their_flops_are_equal():
    cfg = dict(n_embd=12, n_head=3, n_layer=2, block_size=6, dropout=0.0)
    ours, theirs = per_head_model(cfg, 7), gpt.build_model(cfg, 7)
    assert non_embedding_params(ours) == non_embedding_params(theirs)
    assert all(isinstance(block.sa, PerHeadAttention) for block in ours.blocks)


def test_per_head_attention_computes_what_gpt_attention_computes():
    # the benchmark compares two ways of doing the same math; copying weights proves it is the same math
    torch.manual_seed(0)
    n_embd, n_head, block_size = 12, 3, 8
    head_size = n_embd // n_head
    batched = gpt.MultiHeadAttention(n_embd, n_head, dropout=0.0).eval()
    per_head = PerHeadAttention(n_embd, n_head, block_size, dropout=0.0).eval()
    q_rows, k_rows, v_rows = batched.qkv.weight.detach().split(n_embd)  # rows [q heads | k heads | v heads]
    with torch.no_grad():
        for h, head in enumerate(per_head.heads.heads):
            rows = slice(h * head_size, (h + 1) * head_size)
            head.query.weight.copy_(q_rows[rows])
            head.key.weight.copy_(k_rows[rows])
            head.value.weight.copy_(v_rows[rows])
        per_head.proj.load_state_dict(batched.proj.state_dict())
    x = torch.randn(2, block_size, n_embd)  # (B, T, C)
    torch.testing.assert_close(per_head(x), batched(x))


# ----------------------------------------------------------------------------------------------------
# the command, end to end


def test_window_nll_predicts_each_character_from_exactly_the_block_before_it():
    torch.manual_seed(0)
    cfg = dict(gpt.HYPERPARAMETERS, n_embd=16, n_head=2, n_layer=1, block_size=5)
    model = gpt.build_model(cfg, 7).eval()
    ids = torch.randint(7, (23,)).tolist()
    by_hand = []
    for i in range(1, len(ids)):
        context = torch.tensor([ids[max(0, i - 5) : i]])  # the (at most) 5 characters before character i
        logits, _ = model(context)
        by_hand.append(torch.nn.functional.cross_entropy(logits[0, -1:], torch.tensor([ids[i]])).item())
    with torch.no_grad():
        assert window_nll(model, ids, 5, rows=4) == pytest.approx(sum(by_hand) / len(by_hand), rel=1e-5)


@pytest.fixture(scope="module")
def quick_run(shakespeare_path, tmp_path_factory):
    """One `bench/run.py --quick` run shared by the tests below: (its JSON, its stdout, its results dir).

    shakespeare_path (conftest.py) is the real text, or the tests are skipped saying how to provide it.
    """
    tmp = tmp_path_factory.mktemp("bench")
    env = {**os.environ, ENV_VAR: str(shakespeare_path)}  # the documented way to point every script at the text
    proc = subprocess.run(
        [sys.executable, "bench/run.py", "--quick", "--json", str(tmp / "b.json"), "--results-dir", str(tmp)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((tmp / "b.json").read_text()), proc.stdout, tmp


@pytest.mark.slow
def test_quick_run_records_the_machine(quick_run):
    report, _, _ = quick_run
    machine = report["machine"]
    assert machine["cores"] >= 1 and machine["threads"] >= 1
    assert machine["cpu"] and machine["torch"] == torch.__version__
    assert isinstance(machine["native_bf16"], bool)


@pytest.mark.slow
def test_quick_run_measures_every_section_with_positive_numbers(quick_run):
    report, _, _ = quick_run
    assert all(section in report for section in SECTIONS)
    for dtype in ("float32", "bfloat16"):
        assert report["matmul"][dtype]["gflops"] > 0
    train = report["train"]
    assert [r["name"] for r in train["rows"]][:2] == ["gpt", "per-head"]
    for row in train["rows"]:
        for key in ("tokens_per_second", "ms_per_step", "gflops", "fraction_of_peak", "peak_rss_mib"):
            assert row[key] > 0, (row["name"], key)
    assert train["ratios"]["throughput"] > 0 and train["ratios"]["peak_rss"] > 0
    sample = report["sample"]
    for key in ("kv_cache", "no_cache", "long"):
        assert sample[key]["chars_per_second"] > 0
    assert sample["kv_cache_speedup"] > 0
    curve = report["curve"]
    assert curve["final_val_loss"] > 0 and curve["train_seconds"] > 0 and len(curve["history"]) >= 2
    assert [t["val_loss"] for t in curve["thresholds"]] == [2.0, 1.88, 1.70]
    strategy = report["strategy"]
    for name in ("halve", "crop"):
        assert strategy[name]["mean_nll"] > 0 and strategy[name]["chars_per_second"] > 0
    stages = report["stages"]["rows"]
    assert [r["stage"] for r in stages] == ["bigram_v1", "bigram_v2", "bigram_v3", "gpt"]
    for row in stages:
        assert row["params"] > 0 and row["val_loss"] > 0 and row["train_seconds"] > 0
        assert row["tokens_per_second"] > 0 and row["bigram_floor"] > 0


@pytest.mark.slow
def test_quick_run_prints_a_markdown_table_for_every_section(quick_run):
    _, stdout, _ = quick_run
    for section in SECTIONS:
        assert f"## {section}:" in stdout
    assert "| dtype | GFLOP/s | ms |" in stdout
    assert "| model | attention | matmuls in | tokens/s |" in stdout
    assert "| sampling | chars/s | ms/char | target |" in stdout
    assert "| val loss | train seconds to reach | target seconds | met |" in stdout
    assert "| strategy | loss of its own samples | chars/s |" in stdout
    assert "| stage | params | val loss (full split) | bigram floor | train seconds | tokens/s | device |" in stdout


@pytest.mark.slow
def test_table_py_tabulates_the_runs_and_skips_a_directory_without_metrics(quick_run):
    _, _, tmp = quick_run
    dirs = [tmp / "bigram_v1", tmp / "bigram_v2", tmp / "bigram_v3", tmp / "gpt-curve", tmp / "never-trained"]
    proc = subprocess.run([sys.executable, "bench/table.py", *map(str, dirs)], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[0].startswith("| stage | params |")
    assert [line.split("|")[1].strip() for line in lines[2:]] == ["bigram_v1", "bigram_v2", "bigram_v3", "gpt"]
    assert "never-trained" in proc.stderr


def test_table_py_with_no_metrics_at_all_ends_in_one_line_and_exit_status_1(tmp_path):
    proc = subprocess.run([sys.executable, "bench/table.py", str(tmp_path)], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith("table.py: error: no metrics.json")


def test_missing_data_ends_in_one_line_and_exit_status_1(tmp_path):
    missing = tmp_path / "nowhere.txt"
    proc = subprocess.run([sys.executable, "bench/run.py", "--data", str(missing), "--only", "matmul",
                           "--json", str(tmp_path / "b.json"), "--results-dir", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("bench/run.py: error: ") and str(missing) in line
    assert not (tmp_path / "b.json").exists()
