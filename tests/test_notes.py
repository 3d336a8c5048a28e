"""The learner notes run as a reader would run them, and show what they really print.

Every note with ```python blocks is read two ways, each in a fresh Python started at the repository root
with GPT_DATA naming the real Tiny Shakespeare when it is at hand, and OMP_NUM_THREADS=1:

- as its notebook (notes/notebooks.py makes it with jupytext), executed by nbclient in a python3 kernel,
  the way Jupyter's "Run all" runs it. A failure is reported at its line in the note.
- pasted into the interactive prompt: every line of every block pushed, one at a time, into a
  `code.InteractiveConsole` (what `python` with no arguments runs), then an empty line after each block,
  as a reader's Enter. The prompt is stricter than a notebook: a `for`/`with`/`def`/`if` body ends only at
  a blank line, so one must come before the next top-level statement, and a blank line *inside* an
  indented body ends it early. It also echoes the value of every expression statement that is not None
  (`model.eval()` prints the whole model), which the note does not show: such a value must be assigned
  (`_ = model.eval()`). Any traceback or echo fails the test, at its line in the note.

Shown output is real output: a ```text fence right after a ```python fence (only blank lines between) shows
what that block prints, and is compared with what its cell printed in the notebook run (stdout). A number
matches within 0.5% or one unit in its last shown digit; `...` matches any text (times, paths); spaces may
differ in width. A ```text fence after prose is not checked.

Each notebook runs once, and the runs (notebooks and pastes) go on in the background, WORKERS at a time,
while the tests wait for theirs. A note that reads the real text (it calls load_text, or runs a stage's
main) is skipped, with the reason, where the text cannot be found.

The notebooks on disk must be the ones `python -m notes.notebooks` makes from the notes now, and each note
must link its notebook.
"""

import json
import os
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import nbformat
import pytest
from nbclient import NotebookClient

from data.shakespeare import ENV_VAR
from notes import notebooks as maker

ROOT = Path(__file__).resolve().parent.parent
NOTES_DIR = ROOT / "notes"
INDEX = "README.md"
# Notes that are reading lists rather than lessons, so they need not prove anything in code.
NO_CODE_REQUIRED = {INDEX, "references.md"}
NEEDS_TEXT = re.compile(r"load_text\(|\.main\(")  # what a note calls when it reads the real text
TIMEOUT = 1200  # seconds per cell or paste: only a guard against a hang; a whole note takes seconds
KERNEL_START = 180  # seconds a kernel may take to start on a loaded machine
# Notes run in parallel, one process each with one thread: two use a 2-core machine's second core, which
# the rest of the suite (one test at a time) leaves idle.
WORKERS = max(1, min(2, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()))

OPENING_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,})(?P<info>[^`]*)$")
ANSI = re.compile(r"\x1b\[[0-9;]*m")
CELL_FRAME = re.compile(r"Cell In\[(\d+)\], line (\d+)")  # IPython's name for a frame in a cell

# Runs in the child: read [(note line, code), ...] as JSON on stdin, paste each block into a console line by
# line, and write {"errors": [(note line, traceback), ...], "echoes": [(note line, repr), ...]} as JSON to
# the file named by argv[1]. An echo's line is where its statement starts.
CONSOLE_DRIVER = r"""
import code, json, sys
blocks, errors, echoes, where, start = json.load(sys.stdin), [], [], [0], [0]
class Console(code.InteractiveConsole):
    def write(self, data):  # the console reports every traceback and syntax error through write()
        sys.stderr.write(data)
        if errors and errors[-1][0] == where[0]:
            errors[-1][1] += data
        else:
            errors.append([where[0], data])
def echo(value):  # the prompt shows an expression statement's value through sys.displayhook
    if value is not None:
        try:
            shown = repr(value)
        except Exception as err:
            shown = f"(its repr failed: {err!r})"
        echoes.append([start[0], shown])
sys.displayhook = echo
console = Console(locals={"__name__": "__console__", "__doc__": None})
for first, block in blocks:
    for k, line in enumerate(block.splitlines()):
        where[0] = first + k
        if not console.buffer:  # nothing pending: this line starts a statement
            start[0] = where[0]
        console.push(line)
    where[0] = first + len(block.splitlines()) - 1
    console.push("")  # the Enter on an empty line that ends a pasted block
with open(sys.argv[1], "w", encoding="utf-8") as f:
    json.dump({"errors": errors, "echoes": echoes}, f)
"""


def note_files():
    return sorted(p.name for p in NOTES_DIR.glob("*.md"))


def notebook_notes():
    return [p.name for p in maker.notes_with_code(NOTES_DIR)]


class Fence(NamedTuple):
    language: str
    line: int  # the note's line number (from 1) of the first line inside the fence
    code: str
    opening: int  # 0-based index of the opening fence's line
    closing: int  # 0-based index of the closing fence's line


def fences(text):
    """Every fenced code block of a markdown text, as Fence.

    As in CommonMark, a fence closes at a line of at least as many backticks as opened it, and a fence
    indented by up to three spaces (inside a list item, say) has that indentation taken off its code
    lines. An unclosed fence is an error, because the rest of the note would silently become one block.
    """
    found = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = OPENING_FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, info = len(m["indent"]), m["fence"], m["info"].strip()
        language = info.split()[0] if info else ""
        j = i + 1
        while j < len(lines) and not re.fullmatch(r" {0,3}`{%d,}\s*" % len(fence), lines[j]):
            j += 1
        if j == len(lines):
            raise ValueError(f"the fence opened on line {i + 1} is never closed")
        code = [re.sub(r"^ {0,%d}" % indent, "", code_line) for code_line in lines[i + 1:j]]
        found.append(Fence(language, i + 2, "\n".join(code) + "\n", i, j))
        i = j + 1
    return found


def fenced_blocks(text):
    """Every fenced code block of a markdown text: (language, first line number of the code, code)."""
    return [(f.language, f.line, f.code) for f in fences(text)]


def python_blocks(note):
    text = (NOTES_DIR / note).read_text(encoding="utf-8")
    return [(line, code) for language, line, code in fenced_blocks(text) if language == "python"]


def shown_outputs(text):
    """What a note shows its blocks print: [(python block index, first line of the text, the text), ...].

    A ```text fence shows output when it comes right after a ```python fence, with only blank lines between.
    """
    found, lines = [], text.splitlines()
    all_fences = fences(text)
    python_index = {f.opening: k for k, f in enumerate(f for f in all_fences if f.language == "python")}
    for above, below in zip(all_fences, all_fences[1:]):
        between = lines[above.closing + 1:below.opening]
        if above.language == "python" and below.language == "text" and not any(s.strip() for s in between):
            found.append((python_index[above.opening], below.line, below.code))
    return found


# ---- shown output against printed output ----

NUMBER = r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?"
# A number starts where no letter, digit, _ or decimal point comes before it (so `v1`, `e01` are words) and
# ends where no digit follows; a unit may follow (0.5s, 12M).
NUMBER_TOKEN = rf"(?<![\w.]){NUMBER}(?!\d|\.\d)"
SHOWN_TOKEN = re.compile(rf"(?P<any>\.\.\.)|(?P<number>{NUMBER_TOKEN})|(?P<space>[ \t]+)|(?P<char>.)", re.S)


def tidy(text):
    """Text as compared: no trailing spaces on a line, no blank lines at either end."""
    return "\n".join(line.rstrip() for line in text.splitlines()).strip("\n")


def shown_pattern(shown):
    """A regex for what a shown text allows, and its numbers [(text, line offset in shown), ...].

    A line that is only `...` stands for any lines, or none.
    """
    parts, numbers = [], []
    lines = shown.split("\n")
    last = len(lines) - 1
    for k, line in enumerate(lines):
        if line.strip() == "...":  # it takes the line breaks around it, so that it may match no line
            parts.append(".*?" if k == 0 == last else "(?:.*?\n)?" if k == 0 else
                         "(?:\n.*?)?" if k == last else "\n(?:.*?\n)?")
            continue
        if k > 0 and lines[k - 1].strip() != "...":
            parts.append("\n")
        for m in SHOWN_TOKEN.finditer(line):
            if m["any"]:
                parts.append(".*?")
            elif m["number"]:
                parts.append(f"({NUMBER_TOKEN})")
                numbers.append((m["number"], k))
            elif m["space"]:
                parts.append(r"[ \t]*")  # a number that grew may have eaten the padding before it
            else:
                parts.append(re.escape(m["char"]))
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
    shown_lines, printed_lines = shown.splitlines(), printed.splitlines()
    pattern, numbers = shown_pattern(shown)
    m = pattern.fullmatch(printed)
    if m is None:  # the words differ: name the first line that differs, up to the first `...`
        for k, line in enumerate(shown_lines):
            if "..." in line:
                break
            got = printed_lines[k] if k < len(printed_lines) else None
            if got is None or not shown_pattern(line)[0].fullmatch(got):
                return [(k, f"expected {line!r}, got {got!r}" if got is not None else
                         f"expected {line!r}, got no line there (it printed {len(printed_lines)} lines)")]
        return [(0, f"expected\n{shown}\ngot\n{printed if printed else '(nothing)'}")]
    problems = []
    for group, (number, k) in enumerate(numbers, start=1):
        if not close_enough(number, m[group]):
            got_line = printed_lines[printed.count("\n", 0, m.start(group))]
            problems.append((k, f"expected {number} in {shown_lines[k]!r}, got {m[group]} in {got_line!r}"))
    return problems


# ---- running a note ----

class NotebookRun(NamedTuple):
    text: str  # the note's markdown, as it was when its notebook was made
    notebook: object  # the executed nbformat notebook: cell 0 the setup, then the note's cells
    failure: tuple | None  # (note line or None, what went wrong), or None when every cell ran


def note_env(text_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")  # several threads fight on a busy machine
    if text_path is not None:
        env[ENV_VAR] = str(text_path)
    return env


def code_cells(notebook):
    return [c for c in notebook.cells if c.cell_type == "code"][1:]  # past the setup cell


def run_notebook(note_path, text_path):
    """Execute a note's notebook, made from its markdown now, in a fresh python3 kernel at the repo root."""
    text = note_path.read_text(encoding="utf-8")
    notebook = maker.make_notebook(note_path, notebooks=set())
    block_lines = [f.line for f in fences(text) if f.language == "python"]
    client = NotebookClient(notebook, kernel_name="python3", timeout=TIMEOUT, startup_timeout=KERNEL_START,
                            iopub_timeout=60)
    try:
        client.execute(cwd=str(ROOT), env=note_env(text_path))
    except Exception as err:  # a cell raised (CellExecutionError), timed out, or the kernel died
        return NotebookRun(text, notebook, failure_in(notebook, block_lines, err))
    return NotebookRun(text, notebook, None)


def failure_in(notebook, block_lines, err):
    """(note line, traceback) of the cell that failed: the line of the deepest frame in a note's cell."""
    line_of = {c.execution_count: line for c, line in zip(code_cells(notebook), block_lines) if c.execution_count}
    for cell in notebook.cells:
        for out in cell.get("outputs", []):
            if out.output_type == "error":
                trace = ANSI.sub("", "\n".join(out.traceback))
                frames = [(int(n), int(k)) for n, k in CELL_FRAME.findall(trace) if int(n) in line_of]
                return (line_of[frames[-1][0]] + frames[-1][1] - 1 if frames else None), trace
    return None, f"{type(err).__name__}: {err}"


def printed(cell):
    """What a cell printed: its stdout."""
    return "".join(o.text for o in cell.get("outputs", []) if o.output_type == "stream" and o.name == "stdout")


def output_problems(run):
    """Every shown output of a note that its cell did not print: [(note line, what differs), ...]."""
    cells = code_cells(run.notebook)
    problems = []
    for block, line, shown in shown_outputs(run.text):
        cell = cells[block]
        if cell.execution_count is None or any(o.output_type == "error" for o in cell.outputs):
            continue  # it never ran, or failed: the run test reports that
        problems += [(line + k, what) for k, what in compare_shown(shown, printed(cell))]
    return problems


def paste_note(blocks, text_path, tmp_path):
    """Paste blocks [(note line, code), ...] into a fresh interactive console: (errors, echoes), each a list
    of (note line, text)."""
    fd, name = tempfile.mkstemp(suffix=".json", dir=tmp_path)  # a file of its own: pastes run side by side
    os.close(fd)
    report = Path(name)
    done = subprocess.run([sys.executable, "-c", CONSOLE_DRIVER, str(report)], input=json.dumps(blocks),
                          cwd=ROOT, env=note_env(text_path), capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 0 and report.stat().st_size, f"the console driver failed:\n{done.stderr[-4000:]}"
    found = json.loads(report.read_text(encoding="utf-8"))
    return [tuple(e) for e in found["errors"]], [tuple(e) for e in found["echoes"]]


class NoteRuns:
    """Each note's notebook run and prompt paste, made once, WORKERS at a time, in the order asked for."""

    def __init__(self, text_path, tmp_path):
        self.text_path, self.tmp_path = text_path, tmp_path
        self.pool = ThreadPoolExecutor(WORKERS)
        self.futures = {}

    def ask(self, kind, note):
        if (kind, note) not in self.futures:
            if kind == "notebook":
                job = (run_notebook, NOTES_DIR / note, self.text_path)
            else:
                job = (paste_note, python_blocks(note), self.text_path, self.tmp_path)
            self.futures[kind, note] = self.pool.submit(*job)
        return self.futures[kind, note]

    def get(self, kind, note):
        return self.ask(kind, note).result()


def skip_without_text(note, shakespeare):
    code = "".join(code for _, code in python_blocks(note))
    if NEEDS_TEXT.search(code) and shakespeare.path is None:
        pytest.skip(f"notes/{note} reads Tiny Shakespeare, which was not found ({shakespeare.why_not}); "
                    f"set {ENV_VAR}=/path/to/input.txt")


# Which run each per-note test waits for, so that all of them are queued at the first one.
RUN_OF_TEST = {
    "test_note_runs_as_a_notebook_without_an_error": "notebook",
    "test_note_shown_output_is_what_its_block_prints": "notebook",
    "test_note_pasted_line_by_line_into_the_prompt_raises_nothing_and_echoes_nothing": "paste",
}


@pytest.fixture(scope="session")
def note_runs(request, shakespeare, tmp_path_factory):
    runs = NoteRuns(shakespeare.path, tmp_path_factory.mktemp("pastes"))
    for item in request.session.items:  # queue what the selected tests will ask for, in their order
        kind, params = RUN_OF_TEST.get(getattr(item, "originalname", None)), getattr(item, "callspec", None)
        if kind and params and params.params.get("note") in note_files():
            note = params.params["note"]
            code = "".join(code for _, code in python_blocks(note))
            if not (NEEDS_TEXT.search(code) and shakespeare.path is None):
                runs.ask(kind, note)
    yield runs
    runs.pool.shutdown(cancel_futures=True)


# ---- every note ----

@pytest.mark.parametrize("note", notebook_notes())
def test_note_runs_as_a_notebook_without_an_error(note, shakespeare, note_runs):
    skip_without_text(note, shakespeare)
    run = note_runs.get("notebook", note)
    if run.failure is not None:
        line, trace = run.failure
        at = f"line {line}" if line is not None else "a line the traceback does not name"
        pytest.fail(f"notes/{note} run as a notebook failed at {at}:\n{trace[-4000:]}", pytrace=False)


@pytest.mark.parametrize("note", notebook_notes())
def test_note_shown_output_is_what_its_block_prints(note, shakespeare, note_runs):
    skip_without_text(note, shakespeare)
    run = note_runs.get("notebook", note)
    problems = output_problems(run)
    if problems:
        pytest.fail(f"notes/{note}: a ```text block after a ```python block shows what the block prints, and "
                    f"{len(problems)} differ (numbers within 0.5% or one unit in the last digit; `...` for "
                    f"text that varies):\n" + "\n".join(f"line {line}: {what}" for line, what in problems),
                    pytrace=False)
    if run.failure is not None:
        pytest.skip(f"notes/{note} failed to run at line {run.failure[0]}; the outputs after it were not checked")


@pytest.mark.parametrize("note", [n for n in note_files() if python_blocks(n)])
def test_note_pasted_line_by_line_into_the_prompt_raises_nothing_and_echoes_nothing(note, shakespeare,
                                                                                   note_runs):
    skip_without_text(note, shakespeare)
    errors, echoes = note_runs.get("paste", note)
    if errors:
        line, trace = errors[0]
        pytest.fail(f"notes/{note}: pasted into the prompt, line {line} raised ({len(errors)} error(s) in all; "
                    f"a block body needs a blank line after it and none inside it):\n{trace[-3000:]}",
                    pytrace=False)
    if echoes:
        shown = "\n".join(f"line {line}: {value.splitlines()[0][:100]}" + (
            f" (and {value.count(chr(10))} more lines)" if "\n" in value else "") for line, value in echoes)
        pytest.fail(f"notes/{note}: pasted into the prompt, {len(echoes)} statement(s) echo a value the note "
                    f"does not show; assign it (`_ = ...`) or print what the note shows:\n{shown}",
                    pytrace=False)


@pytest.mark.parametrize("note", [n for n in note_files() if n not in NO_CODE_REQUIRED])
def test_note_proves_its_claims_with_at_least_one_python_block(note):
    assert python_blocks(note), f"notes/{note} has no ```python block; its claims should be shown in code"


@pytest.mark.parametrize("note", note_files())
def test_note_fences_are_python_or_name_a_language_that_plainly_is_not(note):
    # A block fenced ```py, ```python3 or bare ``` could pass for code a reader should trust, yet it never
    # runs here. So a block stays out of the run only by naming another language: text, bash, ...
    text = (NOTES_DIR / note).read_text(encoding="utf-8")
    unclear = [
        (line, language or "(none)")
        for language, line, _ in fenced_blocks(text)
        if language != "python" and (not language or language.lower().startswith(("py", "ipython")))
    ]
    assert not unclear, (
        f"notes/{note}: fences at lines {unclear} would not run; use ```python for code, ```text for output"
    )


def test_every_note_is_linked_from_the_index():
    index_text = (NOTES_DIR / INDEX).read_text(encoding="utf-8")
    targets = {Path(t.split("#")[0]).name for t in re.findall(r"\]\(([^)\s]+)\)", index_text)}
    missing = [n for n in note_files() if n != INDEX and n not in targets]
    assert not missing, f"notes/{INDEX} does not link {missing}; add them in reading order"


# ---- the notebooks ----

@pytest.mark.parametrize("note", notebook_notes())
def test_notebook_code_cells_are_the_note_python_blocks_in_order(note):
    # The line numbers in every report, and the shown outputs' cells, count on this: jupytext misses, for
    # one, a ```python fence indented inside a list item.
    cells = [c.source for c in code_cells(maker.make_notebook(NOTES_DIR / note))]
    assert cells == [code.rstrip("\n") for _, code in python_blocks(note)], (
        f"notes/{note}: jupytext reads other code cells than the note's ```python blocks; start each "
        f"```python fence at the beginning of its line"
    )


@pytest.mark.parametrize("note", notebook_notes())
def test_notebook_on_disk_is_the_one_its_note_makes_now(note):
    path = maker.notebook_path(NOTES_DIR / note)
    assert path.exists(), f"{path.relative_to(ROOT)} is missing; run `python -m notes.notebooks`"
    on_disk = [(c.cell_type, c.source) for c in nbformat.read(path, as_version=4).cells]
    made = [(c.cell_type, c.source) for c in maker.make_notebook(NOTES_DIR / note).cells]
    first = next((k for k, (a, b) in enumerate(zip(on_disk, made)) if a != b), min(len(on_disk), len(made)))
    assert on_disk == made, (
        f"{path.relative_to(ROOT)} is out of date with notes/{note} from its cell {first} on "
        f"({len(on_disk)} cells, {len(made)} now); run `python -m notes.notebooks`"
    )


def test_every_notebook_is_made_from_a_note():
    stale = sorted(p.name for p in maker.NOTEBOOKS_DIR.glob("*.ipynb") if p.stem + ".md" not in notebook_notes())
    assert not stale, f"notes/notebooks/ holds {stale} with no note behind them; run `python -m notes.notebooks`"


@pytest.mark.parametrize("note", notebook_notes())
def test_note_links_its_notebook(note):
    link = f"[Open as a notebook](notebooks/{Path(note).stem}.ipynb)"
    lines = (NOTES_DIR / note).read_text(encoding="utf-8").splitlines()
    assert any(line.startswith(link) for line in lines), (
        f"notes/{note} does not link its notebook; add this line under its title:\n"
        + maker.LINK_LINE.format(stem=Path(note).stem)
    )


def test_every_notebook_link_in_the_notes_names_a_notebook_made_from_a_note():
    made = {Path(n).stem for n in notebook_notes()}
    dead = [(note, target) for note in note_files()
            for target in re.findall(r"\]\(notebooks/([^)#\s]*)\)", (NOTES_DIR / note).read_text(encoding="utf-8"))
            if not target.endswith(".ipynb") or target[:-len(".ipynb")] not in made]
    assert not dead, f"these links name no notebook that `python -m notes.notebooks` makes: {dead}"


def test_made_notebook_starts_with_the_setup_keeps_shell_blocks_to_read_and_fixes_relative_links(tmp_path):
    note = tmp_path / "lesson.md"
    note.write_text(
        "# A lesson\n\n[Open as a notebook](notebooks/lesson.ipynb) (Jupyter)\n\n"
        "See [the loop](training-loop.md#estimate), [a figure](img/a.png), [the guide](running.md), "
        "[a page](https://example.org/x.md) and [above](#a-lesson).\n\n"
        "```bash\npython gpt.py --max-iters 5000\n```\n\n```python\nx = 1\n```\n\n```text\n1\n```\n",
        encoding="utf-8")
    made = maker.make_notebook(note, notebooks={"training-loop"})
    assert [c.cell_type for c in made.cells] == ["code", "markdown", "code", "markdown"]
    assert made.cells[0].source == maker.SETUP_CELL and made.cells[2].source == "x = 1"
    prose = made.cells[1].source
    assert "Open as a notebook" not in prose  # a notebook does not link itself
    assert ("[the loop](training-loop.ipynb#estimate), [a figure](../img/a.png), [the guide](../running.md), "
            "[a page](https://example.org/x.md) and [above](#a-lesson)") in prose
    assert prose.endswith("```bash\npython gpt.py --max-iters 5000\n```")  # to read, not to run
    assert made.cells[3].source == "```text\n1\n```"
    assert made.metadata.kernelspec.name == "python3"
    assert [c.id for c in made.cells] == [c.id for c in maker.make_notebook(note, notebooks=set()).cells]


def test_setup_cell_outside_a_clone_says_how_to_get_one_in_one_line_and_inside_goes_to_its_root(tmp_path):
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell(maker.SETUP_CELL),
        nbformat.v4.new_code_cell(f"os.chdir({str(NOTES_DIR)!r})  # a folder inside the clone"),
        nbformat.v4.new_code_cell(maker.SETUP_CELL),
        nbformat.v4.new_code_cell("print(os.getcwd(), importlib.util.find_spec('gpt').origin)"),
    ])
    NotebookClient(notebook, kernel_name="python3", timeout=TIMEOUT, startup_timeout=KERNEL_START,
                   allow_errors=True).execute(cwd=str(tmp_path), env=note_env(None))
    outside, moved, inside, _ = (c.outputs for c in notebook.cells)
    assert [o.output_type for o in outside] == ["error"] and outside[0].ename == "SetupNeeded"
    shown = outside[0].traceback  # what Jupyter and Colab show: this one line, no traceback
    assert len(shown) == 1 and "\n" not in shown[0] and "git clone <your fork's URL>" in shown[0], shown
    assert "://" not in maker.SETUP_CELL  # it names no repository address: the project has none
    assert moved == inside == [] and printed(notebook.cells[3]) == f"{ROOT} {ROOT / 'gpt.py'}\n"


# ---- the checks themselves ----

def test_fenced_blocks_finds_languages_lines_and_longer_fences():
    text = "intro\n```python\nx = 1\n```\n\n````text\n```python\nnot code\n```\n````\n```python\ny = 2\n```\n"
    assert fenced_blocks(text) == [
        ("python", 3, "x = 1\n"),
        ("text", 7, "```python\nnot code\n```\n"),
        ("python", 12, "y = 2\n"),
    ]


def test_fenced_blocks_rejects_an_unclosed_fence():
    with pytest.raises(ValueError, match="line 2 is never closed"):
        fenced_blocks("text\n```python\nx = 1\n")


def test_fenced_blocks_takes_a_fence_indentation_off_its_code():
    text = "1. a step:\n\n   ```python\n   if True:\n       x = 1\n   ```\n"
    assert fenced_blocks(text) == [("python", 4, "if True:\n    x = 1\n")]


def test_shown_output_is_a_text_fence_right_after_a_python_fence():
    text = ("```python\nprint(1)\n```\n\n\n```text\n1\n```\n"  # 1-8: shown output of block 0
            "```python\nx = 2\n```\nSo it prints:\n```text\n2\n```\n"  # 9-15: prose between: not checked
            "```bash\nls\n```\n```text\nfile\n```\n"  # 16-21: after a shell block: not checked
            "```python\nprint(3)\n```\n```text\n3\n```\n")  # 22-27: block 2, text at line 26
    assert shown_outputs(text) == [(0, 7, "1\n"), (2, 26, "3\n")]


@pytest.mark.parametrize("shown, printed", [
    ("untrained gpt.py 4.20, ln 65 = 4.17", "untrained gpt.py 4.2049, ln 65 = 4.1744"),  # within a unit
    ("val loss 2.4833", "val loss 2.4900"),  # within 0.5%, more than a unit
    ("1,115,394 characters", "1,115,395 characters"),
    ("lr 1e-4, step 3000", "lr 1.00e-04, step 3001"),
    ("perplexity  65.0", "perplexity  65.1\n"),
    ("took ... s, saved to ...", "took 3.21 s, saved to /tmp/x/ckpt.pt"),
    ("step 0\n...\nstep 90", "step 0\nstep 10\nstep 20\nstep 90\n\n"),
    ("step 0\n...\nstep 90", "step 0\nstep 90"),  # a line of `...` may stand for no line
    ("...\nloss 4.20\n...", "device: cpu\nloss 4.20\nsaved"),
    ("...\nloss 4.20\n...", "loss 4.20"),
    ("bigram_v1 2.49  ", "bigram_v1 2.49"),  # trailing spaces do not count
    ("gpt  100.0 M", "gpt 100.2 M"),  # padding that a wider number took
])
def test_shown_output_matches_numbers_within_tolerance_and_any_text_at_dots(shown, printed):
    assert compare_shown(shown, printed) == []


@pytest.mark.parametrize("shown, printed, line, says", [
    ("untrained gpt.py 4.34, bigram_v1 4.65", "untrained gpt.py 4.20, bigram_v1 4.65", 0,
     "expected 4.34 in 'untrained gpt.py 4.34, bigram_v1 4.65', got 4.20 in 'untrained gpt.py 4.20, bigram_v1 4.65'"),
    ("a\nval loss 2.4833", "a\nval loss 2.5000", 1, "expected 2.4833"),  # 0.7% and many units off
    ("step 30", "step 32", 0, "got 32"),  # two units off (0.5% of 30 is less than one)
    ("bigram_v1 2.49", "bigram_v2 2.49", 0, "expected 'bigram_v1 2.49', got 'bigram_v2 2.49'"),  # v1 is a word
    ("one\ntwo", "one", 1, "got no line there"),
    ("took ... s\ndone", "took 3 s", 0, "expected\ntook ... s\ndone\ngot\ntook 3 s"),
    ("4.20", "", 0, "got no line there"),
])
def test_shown_output_differs_names_the_line_expected_and_got(shown, printed, line, says):
    problems = compare_shown(shown, printed)
    assert len(problems) == 1 and problems[0][0] == line and says in problems[0][1], problems


def test_a_wrong_shown_number_fails_at_its_line_and_a_failure_at_its_line_in_a_notebook_run(tmp_path):
    # A note in small: three shown outputs, one of them wrong (line 20), then a cell that fails inside f.
    note = tmp_path / "planted.md"
    note.write_text(
        "# A planted error\n\n```python\ndef f():\n    return 1 / 0\n\n\nprint(f'loss {4.2049:.2f}')\n```\n\n"
        "```text\nloss 4.20\n```\n\n```python\nprint('untrained gpt.py 4.20')\n```\n\n```text\n"
        "untrained gpt.py 4.34\n```\n\n```python\nprint('took 3.2 s')\nprint(100)\n```\n\n```text\n"
        "took ... s\n100.4\n```\n\n```python\nf()\n```\n",
        encoding="utf-8")
    assert note.read_text().splitlines()[19] == "untrained gpt.py 4.34"  # the note's line 20
    run = run_notebook(note, None)
    assert output_problems(run) == [
        (20, "expected 4.34 in 'untrained gpt.py 4.34', got 4.20 in 'untrained gpt.py 4.20'")
    ]
    line, trace = run.failure
    assert line == 5 and "ZeroDivisionError" in trace  # the deepest frame: inside f, the note's line 5


def test_the_prompt_check_catches_a_missing_and_an_inner_blank_line(tmp_path):
    missing = (10, "for i in range(2):\n    x = i\ny = x\n")  # no blank line before the top-level y
    inner = (20, "def f():\n    a = 1\n\n    return a\n")  # a blank line inside f's body
    errors, _ = paste_note([missing, inner], None, tmp_path)
    assert [line for line, _ in errors] == [12, 23] and "SyntaxError" in errors[0][1]
    assert "IndentationError" in errors[1][1]
    good = (30, "for i in range(2):\n    x = i\n\ny = x\nassert y == 1\n")
    assert paste_note([good], None, tmp_path) == ([], [])


def test_the_prompt_check_catches_a_value_the_prompt_echoes(tmp_path):
    block = (40, "xs = [3, 1]\nxs.sort()\nxs.copy()\n_ = xs.copy()\nprint('printed')\nNone\n"
                 "for k in range(2):\n    xs.pop()\n\nlen(xs) == 0\n")
    errors, echoes = paste_note([block], None, tmp_path)
    # sort() returns None: not echoed; copy() at 42; the loop, from its first line 46, echoes each pop
    assert errors == [] and echoes == [(42, "[1, 3]"), (46, "3"), (46, "1"), (49, "True")]


def test_no_note_uses_a_name_only_the_old_test_runner_defined():
    for note in note_files():
        code = "".join(code for _, code in python_blocks(note))
        assert not re.search(r"\b(NOTES_TMP|NOTES_DATA|SkipNote)\b", code), note


def test_every_note_reads_in_about_ten_minutes_and_the_notes_together_stay_near_their_old_length():
    # words as `wc -w` counts them: about ten minutes is 2,000; 31,130 is 28,300 (the notes before the
    # lecture's core was added) plus a tenth: the core came in by moving and condensing, not by growing
    words = {p.name: len(p.read_text(encoding="utf-8").split()) for p in sorted(NOTES_DIR.glob("*.md"))}
    assert {name: n for name, n in words.items() if n > 2000} == {}
    assert sum(words.values()) <= 31130, sum(words.values())
