"""Plant the bugs a generic mutation tool cannot write, one at a time in a copy of the repository, and check
that the tests named for each catch it.

    python tests/mutation.py                     # every mutant (about 10 minutes on 2 cores)
    python tests/mutation.py --only gpt-post-layer-norm --only no-gradient-clipping
    python tests/mutation.py --list              # the mutants and the tests meant to catch each

mutmut (README, Testing) changes operators, numbers and names everywhere in the lesson's files; it cannot
delete the causal mask, turn a pre-layer-norm block into a post-layer-norm one, forget to restore a random
generator on --resume or stop handling SIGTERM. Those are the entries below: a file, an exact fragment `old`
of one code line there (matched without the line's comment, never in a docstring; `where` narrows the search
to one function), the text `new` that replaces it, and the tests that must fail once it is in. A fragment
that is not found exactly once stops the script (exit status 2) before anything runs: when the code
changes, the list must change with it, or it would quietly test nothing.

Every selection of tests first runs unmutated, all in one pytest process (the baseline): a selection that
fails there, or names a test that no longer exists, proves nothing, and is reported as such. Then each mutant
runs its selection with `pytest -x` in a fresh copy of a snapshot of the checkout (git's tracked and
unignored files, so an edit made meanwhile changes nothing). The mutant is `killed` (a test failed),
`error` (it broke an import or ran past --timeout: counted as killed) or `SURVIVED` (a test is missing or too
weak). Exit status 0 when every mutant was killed, 1 otherwise. Runs use OMP_NUM_THREADS=1 and GPT_DATA (the
copy of Tiny Shakespeare in ../shared/data when it is not set), so the tests that need the real text run.
"""

import argparse
import ast
import io
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tokenize
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 300  # seconds per pytest run; the slowest selection takes well under a minute


@dataclass(frozen=True)
class Mutant:
    name: str
    file: str
    old: str  # a fragment of exactly one code line of file (of `where`, if given)
    new: str
    tests: tuple  # pytest node ids
    where: str = None  # the name of the function whose body holds old
    why: str = ""


PI, MS, SA, DA = "tests/test_pinned.py::test_", "tests/test_models.py::test_", "tests/test_sampling.py::test_", \
    "tests/test_data.py::test_"
RU, SC, RE = "tests/test_runs.py::test_", "tests/test_scripts.py::test_", "tests/test_reliability.py::test_"
FI, SH = "tests/test_figures.py::test_", "tests/test_shakespeare.py::test_"
RESUME = "a_run_stopped_and_resumed_ends_as_the_uninterrupted_one_in_its_files_final_losses_and_sample"

MUTANTS = [
    # ---- the models ---------------------------------------------------------------------------------------
    Mutant("v3-no-causal-mask", "bigram_v3.py", 'wei = wei.masked_fill(self.tril[:T, :T] == 0, float("-inf"))',
           "wei = wei", (MS + "logits_up_to_t_ignore_the_tokens_after_t[bigram_v3]",
                         PI + "logits_are_each_stages_formula_and_loss_their_mean_cross_entropy[bigram_v3]"),
           why="a position attends to the characters after it"),
    Mutant("gpt-no-causal-mask", "gpt.py", "is_causal=T > 1", "is_causal=False",
           (MS + "logits_up_to_t_ignore_the_tokens_after_t[gpt]",), why="a position attends to the future"),
    Mutant("v3-attention-unscaled", "bigram_v3.py", " * k.shape[-1] ** -0.5", "",
           (PI + "logits_are_each_stages_formula_and_loss_their_mean_cross_entropy[bigram_v3]",),
           why="scores are not divided by sqrt(head_size)"),
    Mutant("gpt-attention-unscaled", "gpt.py", "dropout_p=self.dropout if self.training else 0)",
           "dropout_p=self.dropout if self.training else 0, scale=1.0)",
           (PI + "logits_are_each_stages_formula_and_loss_their_mean_cross_entropy[gpt]",),
           why="scores are not divided by sqrt(head_size)"),
    Mutant("gpt-no-attention-dropout", "gpt.py", "dropout_p=self.dropout if self.training else 0)", "dropout_p=0)",
           (PI + "gpt_training_drops_out_attention_weights_and_both_residual_branches",),
           why="the attention weights are never dropped out, as the lecture's Head does"),
    Mutant("gpt-post-layer-norm", "gpt.py", "x = x + self.sa(self.ln1(x), cache)", "x = self.ln1(x + self.sa(x, cache))",
           (PI + "logits_are_each_stages_formula_and_loss_their_mean_cross_entropy[gpt]",),
           why="the block normalizes after the residual sum (the 2017 paper), not before"),
    Mutant("gpt-no-final-layer-norm", "gpt.py", "x = self.ln_f(x)", "x = x",
           (PI + "logits_are_each_stages_formula_and_loss_their_mean_cross_entropy[gpt]",), why="ln_f is never applied"),
    Mutant("gpt-residual-init-unscaled", "gpt.py", "0.02 / (2 * n_layer) ** 0.5 if", "0.02 if",
           (PI + "gpt_init_is_normal_0_02_with_residual_projections_shrunk_to_0_02_over_sqrt_2_n_layer_and_zero_biases",),
           why="GPT-2's smaller init of the residual projections is forgotten"),
    Mutant("gpt-cached-position-shifted", "gpt.py", "torch.arange(start, start + T, device=idx.device)",
           "torch.arange(max(start - 1, 0), max(start - 1, 0) + T, device=idx.device)",
           (PI + "gpt_cached_steps_give_the_logits_of_the_full_forward_pass_at_every_position",),
           why="a cached token gets the position before its own"),
    # ---- sampling -----------------------------------------------------------------------------------------
    Mutant("kv-refill-keeps-the-first-half", "sampling.py", "idx[:, -max(1, block_size // 2) :]",
           "idx[:, -block_size:][:, : max(1, block_size // 2)]",
           (PI + "past_block_size_each_strategy_writes_the_text_of_its_reference_loop",),
           why="the refilled cache holds the first half of the window, not the last"),
    Mutant("temperature-without-the-shift", "sampling.py", "logits.double().amax(dim=-1, keepdim=True)", "0",
           (SA + "temperature_zero_or_a_tiny_one_such_as_1e_40_is_greedy_the_argmax_of_each_row_without_nan",),
           why="a tiny temperature makes the largest logits inf, and inf - inf = nan"),
    Mutant("top-k-plus-one", "sampling.py", "torch.topk(logits, top_k)", "torch.topk(logits, top_k + 1)",
           (SA + "top_k_draws_only_the_k_largest_logits_and_each_of_them",), why="top_k keeps k + 1 candidates"),
    # ---- the training loop and its measurements -------------------------------------------------------------
    Mutant("no-gradient-clipping", "runner/loop.py", "torch.nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)",
           "pass", (PI + "train_steps_are_warmup_cosine_lr_times_the_gradient_clipped_to_norm_1",),
           why="one odd batch can throw the weights far"),
    Mutant("no-zero-grad", "runner/loop.py", "optimizer.zero_grad(set_to_none=True)", "pass",
           (PI + "train_steps_are_warmup_cosine_lr_times_the_gradient_clipped_to_norm_1",),
           why="every step adds its gradient to all the earlier ones"),
    Mutant("estimate-with-dropout", "runner/loop.py", "model.eval()", "pass", where="estimate_loss", tests=(
        PI + "estimate_loss_is_the_eval_mode_mean_over_eval_iters_batches_drawn_from_the_seed_for_each_split",),
           why="the estimate measures a noisy copy of the model"),
    Mutant("estimate-leaves-eval-mode", "runner/loop.py", "model.train()", "pass", where="estimate_loss", tests=(
        PI + "estimate_loss_is_the_eval_mode_mean_over_eval_iters_batches_drawn_from_the_seed_for_each_split",),
           why="training goes on without dropout after the first evaluation"),
    Mutant("full-loss-with-dropout", "runner/loop.py", "model.eval()", "pass", where="full_loss",
           tests=(PI + "full_loss_measures_every_window_and_the_tail_in_eval_mode_and_leaves_the_model_training",),
           why="the final measurement has dropout on"),
    # ---- runs: keep the best, resume, signals, torchrun --------------------------------------------------------
    Mutant("best-overwritten", "runner/loop.py", 'improved = p.best is None or evaluation["val"] < p.best["val"]',
           "improved = True", (RU + "the_run_reports_the_model_with_the_lowest_val_estimate_not_the_last_step",),
           why="best.pt is overwritten at every evaluation, better or not"),
    Mutant("report-ignores-best", "runner/__init__.py", 'if kept["iter"] != p.step:', "if False:",
           (RU + "the_run_reports_the_model_with_the_lowest_val_estimate_not_the_last_step",),
           why="the final measurement is of the last step, not of the kept model"),
    Mutant("batches-not-restored", "runner/__init__.py", 'run.batches.set_state(rng["batches"])', "pass",
           (PI + RESUME,), why="--resume draws the batches from the seed again"),
    Mutant("dropout-rng-not-restored", "runner/__init__.py", 'torch.set_rng_state(rng["torch"])', "pass",
           (PI + RESUME,), why="--resume draws other dropout masks than the run it continues"),
    Mutant("sigterm-not-handled", "runner/__init__.py", '("SIGINT", "SIGTERM", "SIGHUP")', '("SIGINT", "SIGHUP")',
           (RE + "a_stop_signal_stops_between_steps_and_saves_a_checkpoint_to_resume_from[SIGTERM-143]",),
           why="kill, timeout or a cluster's stop kills the run without a checkpoint"),
    Mutant("stop-status-off-by-one", "runner/__init__.py", "return 128 + e.args[0]", "return 129 + e.args[0]",
           (RE + "a_stop_signal_stops_between_steps_and_saves_a_checkpoint_to_resume_from[SIGINT-130]",), why="Ctrl-C exits 131, not 130"),
    Mutant("ranks-draw-the-same-batches", "runner/__init__.py", "Generator().manual_seed(run.seed + torchrun.RANK)",
           "Generator().manual_seed(run.seed)",
           ("tests/test_distributed.py::test_under_torchrun_a_run_resumes_exactly_rank_0_alone_prints_writes_samples_and_refuses_for_all",),
           why="under torchrun every rank trains on the same batches"),
    # ---- files: atomic writes, the download's checksum ---------------------------------------------------------
    Mutant("atomic-write-is-plain", "data/atomic.py", "path = os.fspath(path)",
           "path = os.fspath(path); return write(path) or path", where="atomic_write",
           tests=(DA + "write_that_fails_midway_leaves_the_old_file_or_none_and_no_temp_file",),
           why="a crash while saving leaves half a file where the checkpoint was"),
    Mutant("atomic-write-leaves-temp", "data/atomic.py", "Path(tmp).unlink(missing_ok=True)", "pass",
           (DA + "write_that_fails_midway_leaves_the_old_file_or_none_and_no_temp_file",),
           why="a failed write leaves its temporary file behind"),
    Mutant("checksum-skipped", "data/shakespeare.py", "if hashlib.sha256(path.read_bytes()).hexdigest() != sha256:",
           "if False:", (SH + "missing_or_damaged_cache_is_downloaded_again_and_a_damaged_one_is_reported",),
           why="a cached or downloaded text of the right size is trusted without its checksum"),
    # ---- notes/figures.py -------------------------------------------------------------------------------------
    Mutant("figure-attention-unmasked", "notes/figures.py", 'scores.masked_fill(future, float("-inf"))', "scores",
           (FI + "the_masked_average_is_the_softmax_of_zeros_under_the_mask",),
           why="the attention figures show weights on future characters"),
    Mutant("figure-attention-unscaled", "notes/figures.py", " * k.size(-1) ** -0.5", "",
           (FI + "the_attention_weights_are_each_layers_own_and_the_figures_draw_the_heads_they_name",),
           why="the attention figures forget the 1/sqrt(head_size) scale"),
]


class ListError(Exception):
    """An entry no longer fits the code."""


def code_lines(src):
    """{line number: the code on that line, its comment cut off}, for every line that is not a docstring."""
    code = dict(enumerate(src.splitlines(keepends=True), 1))
    for tok in tokenize.generate_tokens(io.StringIO(src).readline):
        if tok.type == tokenize.COMMENT:
            code[tok.start[0]] = code[tok.start[0]][: tok.start[1]]
    for node in ast.walk(ast.parse(src)):
        body = getattr(node, "body", None)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef)) and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            for n in range(body[0].lineno, body[0].end_lineno + 1):
                code.pop(n, None)
    return code


def locate(m, src):
    """The number of the one code line (in m.where, if given) that holds m.old; else ListError."""
    code, lines = code_lines(src), range(1, src.count("\n") + 2)
    if m.where:
        found = [n for n in ast.walk(ast.parse(src)) if isinstance(n, ast.FunctionDef) and n.name == m.where]
        if len(found) != 1:
            raise ListError(f"{m.name}: {len(found)} functions named {m.where} in {m.file}, not one")
        lines = range(found[0].lineno, found[0].end_lineno + 1)
    hits = [n for n in lines if m.old in code.get(n, "")]
    if len(hits) != 1:
        raise ListError(f"{m.name}: {m.old!r} is on {len(hits)} code lines of {m.where or m.file}, not one")
    return hits[0]


def plant(m, root):
    """Write m into the copy at root: its old fragment, on its one line, replaced by new."""
    path = root / m.file
    src = path.read_text(encoding="utf-8")
    lines = src.splitlines(keepends=True)
    n = locate(m, src) - 1
    lines[n] = lines[n].replace(m.old, m.new, 1)  # the code comes before the comment: the first hit is code
    path.write_text("".join(lines), encoding="utf-8")


def snapshot():
    """The files git tracks plus the untracked ones it does not ignore, copied to a temporary directory."""
    names = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, check=True).stdout.decode().split("\0")
    dest = Path(tempfile.mkdtemp(prefix="mutation-"))
    for name in filter(None, names):
        if (ROOT / name).is_file():  # a file deleted but not yet committed is skipped
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    return dest


def environment():
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    shared = ROOT.parent / "shared/data/tinyshakespeare.txt"
    if not env.get("GPT_DATA") and shared.is_file():
        env["GPT_DATA"] = str(shared)
    return env


def pytest(root, tests, timeout, *flags):
    """Run pytest on tests in root: (exit status or None after the timeout, its output, seconds)."""
    start = time.monotonic()
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *flags, *tests]
    try:
        done = subprocess.run(cmd, cwd=root, env=environment(), capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, f"ran past the {timeout} s timeout", time.monotonic() - start
    return done.returncode, done.stdout + done.stderr, time.monotonic() - start


def baseline(mutants, snap, timeout):
    """{test: why it cannot judge a mutant} for every test that fails or skips unmutated. (A test that no longer
    exists stops pytest before anything runs: tests/test_weight.py checks that every name here exists.)"""
    tests, bad = sorted({t for m in mutants for t in m.tests}), {}
    code, out, _ = pytest(snap, tests, 4 * timeout, "-rA")
    report = [line.partition(" ")[::2] for line in out.splitlines()]  # ("PASSED", "tests/...::test_x[a]"), ...
    for t in tests:
        if not any(word == "PASSED" and rest.startswith(t) for word, rest in report):
            failed = [rest for word, rest in report if word in ("FAILED", "ERROR") and rest.startswith(t)]
            bad[t] = f"unmutated: {failed[0][:150]}" if failed else f"skips unmutated (pytest exit status {code})"
    return bad


def run_one(m, snap, timeout):
    copy = Path(tempfile.mkdtemp(prefix=f"mutant-{m.name}-")) / "repo"
    try:
        shutil.copytree(snap, copy)
        plant(m, copy)
        code, out, seconds = pytest(copy, m.tests, timeout, "-x")
    finally:
        shutil.rmtree(copy.parent, ignore_errors=True)
    verdict = {0: "SURVIVED", 1: "killed"}.get(code, "error")
    failed = [line.split(" ")[1] for line in out.splitlines() if line.startswith(("FAILED ", "ERROR "))]
    return verdict, seconds, failed[0] if failed else out.strip().splitlines()[-1] if out.strip() else ""


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", metavar="NAME", help="run this mutant only (repeatable)")
    parser.add_argument("--list", action="store_true", help="list the mutants and their tests; run nothing")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), help="mutants run at once")
    parser.add_argument("--timeout", type=int, default=TIMEOUT, help="seconds per pytest run")
    args = parser.parse_args(argv)
    unknown = set(args.only or ()) - {m.name for m in MUTANTS}
    if unknown:
        parser.error(f"no mutant named {', '.join(sorted(unknown))}; --list shows them")
    mutants = [m for m in MUTANTS if not args.only or m.name in args.only]
    snap = snapshot()
    try:
        for m in MUTANTS:  # every entry, even with --only, so that a stale one shows at once
            locate(m, (snap / m.file).read_text(encoding="utf-8"))
        if args.list:
            for m in mutants:
                print(f"{m.name}  [{m.file}]  {m.why}\n    " + "\n    ".join(m.tests))
            return 0
        return run(mutants, snap, args)
    except (ListError, FileNotFoundError) as e:
        print(f"mutation.py: the list no longer fits the code; fix tests/mutation.py: {e}", file=sys.stderr)
        return 2
    finally:
        shutil.rmtree(snap, ignore_errors=True)


def run(mutants, snap, args):
    started = time.monotonic()
    print(f"baseline: the {len({t for m in mutants for t in m.tests})} tests unmutated ...", flush=True)
    bad = baseline(mutants, snap, args.timeout)
    results = {m.name: ("baseline", 0.0, bad[t]) for m in mutants for t in m.tests if t in bad}

    def show(m):  # a survivor says what its bug does; the others, the test that caught them (or the baseline's)
        verdict, seconds, detail = results[m.name]
        print(f"{m.name:<32}  {verdict:<8} {seconds:5.0f} s  {m.why if verdict == 'SURVIVED' else detail}", flush=True)

    for m in mutants:
        if m.name in results:
            show(m)
    todo = [m for m in mutants if m.name not in results]
    print(f"running {len(todo)} mutants ...", flush=True)
    with ThreadPoolExecutor(max(1, args.jobs)) as pool:
        for m, result in zip(todo, pool.map(lambda m: run_one(m, snap, args.timeout), todo)):
            results[m.name] = result
            show(m)  # as each finishes, in the list's order
    counts = Counter(verdict for verdict, _, _ in results.values())
    print(f"\n{len(mutants)} mutants in {time.monotonic() - started:.0f} s: "
          + ", ".join(f"{n} {v}" for v, n in sorted(counts.items())))
    return 0 if set(counts) <= {"killed", "error"} else 1


if __name__ == "__main__":
    raise SystemExit(main())
