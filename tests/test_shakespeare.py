"""The Tiny Shakespeare loader (data/shakespeare.py) against a real HTTP server on 127.0.0.1, and how
conftest.py finds the real text.

The server sends a few KB of made-up text instead of the real file, and each test passes that text's size
and checksum, so every failure a download can meet is provoked in about a second, without the internet.
The real text is the copy conftest.py finds as the scripts do (GPT_DATA, the cache, one short try at
downloading it, the shared copy beside the checkout); where there is none, the tests that need it are
skipped with a note on how to provide it. The last test checks that search itself, the server standing in
for GitHub. The facts of the real text that the README relies on (65 characters, the split, the bigram
floor) are pinned in test_pinned.py.
"""

import contextlib
import hashlib
import os
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from conftest import find_shakespeare

from data.shakespeare import ENV_VAR, MAX_TEXT_BYTES, SHA256, SIZE, DataError, load_text

PAYLOAD = "".join(f"{i:03d} To be, or not to be, that is the question.\n" for i in range(100)).encode()
N = len(PAYLOAD)
FAST = {"sha256": hashlib.sha256(PAYLOAD).hexdigest(), "size": N, "timeout": 2.0, "retries": 2,
        "backoff": 0.01}  # the payload's size and checksum, and short waits


# ---- the test server: each request gets the next of server.replies; the last one repeats ---------------


def ok(body, length=None):
    """200 and body, with a Content-Length of length (by default the body's), or none if length is False."""

    def reply(handler):
        handler.send_response(200)
        if length is not False:
            handler.send_header("Content-Length", str(len(body) if length is None else length))
        handler.end_headers()
        handler.wfile.write(body)

    return reply


def error(code):
    return lambda handler: handler.send_error(code)


def stall(after_bytes=None):
    """Say nothing (after_bytes=None), or send the headers and part of the body; then wait."""

    def reply(handler):
        if after_bytes is not None:
            ok(PAYLOAD[:after_bytes], length=N)(handler)
            handler.wfile.flush()
        handler.server.released.wait(10)

    return reply


def drip(handler):
    """The right headers, then the body one byte every 0.1 s: never silent long enough to time out. It
    hangs up after 3 s, so that a downloader without a deadline fails the test instead of hanging it."""
    ok(b"", length=N)(handler)
    for i in range(30):
        handler.wfile.write(PAYLOAD[i : i + 1])
        if handler.server.released.wait(0.1):
            return


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        with self.server.lock:
            self.server.requests += 1
            reply = self.server.replies[min(self.server.requests, len(self.server.replies)) - 1]
        try:
            reply(self)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client hung up first, which is what the stall tests want it to do

    def log_message(self, format, *args):
        pass  # keep the test output clean


@pytest.fixture
def server():
    """A server on 127.0.0.1; a test sets server.replies and reads server.url and server.requests."""
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}/input.txt"
    srv.replies, srv.requests, srv.lock, srv.released = [ok(PAYLOAD)], 0, threading.Lock(), threading.Event()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv
    srv.released.set()  # free any handler still stalling, so that shutdown does not wait for it
    srv.shutdown()
    srv.server_close()
    thread.join()


@pytest.fixture
def refused_url():
    """A URL on a port where nothing listens: bind to get a free port, then close it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/input.txt"


@pytest.fixture(autouse=True)
def no_gpt_data(monkeypatch):
    """A GPT_DATA set in the shell running the tests must not leak into them."""
    monkeypatch.delenv(ENV_VAR, raising=False)


# ---- every way to fail: one line, and the files as they were ---------------------------------------------

DIR, FIFO = "a directory", "a named pipe"  # what make() puts at a path, besides a file's bytes
LOCAL = {"path": "{tmp}/text.txt"}
QUICK = {"timeout": 0.5, "retries": 1}  # one retry; a stalled server is given up on after 0.5 s
CASES = {  # name: (server replies, files made in tmp, load_text's arguments, fragments of the line, requests)
    # a whole answer, but the wrong file: not tried again, as the same server would send it again
    "too-short": ([ok(PAYLOAD[:1000])], {}, {}, [f"1,000 bytes, expected {N:,}", "{url}"], [1]),
    "same-length-wrong-bytes": ([ok(PAYLOAD.replace(b"question", b"QUESTION"))], {}, {},
                                ["wrong SHA-256 checksum", "{url}"], [1]),
    # no Content-Length, and on and on (but not forever: a downloader without a size cap fails the test)
    "endless": ([ok(PAYLOAD * 100, length=False)], {}, {}, [f"longer than the expected {N:,} bytes", "{url}"], [1]),
    "404": ([error(404)], {}, {}, ["HTTP 404", "{url}"], [1]),  # asking again will not make the file appear
    # failures that may pass: tried again, then reported
    "server-error": ([error(503)], {}, QUICK, ["503", "2 tries"], [2]),
    "cut-short": ([ok(PAYLOAD[:1000], length=N)], {}, QUICK, ["could not download", "2 tries"], [2]),
    "stalled-mid-body": ([stall(after_bytes=1000)], {}, QUICK, ["timed out", "2 tries"], [2]),
    "refused": ([], {}, {"url": "{refused}"},
                ["could not download", "refused", "{tmp}/tinyshakespeare.txt", "--data PATH", ENV_VAR], [0]),
    # each byte well within the 1 s timeout, the whole body 8 s: stopped mid-body at the deadline, which
    # leaves no time for a retry
    "dripping": ([drip], {}, {"timeout": 1.0, "deadline": 1.5}, ["within 1.5 s (", "bytes received)"], [1]),
    # each try times out after 0.3 s: ten of them would take 3 s
    "deadline-over-retries": ([stall()], {}, {"timeout": 0.3, "retries": 9, "deadline": 0.8},
                              ["within 0.8 s (timed out)"], range(2, 10)),
    "damaged-cache-offline": ([], {"tinyshakespeare.txt": PAYLOAD[:-10]}, {"url": "{refused}", "retries": 0},
                              ["could not download"], [0]),  # neither returned nor deleted
    # Tests run as root, where chmod does not stop writes; a regular file can never hold a directory entry.
    # The temporary file is made first, so a cache in a file fails before the download; one that is a
    # directory fails when the download is moved onto it.
    "cache-inside-a-file": ([], {"x": b"x"}, {"cache": "{tmp}/x/tinyshakespeare.txt"},
                            ["cannot write {tmp}/x/tinyshakespeare.txt", "--data PATH"], [0]),
    "cache-is-a-directory": ([], {"x": DIR}, {"cache": "{tmp}/x"}, ["cannot write {tmp}/x (", "--data PATH"], [1]),
    # local files: --data PATH and GPT_DATA
    "empty-path": ([], {}, {"path": ""}, ["--data is empty"], [0]),
    "missing-gpt-data": ([], {}, {"env": "{tmp}/nope.txt"}, ["{tmp}/nope.txt (from GPT_DATA) does not exist"], [0]),
    "directory": ([], {"text.txt": DIR}, LOCAL, ["{tmp}/text.txt is a directory"], [0]),
    "empty": ([], {"text.txt": b""}, LOCAL, ["{tmp}/text.txt is empty"], [0]),
    "not-utf8": ([], {"text.txt": b"caf\xe9 au lait\n"}, LOCAL, ["{tmp}/text.txt is not UTF-8 text (at byte 3)"], [0]),
    "too-short-text": ([], {"text.txt": b"0123456789"}, {**LOCAL, "min_chars": 11},
                       ["{tmp}/text.txt has 10 characters, needs 11; pass a longer text or a smaller --block-size"],
                       [0]),
    "over-max-bytes": ([], {"text.txt": b"x" * 101}, {**LOCAL, "max_bytes": 100},
                       ["{tmp}/text.txt is over MAX_TEXT_BYTES (100 bytes)"], [0]),
    # opened, a named pipe waits for a writer, maybe forever; a device such as /dev/zero never ends
    "named-pipe": ([], {"text.txt": FIFO}, LOCAL, ["{tmp}/text.txt is a named pipe"], [0]),
    "device": ([], {}, {"env": os.devnull}, [f"{os.devnull} (from {ENV_VAR}) is a named pipe, a device or a socket"],
               [0]),
}


def make(path, content):
    """Put content at path: bytes make a file, DIR a directory, FIFO a named pipe."""
    if content is DIR:
        path.mkdir()
    elif content is FIFO:
        if not hasattr(os, "mkfifo"):
            pytest.skip("named pipes need a POSIX system")
        os.mkfifo(path)
    else:
        path.write_bytes(content)


def unblock(pipe, opened):
    """Open the writing end of pipe, which succeeds only while a reader has it open: the loader, which should
    never open a named pipe. Its open then returns, so the test fails (opened) instead of hanging."""
    if pipe.is_fifo():
        with contextlib.suppress(OSError):  # no reader: ENXIO, the loader did right
            os.close(os.open(pipe, os.O_WRONLY | os.O_NONBLOCK))
            opened.append(pipe)


def snapshot(folder):
    """What folder holds: each name, with a file's bytes (None for anything else, which is never opened)."""
    return {p.name: p.read_bytes() if p.is_file() else None for p in folder.iterdir()}


@pytest.mark.parametrize("name", CASES)
def test_every_unusable_text_and_failed_download_is_one_line_that_leaves_the_files_as_they_were(
        name, server, refused_url, tmp_path, monkeypatch):
    replies, files, args, fragments, requests = CASES[name]
    for file, content in files.items():
        make(tmp_path / file, content)
    before = snapshot(tmp_path)
    places = dict(tmp=tmp_path, url=server.url, refused=refused_url)
    args = {**FAST, "cache": "{tmp}/tinyshakespeare.txt", "url": "{url}", **args}
    args = {k: v.format(**places) if isinstance(v, str) else v for k, v in args.items()}
    if "env" in args:
        monkeypatch.setenv(ENV_VAR, args.pop("env"))
    server.replies = replies or server.replies
    opened = []
    watchdog = threading.Timer(2.0, unblock, [tmp_path / "text.txt", opened])
    watchdog.start()
    try:
        with pytest.raises(DataError) as excinfo:
            load_text(**args)
    finally:
        watchdog.cancel()
    line = str(excinfo.value)
    assert "\n" not in line  # one line, which the scripts print without a traceback
    for fragment in fragments:
        assert fragment.format(**places) in line
    assert server.requests in requests and not opened
    assert snapshot(tmp_path) == before  # no temporary file left, no cache written, the user's file untouched


# ---- downloads and local files that work -------------------------------------------------------------


@pytest.mark.parametrize("damaged, why", [
    (None, None),
    (PAYLOAD[:-10], f"{N - 10:,} bytes, expected {N:,}"),
    (PAYLOAD.replace(b"be,", b"BE,"), "wrong SHA-256 checksum"),
], ids=["no-cache", "truncated", "same-length-wrong-bytes"])
def test_missing_or_damaged_cache_is_downloaded_again_and_a_damaged_one_is_reported(server, tmp_path, capsys, damaged,
                                                                                    why):
    server.replies = [error(500), error(500), ok(PAYLOAD)]  # server errors are tried again
    cache = tmp_path / "tinyshakespeare.txt"
    (tmp_path / "tinyshakespeare.txt.tmp").write_bytes(PAYLOAD[:1000])  # as a download killed outright leaves it
    if damaged:
        cache.write_bytes(damaged)
    assert load_text(cache=cache, url=server.url, **FAST) == PAYLOAD.decode()
    assert cache.read_bytes() == PAYLOAD  # the exact bytes
    assert os.listdir(tmp_path) == ["tinyshakespeare.txt"]  # the temporary file was the download's, and is gone
    warning = capsys.readouterr().err.splitlines()  # one line, for a damaged cache only
    assert [line.split(";")[0] for line in warning] == ([f"{cache} is damaged ({why})"] if damaged else [])

    assert load_text(cache=cache, url=server.url, **FAST) == PAYLOAD.decode()  # now from the cache
    assert server.requests == 3


def test_a_path_is_read_byte_for_byte_at_both_limits_and_wins_over_gpt_data_which_wins_over_the_cache(
        tmp_path, monkeypatch, refused_url):
    poem = "Shall I compare thee\r\nto a café?\n"  # read as it is: no newline translation, UTF-8
    (tmp_path / "poem.txt").write_text(poem, encoding="utf-8", newline="")
    (tmp_path / "env.txt").write_text("from the environment\n")
    cache = tmp_path / "tinyshakespeare.txt"
    cache.write_bytes(PAYLOAD)
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "env.txt"))
    assert load_text(tmp_path / "poem.txt", min_chars=len(poem), max_bytes=len(poem.encode())) == poem
    assert load_text(cache=cache, url=refused_url, **FAST) == "from the environment\n"
    monkeypatch.setenv(ENV_VAR, "")  # set but empty counts as unset
    assert load_text(cache=cache, url=refused_url, **FAST) == PAYLOAD.decode()


def test_the_loader_expects_the_published_text_and_reads_at_most_64_mib():
    # A wrong size or checksum would not fail the tests of the real text: conftest.py would find no copy
    # that matches, and they would be skipped.
    assert (SIZE, SHA256) == (1_115_394, "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed")
    assert MAX_TEXT_BYTES == 64 * 1024 * 1024  # the documented default, about 60 times Tiny Shakespeare


# ---- how conftest.py finds the real text -----------------------------------------------------------------


def test_finder_takes_gpt_data_the_cache_a_download_or_the_shared_copy_only_if_it_is_tiny_shakespeare(
        shakespeare_path, server, refused_url, tmp_path, monkeypatch):
    real = shakespeare_path.read_bytes()
    server.replies = [ok(real)]
    own = tmp_path / "my-poems.txt"
    own.write_text("Roses are red,\nviolets are blue.\n")
    monkeypatch.setenv(ENV_VAR, str(own))  # fine for training, wrong for tests of Tiny Shakespeare's numbers
    cache, nowhere = tmp_path / "tinyshakespeare.txt", tmp_path / "no-shared-copy.txt"
    missing = find_shakespeare(cache=cache, shared=nowhere, url=refused_url)
    assert missing.path is None and "my-poems.txt (from GPT_DATA) is not Tiny Shakespeare" in missing.why_not
    assert "could not download" in missing.why_not and "no-shared-copy.txt does not exist" in missing.why_not
    assert find_shakespeare(cache=cache, shared=shakespeare_path, url=refused_url).path == shakespeare_path

    found = find_shakespeare(cache=cache, shared=nowhere, url=server.url)
    assert found.path == cache and found.text == real.decode()
    assert cache.read_bytes() == real  # saved, as the scripts would save it
    assert find_shakespeare(cache=cache, shared=shakespeare_path, url=refused_url).path == cache  # before the copy
