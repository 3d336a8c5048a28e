"""The learner notes are executable: every ```python block in notes/*.md runs, and its asserts hold.

A note's blocks run in order in one fresh namespace, so a later block can use what an earlier one defined,
exactly as a reader pasting them into one Python session would. Output shown to the reader goes in
```text blocks, which are never run. The namespace holds:

- NOTES_TMP, a pytest tmp_path, for a block that needs to write a small file (a checkpoint, a tokenizer);
- NOTES_DATA, the path of the real Tiny Shakespeare text if it is here (GPT_DATA, else the shared copy
  beside the repository), or None;
- SkipNote, an exception. A note that needs the real text raises it from its first block when NOTES_DATA
  is None, with a message saying how to provide the text; the test then reports the note as skipped.
"""

import os
import re
import traceback
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTES_DIR = ROOT / "notes"
SHARED_TEXT = ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"
INDEX = "README.md"
# Notes that are reading lists rather than lessons, so they need not prove anything in code.
NO_CODE_REQUIRED = {INDEX, "references.md"}

OPENING_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,})(?P<info>[^`]*)$")


class SkipNote(Exception):
    """Raised by a note's first block when the note cannot run here; its message says what is missing."""


def find_notes_data(environ=os.environ, shared=SHARED_TEXT):
    """The real text for the notes: $GPT_DATA if it names a file, else the shared copy if here, else None."""
    candidates = [Path(environ["GPT_DATA"])] if environ.get("GPT_DATA") else []
    candidates.append(Path(shared))
    return next((path for path in candidates if path.is_file()), None)


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


def block_filename(note, index, line):
    return f"{note}:block{index}@line{line}"


def note_line_of(exc, note, blocks):
    """The line of the note file where exc was raised, from the deepest traceback frame inside a block."""
    names = {block_filename(note, k, line): line for k, (line, _) in enumerate(blocks, start=1)}
    found = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename in names and frame.lineno is not None:
            found = names[frame.filename] + frame.lineno - 1
    return found


@pytest.mark.parametrize("note", note_files())
def test_note_python_blocks_run_in_order_without_error(note, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)  # so a note can open data/ or write out/ the way the scripts do
    monkeypatch.syspath_prepend(str(ROOT))  # so a note can `import bigram_v2` like a learner at the root
    ns = {"__name__": f"notes.{Path(note).stem}", "NOTES_TMP": tmp_path, "NOTES_DATA": find_notes_data(),
          "SkipNote": SkipNote}
    run_blocks(note, python_blocks(note), ns)


def run_blocks(note, blocks, ns):
    """Run blocks in order in ns: a failure fails the test at its line, a first-block SkipNote skips it."""
    for index, (line, code) in enumerate(blocks, start=1):
        skip = message = None
        try:
            exec(compile(code, block_filename(note, index, line), "exec"), ns)
        except SkipNote as exc:
            if index == 1:
                skip = f"notes/{note}: {exc}"
            else:  # earlier blocks already ran: skipping now would hide half a note
                message = failure_message(note, blocks, index, exc)
                message += "\nSkipNote belongs in a note's first block, before anything has run."
        except Exception as exc:  # every failure, an AssertionError included, becomes one located message
            message = failure_message(note, blocks, index, exc)
        # outside the except, so no "during handling" noise
        if skip is not None:
            pytest.skip(skip)
        if message is not None:
            pytest.fail(message, pytrace=False)


def failure_message(note, blocks, index, exc):
    line = blocks[index - 1][0]
    at = note_line_of(exc, note, blocks)
    where = f"line {at}" if at is not None else f"the block starting on line {line}"
    detail = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return (
        f"notes/{note}: python block {index} (starting on line {line}) failed at {where}: "
        f"{type(exc).__name__}: {exc}\n\n{detail}"
    )


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


def test_a_failing_block_is_reported_at_its_line_in_the_note():
    blocks = [(10, "x = 1\n"), (20, "y = 2\nassert y == 3\n")]
    ns = {}
    exec(compile(blocks[0][1], block_filename("demo.md", 1, 10), "exec"), ns)
    with pytest.raises(AssertionError) as info:
        exec(compile(blocks[1][1], block_filename("demo.md", 2, 20), "exec"), ns)
    assert note_line_of(info.value, "demo.md", blocks) == 21
    message = failure_message("demo.md", blocks, 2, info.value)
    assert "python block 2 (starting on line 20) failed at line 21" in message


def test_fenced_blocks_takes_a_fence_indentation_off_its_code():
    text = "1. a step:\n\n   ```python\n   if True:\n       x = 1\n   ```\n"
    assert fenced_blocks(text) == [("python", 4, "if True:\n    x = 1\n")]



def test_a_skipnote_from_the_first_block_skips_the_note_with_its_message():
    blocks = [(3, "raise SkipNote('needs the real text: set GPT_DATA=/path/to/input.txt')\n"), (9, "x = 1\n")]
    ns = {"SkipNote": SkipNote}
    with pytest.raises(pytest.skip.Exception, match="demo.md: needs the real text: set GPT_DATA="):
        run_blocks("demo.md", blocks, ns)
    assert "x" not in ns  # nothing after the skip ran


def test_a_skipnote_after_the_first_block_fails_the_note():
    blocks = [(3, "x = 1\n"), (9, "raise SkipNote('too late')\n")]
    with pytest.raises(pytest.fail.Exception, match="(?s)block 2 .*SkipNote belongs in a note's first block"):
        run_blocks("demo.md", blocks, {"SkipNote": SkipNote})


def test_notes_data_is_gpt_data_then_the_shared_copy_then_none(tmp_path):
    mine, shared = tmp_path / "mine.txt", tmp_path / "shared.txt"
    assert find_notes_data({}, shared) is None
    shared.write_text("shared copy")
    assert find_notes_data({}, shared) == shared
    assert find_notes_data({"GPT_DATA": str(mine)}, shared) == shared  # GPT_DATA names no file: fall back
    mine.write_text("my text")
    assert find_notes_data({"GPT_DATA": str(mine)}, shared) == mine
