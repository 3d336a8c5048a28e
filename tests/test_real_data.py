"""Checks on the real Tiny Shakespeare file, the numbers the README and the stage docstrings rely on.

conftest.py finds the file as the scripts do (GPT_DATA, the cache data/tinyshakespeare.txt, one short try
at downloading it, then the shared copy beside the checkout); where none of them has it these tests are
skipped with a note on how to provide it. The last tests check that search itself, serving the real file
from a local HTTP server instead of GitHub.
"""

import functools
import hashlib
import shutil
import socket
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch
from conftest import find_shakespeare

from data import CharTokenizer, load_text, split
from data.shakespeare import ENV_VAR, SHA256


@pytest.fixture(scope="module")
def real_path(shakespeare_path):
    """The real file, found by conftest.py; the module is skipped with a note when it is absent."""
    return shakespeare_path


@pytest.fixture(scope="module")
def real_text(real_path):
    return load_text(real_path)


@pytest.fixture
def refused_url():
    """A URL on a port where nothing listens, so any attempt to download fails at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/input.txt"


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


@pytest.fixture
def served_url(real_path):
    """The real file served over HTTP on 127.0.0.1, standing in for GitHub."""
    handler = functools.partial(QuietHandler, directory=str(real_path.parent))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/{real_path.name}"
    server.shutdown()
    server.server_close()
    thread.join()


def test_real_text_matches_the_published_checksum_and_length(real_text):
    assert hashlib.sha256(real_text.encode("utf-8")).hexdigest() == SHA256
    assert len(real_text) == 1_115_394


def test_real_text_has_65_distinct_characters(real_text):
    assert CharTokenizer.from_text(real_text).vocab_size == 65


def test_real_text_splits_into_1003854_train_and_111540_val_tokens(real_text):
    tok = CharTokenizer.from_text(real_text)
    train, val = split(torch.tensor(tok.encode(real_text)))
    assert (len(train), len(val)) == (1_003_854, 111_540)


def test_verified_cache_is_read_without_the_network(real_path, real_text, tmp_path, monkeypatch, refused_url):
    monkeypatch.delenv(ENV_VAR, raising=False)  # else load_text() would read that file, not the cache
    cache = tmp_path / "tinyshakespeare.txt"
    shutil.copyfile(real_path, cache)
    assert load_text(cache=cache, url=refused_url, retries=0) == real_text


# ---- how conftest.py finds the text ---------------------------------------------------------------------


def test_finder_downloads_into_the_cache_when_nothing_else_has_the_text(real_text, served_url, tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    cache = tmp_path / "tinyshakespeare.txt"
    found = find_shakespeare(cache=cache, shared=tmp_path / "no-shared-copy.txt", url=served_url)
    assert found.path == cache and found.text == real_text
    assert cache.read_text(encoding="utf-8") == real_text  # saved, as the scripts would save it


def test_finder_reads_the_cache_before_trying_the_network_or_the_shared_copy(real_path, tmp_path, monkeypatch,
                                                                             refused_url):
    monkeypatch.delenv(ENV_VAR, raising=False)
    cache = tmp_path / "tinyshakespeare.txt"
    shutil.copyfile(real_path, cache)
    assert find_shakespeare(cache=cache, shared=real_path, url=refused_url).path == cache


def test_finder_passes_over_a_gpt_data_text_that_is_not_shakespeare(real_path, tmp_path, monkeypatch, refused_url):
    own = tmp_path / "my-poems.txt"
    own.write_text("Roses are red,\nviolets are blue.\n")
    monkeypatch.setenv(ENV_VAR, str(own))  # fine for training, wrong for tests of Tiny Shakespeare's numbers
    cache = tmp_path / "no-cache.txt"
    assert find_shakespeare(cache=cache, shared=real_path, url=refused_url).path == real_path  # offline: shared copy

    missing = find_shakespeare(cache=cache, shared=tmp_path / "no-shared-copy.txt", url=refused_url)
    assert missing.path is None
    assert "my-poems.txt (from GPT_DATA) is not Tiny Shakespeare" in missing.why_not
    assert "could not download" in missing.why_not and "no-shared-copy.txt does not exist" in missing.why_not
