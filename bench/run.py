"""bench/run.py: how fast and how light is this course's code, beside the code it learned from? On this CPU.

    python -m bench.run                            # every CPU section (about 20 minutes on a 2-core CPU)
    python -m bench.run --only train,sample        # some sections
    python -m bench.run --only gpu                 # gpt.py's default GPU run (a CUDA GPU only)

The sections, each with the peer it is measured beside (bench/peers.py):

  matmul  one large square matmul in float32 and in bfloat16: about the most arithmetic this CPU does per
          second, the yardstick for every other number.
  train   training at the lecture's configuration (gpt.py's GPU_HYPERPARAMETERS: batch 64, block 256,
          6 layers, 6 heads, n_embd 384, dropout 0.2): tokens/s after the first steps, and the peak memory
          (RSS) of the process. Ours: gpt.py itself, run for a few steps. The lecture's: its gpt.py run up
          to its training loop, then that loop's body timed.
  sample  2,000 characters from the lecture's configuration with fresh weights. Ours: sampling.generate
          with the KV cache ("halve"), in float32 as gpt.py samples. The lecture's: its model.generate in float32, called as it calls it.
  curve   gpt.py's CPU default beside nanoGPT's README CPU recipe, both estimating val every 50 steps:
          training seconds to a val loss of 1.90, and the best val within 180 s of training.
  stages  every stage's default run: the README's Results table (bench/table.py).
  gpu     CUDA only, and only when named: gpt.py's default GPU run, on the card named in the table.

A section whose peer is missing from --peers says how to get it and measures our side only. Every
measurement runs in a child process of its own, one after another, so its memory is its own and nothing
else competes for the cores. Markdown tables go to stdout, progress to stderr, every number to
bench/results/bench.json; script runs train into bench/results/<name>, their output in bench/results/logs.

One experiment is not repeated here: "halve" sampling against the exact window ("crop"), measured once with
an earlier CPU default (notes/running.md, Performance, "Long samples").
"""

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import nullcontext
from datetime import datetime, timezone
from pathlib import Path

import torch

import gpt
import runner
import sampling
from bench import peers
from bench.peers import BenchError
from bench.table import fmt, markdown_table, stages_table
from data import CharTokenizer, DataError, load_text
from runner.checkpoints import read_metrics, save_json
from runner import native_bf16

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = ("matmul", "train", "sample", "curve", "stages", "gpu")
CPU_SECTIONS = SECTIONS[:-1]  # gpu runs only when --only names it
LECTURE = {k: gpt.GPU_HYPERPARAMETERS[k] for k in peers.SIZES}  # the lecture's model, as gpt.py declares it
MATMUL_SIZE = 2048  # 2 * 2048^3 = 17 GFLOP: long enough to time, short enough to repeat
WARMUP = 2  # the first steps allocate memory and choose kernels: not what a step costs
SAMPLE_CHARS = 2000
CURVE_INTERVAL, CURVE_VAL, CURVE_SECONDS = 50, 1.90, 180.0
GPU_INTERVAL, GPU_VALS = 125, (1.50, 1.47)  # the lecture's ~1.48, and a little better
TARGETS = {  # what this course's code should achieve beside its peers: (at least?, value); None: only reported
    "train tokens/s, ours / the lecture's": None,  # gpt.py trains with PyTorch's own attention, nothing tuned
    "train peak RSS, ours / the lecture's": None,
    "sample chars/s, ours / the lecture's": (True, 10.0),  # the KV cache's share
    f"seconds to val {CURVE_VAL:.2f}, ours / nanoGPT's": (False, 0.5),
    f"best val within {CURVE_SECONDS:g} s, ours": (False, 1.55),
}


def progress(msg):
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def machine_info():
    """The machine a figure was measured on: the CPU's model (Linux names it in /proc/cpuinfo), cores, threads,
    torch, Python, and the CUDA GPU where there is one."""
    cpuinfo = Path("/proc/cpuinfo").read_text() if os.path.isfile("/proc/cpuinfo") else ""
    names = [line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")]
    cpu = names[0] if names else platform.processor() or platform.machine()  # elsewhere, what Python can tell
    return {"cpu": cpu, "cores": os.cpu_count(), "threads": torch.get_num_threads(), "torch": torch.__version__,
            "python": platform.python_version(),
            "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None}


# ----------------------------------------------------------------------------------------------------
# reading a loss curve


def time_to_loss(history, target):
    """Training seconds at which val first reached target, the loss taken to fall in a straight line
    between eval points; None if it never did. history: metrics.json's [{"seconds", "val", ...}]."""
    before = None
    for point in history:
        if point["val"] <= target:
            if before is None:
                return point["seconds"]
            s0, v0, s1, v1 = before["seconds"], before["val"], point["seconds"], point["val"]
            return s0 + (v0 - target) / (v0 - v1) * (s1 - s0)  # v0 > target >= v1
        before = point
    return None


def best_within(history, seconds):
    """The lowest val within the first `seconds` of training: at an eval point, or interpolated at `seconds`."""
    vals = [p["val"] for p in history if p["seconds"] <= seconds]
    for before, point in zip(history, history[1:]):
        if before["seconds"] < seconds < point["seconds"]:
            share = (seconds - before["seconds"]) / (point["seconds"] - before["seconds"])
            vals.append(before["val"] + share * (point["val"] - before["val"]))
    return min(vals, default=None)


def steady_tokens_per_second(metrics):
    """Tokens/s from the first eval point after step 0 to the last: without the first interval's start-up."""
    points = [p for p in metrics["history"] if p["iter"] > 0]
    if len(points) < 2 or points[-1]["seconds"] <= points[0]["seconds"]:
        return None
    steps = points[-1]["iter"] - points[0]["iter"]
    return metrics["batch_size"] * metrics["block_size"] * steps / (points[-1]["seconds"] - points[0]["seconds"])


def ratio(a, b):
    return a / b if a is not None and b else None


def target_row(what, measured, cpu):
    if TARGETS[what] is None:
        return [what, fmt(measured, ".2f"), "none: reported", "—", cpu]
    at_least, target = TARGETS[what]
    met = "—" if measured is None else "yes" if (measured >= target if at_least else measured <= target) else "no"
    return [what, fmt(measured, ".2f"), f"{'≥' if at_least else '≤'} {target:g}", met, cpu]


# ----------------------------------------------------------------------------------------------------
# the jobs: each runs in a child process of its own (see job) and returns a dict


def job(module, func, **kwargs):
    """module.func(**kwargs), run in a fresh Python process; the dict it returns."""
    progress(f"{func}({', '.join(f'{k}={v}' for k, v in kwargs.items() if k in ('dtype', 'steps', 'chars'))})")
    code = f"import json, sys, {module}; print(json.dumps({module}.{func}(**json.loads(sys.argv[1]))))"
    done = subprocess.run([sys.executable, "-c", code, json.dumps(kwargs)], cwd=ROOT, stdout=subprocess.PIPE,
                          text=True)  # its stderr shows
    if done.returncode != 0:
        raise BenchError(f"{module}.{func} failed in its child process (exit status {done.returncode}); see above")
    return json.loads(done.stdout.splitlines()[-1])


def matmul_job(size, dtype, repeats):
    a, b = (torch.randn(size, size).to(getattr(torch, dtype)) for _ in range(2))
    torch.mm(a, b)  # the first call picks a kernel and touches fresh memory
    seconds = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.mm(a, b)
        seconds.append(time.perf_counter() - t0)
    return {"gflops": 2 * size**3 / statistics.median(seconds) / 1e9}


def launch(stage, out, flags=(), log=None):
    """Run `python <stage>.py --out out flags...` to the end in a child process and return its metrics.json.

    Its output goes to the file log or, by default, to this process's own stdout and stderr.
    """
    cmd = [sys.executable, str(ROOT / f"{stage}.py"), "--out", str(out), *map(str, flags)]
    if log:
        Path(log).parent.mkdir(parents=True, exist_ok=True)
        progress(f"python {stage}.py --out {out} {shlex.join(map(str, flags))}  (output in {log})")
    with open(log, "w", encoding="utf-8") if log else nullcontext() as f:
        done = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT if log else None)
    metrics = read_metrics(out)
    if done.returncode != 0 or metrics is None:
        raise DataError(f"`python {stage}.py --out {out} ...` failed (exit status {done.returncode})"
                        + (f"; its output is in {log}" if log else "; its error is above"))
    return metrics


def train_job(out, flags, log):
    """A gpt.py run: its metrics, and its peak RSS (that of this process's only child)."""
    return {"metrics": launch("gpt", out, flags, log), "peak_rss_mib": peers.peak_rss_mib(children=True)}


def sample_job(cfg, text, chars, repeats, seed):
    """Time sampling.generate for chars characters from "\\n", as gpt.py samples ("halve", float32 weights)."""
    tok = CharTokenizer.from_text(load_text(text))
    torch.manual_seed(seed)
    model = gpt.build_model(cfg, tok.vocab_size).eval()  # fresh weights: a trained model does the same arithmetic
    idx = torch.tensor([[tok.stoi.get("\n", 0)]])  # (1, 1)

    def seconds(n):
        t0 = time.perf_counter()
        sampling.generate(model, idx, n, generator=torch.Generator().manual_seed(seed),
                          block_size=cfg["block_size"], strategy="halve")
        return time.perf_counter() - t0

    seconds(8)  # warm-up
    return {"chars": chars, "dtype": "float32",
            "chars_per_second": chars / statistics.median(seconds(chars) for _ in range(repeats))}


# ----------------------------------------------------------------------------------------------------
# the sections: each fills self.report[name] and returns its Markdown


class Bench:
    def __init__(self, args, work, cfg=LECTURE, sample_chars=SAMPLE_CHARS):
        self.args, self.work, self.cfg = args, Path(work), dict(cfg)  # cfg: the train and sample sections' model
        self.sample_chars = sample_chars
        self.results = Path(args.results_dir).resolve()
        self.text = self.work / "input.txt"  # the text every side reads: the lecture reads input.txt
        self.text.write_text(load_text(args.data, min_chars=self.cfg["block_size"] + 1), encoding="utf-8")
        self.cpu = machine_info()["cpu"]
        self.report, self.targets, self.gpt_metrics = {}, [], None

    def peer(self, name):
        path, how = peers.find(self.args.peers, name)
        if how:
            progress(how + "; measuring our side only")
        return path, how

    def run_script(self, stage, name, flags):
        return launch(stage, self.results / name, ["--data", self.text, "--overwrite", *flags],
                      self.results / "logs" / f"{name}.txt")

    def target(self, what, measured):
        self.targets.append(target_row(what, measured, self.cpu))
        self.report.setdefault("targets", {})[what] = measured
        return self.targets[-1]

    def sizes(self, cfg):
        return "B{batch_size} T{block_size} L{n_layer} H{n_head} C{n_embd}, dropout {dropout:g}".format(**cfg)

    def compare(self, headers, rows, targets, how):
        note = f"\n\n- {how}" if how else ""
        return (markdown_table(headers, rows) + "\n\n"
                + markdown_table(["what", "measured", "target", "met", "CPU"], targets) + note)

    def matmul(self):
        r = {d: job("bench.run", "matmul_job", size=MATMUL_SIZE, dtype=d, repeats=self.args.repeats)["gflops"]
             for d in ("float32", "bfloat16")}
        self.report["matmul"] = dict(size=MATMUL_SIZE, repeats=self.args.repeats, gflops=r)
        return (f"## matmul: ({MATMUL_SIZE}, {MATMUL_SIZE}) @ ({MATMUL_SIZE}, {MATMUL_SIZE}), median of "
                f"{self.args.repeats}\n\n"
                + markdown_table(["dtype", "GFLOP/s"], [[d, fmt(g, ",.1f")] for d, g in r.items()]))

    def train(self):
        flags = ["--device", "cpu", "--max-iters", WARMUP + self.args.steps, "--eval-interval", WARMUP,
                 "--eval-iters", 1, "--final-eval", 0, "--max-new-tokens", 0, "--data", self.text, "--overwrite"]
        for k, v in self.cfg.items():
            flags += [f"--{k.replace('_', '-')}", v]
        r = job("bench.run", "train_job", out=str(self.results / "train-gpt"), flags=list(map(str, flags)),
                log=str(self.results / "logs" / "train-gpt.txt"))
        m = r["metrics"]
        ours = dict(tokens_per_second=steady_tokens_per_second(m), peak_rss_mib=r["peak_rss_mib"], dtype=m["dtype"])
        rows = [["gpt.py (ours)", self.sizes(self.cfg), m["dtype"], fmt(ours["tokens_per_second"], ",.0f"),
                 fmt(ours["peak_rss_mib"], ",.0f")]]
        path, how = self.peer("ng-video-lecture")
        theirs = {}
        if path:
            theirs = job("bench.peers", "lecture_train", script=str(path / "gpt.py"), workdir=str(self.work),
                         warmup=WARMUP, steps=self.args.steps)
            rows.append(["the lecture's gpt.py", self.sizes(theirs["config"]), "float32",
                         fmt(theirs["tokens_per_second"], ",.0f"), fmt(theirs["peak_rss_mib"], ",.0f")])
        targets = [self.target("train tokens/s, ours / the lecture's",
                               ratio(ours["tokens_per_second"], theirs.get("tokens_per_second"))),
                   self.target("train peak RSS, ours / the lecture's",
                               ratio(ours["peak_rss_mib"], theirs.get("peak_rss_mib")))]
        self.report["train"] = dict(ours=ours, lecture=theirs, warmup=WARMUP, steps=self.args.steps)
        return (f"## train: the lecture's configuration, {WARMUP} warm-up steps then {self.args.steps} timed\n\n"
                "Peak RSS is the whole process's, from start-up to the last step.\n\n"
                + self.compare(["code", "model", "matmuls in", "tokens/s", "peak RSS MiB"], rows, targets, how))

    def sample(self):
        ours = job("bench.run", "sample_job", cfg=self.cfg, text=str(self.text), chars=self.sample_chars,
                   repeats=self.args.repeats, seed=1337)
        rows = [["sampling.generate, \"halve\" (ours)", self.sizes(self.cfg), ours["dtype"],
                 fmt(ours["chars_per_second"], ",.1f")]]
        path, how = self.peer("ng-video-lecture")
        theirs = {}
        if path:
            theirs = job("bench.peers", "lecture_sample", script=str(path / "gpt.py"), workdir=str(self.work),
                         chars=self.sample_chars)
            rows.append(["the lecture's model.generate", self.sizes(theirs["config"]), "float32",
                         fmt(theirs["chars_per_second"], ",.1f")])
        targets = [self.target("sample chars/s, ours / the lecture's",
                               ratio(ours["chars_per_second"], theirs.get("chars_per_second")))]
        self.report["sample"] = dict(ours=ours, lecture=theirs)
        return (f"## sample: {self.sample_chars:,} characters, fresh weights (ours: median of "
                f"{self.args.repeats}; the lecture's: once, in train mode with autograd on, as it calls it)\n\n"
                + self.compare(["code", "model", "weights in", "chars/s"], rows, targets, how))

    def gpt_default(self):
        """gpt.py's CPU default, val estimated every CURVE_INTERVAL steps: the curve, and gpt's stages row."""
        if self.gpt_metrics is None:
            flags = ["--device", "cpu", "--eval-interval", CURVE_INTERVAL, *shlex.split(self.args.gpt_flags)]
            self.gpt_metrics = self.run_script("gpt", "gpt", flags)
        return self.gpt_metrics

    def curve(self):
        history = self.gpt_default()["history"]
        ours = dict(seconds_to_val=time_to_loss(history, CURVE_VAL), best_within=best_within(history, CURVE_SECONDS))
        rows = [["gpt.py, CPU default (ours)", fmt(ours["seconds_to_val"], ",.1f", "not reached"),
                 fmt(ours["best_within"], ".4f")]]
        path, how = self.peer("nanoGPT")
        theirs = {}
        if path:
            with tempfile.TemporaryDirectory(prefix="bench-nanogpt-") as tmp:
                flags = [*peers.NANOGPT_CPU_FLAGS, f"--eval_interval={CURVE_INTERVAL}"]
                progress(f"nanoGPT: python train.py config/train_shakespeare_char.py {' '.join(flags)}")
                h = peers.nanogpt_run(path, self.text, Path(tmp) / "nanoGPT", flags,
                                      self.results / "logs" / "nanogpt.txt")
            theirs = dict(seconds_to_val=time_to_loss(h, CURVE_VAL), best_within=best_within(h, CURVE_SECONDS),
                          history=h)
            rows.append(["nanoGPT, its README's CPU recipe", fmt(theirs["seconds_to_val"], ",.1f", "not reached"),
                         fmt(theirs["best_within"], ".4f")])
        targets = [self.target(f"seconds to val {CURVE_VAL:.2f}, ours / nanoGPT's",
                               ratio(ours["seconds_to_val"], theirs.get("seconds_to_val"))),
                   self.target(f"best val within {CURVE_SECONDS:g} s, ours", ours["best_within"])]
        self.report["curve"] = dict(ours=dict(ours, history=history), nanogpt=theirs)
        return (f"## curve: val estimated every {CURVE_INTERVAL} steps; seconds are training seconds (evaluations "
                "excluded), interpolated between eval points\n\n"
                + self.compare(["run", f"seconds to val {CURVE_VAL:.2f}", f"best val within {CURVE_SECONDS:g} s"],
                               rows, targets, how))

    def stages(self):
        metrics = [self.gpt_default() if s == "gpt" else self.run_script(s, s, ["--device", "cpu"])
                   for s in runner.STAGES]
        self.report["stages"] = metrics
        return "## stages: every stage's default run (the README's Results table)\n\n" + stages_table(metrics)

    def gpu(self):
        m = self.run_script("gpt", "gpu-gpt", ["--device", "cuda", "--eval-interval", GPU_INTERVAL])
        steady = steady_tokens_per_second(m)
        reach = {f"train seconds to val {v:.2f}": time_to_loss(m["history"], v) for v in GPU_VALS}
        fig = {"ms/step": 1000 * m["train_seconds"] / m["iters"], "tokens/s": m["tokens_per_second"],
               "tokens/s after the first eval interval": steady, **reach, "val loss (full split)": m.get("val_loss")}
        card = machine_info()["gpu"]  # the card gpt.py's run just used: this process sees the same one
        self.report["gpu"] = dict(card=card, dtype=m["dtype"], figures=fig, history=m["history"])
        return (f"## gpu: gpt.py's default GPU run on {card} ({m['iters']:,} steps, "
                f"{m['dtype']})\n\n"
                + markdown_table(["figure", "value"], [[k, fmt(v, ",.2f", "not reached")] for k, v in fig.items()]))

    def run(self, sections, json_path):
        machine = machine_info()
        json_path.parent.mkdir(parents=True, exist_ok=True)
        self.report.update(created=datetime.now(timezone.utc).isoformat(timespec="seconds"), machine=machine,
                           command=shlex.join(["python", "-m", "bench.run", *sys.argv[1:]]))
        print("# gpt-from-scratch benchmark\n")
        print(markdown_table(["CPU", "cores", "threads", "torch", "native bf16"],
                             [[machine["cpu"], machine["cores"], machine["threads"], machine["torch"],
                               "yes" if native_bf16(torch.device("cpu")) else "no"]]), flush=True)
        for section in sections:
            print("\n" + getattr(self, section)(), flush=True)
            save_json(json_path, self.report)  # after every section: a run that breaks keeps what it measured
        if self.targets:
            print("\n## targets\n\n" + markdown_table(["what", "measured", "target", "met", "CPU"], self.targets))
        progress(f"every number is in {json_path}")


# ----------------------------------------------------------------------------------------------------
# command line


def section_list(s):
    names = [n.strip() for n in s.split(",") if n.strip()]
    if not names or any(n not in SECTIONS for n in names):
        raise argparse.ArgumentTypeError(f"choose from {','.join(SECTIONS)}, got {s!r}")
    return [n for n in SECTIONS if n in names]  # in the order above: matmul first, as the yardstick


def positive(s):
    if not s.isdigit() or int(s) < 1:
        raise argparse.ArgumentTypeError(f"a whole number of at least 1, got {s!r}")
    return int(s)


def build_parser():
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.strip().splitlines()[0],
                                epilog="Run it on a quiet machine: anything else running slows the timings.")
    p.add_argument("--only", type=section_list, default=list(CPU_SECTIONS), metavar="LIST",
                   help=f"comma-separated sections from {','.join(SECTIONS)} (default: all but gpu)")
    p.add_argument("--repeats", type=positive, default=5, metavar="N",
                   help="timed repeats of the matmul and of our sample, whose median counts (default: 5)")
    p.add_argument("--steps", type=positive, default=6, metavar="N",
                   help="timed training steps in the train section, after its warm-up (default: 6)")
    p.add_argument("--peers", default=str(ROOT.parent / "peers"), metavar="DIR",
                   help="where ng-video-lecture and nanoGPT are cloned (default: ../peers beside the repository)")
    p.add_argument("--data", metavar="PATH", help="the text, as for the stage scripts (default: Tiny Shakespeare)")
    p.add_argument("--gpt-flags", default="", metavar="FLAGS",
                   help="flags for gpt.py's CPU default run in curve and stages, e.g. \"--lr 5e-3 --seed 1\": one "
                        "candidate of the sweep in notes/running.md (default: none)")
    p.add_argument("--results-dir", default=str(ROOT / "bench" / "results"), metavar="DIR",
                   help="where the script runs, their logs and bench.json go; runs there are replaced")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    if "gpu" in args.only and not torch.cuda.is_available():
        print("bench: error: the gpu section needs a CUDA GPU, and PyTorch sees none here; leave gpu out of --only",
              file=sys.stderr)
        return 1
    try:
        with tempfile.TemporaryDirectory(prefix="bench-") as work:
            Bench(args, work).run(args.only, Path(args.results_dir).resolve() / "bench.json")
    except (BenchError, DataError) as e:
        print(f"bench: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
