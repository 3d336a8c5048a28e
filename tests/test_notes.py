"""The learner notes run as a reader would run them, and show what they really print.

Every note with ```python blocks runs once, as its notebook (notes/notebooks.py makes it with jupytext),
executed by nbclient in a fresh python3 kernel started at the repository root, with GPT_DATA naming the real
Tiny Shakespeare when it is at hand and OMP_NUM_THREADS=1: the way Jupyter's "Run all" runs it. A failure
is reported at its line in the note.

The same run holds the note to the interactive prompt (`python` with no arguments), where a reader pastes
the blocks one line at a time:
- the prompt's own reader (`code.InteractiveConsole`) reads every line of every block, then an empty line
  after each block, as a reader's Enter. It is stricter than a notebook: a `for`/`with`/`def`/`if` body ends
  only at a blank line, so one must come before the next top-level statement, and a blank line *inside* an
  indented body ends it early. The lines are only compiled there; the notebook runs them.
- the kernel echoes the value of every expression statement that is not None, as the prompt does
  (`model.eval()` prints the whole model), and lacks IPython's display(), as a plain Python does. The note
  does not show such a value: it must be assigned (`_ = model.eval()`).

Shown output is real output: a ```text fence right after a ```python fence (only blank lines between) shows
what that block prints, and is compared with what its cell printed (stdout). A number matches within 0.5%
or one unit in its last shown digit; `...` matches any text (times, paths); spaces may differ in width. A
```text fence after prose is not checked.

The notes run in the background, WORKERS at a time, while the tests wait for theirs. A note that reads the
real text (it calls load_text, or runs a stage's main) is skipped, with the reason, where the text cannot
be found. The notebooks on disk must be the ones `python -m notes.notebooks` makes from the notes now, and
each note must link its notebook.
"""

import code
import os
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import nbformat
import pytest
from markdown_it import MarkdownIt
from nbclient import NotebookClient

from data.shakespeare import ENV_VAR
from notes import notebooks as maker

ROOT = Path(__file__).resolve().parent.parent
NOTES_DIR = ROOT / "notes"
INDEX = "README.md"
NEEDS_TEXT = re.compile(r"load_text\(|\.main\(")  # what a note calls when it reads the real text
TIMEOUT = 1200  # seconds per cell: only a guard against a hang; a whole note takes seconds
KERNEL_START = 180  # seconds a kernel may take to start on a loaded machine
# The kernel as the prompt: it echoes every expression statement's value (a notebook shows only a cell's
# last), and has no display() (IPython's, which a plain Python lacks).
LIKE_THE_PROMPT = ["--InteractiveShell.ast_node_interactivity=all",
                   "--InteractiveShellApp.exec_lines=__import__('builtins').__dict__.pop('display', None)"]
# Notes run in parallel, one kernel each with one thread: two use a 2-core machine's second core, which
# the rest of the suite (one test at a time) leaves idle.
WORKERS = max(1, min(2, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()))

ANSI = re.compile(r"\x1b\[[0-9;]*m")
CELL_FRAME = re.compile(r"Cell In\[(\d+)\], line (\d+)")  # IPython's name for a frame in a cell


def note_files():
    return sorted(p.name for p in NOTES_DIR.glob("*.md"))


def notebook_notes():
    return [p.name for p in maker.notes_with_code(NOTES_DIR)]


def read(note):
    return (NOTES_DIR / note).read_text(encoding="utf-8")


class Fence(NamedTuple):
    language: str
    line: int  # the note's line number (from 1) of the first line inside the fence
    code: str
    after_python: bool  # it comes right after a ```python fence, with only blank lines between


def fences(text):
    """Every fenced code block of a markdown text, as Fence, read by a CommonMark parser (markdown-it): a fence
    closes at a line of at least as many backticks as opened it, and one indented inside a list item has
    that indentation taken off its code lines. An unclosed fence is an error here, because the rest of the
    note would silently become one block."""
    found, lines, previous = [], text.splitlines(), None
    for token in MarkdownIt("commonmark").parse(text):
        if token.type == "fence":
            if not re.fullmatch(r"[\s>]*%s{%d,}\s*" % (re.escape(token.markup[0]), len(token.markup)),
                                lines[token.map[1] - 1]):
                raise ValueError(f"the fence opened on line {token.map[0] + 1} is never closed")
            after_python = previous is not None and previous.type == "fence" and found[-1].language == "python"
            found.append(Fence((token.info.split() or [""])[0], token.map[0] + 2, token.content, after_python))
        previous = token
    return found


def python_blocks(text):
    """A note's ```python blocks: [(its Fence, the ```text Fence that shows what it prints, or None), ...]."""
    found = fences(text)
    return [(f, after if after and after.language == "text" and after.after_python else None)
            for f, after in zip(found, found[1:] + [None]) if f.language == "python"]


# ---- shown output against printed output ----

NUMBER = r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?"
# A number starts where no letter, digit, _ or decimal point comes before it (so `v1`, `e01` are words) and
# ends where no digit follows; a unit may follow (0.5s, 12M).
NUMBER_TOKEN = rf"(?<![\w.]){NUMBER}(?!\d|\.\d)"
SHOWN_TOKEN = re.compile(rf"(?P<any>\.\.\.)|(?P<number>{NUMBER_TOKEN})|(?P<space>[ \t]+)|(?P<char>.)", re.S)
# What each kind of shown token lets the printed text hold; a character stands for itself.
ALLOWS = {"any": ".*?", "number": f"({NUMBER_TOKEN})", "space": r"[ \t]*"}  # a wider number eats padding


def tidy(text):
    """Text as compared: no trailing spaces on a line, no blank lines at either end."""
    return "\n".join(line.rstrip() for line in text.splitlines()).strip("\n")


def shown_pattern(shown):
    """A regex for what a shown text allows (each line ending in a line break), and its numbers [(text, line
    offset in shown), ...]. A line that is only `...` stands for any lines, or none."""
    parts, numbers = [], []
    for k, line in enumerate(shown.split("\n")):
        if line.strip() == "...":
            parts.append("(?:.*?\n)?")
            continue
        for m in SHOWN_TOKEN.finditer(line):
            if m["number"]:
                numbers.append((m["number"], k))
            parts.append(ALLOWS.get(m.lastgroup, re.escape(m[0])))
        parts.append("\n")
    return re.compile("".join(parts), re.S), numbers


def close_enough(shown, printed):
    """Whether a printed number matches the shown one: within 0.5%, or one unit in its last shown digit."""
    shown, printed = shown.replace(",", ""), printed.replace(",", "")
    mantissa, _, exponent = shown.lower().partition("e")
    unit = 10.0 ** (int(exponent or 0) - len(mantissa.partition(".")[2]))
    return abs(float(printed) - float(shown)) <= max(0.005 * abs(float(shown)), unit) * (1 + 1e-9)


def compare_shown(shown, printed):
    """[(line offset in shown, what differs), ...]: empty when the printed text is what the note shows."""
    shown, printed = tidy(shown), tidy(printed)
    pattern, numbers = shown_pattern(shown)
    m = pattern.fullmatch(printed + "\n")
    if m is None:  # the words differ
        return [(0, f"expected\n{shown}\ngot\n{printed or '(nothing)'}")]
    return [(k, f"expected {number} in {shown.splitlines()[k]!r}, got {m[group]}")
            for group, (number, k) in enumerate(numbers, start=1) if not close_enough(number, m[group])]


# ---- running a note ----

def paste_errors(blocks):
    """What the `>>>` prompt says when the blocks (Fences) are pasted in order, line by line, each followed by
    an empty line (the reader's Enter): [(note line, error), ...]. The prompt's own reader compiles each
    statement as it completes; nothing runs (the notebook runs the code)."""
    prompt, errors = code.InteractiveConsole(), []
    prompt.runcode = lambda compiled: None  # compile only
    for block in blocks:
        lines = block.code.splitlines()
        for k, line in enumerate(lines + [""]):
            # the console reports each syntax error through write(): at the line just pushed
            prompt.write = lambda said, at=block.line + min(k, len(lines) - 1): errors.append((at, said))
            prompt.push(line)
    return errors


def note_env(text_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")  # several threads fight on a busy machine
    if text_path is not None:
        env[ENV_VAR] = str(text_path)
    return env


def printed(cell):
    """What a cell printed: its stdout."""
    return "".join(o.text for o in cell.get("outputs", []) if o.output_type == "stream" and o.name == "stdout")


def check_note(note_path, text_path):
    """Run a note as its notebook, made from its markdown now, and paste it at the prompt: [(note line, what
    went wrong), ...] in the note's order, empty when it runs, echoes nothing and prints what it shows."""
    blocks = python_blocks(note_path.read_text(encoding="utf-8"))
    problems = paste_errors([block for block, _ in blocks])
    notebook = maker.make_notebook(note_path, notebooks=set())
    client = NotebookClient(notebook, kernel_name="python3", timeout=TIMEOUT, startup_timeout=KERNEL_START,
                            iopub_timeout=60, extra_arguments=LIKE_THE_PROMPT)
    failure = None
    try:
        client.execute(cwd=str(ROOT), env=note_env(text_path))
    except Exception as err:  # a cell raised (CellExecutionError), timed out, or the kernel died
        failure = f"{type(err).__name__}: {err}"
    cells = [c for c in notebook.cells if c.cell_type == "code"][1:]  # past the setup cell
    line_of = {cell.execution_count: block.line for (block, _), cell in zip(blocks, cells)}
    for (block, shown), cell in zip(blocks, cells):
        outputs = cell.get("outputs", [])
        problems += [(block.line, f"the prompt echoes {o.data['text/plain'][:200]}, which the note does not show")
                     for o in outputs if o.output_type == "execute_result"]
        for error in (o for o in outputs if o.output_type == "error"):  # named at the deepest frame in the note
            trace = ANSI.sub("", "\n".join(error.traceback))
            lines = [line_of[int(n)] + int(k) - 1 for n, k in CELL_FRAME.findall(trace) if int(n) in line_of]
            problems.append((lines[-1] if lines else block.line, trace[-4000:]))
            failure = None  # said at its line in the note
        if shown and cell.execution_count and not any(o.output_type == "error" for o in outputs):
            problems += [(shown.line + k, what) for k, what in compare_shown(shown.code, printed(cell))]
    if failure is not None:  # not in a note's cell: the setup cell, a hang, a dead kernel
        problems.append((None, failure[-4000:]))
    return sorted(problems, key=lambda problem: problem[0] or 0)


def reads_missing_text(note, shakespeare):
    return shakespeare.path is None and any(NEEDS_TEXT.search(b.code) for b, _ in python_blocks(read(note)))


@pytest.fixture(scope="session")
def note_checks(request, shakespeare):
    """{note: the future of its check_note}, for every note a selected test asks for, all queued at once."""
    notes = [item.callspec.params["note"] for item in request.session.items
             if "note_checks" in getattr(item, "fixturenames", ())]
    with ThreadPoolExecutor(WORKERS) as pool:
        yield {note: pool.submit(check_note, NOTES_DIR / note, shakespeare.path)
               for note in notes if not reads_missing_text(note, shakespeare)}
        pool.shutdown(cancel_futures=True)


# ---- every note ----

@pytest.mark.parametrize("note", notebook_notes())
def test_note_runs_as_a_notebook_prints_what_it_shows_and_pastes_at_the_prompt(note, shakespeare, note_checks):
    if reads_missing_text(note, shakespeare):
        pytest.skip(f"notes/{note} reads Tiny Shakespeare, which was not found ({shakespeare.why_not}); "
                    f"set {ENV_VAR}=/path/to/input.txt")
    problems = note_checks[note].result()
    if problems:
        pytest.fail(f"notes/{note}, run as its notebook and pasted at the prompt, has {len(problems)} problem(s) (a "
                    f"body needs a blank line after it and none inside; assign what the prompt would echo, `_ = ...`; "
                    f"shown numbers match within 0.5% or one last digit, `...` any text):\n\n"
                    + "\n\n".join(f"line {line or '?'}: {what}" for line, what in problems), pytrace=False)


@pytest.mark.parametrize("note", note_files())
def test_note_is_indexed_proves_its_claims_in_python_blocks_and_fences_code_as_python(note):
    targets = {Path(t.split("#")[0]).name for t in re.findall(r"\]\(([^)\s]+)\)", read(INDEX))}
    assert note == INDEX or note in targets, f"notes/{INDEX} does not link {note}; add it in reading order"
    # A lesson shows its claims in code; a reading list has none, which nothing would run.
    lesson = note not in maker.NOT_LESSONS
    assert bool(python_blocks(read(note))) == lesson, f"notes/{note}: {'no' if lesson else 'a'} ```python block"
    # A block fenced ```py, ```python3 or bare ``` could pass for code a reader should trust, yet it never
    # runs here. So a block stays out of the run only by naming another language: text, bash, ...
    unclear = [(f.line, f.language or "(none)") for f in fences(read(note))
               if f.language != "python" and (not f.language or f.language.lower().startswith(("py", "ipython")))]
    assert not unclear, f"notes/{note}: fences {unclear} would not run; use ```python for code, ```text for output"


def test_every_note_reads_in_about_ten_minutes_and_the_notes_together_stay_near_their_old_length():
    # words as `wc -w` counts them: about ten minutes is 2,000; 31,130 is 28,300 (the notes before the
    # lecture's core was added) plus a tenth: the core came in by moving and condensing, not by growing
    words = {note: len(read(note).split()) for note in note_files()}
    assert {name: n for name, n in words.items() if n > 2000} == {}
    assert sum(words.values()) <= 31130, sum(words.values())


# ---- the notebooks ----

@pytest.mark.parametrize("note", notebook_notes())
def test_notebook_on_disk_is_the_one_its_note_makes_now_cell_for_block_and_the_note_links_it(note):
    made = maker.make_notebook(NOTES_DIR / note)
    # The line numbers in every report, and the shown outputs' cells, count on this: jupytext misses, for
    # one, a ```python fence indented inside a list item.
    assert [c.source for c in made.cells if c.cell_type == "code"][1:] == [
        block.code.rstrip("\n") for block, _ in python_blocks(read(note))
    ], f"notes/{note}: jupytext reads other code cells than its ```python blocks; start each fence at column 0"
    path = maker.notebook_path(NOTES_DIR / note)
    on_disk = nbformat.read(path, as_version=4).cells if path.exists() else []
    assert [(c.cell_type, c.source) for c in on_disk] == [(c.cell_type, c.source) for c in made.cells], (
        f"{path.relative_to(ROOT)} is missing or out of date with notes/{note}; run `python -m notes.notebooks`")
    link = f"[Open as a notebook](notebooks/{Path(note).stem}.ipynb)"
    assert any(line.startswith(link) for line in read(note).splitlines()), (
        f"notes/{note} does not link its notebook; add this line under its title:\n"
        + maker.LINK_LINE.format(stem=Path(note).stem))


def test_every_notebook_and_every_link_to_one_is_made_from_a_note():
    made = {Path(n).stem for n in notebook_notes()}
    stale = sorted(p.name for p in maker.NOTEBOOKS_DIR.glob("*.ipynb") if p.stem not in made)
    dead = [(note, target) for note in note_files() for target in re.findall(r"\]\(notebooks/([^)#\s]*)\)", read(note))
            if Path(target).suffix != ".ipynb" or Path(target).stem not in made]
    assert not stale and not dead, (f"notebooks with no note behind them: {stale}; links to no notebook: {dead}; "
                                    f"run `python -m notes.notebooks`")


def test_made_notebook_starts_with_the_setup_keeps_shell_blocks_to_read_fixes_links_and_runs_from_any_folder(
        tmp_path):
    note = tmp_path / "lesson.md"
    note.write_text(
        "# A lesson\n\n[Open as a notebook](notebooks/lesson.ipynb) (Jupyter)\n\n"
        "See [the loop](training-loop.md#estimate), [a figure](img/a.png), [the guide](running.md), "
        "[a page](https://example.org/x.md) and [above](#a-lesson).\n\n"
        "```bash\npython gpt.py --max-iters 5000\n```\n\n```python\nx = 1\n```\n\n```text\n1\n```\n",
        encoding="utf-8")
    made = maker.make_notebook(note, notebooks={"training-loop"})
    # the prose: no link to itself, links to a note's notebook and to files beside the notes made to work from
    # notes/notebooks/, and the shell block to read, not to run
    assert [(c.cell_type, c.source) for c in made.cells] == [
        ("code", maker.SETUP_CELL),
        ("markdown", "# A lesson\n\nSee [the loop](training-loop.ipynb#estimate), [a figure](../img/a.png), [the guide]"
                     "(../running.md), [a page](https://example.org/x.md) and [above](#a-lesson).\n\n"
                     "```bash\npython gpt.py --max-iters 5000\n```"),
        ("code", "x = 1"), ("markdown", "```text\n1\n```")]
    assert made.metadata.kernelspec.name == "python3"
    assert [c.id for c in made.cells] == [c.id for c in maker.make_notebook(note, notebooks=set()).cells]
    # Run outside a clone, its setup cell fails in one line; then, from a folder inside the clone, it goes to
    # the clone's root.
    made.cells += [nbformat.v4.new_code_cell(f"os.chdir({str(NOTES_DIR)!r})  # a folder inside the clone"),
                   nbformat.v4.new_code_cell(maker.SETUP_CELL),
                   nbformat.v4.new_code_cell("print(os.getcwd(), importlib.util.find_spec('gpt').origin)")]
    NotebookClient(made, kernel_name="python3", timeout=TIMEOUT, startup_timeout=KERNEL_START,
                   allow_errors=True).execute(cwd=str(tmp_path), env=note_env(None))
    outside, moved, inside = (c.outputs for c in made.cells[:1] + made.cells[4:6])
    assert [o.output_type for o in outside] == ["error"] and outside[0].ename == "SetupNeeded"
    shown = outside[0].traceback  # what Jupyter and Colab show: this one line, no traceback
    assert len(shown) == 1 and "\n" not in shown[0] and "git clone <your fork's URL>" in shown[0], shown
    assert "://" not in maker.SETUP_CELL  # it names no repository address: the project has none
    assert moved == inside == [] and printed(made.cells[6]) == f"{ROOT} {ROOT / 'gpt.py'}\n"


# ---- the checks themselves ----

def test_fences_read_as_commonmark_and_a_text_fence_right_after_a_python_fence_shows_its_output():
    text = ("```python\nprint(1)\n```\n\n\n```text\n1\n```\n"  # 1-8: the output of the block at 2, at 7
            "````text\n```python\nnot code\n```\n````\n"  # 9-13: a longer fence holds a shorter one
            "```python\nx = 2\n```\nSo it prints:\n```text\n2\n```\n"  # 14-20: prose between: not output
            "```bash\nls\n```\n```text\nfile\n```\n"  # 21-26: after a shell block: not output
            "1. a step:\n\n   ```python\n   if True:\n       x = 1\n   ```\n"  # 27-32: its indent taken off
            "```python\nprint(3)\n```\n```text\n3\n```\n")  # 33-38: the output of the block at 34, at 37
    assert [(f.language, f.line, f.code) for f in fences(text)] == [
        ("python", 2, "print(1)\n"), ("text", 7, "1\n"), ("text", 10, "```python\nnot code\n```\n"),
        ("python", 15, "x = 2\n"), ("text", 19, "2\n"), ("bash", 22, "ls\n"), ("text", 25, "file\n"),
        ("python", 30, "if True:\n    x = 1\n"), ("python", 34, "print(3)\n"), ("text", 37, "3\n")]
    assert [(block.line, shown and shown.line) for block, shown in python_blocks(text)] == [
        (2, 7), (15, None), (30, None), (34, 37)]
    with pytest.raises(ValueError, match="line 2 is never closed"):
        fences("text\n```python\nx = 1\n")


# Within 0.5% but more than a unit, `...` inside a line, and the whole message of a wrong number: the planted note.
@pytest.mark.parametrize("shown, printed, problem", [
    ("untrained gpt.py 4.20, ln 65 = 4.17", "untrained gpt.py 4.2049, ln 65 = 4.1744", None),  # within a unit
    ("1,115,394 characters", "1,115,395 characters", None),
    ("lr 1e-4, step 3000", "lr 1.00e-04, step 3001", None),
    ("step 0\n...\nstep 90", "step 0\nstep 10\nstep 20\nstep 90\n\n", None),
    ("step 0\n...\nstep 90", "step 0\nstep 90", None),  # a line of `...` may stand for no line
    ("bigram_v1 2.49  ", "bigram_v1 2.49", None),  # trailing spaces do not count
    ("gpt  100.0 M", "gpt 100.2 M", None),  # padding that a wider number took
    ("a\nval loss 2.4833", "a\nval loss 2.5000", (1, "expected 2.4833")),  # 0.7% and many units off
    ("step 30", "step 32", (0, "got 32")),  # two units off (0.5% of 30 is less than one)
    ("bigram_v1 2.49", "bigram_v2 2.49", (0, "got\nbigram_v2 2.49")),  # v1 is a word, not a number
    ("took ... s\ndone", "took 3 s", (0, "expected\ntook ... s\ndone\ngot\ntook 3 s")),
    ("4.20", "", (0, "got\n(nothing)")),
])
def test_shown_output_matches_numbers_within_tolerance_and_any_text_at_dots_and_names_what_differs(
        shown, printed, problem):
    problems = compare_shown(shown, printed)  # one problem where the row expects one, at its line, saying it
    assert len(problems) == (problem is not None), problems
    assert all(k == problem[0] and problem[1] in what for k, what in problems), problems


def test_a_planted_note_fails_at_its_wrong_number_its_prompt_errors_and_echoes_and_its_failing_line(tmp_path):
    # A note in small: three shown outputs, one of them wrong (line 20), one checking that display() is
    # missing, as at the prompt; two blocks a notebook runs but the prompt cannot read (no blank line after a
    # body, line 38; one inside it, line 45); values the prompt echoes (the block at 49); then a cell that
    # fails inside f (line 5).
    note = tmp_path / "planted.md"
    note.write_text(
        "# A planted error\n\n```python\ndef f():\n    return 1 / 0\n\n\nprint(f'loss {4.2049:.2f}')\n```\n\n"
        "```text\nloss 4.20\n```\n\n```python\nprint('untrained gpt.py 4.20')\n```\n\n```text\n"
        "untrained gpt.py 4.34\n```\n\n```python\nprint('took 3.2 s')\nprint(100)\n"
        "print('display' in dir(__builtins__))\n```\n\n```text\ntook ... s\n100.4\nFalse\n```\n\n"
        "```python\nfor i in range(2):\n    x = i\nprint(x)\n```\n\n```python\ndef g():\n    a = 1\n\n"
        "    return a\n```\n\n```python\nxs = [3, 1]\nxs.sort()\nxs.copy()\n_ = xs.copy()\nprint('printed')\n"
        "None\nfor k in range(2):\n    xs.pop()\n\nlen(xs) == 0 and g() == 1\n```\n\n```python\nf()\n```\n",
        encoding="utf-8")
    problems = check_note(note, None)
    assert [line for line, _ in problems] == [5, 20, 38, 45, 49, 49, 49, 49], problems
    assert "ZeroDivisionError" in problems[0][1]  # the deepest frame: inside f, the note's line 5
    assert problems[1][1] == "expected 4.34 in 'untrained gpt.py 4.34', got 4.20"
    assert "SyntaxError" in problems[2][1] and "IndentationError" in problems[3][1]
    # sort() returns None and `None` is None: not echoed; the loop echoes each pop
    echoed = [re.fullmatch(r"the prompt echoes (.*), which the note does not show", what) for _, what in problems[4:]]
    assert [m and m[1] for m in echoed] == ["[1, 3]", "3", "1", "True"]
