"""What every check shares: which module it checks, failures that teach, hints in tiers, and a text.

A check fails with pytest.fail(..., pytrace=False): the learner sees one message that says what was
expected, what came out and where to look, not a stack of frames inside the check.

Hints come in three tiers, so that the first one never hands over the answer:
  1  a nudge: what to look at, or which mistake the check recognised;
  2  the names of the calls that do it;
  3  the answer.
A failure shows tiers 1 .. HINT_LEVEL; `--hints 2` or `--hints 3` on the pytest command line raises it
(exercises/conftest.py reads the flag).

Check functions take no arguments (no fixtures, no parametrize): tests/test_exercises.py calls each one
directly with a typical wrong answer in place of the learner's module and reads the hint it gives.
"""

import functools
import importlib
import os
import re
import traceback
from pathlib import Path
from typing import NamedTuple

import pytest
import torch

import data
from data import CharTokenizer, DataError, load_text

SOLUTIONS_VAR = "GFS_SOLUTIONS"  # =1: check exercises/solutions/<name>.py instead of exercises/<name>.py
HINT_LEVEL = 1  # how many tiers a failure shows; set from --hints by exercises/conftest.py
REPO_ROOT = Path(data.__file__).resolve().parents[1]  # the project's root, also when checks run from a copy


class Hint(NamedTuple):
    nudge: str  # tier 1: where to look; never the answer
    calls: str  # tier 2: the names of the calls
    answer: str  # tier 3: the answer

    def text(self, level=None):
        level = HINT_LEVEL if level is None else level
        tiers = [f"Hint {i}: {t}" for i, t in enumerate(self, start=1) if i <= max(1, level)]
        if level < 3:
            tiers.append(f"(more help: add --hints {max(1, level) + 1} to the command)")
        return "\n  ".join(tiers)


def hint_text(hint):
    """A Hint in tiers, a plain string as it is, or nothing."""
    if isinstance(hint, Hint):
        return "\n  " + hint.text()
    return f" {hint}" if hint else ""


class Exercise:
    """The learner's exercises/<name>.py, imported when a check first uses it, not when pytest collects.

    A syntax error in one exercise file then fails that exercise's checks with one line naming the file and
    line, and every other exercise is still checked. GFS_SOLUTIONS=1 checks the solution instead (CI does).
    """

    def __init__(self, name):
        self.name = name
        solutions = os.environ.get(SOLUTIONS_VAR) == "1"
        self.package = "exercises.solutions" if solutions else "exercises"
        self.path = f"exercises/{'solutions/' if solutions else ''}{name}.py"

    def module(self):
        try:
            return importlib.import_module(f"{self.package}.{self.name}")
        except SyntaxError as err:  # IndentationError too
            problem = (f"{self.path}, line {err.lineno}: {err.msg}. Python cannot read the file; fix that line "
                       f"(the other exercises are checked as usual).")
        except Exception as err:  # an error while the file runs its top level: name the line in it
            frames = traceback.extract_tb(err.__traceback__)
            lines = [f.lineno for f in frames if f.filename.endswith(f"{self.name}.py")]
            where = f", line {lines[-1]}" if lines else ""
            problem = (f"{self.path}{where}: {type(err).__name__}: {err} (while importing the file, before any "
                       f"check ran).")
        fail(problem)  # outside the except: pytest would print the error above as the failure's context

    def __getattr__(self, attr):
        if attr.startswith("__"):  # pytest and copy probe dunders: never import for them
            raise AttributeError(attr)
        return getattr(self.module(), attr)


def load(name):
    return Exercise(name)


def fail(message, hint=None):
    pytest.fail(message + hint_text(hint), pytrace=False)


def expect(condition, message, hint=None):
    if not condition:
        fail(message, hint)


def not_a_tensor(actual):
    return f"got {type(actual).__name__}" if not isinstance(actual, torch.Tensor) else f"shape {tuple(actual.shape)}"


def same(actual, expected, what, hint=None, atol=1e-5, rtol=1e-5):
    """Fail unless actual is a tensor of expected's shape and values; name the first entry that differs."""
    if not isinstance(actual, torch.Tensor):
        fail(f"{what}: expected a torch tensor, got {type(actual).__name__}.", hint)
    if tuple(actual.shape) != tuple(expected.shape):
        fail(f"{what}: the shape is {tuple(actual.shape)}, expected {tuple(expected.shape)}.", hint)
    a, e = actual.detach().double().cpu(), expected.detach().double().cpu()
    wrong = ~torch.isclose(a, e, atol=atol, rtol=rtol, equal_nan=False)
    if wrong.any():
        where = tuple(int(i) for i in wrong.nonzero()[0])
        fail(f"{what}: at index {list(where)} yours is {a[where].item():.6g}, expected {e[where].item():.6g} "
             f"({int(wrong.sum())} of {wrong.numel()} entries differ).", hint)
    torch.testing.assert_close(a, e, atol=atol, rtol=rtol)  # the same comparison, as the project's tests make it


def close_to(actual, expected, atol=1e-5, rtol=1e-5):
    """Whether actual would pass same(): for telling apart the usual mistakes."""
    return (isinstance(actual, torch.Tensor) and actual.shape == expected.shape
            and torch.allclose(actual.detach().double(), expected.detach().double(), atol=atol, rtol=rtol))


def which_mistake(actual, mistakes, atol=1e-5):
    """The Hint of the first (output of a usual mistake, Hint) pair that actual equals, else None."""
    for output, hint in mistakes:
        if close_to(actual, output, atol=atol):
            return hint
    return None


@functools.lru_cache(maxsize=None)
def in_repo_text():
    """The prose of the project's notes (outside their code blocks), in one string."""
    parts = []
    for path in sorted((REPO_ROOT / "notes").glob("*.md")):
        text = path.read_text(encoding="utf-8")
        parts.append(re.sub(r"```.*?```", "", text, flags=re.S))  # code blocks are not prose
    return "\n".join(parts)


@functools.lru_cache(maxsize=None)  # read once per test run, whichever check asks first
def shakespeare_ids(n_chars=20_000):
    """The first n_chars of the training text (Tiny Shakespeare, or $GPT_DATA) as ids, and their tokenizer.

    Offline with no copy of the text, the project's own notes stand in: a real text either way, so that a
    check can tell a token's id from its position (an arange of ids could not).
    """
    try:
        text = load_text(timeout=5.0, retries=0, deadline=15.0)[:n_chars]
    except DataError:
        text = in_repo_text()[:n_chars]
    tok = CharTokenizer.from_text(text)
    return torch.tensor(tok.encode(text)), tok
