"""What every check shares: which module it checks, failures that teach, and a slice of the text.

A check fails with pytest.fail(..., pytrace=False): the learner sees one message that says what was
expected, what came out and where to look, not a stack of frames inside the check.
"""

import functools
import importlib
import os

import pytest
import torch

from data import CharTokenizer, DataError, load_text

SOLUTIONS_VAR = "GFS_SOLUTIONS"  # =1: check exercises/solutions/<name>.py instead of exercises/<name>.py


def load(name):
    """The learner's exercises/<name>.py, or its solution when GFS_SOLUTIONS=1 (what CI checks)."""
    package = "exercises.solutions" if os.environ.get(SOLUTIONS_VAR) == "1" else "exercises"
    return importlib.import_module(f"{package}.{name}")


def fail(message):
    pytest.fail(message, pytrace=False)


def expect(condition, message):
    if not condition:
        fail(message)


def same(actual, expected, what, hint="", atol=1e-5, rtol=1e-5):
    """Fail unless actual is a tensor of expected's shape and values; name the first entry that differs."""
    if not isinstance(actual, torch.Tensor):
        fail(f"{what}: expected a torch tensor, got {type(actual).__name__}. {hint}")
    if tuple(actual.shape) != tuple(expected.shape):
        fail(f"{what}: the shape is {tuple(actual.shape)}, expected {tuple(expected.shape)}. {hint}")
    a, e = actual.detach().double().cpu(), expected.detach().double().cpu()
    wrong = ~torch.isclose(a, e, atol=atol, rtol=rtol, equal_nan=False)
    if wrong.any():
        where = tuple(int(i) for i in wrong.nonzero()[0])
        fail(f"{what}: at index {list(where)} yours is {a[where].item():.6g}, expected {e[where].item():.6g} "
             f"({int(wrong.sum())} of {wrong.numel()} entries differ). {hint}")
    torch.testing.assert_close(a, e, atol=atol, rtol=rtol)  # the same comparison, as the project's tests make it


def close_to(actual, expected, atol=1e-5, rtol=1e-5):
    """Whether actual would pass same(): for telling apart the usual mistakes."""
    return (isinstance(actual, torch.Tensor) and actual.shape == expected.shape
            and torch.allclose(actual.detach().double(), expected.detach().double(), atol=atol, rtol=rtol))


@functools.lru_cache(maxsize=None)  # read and checked once per test run, whichever check asks first
def shakespeare_ids(n_chars=20_000):
    """The first n_chars of the training text (Tiny Shakespeare, or $GPT_DATA) as ids, and their tokenizer."""
    try:
        text = load_text()[:n_chars]
    except DataError as err:
        fail(f"this check trains on a slice of the text, and none was found: {err}")
    tok = CharTokenizer.from_text(text)
    return torch.tensor(tok.encode(text)), tok
