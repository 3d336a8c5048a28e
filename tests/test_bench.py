"""The benchmark reads loss curves and peers' logs right, grades its targets, runs the lecture's code as
written, measures our side alone when a peer is missing, and bench.table tabulates runs.

Sections run here at tiny sizes, in child processes as in a real benchmark: they prove that the numbers
come out and the targets are graded, not how fast anything is (that is the benchmark's job, on a quiet
machine). The lecture's code is stood in for by a tiny script of the same shape, written by the tests.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import runner
from bench import peers, run as bench_run
from bench.run import Bench, best_within, build_parser, main, steady_tokens_per_second, target_row, time_to_loss

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(batch_size=4, block_size=8, n_layer=1, n_head=2, n_embd=16, dropout=0.0)

# a loss curve as metrics.json stores it: eval points at cumulative training seconds
HISTORY = [
    {"iter": 0, "seconds": 0.0, "train": 4.2, "val": 4.2},
    {"iter": 50, "seconds": 10.0, "train": 2.5, "val": 2.4},
    {"iter": 100, "seconds": 20.0, "train": 2.0, "val": 2.0},
    {"iter": 150, "seconds": 30.0, "train": 1.5, "val": 1.6},
]

# the lecture's gpt.py in miniature: its hyperparameter lines, input.txt, get_batch, a model with its forward
# and generate, the line that makes the model, then the training the benchmark must not run
FAKE_LECTURE = """\
import torch
from torch.nn import functional as F

batch_size = 4 # how many independent sequences will we process in parallel?
block_size = 8 # what is the maximum context length for predictions?
learning_rate = 1e-2
device = 'cuda' if torch.cuda.is_available() else 'cpu'
n_embd = 16
n_head = 2
n_layer = 1
dropout = 0.0

with open('input.txt', 'r', encoding='utf-8') as f:
    text = f.read()
chars = sorted(list(set(text)))
data = torch.tensor([chars.index(c) for c in text], dtype=torch.long)

def get_batch(split):
    ix = torch.randint(len(data) - block_size, (batch_size,))
    x = torch.stack([data[i:i+block_size] for i in ix])
    y = torch.stack([data[i+1:i+block_size+1] for i in ix])
    return x.to(device), y.to(device)

class BigramLanguageModel(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.token_embedding_table = torch.nn.Embedding(len(chars), len(chars))

    def forward(self, idx, targets=None):
        logits = self.token_embedding_table(idx) # (B,T,C)
        return logits, None if targets is None else F.cross_entropy(logits.flatten(0, 1), targets.flatten())

    def generate(self, idx, max_new_tokens):
        for _ in range(max_new_tokens):
            probs = F.softmax(self(idx[:, -block_size:])[0][:, -1, :], dim=-1) # (B, C)
            idx = torch.cat((idx, torch.multinomial(probs, num_samples=1)), dim=1) # (B, T+1)
        return idx

model = BigramLanguageModel()
raise SystemExit("the benchmark ran the lecture's training loop; it must stop before it")
"""

# nanoGPT's train.py output, as its CPU recipe prints it (trimmed), with --eval_interval=3
NANOGPT_LOG = """\
$ python train.py config/train_shakespeare_char.py --device=cpu --eval_interval=3
step 0: train loss 4.1744, val loss 4.1714
iter 0: loss 4.1863, time 900.00ms, mfu -100.00%
iter 1: loss 3.9000, time 100.00ms, mfu -100.00%
iter 2: loss 3.7000, time 100.00ms, mfu -100.00%
step 3: train loss 3.5000, val loss 3.5100
saving checkpoint to out-shakespeare-char
iter 3: loss 3.4000, time 700.00ms, mfu -100.00%
iter 4: loss 3.3000, time 150.00ms, mfu 0.01%
iter 5: loss 3.2000, time 150.00ms, mfu 0.01%
step 6: train loss 3.1000, val loss 3.2000
iter 6: loss 3.0000, time 650.00ms, mfu 0.01%
"""


def metrics(stage, **extra):
    return dict(stage=stage, params=1234, val_loss=2.5, kept={"iter": 100}, iters=200, bigram_floor=2.45,
                train_seconds=12.0, tokens_per_second=3000.0, device="cpu", dtype="float32", **extra)


@pytest.fixture
def fake_peers(tmp_path):
    """A --peers directory holding the fake lecture script as ng-video-lecture/gpt.py."""
    (tmp_path / "peers" / "ng-video-lecture").mkdir(parents=True)
    (tmp_path / "peers" / "ng-video-lecture" / "gpt.py").write_text(FAKE_LECTURE, encoding="utf-8")
    return tmp_path / "peers"


def bench(tmp_path, text_path, peers_dir, **kwargs):
    """A Bench as `python -m bench.run --peers peers_dir --data text_path` makes it, writing under tmp_path."""
    (tmp_path / "work").mkdir()
    args = build_parser().parse_args(["--peers", str(peers_dir), "--data", str(text_path), "--results-dir",
                                      str(tmp_path / "results"), "--steps", "2", "--repeats", "1"])
    return Bench(args, tmp_path / "work", **kwargs)


# ----------------------------------------------------------------------------------------------------
# reading a loss curve and a peer's log; grading the targets


@pytest.mark.parametrize("read, history, arg, expected", [
    (time_to_loss, HISTORY, 1.9, 22.5),  # a quarter of the way from 2.0 at 20 s to 1.6 at 30 s
    (time_to_loss, HISTORY, 1.6, 30.0),  # exactly at the last eval point
    (time_to_loss, HISTORY, 5.0, 0.0),  # reached at once
    (time_to_loss, HISTORY, 1.5, None),  # never reached
    (time_to_loss, [], 2.0, None),
    (best_within, HISTORY, 25.0, 1.8),  # the lowest val: interpolated at 25 s, between 2.0 and 1.6
    (best_within, HISTORY, 20.0, 2.0),
    (best_within, HISTORY, 100.0, 1.6),  # past the run's end: its best
    (best_within, [], 10.0, None),
])
def test_a_loss_curve_is_read_as_straight_lines_between_its_eval_points(read, history, arg, expected):
    assert read(history, arg) == (expected if expected is None else pytest.approx(expected))


def test_steady_tokens_per_second_leaves_out_the_first_interval():
    m = dict(batch_size=4, block_size=10, history=HISTORY)
    assert steady_tokens_per_second(m) == pytest.approx(4 * 10 * 100 / 20.0)  # steps 50..150 in 10..30 s
    assert steady_tokens_per_second(dict(m, history=HISTORY[:2])) is None


def test_nanogpt_history_sums_step_times_but_leaves_out_the_steps_that_evaluated():
    history = peers.nanogpt_history(NANOGPT_LOG)
    assert [(h["iter"], h["val"]) for h in history] == [(0, 4.1714), (3, 3.51), (6, 3.2)]
    assert history[1]["train"] == 3.5
    # before step 3: iters 1 and 2 (iter 0 evaluated); before step 6: those and iters 4, 5 (iter 3 evaluated)
    assert [h["seconds"] for h in history] == pytest.approx([0.0, 0.2, 0.5])


def test_nanogpt_cpu_flags_are_its_readme_recipe():
    readme = ("python train.py config/train_shakespeare_char.py --device=cpu --compile=False --eval_iters=20 "
              "--log_interval=1 --block_size=64 --batch_size=12 --n_layer=4 --n_head=4 --n_embd=128 "
              "--max_iters=2000 --lr_decay_iters=2000 --dropout=0.0")
    assert " ".join(peers.NANOGPT_CPU_FLAGS) == readme.split(".py ", 2)[2]


@pytest.mark.parametrize("what, measured, shown", [
    ("train tokens/s, ours / the lecture's", 0.8, ["0.80", "none: reported", "—"]),
    ("train peak RSS, ours / the lecture's", 1.25, ["1.25", "none: reported", "—"]),
    ("sample chars/s, ours / the lecture's", 10.0, ["10.00", "≥ 10", "yes"]),
    ("sample chars/s, ours / the lecture's", 9.99, ["9.99", "≥ 10", "no"]),
    ("seconds to val 1.90, ours / nanoGPT's", 0.5, ["0.50", "≤ 0.5", "yes"]),
    ("best val within 180 s, ours", 1.56, ["1.56", "≤ 1.55", "no"]),
])
def test_every_target_is_graded_in_its_direction(what, measured, shown):
    assert target_row(what, measured, "cpu") == [what, *shown, "cpu"]


# ----------------------------------------------------------------------------------------------------
# the sections, at tiny sizes; the lecture's code, run as written


def test_train_section_runs_gpt_py_and_the_lectures_script_up_to_its_model_line_at_one_config(
        fake_peers, small_text_path, tmp_path):
    b = bench(tmp_path, small_text_path, fake_peers, cfg=TINY)
    text = b.train()
    ours, lecture = b.report["train"]["ours"], b.report["train"]["lecture"]
    assert ours["tokens_per_second"] > 0 and ours["peak_rss_mib"] > 0
    # the lecture's job would have failed had the fake's last line run (the start of its training loop)
    assert lecture["config"] == TINY and lecture["tokens_per_second"] > 0 and lecture["peak_rss_mib"] > 0
    for what in ("train tokens/s, ours / the lecture's", "train peak RSS, ours / the lecture's"):
        assert b.report["targets"][what] > 0 and what in text
    metrics = json.loads((tmp_path / "results" / "train-gpt" / "metrics.json").read_text())
    assert metrics["iters"] == 4 and metrics["config"]["n_embd"] == 16  # gpt.py ran the tiny config, 2 + 2 steps


def test_a_section_whose_peer_is_missing_measures_our_side_and_says_how_to_get_the_peer(small_text_path, tmp_path,
                                                                                         capsys):
    b = bench(tmp_path, small_text_path, tmp_path / "no-peers", cfg=TINY, sample_chars=50)
    text = b.sample()
    clone = f"git clone https://github.com/karpathy/ng-video-lecture {tmp_path / 'no-peers' / 'ng-video-lecture'}"
    assert clone in capsys.readouterr().err and clone in text
    assert b.report["sample"]["ours"]["chars_per_second"] > 0 and b.report["sample"]["lecture"] == {}
    assert b.targets == [["sample chars/s, ours / the lecture's", "—", "≥ 10", "—", b.cpu]]


def test_lecture_sample_calls_the_lectures_own_generate_and_a_script_without_the_model_line_is_refused(
        fake_peers, small_text, tmp_path, monkeypatch):
    (tmp_path / "input.txt").write_text(small_text, encoding="utf-8")
    monkeypatch.chdir(tmp_path)  # the harness moves to its workdir; this puts the test's back afterwards
    r = peers.lecture_sample(fake_peers / "ng-video-lecture" / "gpt.py", tmp_path, chars=50)
    assert r["chars"] == 50 and r["chars_per_second"] > 0
    (tmp_path / "gpt.py").write_text("x = 1\n", encoding="utf-8")
    with pytest.raises(SystemExit, match="no `model = ...\\(\\)` line"):
        peers.lecture(tmp_path / "gpt.py", tmp_path)


def test_the_gpu_section_reads_step_time_and_time_to_val_from_the_runs_metrics(small_text_path, tmp_path,
                                                                              monkeypatch):
    b = bench(tmp_path, small_text_path, tmp_path)
    run = metrics("gpt", history=[dict(h, val=h["val"] - 0.6) for h in HISTORY], batch_size=4, block_size=10)
    monkeypatch.setattr(Bench, "run_script", lambda self, stage, name, flags: run)  # no GPU here: its metrics
    assert bench_run.machine_info()["cpu"] and bench_run.machine_info()["cores"] == os.cpu_count()  # the real one
    monkeypatch.setattr(bench_run, "machine_info", lambda: {"gpu": "NVIDIA H200"})
    assert "NVIDIA H200" in b.gpu()
    fig = b.report["gpu"]["figures"]
    assert fig["ms/step"] == pytest.approx(1000 * 12.0 / 200)
    # val 1.8 at 10 s, 1.4 at 20 s: 1.50 is three quarters of the way, 1.47 a little further
    assert fig["train seconds to val 1.50"] == pytest.approx(17.5)
    assert fig["train seconds to val 1.47"] == pytest.approx(18.25)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_the_gpu_section_without_a_gpu_is_one_line(capsys):
    assert main(["--only", "gpu"]) == 1
    assert "needs a CUDA GPU" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------------
# bench.table


def table(*args, cwd):
    """`python -m bench.table args` run in cwd: (exit status, the names of its rows, its stderr)."""
    done = subprocess.run([sys.executable, "-m", "bench.table", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    return done.returncode, [line.split(" | ")[0].strip("| ") for line in done.stdout.splitlines()[2:]], done


def test_table_tabulates_the_runs_given_or_all_of_out_and_says_why_it_skipped_any(tmp_path):
    for stage in reversed(runner.STAGES):  # made last to first: the default order is the reading order
        (tmp_path / "out" / stage).mkdir(parents=True)
        (tmp_path / "out" / stage / "metrics.json").write_text(json.dumps(metrics(stage)))
    for name, content in [("broken", "{not json"), ("not-a-run", json.dumps({"stage": "gpt"}))]:  # no params
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.json").write_text(content)
    code, rows, done = table("out/gpt", "broken", "out/bigram_v1", "unfinished", cwd=tmp_path)
    assert code == 0 and rows == ["gpt", "bigram_v1"]
    assert "| gpt | 1,234 | 2.5000 | 100 of 200 | 2.4500 | 12.0 | 3,000 | cpu (float32) |" in done.stdout
    assert "broken/metrics.json is unreadable (JSONDecodeError" in done.stderr
    assert "no metrics.json in unfinished" in done.stderr
    assert table(cwd=tmp_path)[:2] == (0, list(runner.STAGES))

    code, rows, done = table("not-a-run", cwd=tmp_path)
    assert code == 1 and rows == [] and "is unreadable (KeyError" in done.stderr
    assert "all 1 run(s) were skipped, each for the reason above" in done.stderr and "found" not in done.stderr
