"""Shared fixtures: where the real Tiny Shakespeare is, and a small text that keeps training tests fast.

The real text is found as the scripts find it, through data.load_text (see find_shakespeare), so a
learner who followed the README runs the real-data tests too. Most tests train on `small_text`: the first
40,000 characters of it, or, where it is missing, a made-up text in the same shape, so they run everywhere
in seconds.
"""

import hashlib
import os
import random
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from data import DataError, load_text
from data.shakespeare import DEFAULT_CACHE, ENV_VAR, SHA256, SIZE, URL
from helpers import REPO_ROOT, script, tiny

SHARED_COPY = REPO_ROOT.parent / "shared/data/tinyshakespeare.txt"
SMALL_CHARS = 40_000
PROMPT = "First Citizen:"  # in both the real slice and the made-up text
# One short try at the real download: offline it fails at once, online 1.1 MB arrives well within this.
DOWNLOAD = {"timeout": 5.0, "retries": 0, "deadline": 15.0}


def find_shakespeare(cache=DEFAULT_CACHE, shared=SHARED_COPY, url=URL):
    """Find the real text as the scripts do: a namespace of its path and text (None, None when it is not at
    hand) and why_not (what each place looked at said, for the skip message; None when found).

    1. the file GPT_DATA names, when it is set: the scripts would train on it;
    2. else what load_text() does with no path and no GPT_DATA: the verified cache (data/tinyshakespeare.txt,
       where the README tells learners to save the file), or else one short try at downloading it there;
    3. else the copy in ../shared/data beside the checkout, for machines without a network.

    Each place must hold the real 1,115,394-byte text with the published checksum: GPT_DATA may name a
    learner's own text, which is fine for the scripts but not for tests that check Tiny Shakespeare's
    numbers, so then the search goes on.
    """
    env = os.environ.get(ENV_VAR)
    places = [(Path(env), f"{env} (from {ENV_VAR})", {})] if env else []  # (path, what to call it, load_text's)
    places += [(None, cache, dict(cache=cache, url=url, **DOWNLOAD)), (Path(shared), shared, {})]
    reasons = []
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv(ENV_VAR, raising=False)  # else load_text(None) would read GPT_DATA again, not the cache
        for path, where, kwargs in places:
            try:
                text = load_text(path, **kwargs)
            except DataError as err:
                reasons.append(str(err))
                continue
            if len(text) == SIZE and hashlib.sha256(text.encode("utf-8")).hexdigest() == SHA256:
                return SimpleNamespace(path=path or Path(cache), text=text, why_not=None)
            reasons.append(f"{where} is not Tiny Shakespeare ({len(text):,} characters, expected {SIZE:,})")
    return SimpleNamespace(path=None, text=None, why_not=" | ".join(reasons))


def made_up_text(n_chars):
    """Speeches in Tiny Shakespeare's layout (name, colon, newline, lines of words), seeded."""
    rng = random.Random(0)
    speakers = ["First Citizen", "Second Citizen", "MENENIUS", "MARCIUS", "All"]
    words = ("we proceed any further hear me speak you are all resolved rather to die than famish "
             "first know caius marcius is chief enemy to the people let us kill him and corn at our "
             "own price is it a verdict no more talking on away away").split()
    text = ""
    while len(text) < n_chars:
        lines = [" ".join(rng.choice(words) for _ in range(rng.randint(3, 9))) for _ in range(rng.randint(1, 4))]
        speech = f"{rng.choice(speakers)}:\n" + "\n".join(line.capitalize() + rng.choice(".,?!;") for line in lines)
        text += speech + "\n\n"
    return text[:n_chars]


@pytest.fixture
def one_thread():
    """Tiny tensors gain nothing from a second thread, and on a busy machine two threads wait on each other."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def shakespeare():
    """The real Tiny Shakespeare as find_shakespeare() reports it; looked for once per test run."""
    return find_shakespeare()


@pytest.fixture(scope="session")
def shakespeare_path(shakespeare):
    if shakespeare.path is None:
        pytest.skip(f"Tiny Shakespeare not found ({shakespeare.why_not}); set {ENV_VAR}=/path/to/input.txt "
                    f"or save it as {DEFAULT_CACHE}")
    return shakespeare.path


@pytest.fixture(scope="session")
def small_text(shakespeare):
    if shakespeare.text is not None:
        return shakespeare.text[:SMALL_CHARS]
    return made_up_text(SMALL_CHARS)


@pytest.fixture(scope="session")
def small_text_path(small_text, tmp_path_factory):
    path = tmp_path_factory.mktemp("text") / "small.txt"
    path.write_text(small_text, encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def trained(tmp_path_factory, small_text_path):
    """trained(stage): (out, the finished process) of that stage's tiny run (helpers.tiny) on `small_text`,
    prompted with PROMPT; each stage trains once per test run. Shared: copy `out` before changing it."""
    runs = {}

    def get(stage):
        if stage not in runs:
            out = tmp_path_factory.mktemp(f"trained_{stage}") / "out"
            proc = script(stage, *tiny(stage), "--prompt", PROMPT, "--data", small_text_path, "--out", out)
            assert proc.returncode == 0, proc.stderr
            runs[stage] = (out, proc)
        return runs[stage]

    return get
