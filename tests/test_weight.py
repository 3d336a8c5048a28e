"""How heavy the machinery around the lesson is, in code lines (no blank lines, comments or docstrings).

    python tests/test_weight.py        # the table: the lesson, each part of the machinery, the budgets

The lesson (the four stages and sampling.py) is what a reader came for; the budgets below keep the rest
smaller than it, and keep each diff between neighbouring stages to the idea it teaches. A count is a
symptom, never the aim: lines are not packed and comments not stripped to meet it.
"""

import ast
import io
import subprocess
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LESSON = ("bigram_v1.py", "bigram_v2.py", "bigram_v3.py", "gpt.py", "sampling.py")
# Each budget is today's size, so a part can shrink but not grow back unnoticed. runner/ was 989 lines in nine
# modules; it is five named for their jobs (the run from flags to sample, the loop with its run state,
# checkpoints and the lock, the command line, torchrun), with an OS-released lock, one message per unusable
# file, and the tools' code (launching runs, capturing attention, describing the machine) in bench/ and
# notes/figures.py. What keeps it above the ~520 once hoped for is behaviour, each piece tested: exact --resume
# on any number of processes, keep-the-best, --patience, --final-eval, --sample-only beside a training run,
# validated checkpoints and optimizer state, --overwrite that deletes nothing before its first checkpoint,
# stop signals, --threads and the slow-step hint, and a one-line message that says what to do for every
# refusal. tests/ went from 4,070 lines to under 2,900: one table for the one-line errors of each part, one
# home per behaviour, shared runs and fixtures in conftest.py and helpers.py, the notes run once (as notebooks).
BUDGETS = {"runner": 658, "data": 181, "bench": 456, "notes/figures.py": 314, "tests/mutation.py": 241,
           "tests": 2900}
DIFF_BUDGETS = {("bigram_v1.py", "bigram_v2.py"): 35, ("bigram_v2.py", "bigram_v3.py"): 60,
                ("bigram_v3.py", "gpt.py"): 120}


def code_lines(path):
    """Lines of a Python file that hold code: not blank, not only a comment, not part of a docstring."""
    src = Path(path).read_text(encoding="utf-8")
    docstrings = set()
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                docstrings.update(range(first.lineno, first.end_lineno + 1))
    skip = (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER)
    lines = set()
    for tok in tokenize.generate_tokens(io.StringIO(src).readline):
        if tok.type not in skip:
            lines.update(n for n in range(tok.start[0], tok.end[0] + 1) if n not in docstrings)
    return len(lines)


def size(part):
    path = ROOT / part
    files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
    return sum(code_lines(f) for f in files if f.is_file())


def changed_lines(a, b):
    """Lines added or removed by `diff -u a b`."""
    out = subprocess.run(["diff", "-u", ROOT / a, ROOT / b], capture_output=True, text=True).stdout
    return sum(1 for line in out.splitlines()[2:] if line[:1] in "+-")


@pytest.mark.parametrize("part", list(BUDGETS))
def test_machinery_stays_within_its_budget_of_code_lines(part):
    assert size(part) <= BUDGETS[part], f"{part} has {size(part)} code lines, over its budget of {BUDGETS[part]}"


@pytest.mark.parametrize("pair", list(DIFF_BUDGETS), ids=lambda p: f"{p[0]}-{p[1]}")
def test_each_stage_diff_stays_the_size_of_its_idea(pair):
    assert changed_lines(*pair) <= DIFF_BUDGETS[pair], f"diff -u {pair[0]} {pair[1]} changes {changed_lines(*pair)} lines"


def test_every_planted_bug_of_the_mutation_harness_still_finds_its_one_code_line():
    # tests/mutation.py takes minutes to run, so a refactor could leave one of its bugs pointing at code that
    # is gone; this finds that at once. The tests each bug names must still exist too.
    from tests import mutation

    for m in mutation.MUTANTS:
        mutation.locate(m, (ROOT / m.file).read_text(encoding="utf-8"))  # ListError unless exactly one line
        for test in m.tests:
            path, _, name = test.split("[")[0].partition("::")  # a parametrized id: its function before "["
            assert (ROOT / path).is_file(), f"{m.name}: no file {path}"
            assert f"def {name}(" in (ROOT / path).read_text(encoding="utf-8") or not name, f"{m.name}: no {test}"


def test_code_lines_count_neither_comments_nor_docstrings_nor_blank_lines(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text('"""A module\ndocstring."""\n\n# a comment\nx = [1,\n     2]  # two code lines\n\n\n'
                      'def f():\n    """Its docstring."""\n    return x\n', encoding="utf-8")
    assert code_lines(sample) == 4  # x = [1, / 2] / def f(): / return x


if __name__ == "__main__":
    lesson = sum(size(f) for f in LESSON)
    print(f"{'part':<20}{'code lines':>12}{'budget':>9}")
    print(f"{'the lesson':<20}{lesson:>12}{'':>9}")
    for part, budget in BUDGETS.items():
        print(f"{part:<20}{size(part):>12}{budget:>9}")
    for (a, b), budget in DIFF_BUDGETS.items():
        print(f"{'diff ' + a[:-3] + ' ' + b[:-3]:<20}{changed_lines(a, b):>12}{budget:>9}")
