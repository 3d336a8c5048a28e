"""The Tiny Shakespeare loader and downloader, tested against a real HTTP server on 127.0.0.1.

The server serves a few KB of made-up text instead of the real file, and each test passes that text's
size and checksum, so every failure a download can meet is provoked in well under a second and the
internet is never touched.
"""

import collections
import hashlib
import os
import socket
import stat
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from data import shakespeare
from data.atomic import TEMP_PREFIX
from data.shakespeare import ENV_VAR, MAX_TEXT_BYTES, DataError, download, load_text

PAYLOAD = "".join(f"{i:03d} To be, or not to be, that is the question.\n" for i in range(100)).encode()
PAYLOAD_SHA256 = hashlib.sha256(PAYLOAD).hexdigest()
STALL_SECONDS = 10  # far longer than any timeout below; the fixture releases stalled handlers at teardown


# ---- the test server ---------------------------------------------------------------------------------
# Each path maps to a list of responders used in turn, one per request; the last one repeats. That is how
# a test says "fail twice, then succeed".


def ok(body, content_length=None):
    def respond(handler, site):
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(body) if content_length is None else content_length))
        handler.end_headers()
        handler.wfile.write(body)

    return respond


def error(code):
    def respond(handler, site):
        handler.send_error(code)

    return respond


def stall(after_bytes=None):
    """Say nothing (after_bytes=None), or send headers and part of the body, then wait."""

    def respond(handler, site):
        if after_bytes is not None:
            handler.send_response(200)
            handler.send_header("Content-Length", str(len(PAYLOAD)))
            handler.end_headers()
            handler.wfile.write(PAYLOAD[:after_bytes])
            handler.wfile.flush()
        site.release.wait(STALL_SECONDS)

    return respond


def endless():
    """A body with no Content-Length that never ends: the payload over and over, until the client hangs up."""

    def respond(handler, site):
        handler.send_response(200)
        handler.end_headers()
        while not site.release.is_set():
            handler.wfile.write(PAYLOAD)

    return respond


def drip(every, for_seconds=3.0):
    """The right headers, then the body one byte every `every` seconds: never silent long enough to time out.

    After for_seconds it hangs up, so that a downloader without a deadline fails the test instead of
    hanging it for the minutes the whole payload would take.
    """

    def respond(handler, site):
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(PAYLOAD)))
        handler.end_headers()
        for i in range(int(for_seconds / every)):
            handler.wfile.write(PAYLOAD[i : i + 1])
            if site.release.wait(every):
                return

    return respond


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        site = self.server.site
        with site.lock:
            site.requests[self.path] += 1
            n = site.requests[self.path]
        responders = site.routes[self.path]
        try:
            responders[min(n, len(responders)) - 1](self, site)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client hung up first, which is what the stall tests want it to do

    def log_message(self, format, *args):
        pass  # keep the test output clean


class Site:
    def __init__(self, base):
        self.base = base
        self.routes = {}
        self.requests = collections.Counter()
        self.lock = threading.Lock()
        self.release = threading.Event()

    def url(self, path):
        return self.base + path


@pytest.fixture
def site():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.site = Site(f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server.site
    server.site.release.set()  # free any handler still stalling, so shutdown does not wait on it
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def refused_url():
    """A URL on a port where nothing listens: bind to get a free port, then close it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/input.txt"


@pytest.fixture(autouse=True)
def no_gpt_data(monkeypatch):
    """A GPT_DATA set in the shell running the tests must not leak into them."""
    monkeypatch.delenv(ENV_VAR, raising=False)


def fast(**overrides):
    """Arguments that make load_text/download quick: the payload's size and checksum, short waits."""
    return {"sha256": PAYLOAD_SHA256, "size": len(PAYLOAD), "timeout": 2.0, "retries": 2, "backoff": 0.01, **overrides}


def message(excinfo):
    text = str(excinfo.value)
    assert "\n" not in text, "a DataError message is one line, printed without a traceback"
    return text


def assert_left_nothing(directory):
    assert sorted(os.listdir(directory)) == []


class CountingBar:
    """Stands in for tqdm and adds up the bytes the downloader took in."""

    received = 0

    def __init__(self, *args, **kwargs):
        pass

    @classmethod
    def install(cls, monkeypatch):
        monkeypatch.setattr(shakespeare, "tqdm", cls)
        monkeypatch.setattr(cls, "received", 0)
        return cls

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def update(self, n):
        CountingBar.received += n
        # A downloader that does not stop would fill the disk; end the test long before that.
        assert CountingBar.received < 100 * len(PAYLOAD), "the download did not stop"


# ---- downloads ---------------------------------------------------------------------------------------


def test_download_saves_exact_bytes_and_second_load_makes_no_request(site, tmp_path):
    site.routes["/input.txt"] = [ok(PAYLOAD)]
    cache = tmp_path / "tinyshakespeare.txt"

    assert load_text(cache=cache, url=site.url("/input.txt"), **fast()) == PAYLOAD.decode()
    assert cache.read_bytes() == PAYLOAD
    assert os.listdir(tmp_path) == ["tinyshakespeare.txt"]  # no temp file left beside it

    assert load_text(cache=cache, url=site.url("/input.txt"), **fast()) == PAYLOAD.decode()
    assert site.requests["/input.txt"] == 1


def test_download_returns_the_destination_path(site, tmp_path):
    site.routes["/input.txt"] = [ok(PAYLOAD)]
    dest = tmp_path / "out.txt"
    assert download(site.url("/input.txt"), dest, sha256=PAYLOAD_SHA256, size=len(PAYLOAD)) == dest


def test_connection_closed_before_content_length_raises_and_leaves_nothing(site, tmp_path):
    site.routes["/input.txt"] = [ok(PAYLOAD[:1000], content_length=len(PAYLOAD))]
    with pytest.raises(DataError) as excinfo:
        load_text(cache=tmp_path / "tinyshakespeare.txt", url=site.url("/input.txt"), **fast())
    assert "could not download" in message(excinfo)
    assert_left_nothing(tmp_path)


def test_truncated_file_fails_the_size_check_and_leaves_nothing(site, tmp_path):
    site.routes["/input.txt"] = [ok(PAYLOAD[:1000])]  # a complete answer, but of the wrong file
    with pytest.raises(DataError) as excinfo:
        load_text(cache=tmp_path / "tinyshakespeare.txt", url=site.url("/input.txt"), **fast())
    assert f"1,000 bytes, expected {len(PAYLOAD):,}" in message(excinfo)
    assert site.requests["/input.txt"] == 1  # the same server would send the same wrong file again
    assert_left_nothing(tmp_path)


def test_right_length_but_wrong_bytes_fails_the_checksum_and_leaves_nothing(site, tmp_path):
    site.routes["/input.txt"] = [ok(PAYLOAD.replace(b"question", b"QUESTION"))]
    with pytest.raises(DataError) as excinfo:
        load_text(cache=tmp_path / "tinyshakespeare.txt", url=site.url("/input.txt"), **fast())
    assert "checksum" in message(excinfo)
    assert_left_nothing(tmp_path)


def test_404_is_not_retried_and_leaves_nothing(site, tmp_path):
    site.routes["/missing.txt"] = [error(404)]
    with pytest.raises(DataError) as excinfo:
        load_text(cache=tmp_path / "tinyshakespeare.txt", url=site.url("/missing.txt"), **fast(retries=3))
    text = message(excinfo)
    assert "404" in text and site.url("/missing.txt") in text
    assert site.requests["/missing.txt"] == 1
    assert_left_nothing(tmp_path)


def test_server_errors_are_retried_until_the_download_succeeds(site, tmp_path):
    site.routes["/input.txt"] = [error(500), error(500), ok(PAYLOAD)]
    cache = tmp_path / "tinyshakespeare.txt"
    assert load_text(cache=cache, url=site.url("/input.txt"), **fast(retries=2)) == PAYLOAD.decode()
    assert site.requests["/input.txt"] == 3
    assert cache.read_bytes() == PAYLOAD


def test_server_errors_give_up_after_the_last_retry(site, tmp_path):
    site.routes["/input.txt"] = [error(503)]
    with pytest.raises(DataError) as excinfo:
        load_text(cache=tmp_path / "tinyshakespeare.txt", url=site.url("/input.txt"), **fast(retries=2))
    assert "503" in message(excinfo)
    assert site.requests["/input.txt"] == 3  # the first try and two retries
    assert_left_nothing(tmp_path)


@pytest.mark.parametrize("after_bytes", [None, 1000], ids=["before-headers", "mid-body"])
def test_stalled_server_times_out_and_leaves_nothing(site, tmp_path, after_bytes):
    site.routes["/input.txt"] = [stall(after_bytes)]
    with pytest.raises(DataError) as excinfo:
        load_text(cache=tmp_path / "tinyshakespeare.txt", url=site.url("/input.txt"), **fast(timeout=0.5, retries=1))
    assert "timed out" in message(excinfo)
    assert site.requests["/input.txt"] == 2
    assert_left_nothing(tmp_path)


def test_refused_connection_says_where_to_put_the_file_and_leaves_nothing(refused_url, tmp_path):
    cache = tmp_path / "tinyshakespeare.txt"
    with pytest.raises(DataError) as excinfo:
        load_text(cache=cache, url=refused_url, **fast(retries=1))
    text = message(excinfo)
    assert "could not download" in text and "refused" in text
    assert str(cache) in text and "--data PATH" in text and ENV_VAR in text
    assert_left_nothing(tmp_path)


@pytest.mark.parametrize(
    "damaged",
    [PAYLOAD[:-10], PAYLOAD.replace(b"be,", b"BE,")],
    ids=["truncated", "same-length-wrong-bytes"],
)
def test_damaged_cache_is_reported_and_replaced_by_a_fresh_download(site, tmp_path, capsys, damaged):
    site.routes["/input.txt"] = [ok(PAYLOAD)]
    cache = tmp_path / "tinyshakespeare.txt"
    cache.write_bytes(damaged)

    assert load_text(cache=cache, url=site.url("/input.txt"), **fast()) == PAYLOAD.decode()
    assert cache.read_bytes() == PAYLOAD
    assert site.requests["/input.txt"] == 1
    warning = capsys.readouterr().err
    assert warning.count("\n") == 1 and "damaged" in warning and str(cache) in warning


def test_damaged_cache_is_never_returned_when_offline(refused_url, tmp_path, capsys):
    cache = tmp_path / "tinyshakespeare.txt"
    cache.write_bytes(PAYLOAD[:-10])
    with pytest.raises(DataError) as excinfo:
        load_text(cache=cache, url=refused_url, **fast(retries=0))
    assert "could not download" in message(excinfo)
    assert "damaged" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["tinyshakespeare.txt"]  # the user's file is left alone


def test_unwritable_cache_directory_raises_before_any_request(site, tmp_path):
    # Tests run as root, where chmod does not stop writes; a regular file can never hold a directory entry.
    site.routes["/input.txt"] = [ok(PAYLOAD)]
    not_a_dir = tmp_path / "plain-file"
    not_a_dir.write_text("x")
    with pytest.raises(DataError) as excinfo:
        load_text(cache=not_a_dir / "tinyshakespeare.txt", url=site.url("/input.txt"), **fast())
    text = message(excinfo)
    assert str(not_a_dir) in text and "not a writable directory" in text and "--data PATH" in text
    assert site.requests["/input.txt"] == 0
    assert sorted(os.listdir(tmp_path)) == ["plain-file"]


def test_ctrl_c_during_download_removes_the_partial_file(site, tmp_path, monkeypatch):
    site.routes["/input.txt"] = [ok(PAYLOAD)]
    seen_while_downloading = []

    class InterruptedBar:
        """Stands in for tqdm and presses Ctrl-C once the first chunk has been written."""

        def __init__(self, *args, **kwargs):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def update(self, n):
            seen_while_downloading.extend(os.listdir(tmp_path))
            raise KeyboardInterrupt

    monkeypatch.setattr(shakespeare, "tqdm", InterruptedBar)
    with pytest.raises(KeyboardInterrupt):
        load_text(cache=tmp_path / "tinyshakespeare.txt", url=site.url("/input.txt"), **fast())
    assert len(seen_while_downloading) == 1  # a partial file really existed ...
    assert_left_nothing(tmp_path)  # ... and is gone


def test_disk_error_while_replacing_dest_is_a_data_error_and_leaves_nothing(site, tmp_path):
    site.routes["/input.txt"] = [ok(PAYLOAD)]
    dest = tmp_path / "a-directory"
    dest.mkdir()
    with pytest.raises(DataError) as excinfo:
        download(site.url("/input.txt"), dest, **fast())
    assert str(dest) in message(excinfo)
    assert sorted(os.listdir(tmp_path)) == ["a-directory"] and not any(dest.iterdir())


def test_endless_body_is_cut_off_at_the_expected_size_and_dest_is_untouched(site, tmp_path, monkeypatch):
    site.routes["/input.txt"] = [endless()]
    bar = CountingBar.install(monkeypatch)
    dest = tmp_path / "tinyshakespeare.txt"
    dest.write_text("the old copy")
    with pytest.raises(DataError) as excinfo:
        download(site.url("/input.txt"), dest, **fast())
    text = message(excinfo)
    assert f"longer than the expected {len(PAYLOAD):,} bytes" in text and site.url("/input.txt") in text
    assert bar.received <= len(PAYLOAD)  # it stopped there, not when the server gave up
    assert site.requests["/input.txt"] == 1  # the same server would send the same wrong file again
    assert dest.read_text() == "the old copy"
    assert os.listdir(tmp_path) == ["tinyshakespeare.txt"]


def test_body_announced_longer_than_expected_is_refused_before_it_is_read(site, tmp_path):
    site.routes["/input.txt"] = [ok(PAYLOAD + PAYLOAD)]
    with pytest.raises(DataError) as excinfo:
        load_text(cache=tmp_path / "tinyshakespeare.txt", url=site.url("/input.txt"), **fast())
    assert f"announces {2 * len(PAYLOAD):,} bytes" in message(excinfo)
    assert_left_nothing(tmp_path)


def test_without_an_expected_size_the_body_is_cut_off_at_max_bytes(site, tmp_path, monkeypatch):
    site.routes["/input.txt"] = [endless()]
    bar = CountingBar.install(monkeypatch)
    with pytest.raises(DataError) as excinfo:
        download(site.url("/input.txt"), tmp_path / "out.txt", timeout=2.0, max_bytes=10_000)
    assert "longer than the 10,000 (MAX_TEXT_BYTES)" in message(excinfo)
    assert bar.received <= 10_000
    assert_left_nothing(tmp_path)


def test_server_dripping_bytes_fails_at_the_deadline_and_leaves_nothing(site, tmp_path):
    site.routes["/input.txt"] = [drip(every=0.1)]  # each byte well within the 1 s timeout
    started = time.monotonic()
    with pytest.raises(DataError) as excinfo:
        load_text(cache=tmp_path / "tinyshakespeare.txt", url=site.url("/input.txt"),
                  **fast(timeout=1.0, retries=1, deadline=1.5))
    elapsed = time.monotonic() - started
    assert "took longer than the 1.5 s allowed" in message(excinfo)
    assert 1.5 <= elapsed < 1.5 + 1.0  # the deadline, overrun by less than one timeout
    assert site.requests["/input.txt"] == 1  # the deadline covers retries too: none is left for one
    assert_left_nothing(tmp_path)


def test_deadline_covers_all_retries_together(site, tmp_path):
    site.routes["/input.txt"] = [stall()]  # each try times out after 0.3 s; ten of them would take 3 s
    started = time.monotonic()
    with pytest.raises(DataError) as excinfo:
        load_text(cache=tmp_path / "tinyshakespeare.txt", url=site.url("/input.txt"),
                  **fast(timeout=0.3, retries=9, deadline=0.8))
    assert "took longer than the 0.8 s allowed (timed out" in message(excinfo)
    assert time.monotonic() - started < 0.8 + 0.3 + 0.5
    assert 2 <= site.requests["/input.txt"] < 10
    assert_left_nothing(tmp_path)


@pytest.mark.skipif(os.name != "posix", reason="pids are checked on POSIX only")
@pytest.mark.parametrize("cache_is_there", [True, False], ids=["cache-read", "download"])
def test_temp_file_of_a_killed_download_is_removed_by_the_next_load(site, tmp_path, exited_pid, cache_is_there):
    site.routes["/input.txt"] = [ok(PAYLOAD)]
    cache = tmp_path / "tinyshakespeare.txt"
    if cache_is_there:
        cache.write_bytes(PAYLOAD)
    leftover = tmp_path / f"{TEMP_PREFIX}{exited_pid}-5eed1e55-tinyshakespeare.txt"  # as a SIGKILL leaves it
    leftover.write_bytes(PAYLOAD[:1000])
    assert load_text(cache=cache, url=site.url("/input.txt"), **fast()) == PAYLOAD.decode()
    assert os.listdir(tmp_path) == ["tinyshakespeare.txt"]
    assert site.requests["/input.txt"] == (0 if cache_is_there else 1)


# ---- local files: --data PATH and GPT_DATA ---------------------------------------------------------------


def test_local_text_that_is_not_shakespeare_is_returned_as_is(tmp_path, refused_url):
    path = tmp_path / "poem.txt"
    path.write_text("Shall I compare thee\r\nto a café?\n", encoding="utf-8", newline="")
    assert load_text(path, url=refused_url) == "Shall I compare thee\r\nto a café?\n"


def test_gpt_data_environment_variable_is_honoured(tmp_path, monkeypatch, refused_url):
    path = tmp_path / "poem.txt"
    path.write_text("from the environment\n")
    monkeypatch.setenv(ENV_VAR, str(path))
    assert load_text(url=refused_url, cache=tmp_path / "unused.txt") == "from the environment\n"


def test_an_explicit_path_wins_over_gpt_data(tmp_path, monkeypatch):
    (tmp_path / "env.txt").write_text("from the environment\n")
    (tmp_path / "arg.txt").write_text("from the argument\n")
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "env.txt"))
    assert load_text(tmp_path / "arg.txt") == "from the argument\n"


def test_empty_gpt_data_falls_back_to_the_cache(tmp_path, monkeypatch, refused_url):
    cache = tmp_path / "tinyshakespeare.txt"
    cache.write_bytes(PAYLOAD)
    monkeypatch.setenv(ENV_VAR, "")
    assert load_text(cache=cache, url=refused_url, **fast()) == PAYLOAD.decode()


def test_bad_gpt_data_path_names_the_variable(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "nope.txt"))
    with pytest.raises(DataError) as excinfo:
        load_text()
    text = message(excinfo)
    assert "nope.txt" in text and ENV_VAR in text and "does not exist" in text


@pytest.mark.parametrize(
    "content, min_chars, expected",
    [
        (b"", 2, "is empty"),
        (b"caf\xe9 au lait\n", 2, "not UTF-8"),
        (b"0123456789", 11, "too short for block size 10"),
    ],
    ids=["empty", "not-utf8", "too-short"],
)
def test_unusable_local_file_raises_a_clear_error_naming_it(tmp_path, content, min_chars, expected):
    path = tmp_path / "text.txt"
    path.write_bytes(content)
    with pytest.raises(DataError) as excinfo:
        load_text(path, min_chars=min_chars)
    text = message(excinfo)
    assert str(path) in text and expected in text


def test_too_short_text_suggests_a_smaller_block_size(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text("0123456789")
    assert load_text(path, min_chars=10) == "0123456789"  # exactly enough is enough
    with pytest.raises(DataError) as excinfo:
        load_text(path, min_chars=11)
    assert "--block-size" in message(excinfo)


def test_missing_local_file_raises_a_clear_error_naming_it(tmp_path):
    path = tmp_path / "nope.txt"
    with pytest.raises(DataError) as excinfo:
        load_text(path)
    text = message(excinfo)
    assert str(path) in text and "does not exist" in text


def test_directory_given_as_local_file_raises_a_clear_error(tmp_path):
    with pytest.raises(DataError) as excinfo:
        load_text(tmp_path)
    assert "is a directory" in message(excinfo)


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
        with pytest.raises(DataError) as excinfo:
            load_text(fifo)
    finally:
        watchdog.cancel()
    text = message(excinfo)
    assert str(fifo) in text and "named pipe" in text and "save the text to a file" in text


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
def test_endless_device_is_refused_instead_of_read(device, monkeypatch):
    if not os.path.exists(device) or not stat.S_ISCHR(os.stat(device).st_mode):
        pytest.skip(f"{device} is not a character device here")
    monkeypatch.setenv(ENV_VAR, device)
    with pytest.raises(DataError) as excinfo:
        load_text()
    text = message(excinfo)
    assert f"{device} (from {ENV_VAR}) is a device" in text and "save the text to a file" in text


def test_text_larger_than_max_bytes_is_refused_and_one_at_the_limit_is_read(tmp_path):
    path = tmp_path / "big.txt"
    path.write_text("x" * 101)
    with pytest.raises(DataError) as excinfo:
        load_text(path, max_bytes=100)
    text = message(excinfo)
    assert str(path) in text and "larger than 100 bytes (101 bytes)" in text and "MAX_TEXT_BYTES" in text
    assert load_text(path, max_bytes=101) == "x" * 101


def test_default_limit_is_documented_and_far_above_tiny_shakespeare():
    assert MAX_TEXT_BYTES == 64 * 1024 * 1024 and MAX_TEXT_BYTES > 50 * shakespeare.SIZE
