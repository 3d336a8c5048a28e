"""notes/notebooks.py: every note as a Jupyter notebook, made from its markdown by jupytext.

Run it from the repository root after editing a note:

    python -m notes.notebooks      # write notes/notebooks/<note>.ipynb for every note with code

The markdown is the one source: a notebook is never edited by hand, and tests/test_notes.py fails when one
on disk differs from what this command makes now. jupytext turns each ```python block into a code cell and
the prose around it, ```text outputs included, into markdown cells. On the way this command:

- puts a setup cell first: it finds the clone the notebook belongs to (Jupyter starts in notes/notebooks/,
  Colab in /content) and goes to its root, where the blocks expect to run; where there is no clone, or its
  requirements are missing, it says in one line how to get them;
- keeps shell blocks (```bash) as markdown to read: they train, benchmark or install, and "Run all"
  must not start them;
- makes relative links work from notes/notebooks/ (another note opens as its notebook, any other file
  one folder up), and leaves out the note's own "Open as a notebook" line.

The notebooks are saved without outputs: the learner's run makes them.
"""

import re
import sys
from pathlib import Path

import jupytext
import nbformat

NOTES_DIR = Path(__file__).resolve().parent
NOTEBOOKS_DIR = NOTES_DIR / "notebooks"
# Reading lists, not lessons: no notebook even if they gain a code block.
NOT_LESSONS = {"README.md", "references.md"}
# The line a note links its notebook with, on a line of its own; the notebook leaves it out.
LINK_LINE = ("[Open as a notebook](notebooks/{stem}.ipynb) (Jupyter; in Colab: File > Upload notebook, "
             "inside your clone)")
OWN_LINK = re.compile(r"^\[Open as a notebook\]\(notebooks/[^)]*\).*\n(?:[ \t]*\n)?", re.MULTILINE)
PYTHON_FENCE = re.compile(r"^```python\s*$", re.MULTILINE)  # what jupytext makes a code cell
MAGIC = re.compile(r"%%(\S+)")  # jupytext marks a block in another language (bash, sh, ...) with its magic
LINK = re.compile(r"(\]\()([^)\s]+)(\))")  # an inline link or image: [text](target)
ADDRESS = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:|#|/")  # a URL, an anchor in the same page, an absolute path
# Tells jupytext the notebook's language, so that a note with more bash than python blocks still makes
# python cells (jupytext otherwise guesses the language from the blocks).
KERNEL_HEADER = """---
jupyter:
  kernelspec:
    display_name: Python 3
    language: python
    name: python3
---
"""

SETUP_CELL = '''\
# Setup, made by `python -m notes.notebooks` from the note's markdown (edit that, not this notebook).
# The cells below import the project's files (gpt.py, runner/, data/), so they run at the root of a clone
# of gpt-from-scratch with its requirements installed. Jupyter starts in notes/notebooks/, Colab in /content.
import importlib.util
import os
import sys
from pathlib import Path


class SetupNeeded(Exception):
    def _render_traceback_(self):  # IPython shows this one line instead of a traceback
        return [str(self)]


def go_to_the_clone():
    here = Path.cwd()
    places = [here, *here.parents, here / "gpt-from-scratch", Path("/content/gpt-from-scratch")]
    root = next((p for p in places if (p / "gpt.py").is_file() and (p / "runner").is_dir()), None)
    missing = [m for m in ("torch", "numpy", "requests", "tqdm") if importlib.util.find_spec(m) is None]
    if root is None or missing:
        needs = "a clone of gpt-from-scratch" if root is None else f"{', '.join(missing)} (not installed)"
        raise SetupNeeded(f"This notebook needs {needs}. In Colab run `!git clone <your fork's URL> "
                          f"gpt-from-scratch && pip install -r gpt-from-scratch/requirements.txt`, then this "
                          f"cell again; in Jupyter, `pip install -r requirements.txt` in your clone and open "
                          f"the notebook from its notes/notebooks/.")
    os.chdir(root)
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))


go_to_the_clone()'''


def has_code(note):
    """Whether a note gets a notebook: a lesson with at least one ```python block."""
    return note.name not in NOT_LESSONS and bool(PYTHON_FENCE.search(note.read_text(encoding="utf-8")))


def notes_with_code(notes_dir=NOTES_DIR):
    return [p for p in sorted(notes_dir.glob("*.md")) if has_code(p)]


def relink(match, notebooks):
    """A link of the note, as it must read from notes/notebooks/."""
    target = match[2]
    if ADDRESS.match(target):
        return match[0]
    path, hash_, anchor = target.partition("#")
    if "/" not in path and path.endswith(".md") and path[:-3] in notebooks:
        path = path[:-3] + ".ipynb"  # another note: its notebook, beside this one
    else:
        path = "../" + path
    return match[1] + path + hash_ + anchor + match[3]


def make_notebook(note, notebooks=None):
    """The notebook of a note (a Path to its markdown), as nbformat's NotebookNode; nothing is written.

    notebooks: the stems of the notes that have notebooks, for the links between them (default: the
    notes beside this one that have code).
    """
    if notebooks is None:
        notebooks = {p.stem for p in notes_with_code(note.parent)}
    text = OWN_LINK.sub("", note.read_text(encoding="utf-8"))
    read = jupytext.reads(KERNEL_HEADER + text, fmt="md")
    cells = [nbformat.v4.new_code_cell(SETUP_CELL)]
    for cell in read.cells:
        magic = MAGIC.match(cell.source) if cell.cell_type == "code" else None
        if magic:  # a shell block: back to the fenced markdown it came from
            cell = nbformat.v4.new_markdown_cell(f"```{magic[1]}\n{cell.source.partition(chr(10))[2]}\n```")
        if cell.cell_type == "markdown":
            source = LINK.sub(lambda m: relink(m, notebooks), cell.source)
            if cells[-1].cell_type == "markdown":  # jupytext split the prose around the shell block
                cells[-1].source += "\n\n" + source
                continue
            cells.append(nbformat.v4.new_markdown_cell(source))
        else:
            cells.append(nbformat.v4.new_code_cell(cell.source))
    for k, cell in enumerate(cells):
        cell.id = f"cell-{k}"  # fixed ids, so that an unchanged note makes a byte-identical notebook
    metadata = {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                "language_info": {"name": "python"}}
    return nbformat.v4.new_notebook(cells=cells, metadata=metadata)


def notebook_path(note):
    return NOTEBOOKS_DIR / (note.stem + ".ipynb")


def main():
    notes = notes_with_code()
    NOTEBOOKS_DIR.mkdir(exist_ok=True)
    stems = {p.stem for p in notes}
    changed = 0
    for note in notes:
        path = notebook_path(note)
        text = nbformat.writes(make_notebook(note, stems)) + "\n"
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.relative_to(NOTES_DIR.parent)}")
            changed += 1
    for path in sorted(NOTEBOOKS_DIR.glob("*.ipynb")):
        if path.stem not in stems:  # its note was removed or lost its code
            path.unlink()
            print(f"removed {path.relative_to(NOTES_DIR.parent)}")
            changed += 1
    print(f"{len(notes)} notebooks in {NOTEBOOKS_DIR.relative_to(NOTES_DIR.parent)}/, {changed} changed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
