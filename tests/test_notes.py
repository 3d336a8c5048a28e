"""The learner notes run as a reader would run them: every ```python block of a note, pasted in order.

Each note runs twice, in a fresh Python started at the repository root, with GPT_DATA naming the real Tiny
Shakespeare when it is at hand:

- as a script: its python blocks joined, `python - < script`;
- as pasted into the interactive prompt: every line of every block pushed, one at a time, into a
  `code.InteractiveConsole` (what `python` with no arguments runs), then an empty line after each block,
  as a reader's Enter. The prompt is stricter than a script: a `for`/`with`/`def`/`if` body ends only at
  a blank line, so one must come before the next top-level statement, and a blank line *inside* an
  indented body ends it early. Any traceback the console prints fails the test, at its line in the note.

Nothing is predefined: a name a block uses is one an earlier block (or an import) made, so a reader who
pastes the blocks into a Python session gets what the test got. Output shown to the reader goes in
```text blocks, which never run.

A note that reads the real text (it calls load_text, or runs a stage's main) is skipped, with the reason,
where the text cannot be found.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from data.shakespeare import ENV_VAR

ROOT = Path(__file__).resolve().parent.parent
NOTES_DIR = ROOT / "notes"
INDEX = "README.md"
# Notes that are reading lists rather than lessons, so they need not prove anything in code.
NO_CODE_REQUIRED = {INDEX, "references.md"}
NEEDS_TEXT = re.compile(r"load_text\(|\.main\(")  # what a note calls when it reads the real text
TIMEOUT = 1200  # seconds per note: only a guard against a hang; on a quiet 2-core CPU a note takes seconds

OPENING_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,})(?P<info>[^`]*)$")
STDIN_LINE = re.compile(r'File "<stdin>", line (\d+)')

# Runs in the child: read [(note line, code), ...] as JSON on stdin, paste each block into a console line by
# line, and write [(note line, traceback), ...] as JSON to the file named by argv[1].
CONSOLE_DRIVER = r"""
import code, json, sys
blocks, errors, where = json.load(sys.stdin), [], [0]
class Console(code.InteractiveConsole):
    def write(self, data):  # the console reports every traceback and syntax error through write()
        sys.stderr.write(data)
        if errors and errors[-1][0] == where[0]:
            errors[-1][1] += data
        else:
            errors.append([where[0], data])
console = Console(locals={"__name__": "__console__", "__doc__": None})
for first, block in blocks:
    for k, line in enumerate(block.splitlines()):
        where[0] = first + k
        console.push(line)
    where[0] = first + len(block.splitlines()) - 1
    console.push("")  # the Enter on an empty line that ends a pasted block
with open(sys.argv[1], "w", encoding="utf-8") as f:
    json.dump(errors, f)
"""


def note_files():
    return sorted(p.name for p in NOTES_DIR.glob("*.md"))


def fenced_blocks(text):
    """Every fenced code block of a markdown text: (language, first line number of the code, code).

    Line numbers count from 1 and point at the first line inside the fence. As in CommonMark, a fence
    closes at a line of at least as many backticks as opened it, and a fence indented by up to three
    spaces (inside a list item, say) has that indentation taken off its code lines. An unclosed fence is
    an error, because the rest of the note would silently become one block.
    """
    blocks = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = OPENING_FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, info = len(m["indent"]), m["fence"], m["info"].strip()
        language = info.split()[0] if info else ""
        start = i + 1  # 0-based index of the first code line
        j = start
        while j < len(lines) and not re.fullmatch(r" {0,3}`{%d,}\s*" % len(fence), lines[j]):
            j += 1
        if j == len(lines):
            raise ValueError(f"the fence opened on line {i + 1} is never closed")
        code = [re.sub(r"^ {0,%d}" % indent, "", code_line) for code_line in lines[start:j]]
        blocks.append((language, start + 1, "\n".join(code) + "\n"))
        i = j + 1
    return blocks


def python_blocks(note):
    text = (NOTES_DIR / note).read_text(encoding="utf-8")
    return [(line, code) for language, line, code in fenced_blocks(text) if language == "python"]


def note_script(blocks):
    """The blocks as one script, a blank line between two, and for each script line its line in the note."""
    lines, where = [], []
    for line, code in blocks:
        if lines:
            lines.append("")
            where.append(None)
        for k, code_line in enumerate(code.splitlines()):
            lines.append(code_line)
            where.append(line + k)
    return "\n".join(lines) + "\n", where


def failing_note_line(stderr, where):
    """The note line of the deepest frame of the script in a traceback, or None."""
    found = [int(n) for n in STDIN_LINE.findall(stderr)]
    if not found or not 1 <= found[-1] <= len(where):
        return None
    return where[found[-1] - 1]


def note_env(text_path):
    env = dict(os.environ)
    if text_path is not None:
        env[ENV_VAR] = str(text_path)
    return env


def run_note(note, text_path):
    blocks = python_blocks(note)
    script, where = note_script(blocks)
    done = subprocess.run([sys.executable, "-"], input=script, cwd=ROOT, env=note_env(text_path),
                          capture_output=True, text=True, timeout=TIMEOUT)
    return done, where


def paste_note(blocks, text_path, tmp_path):
    """Paste blocks [(note line, code), ...] into a fresh interactive console; [(note line, traceback), ...]."""
    report = tmp_path / "console-errors.json"
    done = subprocess.run([sys.executable, "-c", CONSOLE_DRIVER, str(report)], input=json.dumps(blocks),
                          cwd=ROOT, env=note_env(text_path), capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 0 and report.exists(), f"the console driver itself failed:\n{done.stderr[-4000:]}"
    return [tuple(e) for e in json.loads(report.read_text(encoding="utf-8"))]


@pytest.mark.parametrize("note", [n for n in note_files() if python_blocks(n)])
def test_note_python_blocks_pasted_in_order_into_a_fresh_python_run(note, shakespeare):
    code = "".join(code for _, code in python_blocks(note))
    if NEEDS_TEXT.search(code) and shakespeare.path is None:
        pytest.skip(f"notes/{note} reads Tiny Shakespeare, which was not found ({shakespeare.why_not}); "
                    f"set {ENV_VAR}=/path/to/input.txt")
    done, where = run_note(note, shakespeare.path)
    if done.returncode != 0:
        line = failing_note_line(done.stderr, where)
        at = f"line {line}" if line is not None else "a line the traceback does not name"
        pytest.fail(f"notes/{note} failed at {at} (exit status {done.returncode}):\n{done.stderr[-4000:]}",
                    pytrace=False)


@pytest.mark.parametrize("note", [n for n in note_files() if python_blocks(n)])
def test_note_python_blocks_pasted_line_by_line_into_the_interactive_prompt_raise_nothing(note, shakespeare,
                                                                                       tmp_path):
    blocks = python_blocks(note)
    if NEEDS_TEXT.search("".join(code for _, code in blocks)) and shakespeare.path is None:
        pytest.skip(f"notes/{note} reads Tiny Shakespeare, which was not found ({shakespeare.why_not})")
    errors = paste_note(blocks, shakespeare.path, tmp_path)
    if errors:
        line, trace = errors[0]
        pytest.fail(f"notes/{note}: pasted into the prompt, line {line} raised ({len(errors)} error(s) in all; "
                    f"a block body needs a blank line after it and none inside it):\n{trace[-3000:]}",
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


def test_a_note_script_maps_each_line_back_to_the_note():
    script, where = note_script([(10, "x = 1\n"), (20, "y = 2\nassert y == 3\n")])
    assert script == "x = 1\n\ny = 2\nassert y == 3\n"
    assert where == [10, None, 20, 21]


def test_a_failure_is_reported_at_its_line_in_the_note():
    blocks = [(10, "def f():\n    return 1 / 0\n"), (20, "x = 1\nf()\n")]
    script, where = note_script(blocks)
    done = subprocess.run([sys.executable, "-"], input=script, capture_output=True, text=True)
    assert done.returncode == 1 and "ZeroDivisionError" in done.stderr
    assert failing_note_line(done.stderr, where) == 11  # the deepest frame: inside f, the note's line 11
    assert failing_note_line("no traceback here", where) is None


def test_the_prompt_check_catches_a_missing_and_an_inner_blank_line(tmp_path):
    missing = (10, "for i in range(2):\n    x = i\ny = x\n")  # no blank line before the top-level y
    inner = (20, "def f():\n    a = 1\n\n    return a\n")  # a blank line inside f's body
    errors = paste_note([missing, inner], None, tmp_path)
    assert [line for line, _ in errors] == [12, 23] and "SyntaxError" in errors[0][1]
    assert "IndentationError" in errors[1][1]
    good = (30, "for i in range(2):\n    x = i\n\ny = x\nassert y == 1\n")
    assert paste_note([good], None, tmp_path) == []


def test_no_note_uses_a_name_only_the_old_test_runner_defined():
    for note in note_files():
        code = "".join(code for _, code in python_blocks(note))
        assert not re.search(r"\b(NOTES_TMP|NOTES_DATA|SkipNote)\b", code), note
