"""The exercises (exercises/): every solution passes its check, every committed stub fails it helpfully, and
every check rejects a typical wrong answer with the hint that names that mistake.

The checks run as a learner runs them, `python -m pytest exercises`, in a child process, from a copy of
exercises/ in tmp_path whose stubs are the committed ones (`git show HEAD:...`; a stub not committed yet is
taken from the working tree): so the suite stays green for a learner who has solved exercises in their
checkout. Once with GFS_SOLUTIONS=1 (the solutions), once on the stubs. What a check said is read from the
JUnit report's element text, the failure's whole text (pytest 9.2 cuts the `message` attribute at 500
characters).

The wrong answers are the solutions with one typical mistake planted (WRONG_ANSWERS), checked in this
process by calling each check function with the wrong module in place of the learner's. Some checks read
a slice of Tiny Shakespeare, so those runs are skipped where it is not at hand, as other real-data tests are.
"""

import ast
import importlib
import inspect
import os
import re
import shutil
import subprocess
import sys
import types
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from unittest import mock

import pytest

from exercises.checks import common

from helpers import REPO_ROOT

EXERCISES = REPO_ROOT / "exercises"
NAMES = sorted(p.stem for p in EXERCISES.glob("e[0-9][0-9]_*.py"))
README = (EXERCISES / "README.md").read_text(encoding="utf-8")


def committed(path):
    """The text of path (relative to the repository) as HEAD has it, or None where git cannot say."""
    try:
        done = subprocess.run(["git", "show", f"HEAD:{path}"], cwd=REPO_ROOT, capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.decode("utf-8") if done.returncode == 0 else None


def pristine_copy(folder, exercises=EXERCISES):
    """folder/exercises: the working tree's exercises/ with every stub as committed (a stub HEAD lacks, of an
    exercise not committed yet, is the working tree's)."""
    shutil.copytree(exercises, folder / "exercises", ignore=shutil.ignore_patterns("__pycache__"))
    (folder / "pytest.ini").write_text("[pytest]\n")  # the copy's own rootdir, no settings from elsewhere
    for name in NAMES:
        text = committed(f"exercises/{name}.py")
        if text is not None:
            (folder / "exercises" / f"{name}.py").write_text(text, encoding="utf-8")


def run_as_a_learner(folder, name, text, *args, solutions=False):
    """Run the checks in a child pytest, as a learner runs them (`python -m pytest exercises ...args`) in
    folder's copy: its return code, {test id: None if it passed, else what pytest reported: the failure's whole
    text} from its JUnit report (name.xml), and its output (name.txt)."""
    env = {k: v for k, v in os.environ.items() if k != common.SOLUTIONS_VAR}
    env["GPT_DATA"] = str(text)  # some checks read a slice of Tiny Shakespeare: the copy conftest found
    env["PYTHONPATH"] = os.pathsep.join([str(folder), str(REPO_ROOT)])  # the copy's exercises/, the real rest
    if solutions:
        env[common.SOLUTIONS_VAR] = "1"
    with open(folder / f"{name}.txt", "w") as out:  # a file, not a pipe: two children never block on a full one
        code = subprocess.run([sys.executable, "-m", "pytest", "exercises", "-q", "-p", "no:cacheprovider",
                               f"--junitxml={folder / name}.xml", *args], cwd=folder, env=env, stdout=out,
                              stderr=subprocess.STDOUT, timeout=300).returncode
    output = (folder / f"{name}.txt").read_text()
    assert (folder / f"{name}.xml").is_file(), f"pytest wrote no report:\n{output}"
    results = {}
    for case in ET.parse(folder / f"{name}.xml").iter("testcase"):
        problem = next((c for c in case if c.tag in ("failure", "error", "skipped")), None)
        results[f"{case.get('classname')}::{case.get('name')}"] = (
            None if problem is None else f"{problem.tag}: {problem.text or problem.get('message', '')}")
    return code, results, output


@pytest.mark.slow
def test_every_solution_passes_its_checks_and_every_committed_stub_fails_them_with_a_first_hint(
        tmp_path, shakespeare_path):
    if committed("exercises/README.md") is None:
        pytest.skip("the committed stubs are read with git, and this checkout has no git history")
    # The copy is made from a working tree where the learner has solved an exercise: it must not reach the
    # run that expects stubs.
    learners = tmp_path / "learner" / "exercises"
    shutil.copytree(EXERCISES, learners, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(EXERCISES / "solutions" / f"{NAMES[0]}.py", learners / f"{NAMES[0]}.py")  # e01, committed
    pristine_copy(tmp_path, learners)
    with ThreadPoolExecutor(2) as pool:  # both at once: each is mostly one core's work
        runs = [pool.submit(run_as_a_learner, tmp_path, "solved", shakespeare_path, solutions=True),
                pool.submit(run_as_a_learner, tmp_path, "untouched", shakespeare_path)]
    (solved_code, solved, output), (stubs_code, stubs, stub_output) = (run.result() for run in runs)
    assert len(NAMES) >= 16 and all(any(f"test_{name}" in test for test in solved) for name in NAMES), solved
    failed = {test: why for test, why in solved.items() if why is not None}
    assert not failed, f"{failed}\n{output[-3000:]}"
    assert set(stubs) == set(solved), "the stubs and the solutions should run the same checks"
    # each check fails on the committed stubs (from git, not your working tree) with "not done yet", the file to
    # write in, the first hint (and only the first), how to get more, and its note
    parts = ("not done yet: ", "write it in exercises/", "Hint 1: ", "--hints 2", "Read: notes/")
    unhelpful = {test: why for test, why in stubs.items()
                 if why is None or not all(part in why for part in parts) or "Hint 2: " in why or "Hint 3: " in why}
    assert not unhelpful, f"these checks pass on the stubs, or fail without the parts above: {unhelpful}"
    assert "NotImplementedError" not in stub_output and "Traceback" not in stub_output, stub_output[-3000:]
    assert (solved_code, stubs_code) == (0, 1)  # pytest's verdict agrees


# ---- typical wrong answers: (exercise, what is wrong, [(text in the solution, its wrong replacement)], what
# every failing check of that exercise must say: a phrase of the hint for exactly this mistake). One row per
# way a check names a mistake (its own expect, or its table of mistakes) and at least one for every check: a
# second entry of the same table goes through the same code.
WRONG_ANSWERS = [
    ("e01_batches", "x holds the positions, not the tokens at them",
     [("x = torch.stack([data[i : i + block_size] for i in ix])",
       "x = torch.stack([torch.arange(i, i + block_size) for i in ix])")], "x holds the positions"),
    ("e01_batches", "y is x, not shifted", [("data[i + 1 : i + block_size + 1]", "data[i : i + block_size]")],
     "y equals x"),
    ("e01_batches", "each context one token short", [("(x_row[: t + 1].tolist()", "(x_row[:t].tolist()")],
     "the context grows by one token"),
    ("e02_bigram_counts", "the table transposed", [("(ids[:-1], ids[1:])", "(ids[1:], ids[:-1])")], "transpose"),
    ("e02_bigram_counts", "no smoothing", [("smoothed = counts + alpha", "smoothed = counts")], "Smooth first"),
    ("e02_bigram_counts", "the log-likelihood, not its negative", [("return -probs[", "return probs[")],
     "minus their logs"),
    ("e03_one_hot_embedding", "the one-hot ids left as integers",
     [("one_hot = F.one_hot(idx, weight.shape[0]).float()", "one_hot = F.one_hot(idx, weight.shape[0])")],
     "F.one_hot gives integer"),
    ("e03_one_hot_embedding", "the lookup detached from weight",
     [("one_hot @ weight  #", "one_hot @ weight.detach()  #")], "does not depend on weight"),
    ("e03_one_hot_embedding", "a token seen twice keeps one gradient",
     [("return one_hot.T @ grad_out.flatten(0, 1)",
       "grad = grad_out.new_zeros(vocab_size, grad_out.shape[-1]); grad[idx.flatten()] = grad_out.flatten(0, 1); "
       "return grad")], "token 5 occurs twice"),
    ("e04_sinusoidal", "sines and cosines swapped",
     [("pe[:, 0::2] = torch.sin(angle)", "pe[:, 0::2] = torch.cos(angle)"),
      ("pe[:, 1::2] = torch.cos(angle)", "pe[:, 1::2] = torch.sin(angle)")], "sines and cosines are swapped"),
    ("e04_sinusoidal", "the rotation turns backwards",
     [("M[0::2, 1::2] = torch.diag(torch.sin(b))", "M[0::2, 1::2] = torch.diag(-torch.sin(b))"),
      ("M[1::2, 0::2] = torch.diag(-torch.sin(b))", "M[1::2, 0::2] = torch.diag(torch.sin(b))")],
     "moves every position back"),
    ("e05_masked_average", "the tril matmul sums instead of averaging",
     [("wei = wei / wei.sum(dim=1, keepdim=True)", "pass")], "sum of positions 0..t"),
    ("e05_masked_average", "the loops and the softmax's mask see the future",
     [("x[b, : t + 1].mean(dim=0)", "x[b, t:].mean(dim=0)"),
      ("tril = torch.tril(torch.ones(T, T))", "tril = torch.triu(torch.ones(T, T))")], "the wrong triangle"),
    ("e06_attention_head", "no mask", [("scores.masked_fill(future, float(\"-inf\"))", "scores")], "nothing is masked"),
    ("e07_batched_heads", "weights stacked head by head",
     [("return torch.cat([h.query.weight for h in heads] + [h.key.weight for h in heads] + [h.value.weight for h in "
       "heads])", "return torch.cat([torch.cat([h.query.weight, h.key.weight, h.value.weight]) for h in heads])")],
     "head by head"),
    ("e07_batched_heads", "heads put back without the transpose",
     [("return y.transpose(1, 2).reshape(B, T, C)", "return y.reshape(B, T, C)")], "got mixed"),
    ("e08_layer_norm", "the unbiased variance", [("unbiased=False", "unbiased=True")], "unbiased one"),
    ("e09_weight_tying", "a copy, not the same Parameter",
     [("model.lm_head.weight = model.token_embedding_table.weight",
       "model.lm_head.weight.data.copy_(model.token_embedding_table.weight.data)")], "separate tensor"),
    ("e10_kv_cache", "update() returns only the new positions",
     [("if layer in self.keys:", "if False:")], "attended only to itself"),
    ("e10_kv_cache", "cache.length never advanced", [("cache.length += 1", "pass")], "never grew"),
    ("e11_temperature_top_k", "multiplied by the temperature",
     [("logits = logits / temperature", "logits = logits * temperature")], "multiplied the logits"),
    ("e11_temperature_top_k", "temperature 0 divided by", [("if temperature == 0:", "if False:")],
     "greedy limit"),
    ("e12_lr_schedule", "the cosine decays to 0",
     [("lr * (min_ratio + (1 - min_ratio) * 0.5 *", "lr * (0.5 *")], "ends at 0"),
    ("e13_transformer_block", "no residual around the attention",
     [("x = x + self.sa(self.ln1(x))", "x = self.sa(self.ln1(x))")], "residual connection around the attention"),
    ("e13_transformer_block", "a feed-forward without its ReLU", [("            nn.ReLU(),\n", "")],
     "no non-linearity"),
    ("e14_training_loop", "the gradients never cleared", [("optimizer.zero_grad(set_to_none=True)  #", "#")],
     "never cleared"),
    ("e14_training_loop", "measured in training mode", [("model.eval()  #", "#")], "training mode while you measured"),
    ("e14_training_loop", "one generator for both splits",
     [("    for name, ids in splits.items():\n        g = torch.Generator().manual_seed(seed)",
       "    g = torch.Generator().manual_seed(seed)\n    for name, ids in splits.items():")], "one generator"),
    ("e14_training_loop", "the graph built while measuring", [("@torch.no_grad()  # a measurement", "#")],
     "autograd was recording"),
    ("e14_training_loop", "left in evaluation mode", [("model.train()  # back to training", "pass  #")],
     "left in evaluation mode"),
    ("e15_generate", "sampled in training mode", [("model.eval()  # dropout off", "pass  #")], "training mode"),
    ("e15_generate", "the context not cropped", [("idx_cond = idx[:, -block_size:]", "idx_cond = idx")],
     "not cropped"),
    ("e15_generate", "the first position's logits", [("logits = logits[:, -1, :]", "logits = logits[:, 0, :]")],
     "first position's logits"),
    ("e16_fine_tune", "unknown characters made spaces",
     [('return "".join(c for c in text if c in keep)', 'return "".join(c if c in keep else " " for c in text)')],
     "keep a character only if"),
    ("e16_fine_tune", "the pretrained model trained in place",
     [("model = copy.deepcopy(pretrained)", "model = pretrained")], "pretrained model changed"),
    ("e16_fine_tune", "a fresh model, the pretrained weights unused",
     [("model = copy.deepcopy(pretrained)", "model = copy.deepcopy(pretrained)\n    "
       "[p.data.normal_(0.0, 0.02) for p in model.parameters()]")], "pretrained weights were not used"),
]


def check_module(name):
    return importlib.import_module(f"exercises.checks.test_{name}")


def wrong_module(name, replacements):
    """exercises/solutions/<name>.py with the replacements made, as a module of its own."""
    source = (EXERCISES / "solutions" / f"{name}.py").read_text(encoding="utf-8")
    for old, new in replacements:
        assert source.count(old) == 1, f"solutions/{name}.py should hold {old!r} once (WRONG_ANSWERS is stale)"
        source = source.replace(old, new)
    module = types.ModuleType(f"wrong_{name}")
    exec(compile(source, f"wrong {name}.py", "exec"), module.__dict__)
    return module


def checked(name, replacements, text):
    """{check name: its failure message} for every check of exercise name that fails on its solution with the
    replacements made, at hint level 1."""
    results = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GPT_DATA", str(text))  # the checks' slice of text, as the child runs read it
        mp.setattr(common, "HINT_LEVEL", 1)
        mp.setattr(check_module(name), "ex", wrong_module(name, replacements))
        for test_name, check in vars(check_module(name)).items():
            if test_name.startswith("test_") and inspect.isfunction(check):
                try:
                    check()
                except pytest.fail.Exception as failure:
                    results[test_name] = str(failure.msg)
                except Exception as err:  # a check that crashes has no hint to give: a failure without one
                    results[test_name] = f"crashed: {type(err).__name__}: {err}"
    return results


def test_every_typical_wrong_answer_fails_with_its_hint_and_every_check_rejects_one(shakespeare_path):
    wrong, rejected = [], set()
    for name, mistake, replacements, phrase in WRONG_ANSWERS:
        failed = checked(name, replacements, shakespeare_path)
        rejected |= {(name, test) for test in failed}
        off = {test: why for test, why in failed.items() if phrase not in why}
        if off or not failed:
            wrong.append(f"{name} with {mistake}: " + (f"these checks fail without naming the mistake ({phrase!r}): "
                                                        f"{off}" if failed else "every check accepts it"))
    assert not wrong, "\n".join(wrong)
    accepting_all = [f"{name}::{test}" for name in NAMES for test in vars(check_module(name))
                     if test.startswith("test_") and (name, test) not in rejected]
    assert not accepting_all, f"no wrong answer in WRONG_ANSWERS fails these checks: {accepting_all}"


def test_without_the_text_the_checks_read_the_notes_prose_not_made_up_ids(monkeypatch):
    """Offline with no copy of Tiny Shakespeare, the checks still run on a real text (ids are not positions)."""
    monkeypatch.setattr(common, "load_text", mock.Mock(side_effect=common.DataError("no text here")))
    ids, tok = common.shakespeare_ids.__wrapped__(10**7)  # uncached; more than all the notes: all are read
    text = tok.decode(ids.tolist())
    assert text == common.in_repo_text() and "```" not in text  # prose: the notes' code blocks are left out


def test_hint_tiers_show_as_asked():
    hint = common.Hint("look here", "call_this()", "the answer")
    assert hint.text(1) == "Hint 1: look here\n  (more help: add --hints 2 to the command)"
    assert hint.text(2) == "Hint 1: look here\n  Hint 2: call_this()\n  (more help: add --hints 3 to the command)"
    assert hint.text(3) == "Hint 1: look here\n  Hint 2: call_this()\n  Hint 3: the answer"  # all: no more help


@pytest.mark.slow
def test_a_hyphen_in_k_selects_hints_2_shows_the_calls_and_a_syntax_error_fails_only_its_checks_in_one_line(
        tmp_path, shakespeare_path):
    pristine_copy(tmp_path)
    broken = tmp_path / "exercises" / "e06_attention_head.py"
    broken.write_text(broken.read_text(encoding="utf-8") + "\n\ndef oops(:\n    pass\n", encoding="utf-8")
    line = len(broken.read_text(encoding="utf-8").splitlines()) - 1  # the `def oops(:` line
    with ThreadPoolExecutor(2) as pool:
        selected = pool.submit(run_as_a_learner, tmp_path, "selected", shakespeare_path,
                               "-k", "attention-head or batches", "--hints", "2")
        nothing = pool.submit(run_as_a_learner, tmp_path, "nothing", shakespeare_path, "-k", "attention_heads")
    code, results, output = selected.result()
    assert code == 1 and "error" not in output.splitlines()[-1], output[-3000:]  # failures only
    e06 = [why for test, why in results.items() if "::test_attention_head" in test]
    assert len(e06) == 3, output[-3000:]  # e06's three checks, not "deselected" by the hyphen
    at = f"failure: exercises/e06_attention_head.py, line {line}: "  # one line each, at the syntax error
    assert all(why.startswith(at) and len(why.strip().splitlines()) == 1 for why in e06), e06
    e01 = [why for test, why in results.items() if "::test_batches" in test]  # the stubs, checked as usual
    assert e01 and all("not done yet" in why and "Hint 2: " in why and "Hint 3: " not in why for why in e01), e01
    code, _, out = nothing.result()
    assert code == 5 and "matched no check" in out and "attention_head" in out, out[-2000:]


@pytest.mark.parametrize("name", NAMES)
def test_each_exercise_names_its_stage_note_hints_and_command_and_its_solution_and_hints_fit_it(name):
    # the committed stub: a learner's working copy may have rewritten it
    source = committed(f"exercises/{name}.py") or (EXERCISES / f"{name}.py").read_text(encoding="utf-8")
    doc = ast.get_docstring(ast.parse(source))
    assert re.search(r"^Stage: \S", doc, re.M), f"{name}: no 'Stage:' line"
    assert re.search(r"^Hints: .*--hints 2.*--hints 3", doc, re.M), f"{name}: no 'Hints:' line"
    notes = re.findall(r"\.\./notes/([\w-]+\.md)", doc)
    assert notes and all((REPO_ROOT / "notes" / n).is_file() for n in notes), f"{name}: links no note, or a lost one"
    command = re.search(r"^Check: (python -m pytest exercises -k (\w+))$", doc, re.M)
    assert command, f"{name}: no 'Check: python -m pytest exercises -k ...' line"
    assert [n for n in NAMES if command[2] in n] == [name], f"-k {command[2]} should select {name}'s checks alone"
    row = next((line for line in README.splitlines() if f"]({name}.py)" in line), "")
    assert f"`{command[1]}`" in row and f"../notes/{notes[0]}" in row, f"exercises/README.md's row for {name}: {row}"
    stub, solution = (importlib.import_module(f"exercises.{where}{name}") for where in ("", "solutions."))
    assert solution.__doc__.startswith("SOLUTION to exercise"), f"solutions/{name}.py is not marked as a solution"
    for attr, obj in vars(stub).items():
        if (inspect.isfunction(obj) or inspect.isclass(obj)) and obj.__module__ == stub.__name__:
            assert hasattr(solution, attr), f"solutions/{name}.py lacks {attr}"
            if inspect.isfunction(obj):
                theirs = inspect.signature(getattr(solution, attr))
                assert inspect.signature(obj) == theirs, f"{name}.{attr}: the stub and the solution differ in arguments"
    hints = check_module(name).HINTS
    for function in re.findall(r"not done yet: ([\w.]+)", source):
        hint = hints.get(function) or hints.get(function.split(".")[0])
        assert isinstance(hint, common.Hint) and all(hint), f"{name}: no three-tier hint for {function}"
        # the nudge never hands over the answer: none of the code in the answer's backticks appears in it
        code = set(re.findall(r"`([^`]+)`", hint.answer)) | {hint.answer}
        assert not any(c in hint.nudge for c in code), f"{name}: the first hint for {function} gives the answer"


STAGE_ORDER = ["data/", "bigram_v1", "bigram_v2", "bigram_v3", "gpt", "sampling.py", "runner/loop.py"]


def test_the_readme_lists_every_exercise_once_in_the_order_of_the_stages_and_its_links_resolve():
    rows = re.findall(r"^\| \d+ \| \[[^]]+\]\((e\d\d_\w+)\.py\) \| ([^|]+) \|", README, re.M)
    assert sorted(name for name, _ in rows) == NAMES, rows
    ranks = [STAGE_ORDER.index(stage.strip()) for _, stage in rows]
    assert ranks == sorted(ranks), f"exercises/README.md's table should follow the stages {STAGE_ORDER}: {rows}"
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README):
        assert target.startswith("http") or (EXERCISES / target).exists(), f"README.md links {target}: not there"
