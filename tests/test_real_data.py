"""Checks on the real Tiny Shakespeare file, the numbers the README and the stage docstrings rely on.

These run only where a copy is at hand: the file named by GPT_DATA, or ../shared/data/tinyshakespeare.txt
next to the repository. They never download it; otherwise they are skipped with a note on how to run them.
"""

import hashlib
import shutil
import socket

import pytest
import torch

from data import CharTokenizer, load_text, split
from data.shakespeare import ENV_VAR, SHA256

@pytest.fixture(scope="module")
def real_path(shakespeare_path):
    """The real file (found by conftest.py: GPT_DATA if it names a file of the right size, else the shared
    copy beside the checkout); the module is skipped with a note on how to provide it when it is absent."""
    return shakespeare_path


@pytest.fixture(scope="module")
def real_text(real_path):
    return load_text(real_path)


def test_real_text_matches_the_published_checksum_and_length(real_text):
    assert hashlib.sha256(real_text.encode("utf-8")).hexdigest() == SHA256
    assert len(real_text) == 1_115_394


def test_real_text_has_65_distinct_characters(real_text):
    assert CharTokenizer.from_text(real_text).vocab_size == 65


def test_real_text_splits_into_1003854_train_and_111540_val_tokens(real_text):
    tok = CharTokenizer.from_text(real_text)
    train, val = split(torch.tensor(tok.encode(real_text)))
    assert (len(train), len(val)) == (1_003_854, 111_540)


def test_verified_cache_is_read_without_the_network(real_path, real_text, tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)  # else load_text() would read that file, not the cache
    cache = tmp_path / "tinyshakespeare.txt"
    shutil.copyfile(real_path, cache)
    # Nothing listens on this port, so any attempt to download would fail the test.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        refused_url = f"http://127.0.0.1:{s.getsockname()[1]}/input.txt"
    assert load_text(cache=cache, url=refused_url, retries=0) == real_text
