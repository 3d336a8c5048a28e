"""The Tiny Shakespeare loader (data/shakespeare.py): local files, the cache, and the download, tested
against a real HTTP server on 127.0.0.1.

The server sends a few KB of made-up text instead of the real file, and each test passes that text's size
and checksum, so every failure a download can meet is provoked in about a second, without the internet.
"""

import hashlib
import os
import socket
import stat
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from data.shakespeare import ENV_VAR, MAX_TEXT_BYTES, DataError, load_text

PAYLOAD = "".join(f"{i:03d} To be, or not to be, that is the question.\n" for i in range(100)).encode()
FAST = {"sha256": hashlib.sha256(PAYLOAD).hexdigest(), "size": len(PAYLOAD), "timeout": 2.0, "retries": 2,
        "backoff": 0.01}  # the payload's size and checksum, and short waits


# ---- the test server: each request gets the next of server.replies; the last one repeats ---------------


def ok(body, content_length=None):
    def reply(handler):
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(body) if content_length is None else content_length))
        handler.end_headers()
        handler.wfile.write(body)

    return reply


def error(code):
    return lambda handler: handler.send_error(code)


def endless(handler):
    """A body with no Content-Length that goes on and on (it stops after 100 payloads, so that a
    downloader without a size cap fails the test instead of filling the disk)."""
    handler.send_response(200)
    handler.end_headers()
    for _ in range(100):
        handler.wfile.write(PAYLOAD)


def stall(after_bytes=None):
    """Say nothing (after_bytes=None), or send the headers and part of the body; then wait."""

    def reply(handler):
        if after_bytes is not None:
            ok(PAYLOAD[:after_bytes], content_length=len(PAYLOAD))(handler)
            handler.wfile.flush()
        handler.server.released.wait(10)

    return reply


def drip(handler):
    """The right headers, then the body one byte every 0.1 s: never silent long enough to time out. It
    hangs up after 3 s, so that a downloader without a deadline fails the test instead of hanging it."""
    handler.send_response(200)
    handler.send_header("Content-Length", str(len(PAYLOAD)))
    handler.end_headers()
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


def error_of(**kwargs):
    """The DataError load_text raises, as text; it must be one line, printed without a traceback."""
    with pytest.raises(DataError) as excinfo:
        load_text(**kwargs)
    assert "\n" not in str(excinfo.value)
    return str(excinfo.value)


# ---- downloads ---------------------------------------------------------------------------------------


def test_download_saves_the_exact_bytes_and_the_next_load_reads_them_without_a_request(server, tmp_path):
    cache = tmp_path / "tinyshakespeare.txt"
    assert load_text(cache=cache, url=server.url, **FAST) == PAYLOAD.decode()
    assert cache.read_bytes() == PAYLOAD
    assert os.listdir(tmp_path) == ["tinyshakespeare.txt"]  # no temporary file left beside it

    assert load_text(cache=cache, url=server.url, **FAST) == PAYLOAD.decode()
    assert server.requests == 1


@pytest.mark.parametrize("reply, expected", [
    (ok(PAYLOAD[:1000]), f"1,000 bytes, expected {len(PAYLOAD):,}"),
    (ok(PAYLOAD.replace(b"question", b"QUESTION")), "wrong SHA-256 checksum"),
    (ok(PAYLOAD + PAYLOAD), f"longer than the expected {len(PAYLOAD):,} bytes"),
    (endless, f"longer than the expected {len(PAYLOAD):,} bytes"),
], ids=["too-short", "same-length-wrong-bytes", "too-long", "endless"])
def test_wrong_file_is_refused_without_a_retry_and_leaves_nothing(server, tmp_path, reply, expected):
    server.replies = [reply]
    text = error_of(cache=tmp_path / "tinyshakespeare.txt", url=server.url, **FAST)
    assert expected in text and server.url in text
    assert server.requests == 1  # the same server would send the same wrong file again
    assert os.listdir(tmp_path) == []


def test_404_is_not_retried(server, tmp_path):
    server.replies = [error(404)]
    text = error_of(cache=tmp_path / "tinyshakespeare.txt", url=server.url, **FAST)
    assert "HTTP 404" in text and server.url in text
    assert server.requests == 1  # asking again will not make a missing file appear
    assert os.listdir(tmp_path) == []


def test_server_errors_are_retried_until_the_download_succeeds(server, tmp_path):
    server.replies = [error(500), error(500), ok(PAYLOAD)]
    assert load_text(cache=tmp_path / "tinyshakespeare.txt", url=server.url, **FAST) == PAYLOAD.decode()
    assert server.requests == 3


@pytest.mark.parametrize("reply, expected", [
    (error(503), "503"),
    (ok(PAYLOAD[:1000], content_length=len(PAYLOAD)), "could not download"),  # hung up mid-body
    (stall(), "timed out"),
    (stall(after_bytes=1000), "timed out"),
], ids=["server-error", "cut-short", "stalled-before-headers", "stalled-mid-body"])
def test_failures_that_may_pass_are_retried_then_reported(server, tmp_path, reply, expected):
    server.replies = [reply]
    text = error_of(cache=tmp_path / "tinyshakespeare.txt", url=server.url, **{**FAST, "timeout": 0.5, "retries": 1})
    assert expected in text and "2 tries" in text
    assert server.requests == 2  # the first try and one retry
    assert os.listdir(tmp_path) == []


def test_refused_connection_says_what_to_do_offline(refused_url, tmp_path):
    cache = tmp_path / "tinyshakespeare.txt"
    text = error_of(cache=cache, url=refused_url, **FAST)
    assert "could not download" in text and "refused" in text
    assert str(cache) in text and "--data PATH" in text and ENV_VAR in text
    assert os.listdir(tmp_path) == []


def test_server_dripping_bytes_is_stopped_at_the_deadline(server, tmp_path):
    server.replies = [drip]  # each byte well within the 1 s timeout; the whole body would take 8 s
    text = error_of(cache=tmp_path / "tinyshakespeare.txt", url=server.url, **{**FAST, "timeout": 1.0, "deadline": 1.5})
    assert "within 1.5 s (" in text and "bytes received)" in text  # stopped mid-body, not when the server hung up
    assert server.requests == 1  # the deadline covers retries too: no time is left for one
    assert os.listdir(tmp_path) == []


def test_deadline_covers_all_retries_together(server, tmp_path):
    server.replies = [stall()]  # each try times out after 0.3 s; ten of them would take 3 s
    text = error_of(cache=tmp_path / "tinyshakespeare.txt", url=server.url,
                    **{**FAST, "timeout": 0.3, "retries": 9, "deadline": 0.8})
    assert "within 0.8 s (timed out)" in text
    assert 2 <= server.requests < 10


@pytest.mark.parametrize("damaged, why", [
    (PAYLOAD[:-10], f"{len(PAYLOAD) - 10:,} bytes, expected {len(PAYLOAD):,}"),
    (PAYLOAD.replace(b"be,", b"BE,"), "wrong SHA-256 checksum"),
], ids=["truncated", "same-length-wrong-bytes"])
def test_damaged_cache_is_reported_and_downloaded_again(server, tmp_path, capsys, damaged, why):
    cache = tmp_path / "tinyshakespeare.txt"
    cache.write_bytes(damaged)
    assert load_text(cache=cache, url=server.url, **FAST) == PAYLOAD.decode()
    assert cache.read_bytes() == PAYLOAD
    assert server.requests == 1
    warning = capsys.readouterr().err
    assert warning.count("\n") == 1 and f"{cache} is damaged ({why})" in warning


def test_damaged_cache_is_neither_returned_nor_deleted_when_offline(refused_url, tmp_path):
    cache = tmp_path / "tinyshakespeare.txt"
    cache.write_bytes(PAYLOAD[:-10])
    assert "could not download" in error_of(cache=cache, url=refused_url, **{**FAST, "retries": 0})
    assert cache.read_bytes() == PAYLOAD[:-10]  # the user's file is left alone
    assert os.listdir(tmp_path) == ["tinyshakespeare.txt"]


@pytest.mark.parametrize("where", ["inside-a-file", "is-a-directory"])
def test_cache_that_cannot_be_written_is_a_data_error_and_leaves_nothing(server, tmp_path, where):
    # Tests run as root, where chmod does not stop writes; a regular file can never hold a directory entry.
    if where == "inside-a-file":
        (tmp_path / "x").write_text("x")
        cache = tmp_path / "x" / "tinyshakespeare.txt"
    else:
        (tmp_path / "x").mkdir()
        cache = tmp_path / "x"
    text = error_of(cache=cache, url=server.url, **FAST)
    assert f"cannot write {cache}" in text and "--data PATH" in text
    assert server.requests == (0 if where == "inside-a-file" else 1)  # the temporary file is made first
    assert os.listdir(tmp_path) == ["x"]


def test_temp_file_of_a_killed_download_is_replaced_by_the_next_download(server, tmp_path):
    cache = tmp_path / "tinyshakespeare.txt"
    (tmp_path / "tinyshakespeare.txt.tmp").write_bytes(PAYLOAD[:1000])  # as SIGKILL leaves it
    assert load_text(cache=cache, url=server.url, **FAST) == PAYLOAD.decode()
    assert os.listdir(tmp_path) == ["tinyshakespeare.txt"]


# ---- local files: --data PATH and GPT_DATA ---------------------------------------------------------------


def test_local_text_of_any_kind_is_returned_byte_for_byte(tmp_path, refused_url):
    path = tmp_path / "poem.txt"
    path.write_text("Shall I compare thee\r\nto a café?\n", encoding="utf-8", newline="")
    assert load_text(path, url=refused_url) == "Shall I compare thee\r\nto a café?\n"


def test_a_path_wins_over_gpt_data_which_wins_over_the_cache(tmp_path, monkeypatch, refused_url):
    (tmp_path / "env.txt").write_text("from the environment\n")
    (tmp_path / "arg.txt").write_text("from the argument\n")
    cache = tmp_path / "tinyshakespeare.txt"
    cache.write_bytes(PAYLOAD)
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "env.txt"))
    assert load_text(tmp_path / "arg.txt") == "from the argument\n"
    assert load_text(cache=cache, url=refused_url, **FAST) == "from the environment\n"
    monkeypatch.setenv(ENV_VAR, "")  # set but empty counts as unset
    assert load_text(cache=cache, url=refused_url, **FAST) == PAYLOAD.decode()


def test_bad_gpt_data_path_names_the_variable(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "nope.txt"))
    text = error_of()
    assert f"{tmp_path / 'nope.txt'} (from {ENV_VAR}) does not exist" in text


@pytest.mark.parametrize("content, min_chars, expected", [
    (b"", 2, "is empty"),
    (b"caf\xe9 au lait\n", 2, "not UTF-8 text (at byte 3)"),
    (b"0123456789", 11, "has 10 characters, needs 11; pass a longer text or a smaller --block-size"),
    (None, 2, "does not exist"),
    ("dir", 2, "is a directory"),
], ids=["empty", "not-utf8", "too-short", "missing", "directory"])
def test_unusable_local_file_is_named_in_a_one_line_error(tmp_path, content, min_chars, expected):
    path = tmp_path / "text.txt"
    if content == "dir":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    text = error_of(path=path, min_chars=min_chars)
    assert str(path) in text and expected in text


def test_a_text_of_exactly_min_chars_is_enough(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text("0123456789")
    assert load_text(path, min_chars=10) == "0123456789"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes need a POSIX system")
def test_named_pipe_is_refused_without_being_opened(tmp_path):
    fifo = tmp_path / "text.fifo"
    os.mkfifo(fifo)

    def unblock():
        # Only if the loader wrongly opened the pipe: a writer arriving lets that open return, so the
        # test fails instead of hanging. With no reader, the open fails at once (ENXIO) and we stop.
        try:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass

    watchdog = threading.Timer(2.0, unblock)
    watchdog.start()
    try:
        text = error_of(path=fifo)
    finally:
        watchdog.cancel()
    assert f"{fifo} is a named pipe" in text


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
def test_endless_device_is_refused_instead_of_read(device, monkeypatch):
    if not os.path.exists(device) or not stat.S_ISCHR(os.stat(device).st_mode):
        pytest.skip(f"{device} is not a character device here")
    monkeypatch.setenv(ENV_VAR, device)
    assert f"{device} (from {ENV_VAR}) is a named pipe, a device or a socket, not a text file" in error_of()


def test_text_over_max_bytes_is_refused_and_one_at_the_limit_is_read(tmp_path):
    path = tmp_path / "big.txt"
    path.write_text("x" * 101)
    assert f"{path} is over MAX_TEXT_BYTES (100 bytes)" in error_of(path=path, max_bytes=100)
    assert load_text(path, max_bytes=101) == "x" * 101
    assert MAX_TEXT_BYTES == 64 * 1024 * 1024  # the documented default, about 60 times Tiny Shakespeare
