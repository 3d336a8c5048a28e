"""The benchmark runs end to end, and the arithmetic it reports (FLOPs, time to a loss) is right.

The end-to-end tests run `python bench/run.py --quick` as a subprocess, the way a user runs it, at toy
sizes: they prove that every section runs and reports positive numbers, not how fast anything is (speed is
what the benchmark itself measures, on a quiet machine). They need the real Tiny Shakespeare text, found
through conftest.py's shakespeare_path, and are skipped with a note when it is not at hand.

The gpu section needs a CUDA GPU, which a test machine rarely has. Its code is tested here on the CPU: its
arithmetic is fed made-up metrics, and the quick run runs the whole section on the CPU through the hidden
--gpu-device cpu, the same jobs and the same gpt.py run with --device cpu instead of cuda.
"""

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import bench.run
import bench.table
from helpers import copy_heads_into_batched
import gpt
import runner
from bench.run import (CPU_SECTIONS, GPU_RUN, LECTURE, SECTIONS, WALL_FILE, PerHeadAttention, build_parser,
                       gpt_flops_per_token, gpu_figures, gpu_markdown, job_matmul, job_train, loss_at_time,
                       no_cuda_problem, non_embedding_params, per_head_model, read_walls, scored_on,
                       sdpa_backend_name, steady_step_seconds, time_to_loss, train_flops_per_token, window_nll)
from bench.table import COLUMNS, stage_row
from data.shakespeare import ENV_VAR
from runner.cli import STAGES

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
    batched = gpt.MultiHeadAttention(n_embd=n_embd, n_head=n_head, dropout=0.0).eval()
    per_head = PerHeadAttention(n_embd, n_head, block_size, dropout=0.0).eval()
    copy_heads_into_batched(per_head.heads.heads, batched.qkv)
    per_head.proj.load_state_dict(batched.proj.state_dict())
    x = torch.randn(2, block_size, n_embd)  # (B, T, C)
    torch.testing.assert_close(per_head(x), batched(x))


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


# ----------------------------------------------------------------------------------------------------
# the jobs train and time through the runner's own functions


def test_job_train_trains_through_runner_make_optimizer_and_train_step(small_text_path, monkeypatch):
    calls = {"make_optimizer": 0, "train_step": 0}

    def counted(name):
        real = getattr(runner, name)

        def wrapper(*args, **kwargs):
            calls[name] += 1
            return real(*args, **kwargs)
        return wrapper

    for name in calls:
        monkeypatch.setattr(runner, name, counted(name))
    cfg = dict(LECTURE, batch_size=2, block_size=8, n_embd=16, n_head=2, n_layer=1)
    spec = dict(cfg=cfg, dtype="float32", data=str(small_text_path), seed=0, attention="batched", warmup=1, steps=2)
    r = job_train(spec)
    assert calls == {"make_optimizer": 1, "train_step": 3}  # one optimizer, every step (warm-up included)
    assert len(r["step_seconds"]) == 2 and len(r["warmup_seconds"]) == 1
    assert r["tokens_per_second"] > 0 and r["sdpa_backend"]


def test_sdpa_backend_name_asks_with_gpt_dropout_which_on_a_cpu_rules_out_flash_attention():
    # gpt.py passes dropout_p=dropout while training; on a CPU the flash kernel has no dropout
    cfg = dict(LECTURE)  # block 256: runner.attention_kernel leaves the choice to PyTorch
    assert sdpa_backend_name(dict(cfg, dropout=0.2), torch.float32) == "math"
    assert sdpa_backend_name(dict(cfg, dropout=0.0), torch.float32) == "flash_attention"
    # blocks of 128 or fewer: runner.attention_kernel asks for the math kernel, and the name says so
    assert sdpa_backend_name(dict(cfg, dropout=0.0, block_size=128), torch.float32) == "math"


def test_job_matmul_times_repeats_of_several_matmuls_and_names_the_chip():
    r = job_matmul(dict(size=32, dtype="bfloat16", repeats=3, inner=4, warmup=1, seed=0, device="cpu"))
    assert len(r["seconds"]) == 3 and r["inner"] == 4 and r["gflops"] > 0
    assert r["device"] == "cpu" and r["device_name"] == runner.machine_info(torch.device("cpu"))["cpu"]


# ----------------------------------------------------------------------------------------------------
# the gpu section's arithmetic, fed a made-up run


def gpu_metrics(**changes):
    """metrics.json of a made-up GPU run: 400 steps of batch 64 x block 256, an eval every 100 steps."""
    history = [{"iter": 0, "seconds": 0.0, "train": 4.2, "val": 4.2},
               {"iter": 100, "seconds": 1.2, "train": 1.55, "val": 1.60},
               {"iter": 200, "seconds": 2.2, "train": 1.40, "val": 1.49},
               {"iter": 300, "seconds": 3.2, "train": 1.30, "val": 1.46},
               {"iter": 400, "seconds": 4.2, "train": 1.20, "val": 1.48}]
    m = dict(stage="gpt", iters=400, train_seconds=4.2, batch_size=64, block_size=256, world_size=1,
             tokens_per_second=400 * 64 * 256 / 4.2, history=history, kept=history[3], val_loss=1.4712,
             train_loss=1.30, final_eval_chars=None, device="cuda", dtype="bfloat16")
    m.update(changes)
    return m


GPU_EVALS = [{"iter": i, "wall": 10.0 + i / 10} for i in (0, 100, 200, 300, 400)]  # launch to each eval line


def test_gpu_figures_step_time_throughput_and_fraction_of_peak():
    fig = gpu_figures(gpu_metrics(), flops_per_token=1_000_000, peak_gflops=50_000.0, wall_seconds=60.0,
                      evals=GPU_EVALS)
    assert fig["ms_per_step"] == pytest.approx(10.5)  # 4.2 s / 400 steps
    assert fig["tokens_per_second"] == pytest.approx(400 * 64 * 256 / 4.2)
    # 1 MFLOP per token at 1.56M tokens/s is 1.56 TFLOP/s, of a 50 TFLOP/s peak
    assert fig["fraction_of_peak"] == pytest.approx(1e6 * fig["tokens_per_second"] / 50e12)
    # steady: from step 100 (1.2 s) to step 400 (4.2 s), 10 ms a step, leaving out the first interval
    assert fig["steady_ms_per_step"] == pytest.approx(10.0)
    assert fig["steady_tokens_per_second"] == pytest.approx(64 * 256 / 0.010)
    assert fig["steady_fraction_of_peak"] == pytest.approx(1e6 * 64 * 256 / 0.010 / 50e12)
    assert fig["launch_to_end_seconds"] == 60.0
    assert fig["kept"]["iter"] == 300 and fig["kept_val_loss"] == 1.4712
    assert fig["scored_on"] == "the whole val split"


def test_gpu_figures_time_to_each_val_loss_in_train_seconds_and_wall_seconds_from_launch():
    fig = gpu_figures(gpu_metrics(), 1_000_000, 50_000.0, 60.0, GPU_EVALS)
    at_150, at_147 = fig["thresholds"]
    assert (at_150["val_loss"], at_147["val_loss"]) == (1.50, 1.47)
    # 1.60 at 1.2 s, 1.49 at 2.2 s: 1.50 is 10/11 of the way; the eval at step 200 first showed it
    assert at_150["train_seconds"] == pytest.approx(1.2 + 10 / 11)
    assert at_150["step"] == 200 and at_150["wall_seconds"] == pytest.approx(30.0)
    # 1.49 at 2.2 s, 1.46 at 3.2 s: 1.47 is two thirds of the way; shown by the eval at step 300
    assert at_147["train_seconds"] == pytest.approx(2.2 + 2 / 3)
    assert at_147["step"] == 300 and at_147["wall_seconds"] == pytest.approx(40.0)


def test_gpu_figures_without_timestamps_or_a_reached_target_are_none_and_still_print():
    history = [{"iter": 0, "seconds": 0.0, "train": 4.2, "val": 4.2}, {"iter": 20, "seconds": 0.3, "train": 3.6,
                                                                      "val": 3.7}]
    m = gpu_metrics(iters=20, train_seconds=0.3, history=history, kept=None, val_loss=None, final_eval_chars=0)
    fig = gpu_figures(m, 1000, None)
    assert fig["fraction_of_peak"] is None and fig["steady_ms_per_step"] is None  # one interval: no steady part
    assert all(t["train_seconds"] is None and t["step"] is None and t["wall_seconds"] is None
               for t in fig["thresholds"])
    text = gpu_markdown(fig, "Some GPU", "`python gpt.py`", "peak: not measured.")
    assert text.startswith("## gpu: gpt.py's default GPU run on Some GPU")
    assert "| ≤ 1.47 | not reached | — | — |" in text
    assert "| kept model's val loss on nothing (--final-eval 0) | — (not measured) |" in text


def test_gpu_figures_count_every_process_of_a_data_parallel_run_against_as_many_gpus():
    one = gpu_figures(gpu_metrics(), 1_000_000, 50_000.0)
    two = gpu_figures(gpu_metrics(world_size=2, tokens_per_second=2 * 400 * 64 * 256 / 4.2), 1_000_000, 50_000.0)
    assert two["steady_tokens_per_second"] == pytest.approx(2 * one["steady_tokens_per_second"])
    assert two["fraction_of_peak"] == pytest.approx(one["fraction_of_peak"])


def test_steady_step_seconds_needs_two_eval_points_after_step_0():
    assert steady_step_seconds(HISTORY) == pytest.approx(0.2)  # 50 -> 150: 20 s for 100 steps
    assert steady_step_seconds(HISTORY[:2]) is None
    assert steady_step_seconds([]) is None


def test_gpt_flops_per_token_counts_the_model_the_train_section_counts():
    vocab = 65
    model = gpt.build_model(LECTURE, vocab)
    n, flops = gpt_flops_per_token(LECTURE, vocab)  # built on the meta device: no memory
    assert n == non_embedding_params(model)
    assert flops == train_flops_per_token(n, LECTURE["n_layer"], LECTURE["n_embd"], LECTURE["block_size"])
    assert 10_000_000 < n < 11_000_000  # the lecture's 10.8M parameters, less the two embedding tables


def test_read_walls_belong_to_the_run_beside_them_only(tmp_path):
    (tmp_path / WALL_FILE).write_text(json.dumps({"train_seconds": 4.2, "wall_seconds": 60.0, "evals": GPU_EVALS}))
    assert read_walls(tmp_path, {"train_seconds": 4.2}) == (60.0, GPU_EVALS)
    assert read_walls(tmp_path, {"train_seconds": 5.0}) == (None, [])  # another run trained there since
    assert read_walls(tmp_path / "nowhere", {"train_seconds": 4.2}) == (None, [])


def test_scored_on_follows_final_eval():
    assert scored_on({"final_eval_chars": None}) == "the whole val split"
    assert scored_on({}) == "the whole val split"  # metrics.json from before --final-eval
    assert scored_on({"final_eval_chars": 0}) == "nothing (--final-eval 0)"
    assert scored_on({"final_eval_chars": 5000}) == "the first 5,000 characters of the val split"


# ----------------------------------------------------------------------------------------------------
# sections, stages, the gpu section on a machine without CUDA


def test_one_list_of_stages_and_the_default_sections_run_on_a_cpu():
    assert bench.table.STAGES is STAGES and bench.run.STAGES is STAGES
    assert bench.table.DEFAULT_DIRS == tuple(f"out/{stage}" for stage in STAGES)
    assert build_parser().parse_args([]).only == list(CPU_SECTIONS)
    assert "gpu" in SECTIONS and "gpu" not in CPU_SECTIONS
    assert build_parser().parse_args(["--only", "gpu,matmul"]).only == ["matmul", "gpu"]


def test_no_cuda_problem_only_for_the_gpu_section_on_cuda_without_a_gpu():
    p = build_parser()
    assert no_cuda_problem(p.parse_args([])) is None
    assert no_cuda_problem(p.parse_args(["--only", "gpu", "--gpu-device", "cpu"])) is None
    problem = no_cuda_problem(p.parse_args(["--only", "gpu"]))
    assert (problem is None) == torch.cuda.is_available()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU: the gpu section would run")
def test_gpu_section_without_cuda_ends_in_one_line_and_exit_status_1(tmp_path):
    proc = subprocess.run([sys.executable, "bench/run.py", "--only", "matmul,gpu", "--json", str(tmp_path / "b.json"),
                           "--results-dir", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("bench/run.py: error: the gpu section needs a CUDA GPU") and "Traceback" not in proc.stderr
    assert proc.stdout == "" and not list(tmp_path.iterdir())  # nothing ran, nothing written


def test_stage_row_shows_the_kept_step_and_a_dash_for_what_was_not_measured():
    m = dict(stage="gpt", params=1234, val_loss=None, kept={"iter": 1500, "seconds": 9.0, "train": 1.2, "val": 1.47},
             iters=2000, bigram_floor=2.4819, train_seconds=30.0, tokens_per_second=1e6, device="cuda",
             dtype="bfloat16", world_size=2)
    row = dict(zip(COLUMNS, stage_row(m)))
    assert row["kept step"] == "1,500 of 2,000" and row["val loss (full split)"] == "—"
    assert row["device"] == "cuda (bfloat16), 2 processes"
    old = dict(m, kept=None, world_size=None, val_loss=1.5)  # a metrics.json from before runs kept their best
    assert dict(zip(COLUMNS, stage_row(old)))["kept step"] == "—"


class FakeScript:
    """Stands in for subprocess.Popen of a stage script: prints `lines` and writes `metrics` into its --out."""

    calls = []

    def __init__(self, lines, metrics):
        self.lines, self.metrics = lines, metrics

    def __call__(self, cmd, **kwargs):
        FakeScript.calls.append(cmd)
        out = Path(cmd[cmd.index("--out") + 1])
        (out / runner.METRICS).write_text(json.dumps(self.metrics))
        self.stdout = io.StringIO("".join(self.lines))
        self.returncode = 0
        return self

    def wait(self):
        return 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_script_runs_overwrite_time_each_eval_line_and_reuse_reads_what_they_saved(tmp_path, monkeypatch):
    lines = ["device: cuda (chosen with --device)\n", "step 0: train loss 4.2000, val loss 4.2000\n",
             "step 125: train loss 2.0000, val loss 2.1000 (best 2.0 at step 0)\n", "trained 125 steps\n",
             "---- sample ----\n", "step 9: train loss, a line of the sample, not of the run\n"]
    metrics = gpu_metrics(iters=125, train_seconds=1.5)
    monkeypatch.setattr(subprocess, "Popen", FakeScript(lines, metrics))
    FakeScript.calls = []
    args = build_parser().parse_args(["--quick", "--results-dir", str(tmp_path)])
    b = bench.run.Bench(args, tmp_path / "text.txt", env={})
    out = tmp_path / GPU_RUN
    run = b.script("gpt", out, ["--compile"], device="cuda")
    [cmd] = FakeScript.calls
    assert cmd[1].endswith("gpt.py") and "--overwrite" in cmd and cmd[cmd.index("--device") + 1] == "cuda"
    assert cmd[cmd.index("--final-eval") + 1] == "5000" and cmd[-1] == "--compile"  # --quick's, then the extra flags
    assert [e["iter"] for e in run["evals"]] == [0, 125]  # the eval lines, and only those at a line's start
    assert run["metrics"] == metrics and not run["reused"] and run["wall"] >= run["evals"][-1]["wall"]
    assert (out / "stdout.txt").read_text() == "".join(lines)
    # --reuse: read back, nothing run
    args.reuse = True
    again = b.script("gpt", out, ["--compile"], device="cuda")
    assert len(FakeScript.calls) == 1 and again["reused"]
    assert (again["wall"], again["evals"]) == (run["wall"], run["evals"])


# ----------------------------------------------------------------------------------------------------
# the command, end to end


def run_bench(shakespeare_path, *args, timeout=300):
    env = {**os.environ, ENV_VAR: str(shakespeare_path)}  # the documented way to point every script at the text
    return subprocess.run([sys.executable, "bench/run.py", *map(str, args)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="module")
def quick_run(shakespeare_path, tmp_path_factory):
    """One `bench/run.py --quick` run of every section shared by the tests below: (its JSON, its stdout, its
    results dir). The gpu section runs on the CPU (--gpu-device cpu), as it would on a GPU otherwise.

    shakespeare_path (conftest.py) is the real text, or the tests are skipped saying how to provide it.
    """
    tmp = tmp_path_factory.mktemp("bench")
    proc = run_bench(shakespeare_path, "--quick", "--only", ",".join(SECTIONS), "--gpu-device", "cpu",
                     "--json", tmp / "b.json", "--results-dir", tmp)
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
    assert curve["kept"]["iter"] in [h["iter"] for h in curve["history"]]
    strategy = report["strategy"]
    assert strategy["checkpoint"] == runner.BEST  # the kept model writes the samples
    for name in ("halve", "crop"):
        assert strategy[name]["mean_nll"] > 0 and strategy[name]["chars_per_second"] > 0
    stages = report["stages"]["rows"]
    assert [r["stage"] for r in stages] == list(STAGES)
    for row in stages:
        assert row["params"] > 0 and row["val_loss"] > 0 and row["train_seconds"] > 0
        assert row["tokens_per_second"] > 0 and row["bigram_floor"] > 0 and row["kept"]["iter"] >= 0


@pytest.mark.slow
def test_quick_run_gpu_section_on_the_cpu_reports_every_figure(quick_run):
    report, stdout, tmp = quick_run
    gpu_report = report["gpu"]
    fig = gpu_report["figures"]
    for key in ("ms_per_step", "tokens_per_second", "fraction_of_peak", "steady_ms_per_step", "launch_to_end_seconds",
                "kept_val_loss", "peak_gflops", "flops_per_token"):
        assert fig[key] > 0, key
    assert gpu_report["card"] == report["machine"]["cpu"]  # the chip the section ran on: here the CPU
    assert "--overwrite" in gpu_report["command"] and "--device cpu" in gpu_report["command"]
    assert Path(gpu_report["out"]) == tmp / GPU_RUN
    # every eval line was timed as the script printed it, in order, after launch and before the end
    history = gpu_report["history"]
    walls = [e["wall"] for e in gpu_report["evals"]]
    assert [e["iter"] for e in gpu_report["evals"]] == [h["iter"] for h in history] == [0, 10, 20]
    assert 0 < walls[0] <= walls[1] <= walls[2] < fig["launch_to_end_seconds"]
    assert [t["val_loss"] for t in fig["thresholds"]] == [1.50, 1.47]  # toy sizes reach neither
    assert "## gpu: gpt.py's default GPU run on " in stdout


@pytest.mark.slow
def test_quick_run_grades_no_target_and_says_it_only_checks_the_benchmark(quick_run):
    _, stdout, _ = quick_run
    first = stdout.splitlines()[0]
    assert first.startswith("# gpt-from-scratch benchmark (--quick") and "check that the benchmark works" in first
    sections = stdout[stdout.index("\n## "):]  # after the machine table (whose "native bf16" says yes or no)
    assert sections.count("— (toy sizes)") == 7  # two train ratios, two sample targets, three curve rows
    for verdict in ("| yes |", "| no |", "(met)", "(not met)"):
        assert verdict not in sections


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
    assert "| " + " | ".join(COLUMNS) + " |" in stdout
    assert "| stage | params | val loss (full split) | kept step | bigram floor | train seconds | tokens/s | device |" \
        in stdout
    assert "| gpt.py on the GPU | value |" in stdout
    assert "| val estimate | train seconds to reach (interpolated) |" in stdout


@pytest.mark.slow
def test_table_py_tabulates_the_runs_and_skips_a_directory_without_metrics(quick_run):
    _, _, tmp = quick_run
    dirs = [tmp / stage for stage in STAGES[:-1]] + [tmp / "gpt", tmp / "never-trained"]
    proc = subprocess.run([sys.executable, "bench/table.py", *map(str, dirs)], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[0].startswith("| stage | params |")
    assert [line.split("|")[1].strip() for line in lines[2:]] == list(STAGES)
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
