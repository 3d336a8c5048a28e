"""Mutation check: plant known bugs one at a time in a copy of the repository, and see the tests catch each.

    python tests/mutation.py                   # every mutant, two at a time (about 5 minutes on 2 cores)
    python tests/mutation.py --jobs 1          # one at a time
    python tests/mutation.py --only top-k-plus-one --only no-final-layer-norm
    python tests/mutation.py --list            # the mutants and the tests meant to catch each; runs nothing
    python tests/mutation.py --help            # every flag

A test suite can pass for the wrong reason: a test that never looks at the temperature passes whether or not
pick_next divides by it. So each entry in MUTANTS below is a bug someone could plausibly write (no causal
mask, warmup from lr 0, top_k keeping one candidate too many, ...): a file, an exact snippet `old` of it, the
`new` text that replaces it, and the tests that should fail once it is in. For each mutant the script copies
the repository (the files git tracks plus untracked ones it does not ignore) to a temporary directory,
replaces `old` by `new` there, and runs only those tests with `python -m pytest -x`. The mutant is

    killed      the tests failed, as they should;
    error       the tests could not run: the mutant broke an import, or they ran past --timeout. Counted
                as killed, and shown so that a slow or crashing mutant can be made a better one;
    SURVIVED    the tests passed with the bug in: a test is missing or too weak;
    baseline    its tests fail on the unmutated copy too, or one of them no longer exists, so they prove
                nothing about the mutant (every selection runs first, in one pytest process, on an
                unmutated copy; --no-baseline skips that);
    ran no test its -k expression matched no test;
    no test yet a TODO entry: a bug worth planting whose test does not exist yet.

The exit status is 0 when every mutant with a test was killed, and 1 when one survived, its baseline failed
or it ran no test; TODO entries are listed at the end. An `old` snippet that is not found exactly once in
its file stops the script (exit status 2) before anything runs, naming the mutant: when the code changes,
the list has to change with it, or it would quietly test nothing.

Each run sets OMP_NUM_THREADS=1, PYTHONDONTWRITEBYTECODE=1 (so no stale bytecode), and GPT_DATA (if unset:
the copy of Tiny Shakespeare at ../shared/data/ beside the checkout, or data/tinyshakespeare.txt, when
either exists), so the tests that need the real text run instead of skipping. To add a mutant, copy an
entry, make `old` long enough to occur once, and check it with `--only NAME`. It need not run in CI: run it
after changing a test or the code a mutant plants its bug in.
"""

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TIMEOUT = 300  # seconds per pytest run; the slowest selection below takes well under a minute
DEFAULT_JOBS = min(2, os.cpu_count() or 1)
SKIP_DIRS = {".git", "out", "__pycache__", ".pytest_cache", ".hypothesis", "bench/results"}


@dataclass(frozen=True)
class Mutant:
    name: str
    file: str  # relative to the repository root
    old: str  # must occur exactly once in file
    new: str
    tests: tuple = ()  # pytest node ids or paths, relative to the root; empty: no test yet (a TODO)
    k: str = None  # an optional -k expression narrowing `tests`
    why: str = ""  # the bug, in a few words


MS = "tests/test_models.py::"
SC = "tests/test_scripts.py::"
DA = "tests/test_data.py::"
SH = "tests/test_shakespeare.py::"
FI = "tests/test_figures.py::"
RU = "tests/test_runs.py::"

MUTANTS = [
    # ---- attention ----------------------------------------------------------------------------------
    Mutant("v3-no-causal-mask", "bigram_v3.py",
           old='        wei = wei.masked_fill(self.tril[:T, :T] == 0, float("-inf"))  # (B, T, T): no peeking ahead\n',
           new="",
           tests=(MS + "test_logits_up_to_t_ignore_the_tokens_after_t[bigram_v3]",),
           why="bigram_v3's Head lets a position attend to the future"),
    Mutant("gpt-no-causal-mask", "gpt.py",
           old="is_causal=T > 1, dropout_p=p)", new="is_causal=False, dropout_p=p)",
           tests=(MS + "test_logits_up_to_t_ignore_the_tokens_after_t[gpt]",),
           why="gpt's attention lets a position attend to the future"),
    Mutant("v3-attention-scale", "bigram_v3.py",
           old="wei = q @ k.transpose(-2, -1) * k.shape[-1] ** -0.5", new="wei = q @ k.transpose(-2, -1)",
           tests=(MS + "test_gpt_batched_attention_is_bigram_v3_heads_then_proj_in_outputs_and_gradients",
                  FI + "test_bigram_v3_figure_weights_applied_to_v_give_every_heads_output"),
           why="bigram_v3's scores are not divided by sqrt(head_size)"),
    Mutant("gpt-attention-scale", "gpt.py",
           old="is_causal=T > 1, dropout_p=p)", new="is_causal=T > 1, dropout_p=p, scale=1.0)",
           tests=(MS + "test_gpt_batched_attention_is_bigram_v3_heads_then_proj_in_outputs_and_gradients",
                  FI + "test_gpt_figure_weights_applied_to_v_then_proj_give_each_layers_real_output"),
           why="gpt's scores are not divided by sqrt(head_size)"),
    # ---- KV cache -----------------------------------------------------------------------------------
    Mutant("kv-cache-start-shifted", "sampling.py",
           old="logits, _ = model(idx_next, kv_cache=cache, start=n)", new="logits, _ = model(idx_next, kv_cache=cache, start=n - 1)",
           tests=(MS + "test_kv_cache_and_crop_sample_identical_tokens_while_the_text_fits_the_block",
                  "tests/test_sampling.py::test_greedy_settings_make_both_loops_write_the_argmax_text_of_the_uncached_model"),
           why="generate_cached feeds each new token one position too early"),
    Mutant("gpt-cached-position-shifted", "gpt.py",
           old="self.position_embedding_table(torch.arange(start, start + T, device=idx.device))",
           new="self.position_embedding_table(torch.arange(max(start - 1, 0), max(start - 1, 0) + T, device=idx.device))",
           tests=(MS + "test_cached_single_steps_give_the_logits_of_the_full_forward_pass",
                  "tests/test_sampling.py::test_greedy_settings_make_both_loops_write_the_argmax_text_of_the_uncached_model"),
           why="gpt gives a cached token the position before its own"),
    # ---- data ---------------------------------------------------------------------------------------
    Mutant("targets-not-shifted", "data/batches.py",
           old="y = data[ix[:, None] + offsets + 1]", new="y = data[ix[:, None] + offsets]",
           tests=(DA + "test_batches_have_shape_b_t_and_targets_shifted_by_one",),
           why="get_batch's targets are the inputs themselves"),
    Mutant("unsorted-vocabulary", "data/tokenizer.py",
           old="return cls(sorted(set(text)))", new="return cls(dict.fromkeys(text))",
           tests=(DA + "test_vocabulary_is_the_sorted_set_of_characters",),
           why="the vocabulary is in order of first appearance, not sorted"),
    Mutant("cache-checksum-skipped", "data/shakespeare.py",
           old="problem = _mismatch(len(data), hashlib.sha256(data).hexdigest(), size, sha256)",
           new="problem = _mismatch(len(data), hashlib.sha256(data).hexdigest(), size, None)",
           tests=(SH + "test_damaged_cache_is_reported_and_replaced_by_a_fresh_download",),
           why="load_text trusts a cached text of the right size without its checksum"),
    Mutant("download-checksum-skipped", "data/shakespeare.py",
           old="problem = _mismatch(nbytes, digest, size, sha256)", new="problem = _mismatch(nbytes, digest, size, None)",
           tests=(SH + "test_right_length_but_wrong_bytes_fails_the_checksum_and_leaves_nothing",),
           why="a download of the right size is saved without its checksum"),
    Mutant("atomic-write-is-plain", "data/atomic.py",
           old="    path = os.fspath(path)\n    directory = os.path.dirname(os.path.abspath(path))\n",
           new="    path = os.fspath(path)\n    write(path)  # straight onto path: a crash leaves half a file\n"
               "    return path\n    directory = os.path.dirname(os.path.abspath(path))\n",
           tests=(DA + "test_write_that_fails_midway_leaves_the_old_file_and_no_temp_file",
                  DA + "test_temp_file_is_beside_the_destination_and_named_with_our_prefix_and_pid"),
           why="atomic_write writes to the destination itself"),
    Mutant("atomic-write-leaves-temp", "data/atomic.py",
           old="        Path(tmp).unlink(missing_ok=True)\n        raise\n", new="        raise\n",
           tests=(DA + "test_write_that_fails_midway_leaves_the_old_file_and_no_temp_file",
                  DA + "test_write_that_fails_before_the_file_exists_leaves_nothing"),
           why="a failed atomic_write leaves its temporary file behind"),
    # ---- training -----------------------------------------------------------------------------------
    Mutant("warmup-from-zero", "runner/training.py",
           old="return lr * (step + 1) / warmup", new="return lr * step / warmup",
           tests=(MS + "test_lr_warmup_rises_linearly_from_lr_over_warmup_to_the_peak",),
           why="the first warmup step has learning rate 0"),
    Mutant("full-loss-drops-tail", "runner/training.py",
           old="    if tail:\n", new="    if False:\n",
           tests=(MS + "test_full_loss_is_the_mean_cross_entropy_of_every_next_character_for_a_bigram_table",
                  MS + "test_full_loss_is_the_mean_cross_entropy_over_consecutive_windows_including_the_short_tail"),
           why="full_loss skips the last, shorter window"),
    Mutant("floor-single-alpha", "runner/training.py",
           old="alphas = [alpha] if alpha is not None else [10.0 ** e for e in range(-4, 2)] + [0.5, 2.0, 3.0, 5.0]",
           new="alphas = [alpha] if alpha is not None else [1.0]",
           tests=(MS + "test_bigram_floor_picks_the_smallest_smoothing_when_val_repeats_trains_pairs",
                  MS + "test_bigram_floor_on_tiny_shakespeare_is_2_482"),
           why="bigram_floor tries one smoothing value instead of a grid"),
    Mutant("weight-decay-dropped", "runner/training.py",
           old='weight_decay=cfg.get("weight_decay", 0.0), **fused)',
           new="weight_decay=0.0, **fused)",
           tests=(RU + "test_weight_decay_pulls_every_parameter_as_measured_best_on_the_cpu_default",),
           why="the optimizer ignores --weight-decay"),
    # ---- the model ----------------------------------------------------------------------------------
    Mutant("no-final-layer-norm", "gpt.py",
           old="        x = self.ln_f(x)  # (B, T, n_embd)\n", new="",
           tests=("tests/test_gpt_parts.py",),
           why="gpt's final layer norm is never applied"),
    Mutant("no-attention-dropout", "gpt.py",
           old="is_causal=T > 1, dropout_p=p)", new="is_causal=T > 1, dropout_p=0.0)",
           tests=(RU + "test_attention_drops_out_its_weights_while_training_and_nothing_in_eval",),
           why="gpt never drops out attention weights, as the lecture's Head does"),
    Mutant("no-embedding-dropout", "gpt.py",
           old="x = self.emb_dropout(tok_emb + pos_emb)", new="x = tok_emb + pos_emb",
           tests=(RU + "test_gpt_drops_out_the_embeddings_while_training",),
           why="gpt never drops out its embeddings"),
    # ---- sampling -----------------------------------------------------------------------------------
    Mutant("temperature-ignored", "sampling.py",
           old="logits = logits.double() / temperature", new="logits = logits.double()",
           tests=("tests/test_sampling.py",), k="temperature",
           why="pick_next draws from softmax(logits) whatever the temperature"),
    Mutant("temperature-without-float64", "sampling.py",
           old="logits = logits.double() / temperature", new="logits = logits / temperature",
           tests=("tests/test_sampling.py",), k="temperature",
           why="a tiny temperature makes inf - inf = nan in float32"),
    Mutant("top-k-plus-one", "sampling.py",
           old="kth = torch.topk(logits, top_k).values", new="kth = torch.topk(logits, top_k + 1).values",
           tests=("tests/test_sampling.py",), k="top_k",
           why="top_k keeps k + 1 candidates"),
    Mutant("top-k-minus-one", "sampling.py",
           old="kth = torch.topk(logits, top_k).values", new="kth = torch.topk(logits, max(1, top_k - 1)).values",
           tests=("tests/test_sampling.py",), k="top_k",
           why="top_k keeps k - 1 candidates"),
    Mutant("cached-loop-drops-temperature", "sampling.py",
           old="return generate_cached(model, idx, max_new_tokens, temperature, top_k, generator)",
           new="return generate_cached(model, idx, max_new_tokens, top_k=top_k, generator=generator)",
           tests=("tests/test_sampling.py",), k="generate",
           why="generate() forgets the temperature on its KV-cache path"),
    # ---- runs: resume, keep-the-best, signals, torchrun -----------------------------------------------
    Mutant("batch-generator-not-restored", "runner/checkpoint.py",
           old='    batch_gen.set_state(state["batches"])\n', new="",
           tests=(SC + "test_stop_at_then_resume_repeats_the_uninterrupted_runs_losses_exactly[bigram_v1]",),
           why="--resume draws its batches from the seed again instead of where the run stopped"),
    Mutant("best-saved-when-val-worse", "runner/__init__.py",
           old='improved = p.best is None or evaluation["val"] < p.best["val"]', new="improved = True",
           tests=(RU + "test_the_run_reports_the_model_with_the_lowest_val_estimate_not_the_last_step",),
           why="best.pt is overwritten at every evaluation, better or not"),
    Mutant("report-ignores-best", "runner/__init__.py",
           old='    if kept["iter"] != p.step:\n', new="    if False:\n",
           tests=(RU + "test_the_run_reports_the_model_with_the_lowest_val_estimate_not_the_last_step",),
           why="the final measurement is of the last step, not of the kept model"),
    Mutant("sigterm-not-handled", "runner/console.py",
           old='("SIGINT", "SIGTERM", "SIGHUP")', new='("SIGINT", "SIGHUP")',
           tests=("tests/test_reliability.py::test_sigterm_and_sighup_stop_between_steps_save_and_resume_exactly[SIGTERM-143]",),
           why="kill / timeout / a cluster's stop kills the run without a checkpoint"),
    Mutant("stop-exit-status-off-by-one", "runner/console.py",
           old="return 128 + self.signum", new="return 129 + self.signum",
           tests=(SC + "test_ctrl_c_exits_130_saves_a_checkpoint_and_says_to_resume",),
           why="Ctrl-C exits 131 instead of the shell's 130"),
    Mutant("ranks-draw-the-same-batches", "runner/__init__.py",
           old="batch_gen = torch.Generator().manual_seed(ctx.seed + ranks.rank)",
           new="batch_gen = torch.Generator().manual_seed(ctx.seed)",
           tests=("tests/test_distributed.py::test_a_run_and_its_resume_under_torchrun_succeed_and_only_rank_0_prints_and_writes",),
           why="under torchrun every rank trains on the same batches"),
    # ---- notes/figures.py ---------------------------------------------------------------------------
    Mutant("figure-attention-unmasked", "notes/figures.py",
           old='return F.softmax(scores.masked_fill(future, float("-inf")), dim=-1)', new="return F.softmax(scores, dim=-1)",
           tests=(FI + "test_gpt_figure_weights_applied_to_v_then_proj_give_each_layers_real_output",
                  FI + "test_the_masked_average_is_the_softmax_of_zeros_under_the_mask"),
           why="the attention figures show weights on future characters"),
    Mutant("figure-attention-unscaled", "notes/figures.py",
           old="scores = q @ k.transpose(-2, -1) * k.size(-1) ** -0.5", new="scores = q @ k.transpose(-2, -1)",
           tests=(FI + "test_gpt_figure_weights_applied_to_v_then_proj_give_each_layers_real_output",
                  FI + "test_bigram_v3_figure_weights_applied_to_v_give_every_heads_output"),
           why="the attention figures forget the 1/sqrt(head_size) scale"),
]


class ListError(Exception):
    """The mutant list no longer fits the code: an `old` snippet is missing or ambiguous."""


def check_list(mutants, root=ROOT):
    """Every mutant's old snippet occurs exactly once in its file, and names are unique; else ListError."""
    problems, seen = [], set()
    for m in mutants:
        if m.name in seen:
            problems.append(f"{m.name}: the name is used twice")
        seen.add(m.name)
        path = root / m.file
        if not path.is_file():
            problems.append(f"{m.name}: {m.file} does not exist")
            continue
        count = path.read_text(encoding="utf-8").count(m.old)
        if count != 1:
            problems.append(f"{m.name}: its `old` snippet occurs {count} times in {m.file}, not once: "
                            f"{m.old.strip()[:70]!r}")
        if m.old == m.new:
            problems.append(f"{m.name}: old and new are the same")
    if problems:
        raise ListError("the mutant list does not fit the code any more; fix these entries in tests/mutation.py:\n  "
                        + "\n  ".join(problems))


def repository_files(root=ROOT):
    """The files git tracks plus untracked ones it does not ignore; without git, every file outside SKIP_DIRS."""
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=root,
                             capture_output=True, check=True).stdout
        names = [n for n in out.decode("utf-8").split("\0") if n]
    except (OSError, subprocess.CalledProcessError):
        names = []
        for dirpath, dirnames, filenames in os.walk(root):
            rel = Path(dirpath).relative_to(root)
            dirnames[:] = [d for d in dirnames if (rel / d).as_posix() not in SKIP_DIRS and d not in SKIP_DIRS]
            names += [(rel / f).as_posix() for f in filenames if not f.endswith(".pyc")]
    return [n for n in names if (root / n).is_file()]  # a file deleted but not yet committed is skipped


def take_snapshot(root=ROOT):
    """Copy the repository's files to a temporary directory once; every run copies this snapshot, so the
    baseline and every mutant see the same code even while someone goes on editing the checkout."""
    dest = Path(tempfile.mkdtemp(prefix="mutation-snapshot-"))
    for name in repository_files(root):
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / name, target)
    return dest


def make_copy(snapshot, mutant=None):
    """A fresh copy of the snapshot in a temporary directory, with mutant applied if given."""
    dest = Path(tempfile.mkdtemp(prefix=f"mutant-{mutant.name if mutant else 'baseline'}-")) / "repo"
    shutil.copytree(snapshot, dest)
    if mutant is not None:
        path = dest / mutant.file
        text = path.read_text(encoding="utf-8")
        assert text.count(mutant.old) == 1, mutant.name  # check_list made sure, on this very snapshot
        path.write_text(text.replace(mutant.old, mutant.new), encoding="utf-8")
    return dest


def remove_copy(copy):
    shutil.rmtree(copy.parent, ignore_errors=True)


def test_env():
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    if not env.get("GPT_DATA"):
        for candidate in (ROOT.parent / "shared/data/tinyshakespeare.txt", ROOT / "data/tinyshakespeare.txt"):
            if candidate.is_file():
                env["GPT_DATA"] = str(candidate)
                break
    return env


@dataclass
class Outcome:
    code: int  # pytest's exit status, or None after a timeout
    seconds: float
    summary: str  # the first failing test (with pytest's message if it could not run), or why nothing ran
    failed: tuple = ()  # the node ids pytest reported as FAILED or ERROR
    ran: tuple = ()  # every node id that ran (only with report_all)


class LIVE:
    """The pytest runs going on now, so that Ctrl-C can end them (they run in sessions of their own, which
    the terminal's Ctrl-C does not reach)."""

    lock = threading.Lock()
    procs = set()
    stopping = False


def kill_group(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:  # it has ended already
        pass


@contextmanager
def workers(jobs):
    """A thread pool that, on Ctrl-C, ends the pytest runs it started instead of waiting for them."""
    pool = ThreadPoolExecutor(jobs)
    try:
        yield pool
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        with LIVE.lock:
            LIVE.stopping = True
            for proc in LIVE.procs:
                kill_group(proc)
        raise
    finally:
        pool.shutdown(wait=True)


def run_pytest(copy, tests, k, timeout, env, first_failure=True, report_all=False):
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rA" if report_all else "-rfE", *tests]
    if first_failure:
        cmd.append("-x")
    if k:
        cmd += ["-k", k]
    start = time.monotonic()
    with LIVE.lock:
        if LIVE.stopping:  # Ctrl-C: start nothing new
            return Outcome(None, 0.0, "interrupted")
        # its own session, so that a timeout ends the scripts the tests started too
        proc = subprocess.Popen(cmd, cwd=copy, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, start_new_session=True)
        LIVE.procs.add(proc)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        proc.communicate()
        return Outcome(None, time.monotonic() - start, f"ran past the {timeout} s timeout")
    except BaseException:  # Ctrl-C while this thread waited
        kill_group(proc)
        raise
    finally:
        with LIVE.lock:
            LIVE.procs.discard(proc)

    def nodes(*outcomes):  # from pytest's short summary: "FAILED tests/x.py::test_y - message"
        return tuple(line.split(" ", 1)[1].split(" - ", 1)[0] for line in out.splitlines()
                     if line.startswith(tuple(f"{o} " for o in outcomes)))

    failed = nodes("FAILED", "ERROR")
    return Outcome(proc.returncode, time.monotonic() - start, summarize(proc.returncode, out), failed,
                   nodes("PASSED", "FAILED", "ERROR", "XFAIL", "XPASS"))


def summarize(code, out):
    lines = out.splitlines()
    first = next((line.split(" ", 1)[1] for line in lines if line.startswith(("FAILED ", "ERROR "))), None)
    if first:  # a failed test: its node id is enough; a test that could not run: say why
        return first.split(" - ", 1)[0] if code == 1 else " ".join(first.split())[:160]
    if code == 0:
        return next((line.strip() for line in reversed(lines) if " passed" in line), "passed")
    problem = next((line.strip() for line in lines if line.startswith("E ") or "Error" in line), None)
    return problem or (lines[-1].strip() if lines else f"pytest exit status {code}")


KILLED, ERROR, SURVIVED, BASELINE, NOTHING, NO_TEST = ("killed", "error", "SURVIVED", "baseline", "ran no test",
                                                      "no test yet")


def verdict(code):
    if code == 1:
        return KILLED  # a test failed
    if code == 0:
        return SURVIVED
    if code == 5:
        return NOTHING  # the -k expression matched no test: the entry needs fixing; the mutant was not tried
    # None: a timeout; 2: a collection error (the mutant broke an import); 3/4: pytest or conftest could
    # not start. The baseline ran the same selection cleanly, so the mutant did it.
    return ERROR


def run_one(mutant, snapshot, timeout, env, keep):
    copy = make_copy(snapshot, mutant)
    try:
        return run_pytest(copy, mutant.tests, mutant.k, timeout, env)
    finally:
        if keep:
            print(f"  kept the copy for {mutant.name}: {copy}", flush=True)
        else:
            remove_copy(copy)


def selection(m):
    return (m.tests, m.k)


def covers(entry, node):
    """Whether the pytest argument entry (a file, a test, or one parametrization of it) selects node."""
    return node == entry or node.startswith((entry + "::", entry + "["))


def exists(copy, entry, env):
    """Whether pytest finds a test for entry (a test that skips exists; a renamed one does not)."""
    done = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", entry],
                          cwd=copy, env=env, capture_output=True, text=True)
    return done.returncode == 0 and any(covers(entry, line.strip()) for line in done.stdout.splitlines())


def run_baselines(mutants, snapshot, timeout, env, jobs):
    """Check that each distinct selection of tests passes on an unmutated copy; return {selection: Outcome}.

    All selections run together in one pytest process (without their -k, which only narrows them), since
    starting pytest costs more than most of these tests. An entry that selects no test at all (a test since
    renamed, which pytest does not report when its file is selected too) fails its selection; one whose
    tests skip here (no real text, say) gets a note. When the run fails, the selections that hold a failing test (all of them, if
    pytest did not get as far as naming one) run again one by one, to tell which are broken.
    """
    selections = sorted({selection(m) for m in mutants if m.tests}, key=str)
    entries = list(dict.fromkeys(e for tests, _ in selections for e in tests))
    copy = make_copy(snapshot)
    try:
        together = run_pytest(copy, entries, None, timeout * 4, env, first_failure=False, report_all=True)
        result = {}
        if together.code in (0, 1):  # every test ran, so every entry must have selected one that did
            idle = [e for e in entries if not any(covers(e, n) for n in together.ran)]
            missing = [e for e in idle if not exists(copy, e, env)]
            for e in sorted(set(idle) - set(missing)):
                print(f"note: {e} skips here, so it cannot kill its mutant", flush=True)
            for s in selections:
                gone = [e for e in s[0] if e in missing]
                if gone:
                    result[s] = Outcome(4, 0.0, f"no such test (renamed?): {gone[0]}")
        suspects = []
        if together.code != 0:
            suspects = [s for s in selections if s not in result
                        and (not together.failed or any(covers(e, n) for e in s[0] for n in together.failed))]
        with workers(jobs) as pool:
            result.update(zip(suspects, pool.map(lambda s: run_pytest(copy, s[0], s[1], timeout, env), suspects)))
    finally:
        remove_copy(copy)
    for s in selections:
        result.setdefault(s, Outcome(0, together.seconds, "passed"))
    return result


def describe(m):
    tests = " ".join(m.tests) + (f" -k {m.k!r}" if m.k else "") if m.tests else "(no test yet: TODO)"
    return f"{m.name}  [{m.file}]  {m.why}\n    {tests}"


def table(rows):
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = []
    for i, row in enumerate(rows):
        lines.append("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths)) + "  " + str(row[-1]))
        if i == 0:
            lines.append("  ".join("-" * w for w in widths) + "  " + "-" * 6)
    return "\n".join(lines)


def positive(s):
    value = int(s)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {s}")
    return value


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", action="append", metavar="NAME",
                        help="run this mutant only (repeat, or give a comma list, for several)")
    parser.add_argument("--list", action="store_true", help="list the mutants and their tests; run nothing")
    parser.add_argument("--jobs", type=positive, default=DEFAULT_JOBS,
                        help=f"mutants run at the same time (default {DEFAULT_JOBS}: each test run uses one thread)")
    parser.add_argument("--timeout", type=positive, default=DEFAULT_TIMEOUT, help=f"seconds per pytest run "
                        f"(default {DEFAULT_TIMEOUT})")
    parser.add_argument("--no-baseline", action="store_true",
                        help="skip running each selection of tests on the unmutated code first")
    parser.add_argument("--keep", action="store_true", help="keep each mutant's copy and print where it is")
    args = parser.parse_args(argv)

    mutants = MUTANTS
    if args.only:
        wanted = [n for arg in args.only for n in arg.split(",") if n]
        unknown = sorted(set(wanted) - {m.name for m in MUTANTS})
        if unknown:
            parser.error(f"no mutant named {', '.join(unknown)}; `--list` shows them")
        mutants = [m for m in MUTANTS if m.name in wanted]
    # the mutants are planted in a snapshot of the checkout, so that someone editing it meanwhile changes
    # nothing; the whole list is checked on it, even with --only, so that a stale entry shows at once
    snapshot = None if args.list else take_snapshot()
    try:
        check_list(MUTANTS, snapshot or ROOT)
        if args.list:
            for m in mutants:
                print(describe(m))
            return 0
        return run(mutants, snapshot, args)
    except ListError as e:
        print(f"mutation.py: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mutation.py: interrupted", file=sys.stderr)
        return 130
    finally:
        if snapshot is not None:
            shutil.rmtree(snapshot, ignore_errors=True)


def run(mutants, snapshot, args):
    env = test_env()
    if not env.get("GPT_DATA"):
        print("note: GPT_DATA is not set and no copy of Tiny Shakespeare was found: tests that need the real "
              "text will skip, and a mutant only they catch will survive", file=sys.stderr)
    started = time.monotonic()
    todo = [m for m in mutants if not m.tests]
    runnable = [m for m in mutants if m.tests]

    baselines = {}
    if not args.no_baseline and runnable:
        print(f"baseline: {len({selection(m) for m in runnable})} selections of tests on the unmutated code ...",
              flush=True)
        t0 = time.monotonic()
        baselines = run_baselines(runnable, snapshot, args.timeout, env, args.jobs)
        failing = sum(o.code != 0 for o in baselines.values())
        print(f"baseline: {f'{failing} selection(s) fail' if failing else 'every selection passes'} "
              f"({time.monotonic() - t0:.0f} s)", flush=True)
    broken = {s for s, o in baselines.items() if o.code != 0}
    to_run = [m for m in runnable if selection(m) not in broken]

    results = {}
    print(f"running {len(to_run)} mutants ...", flush=True)
    with workers(args.jobs) as pool:
        futures = {m.name: pool.submit(run_one, m, snapshot, args.timeout, env, args.keep) for m in to_run}
        for i, m in enumerate(to_run, 1):
            outcome = futures[m.name].result()
            results[m.name] = (verdict(outcome.code), outcome)
            print(f"  [{i}/{len(to_run)}] {m.name}: {results[m.name][0]} ({outcome.seconds:.1f} s)", flush=True)

    rows = [("mutant", "file", "result", "time", "caught by / why")]
    for m in mutants:
        if not m.tests:
            rows.append((m.name, m.file, NO_TEST, "", m.why))
        elif selection(m) in broken:
            o = baselines[selection(m)]
            rows.append((m.name, m.file, BASELINE, "", f"unmutated: {o.summary}"))
        else:
            result, o = results[m.name]
            rows.append((m.name, m.file, result, f"{o.seconds:.1f} s", o.summary if result != SURVIVED else
                         f"{o.summary}: {m.why}"))
    print()
    print(table(rows))
    counts = {}
    for row in rows[1:]:
        counts[row[2]] = counts.get(row[2], 0) + 1
    print()
    print(f"{len(mutants)} mutants in {time.monotonic() - started:.0f} s: "
          + ", ".join(f"{n} {k}" for k, n in counts.items()))
    if todo:
        print(f"TODO: {len(todo)} mutant(s) have no test yet: {', '.join(m.name for m in todo)}")
    failed = counts.get(SURVIVED, 0) + counts.get(BASELINE, 0) + counts.get(NOTHING, 0)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
