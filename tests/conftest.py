"""Shared fixtures: where the real Tiny Shakespeare is, and a small text that keeps training tests fast.

The real file is used where it is at hand (GPT_DATA, or ../shared/data/tinyshakespeare.txt next to the
repository), never downloaded. Most tests train on `small_text`: the first 40,000 characters of it, or,
where it is missing, a made-up text in the same shape, so they run everywhere in seconds.
"""

import os
import random
from pathlib import Path

import pytest

from data.shakespeare import ENV_VAR, SIZE

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_COPY = Path(__file__).resolve().parents[2] / "shared/data/tinyshakespeare.txt"
SMALL_CHARS = 40_000
PROMPT = "First Citizen:"  # in both the real slice and the made-up text


def find_shakespeare():
    """The real file if it is here: GPT_DATA when that names a file of the right size, else the shared copy."""
    candidates = [Path(os.environ[ENV_VAR])] if os.environ.get(ENV_VAR) else []
    candidates.append(SHARED_COPY)
    for path in candidates:
        if path.is_file() and path.stat().st_size == SIZE:
            return path
    return None


def made_up_text(n_chars):
    """Speeches in Tiny Shakespeare's layout (name, colon, newline, lines of words), seeded."""
    rng = random.Random(0)
    speakers = ["First Citizen", "Second Citizen", "MENENIUS", "MARCIUS", "All"]
    words = ("we proceed any further hear me speak you are all resolved rather to die than famish "
             "first know caius marcius is chief enemy to the people let us kill him and corn at our "
             "own price is it a verdict no more talking on away away").split()
    parts, length = [], 0
    while length < n_chars:
        lines = [" ".join(rng.choice(words) for _ in range(rng.randint(3, 9))) for _ in range(rng.randint(1, 4))]
        speech = f"{rng.choice(speakers)}:\n" + "\n".join(line.capitalize() + rng.choice(".,?!;") for line in lines)
        parts.append(speech + "\n\n")
        length += len(parts[-1])
    return "".join(parts)[:n_chars]


@pytest.fixture(scope="session")
def prompt():
    """A prompt every character of which is in `small_text`'s vocabulary."""
    return PROMPT


@pytest.fixture(scope="session")
def shakespeare_path():
    path = find_shakespeare()
    if path is None:
        pytest.skip(f"Tiny Shakespeare not found; set {ENV_VAR}=/path/to/input.txt or put it at {SHARED_COPY}")
    return path


@pytest.fixture(scope="session")
def small_text():
    path = find_shakespeare()
    if path is not None:
        return path.read_text(encoding="utf-8")[:SMALL_CHARS]
    return made_up_text(SMALL_CHARS)


@pytest.fixture(scope="session")
def small_text_path(small_text, tmp_path_factory):
    path = tmp_path_factory.mktemp("text") / "small.txt"
    path.write_text(small_text, encoding="utf-8")
    return path
