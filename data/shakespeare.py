"""Tiny Shakespeare, the text every stage trains on.

The text is the input.txt of Andrej Karpathy's char-rnn project (2015): about 40,000 lines from
Shakespeare's plays in one plain ASCII file of 1,115,394 bytes with 65 distinct characters. It is small
enough to train on a laptop and rich enough that a model must learn real structure (speaker names, line
breaks, verse) before its samples look right.

load_text() looks for the text in this order:

1. a path you give it (the scripts' --data PATH), or else the file named by the GPT_DATA environment
   variable. Any UTF-8 text works here, so you can train on your own writing;
2. the copy cached at data/tinyshakespeare.txt by an earlier run;
3. a download from GitHub, saved as that cached copy, so the network is needed once.

The cached copy is used only if its size and SHA-256 checksum match the values below. A download cut
short, or an error page saved in place of the text, would otherwise train without complaint and give a
model that is quietly worse; the checksum turns that into an error you can see. A download is written to
a temporary file and renamed into place only once it passes the check (data/atomic.py), so an
interrupted download never leaves a half-written cache behind.

Every read and every download is bounded, so a wrong path or a misbehaving server ends in a one-line
error instead of a hang or an exhausted memory: only regular files are read, at most MAX_TEXT_BYTES of
them; a download stops once it passes the expected size, and gives up after `deadline` seconds in all.

Offline? Save input.txt as data/tinyshakespeare.txt, or pass --data PATH, or set GPT_DATA=PATH.
"""

import hashlib
import os
import stat
import sys
import time
from pathlib import Path

import requests
import urllib3
from tqdm import tqdm

from .atomic import atomic_write, remove_stale_temps

URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
SIZE = 1115394  # bytes; the text is ASCII, so this is also its length in characters
ENV_VAR = "GPT_DATA"
DEFAULT_CACHE = Path(__file__).parent / "tinyshakespeare.txt"

# The largest text load_text reads: 64 MiB, about 60 times Tiny Shakespeare. The whole text is turned into
# token ids in memory at once: tok.encode builds a Python list (8 bytes per character for the pointer
# alone), and torch.tensor copies it to int64 (8 more bytes per character), so 64 MiB of text already
# needs about 1 GiB of memory for a moment. A bigger file is more likely a mistake (a disk image, a
# dataset dump) than something a character-level model from this course should train on.
MAX_TEXT_BYTES = 64 * 1024 * 1024
# The most one download may take, all tries, waits and bytes together. At 120 s the 1.1 MB text still
# arrives over a link of 10 kB/s; a server slower than that is better replaced by a copy you download.
DOWNLOAD_DEADLINE = 120.0

CHUNK_BYTES = 64 * 1024


class DataError(Exception):
    """A problem with the training text that the user can fix. The message is one line saying how."""


def load_text(
    path=None,
    *,
    min_chars=2,
    cache=DEFAULT_CACHE,
    url=URL,
    sha256=SHA256,
    size=SIZE,
    timeout=10.0,
    retries=3,
    backoff=0.5,
    deadline=DOWNLOAD_DEADLINE,
    max_bytes=MAX_TEXT_BYTES,
):
    """Return the training text: the file at path or $GPT_DATA if given, else Tiny Shakespeare.

    min_chars is the shortest usable text. The scripts pass block_size + 1, because one training example
    is a window of block_size characters plus the character that follows it. max_bytes is the longest:
    a bigger file is refused without being read whole. The other arguments go to download().
    """
    origin = ""
    if path is None and os.environ.get(ENV_VAR):
        path, origin = os.environ[ENV_VAR], f" (from {ENV_VAR})"
    if path is not None:
        # Not checksummed: training on a text other than Tiny Shakespeare is allowed.
        path = Path(path)
        return _decode(_read_bytes(path, origin, max_bytes), path, origin, min_chars)

    cache = Path(cache)
    # A download killed outright (SIGKILL, power cut) leaves its temporary file beside the cache.
    remove_stale_temps(cache.parent)
    if cache.is_file():
        on_disk = cache.stat().st_size
        # Sizes first: a wrong-sized file is damaged whatever its bytes, and is then never read whole.
        problem = _mismatch(on_disk, None, size, None)
        if problem is None:
            data = _read_bytes(cache, max_bytes=max_bytes)
            problem = _mismatch(len(data), hashlib.sha256(data).hexdigest(), size, sha256)
            if problem is None:
                return _decode(data, cache, "", min_chars)
        # A warning, not an error: a fresh download repairs the cache, but the user should know why the
        # network is being used again.
        print(f"{cache} is damaged ({problem}); downloading a fresh copy", file=sys.stderr)
    download(url, cache, sha256=sha256, size=size, timeout=timeout, retries=retries, backoff=backoff,
             deadline=deadline, max_bytes=max_bytes)
    return _decode(_read_bytes(cache, max_bytes=max_bytes), cache, "", min_chars)


def download(url, dest, *, sha256=None, size=None, timeout=10.0, retries=3, backoff=0.5,
             deadline=DOWNLOAD_DEADLINE, max_bytes=MAX_TEXT_BYTES):
    """Download url to dest and return dest as a Path; on any failure raise DataError and leave dest as it was.

    Connection errors, timeouts and server errors (HTTP 5xx) are often gone a moment later, so they are
    tried again up to `retries` more times, waiting backoff, 2 * backoff, 4 * backoff, ... seconds in
    between. A 4xx answer is not retried: asking again will not make a missing file appear.

    Three limits keep a broken or hostile server from hanging the download or filling the disk. timeout
    bounds each wait (to connect, or for the next bytes), so a silent server ends in an error. deadline
    bounds the whole download, all tries included, so a server that sends a byte now and then cannot keep
    it going for hours; it is checked whenever bytes arrive or a wait ends, so it can be overrun by at most
    one timeout. And the body may not grow past size (when given), or else max_bytes: a server sending
    without end is cut off there. When given, size (bytes) and sha256 (hex digest) must match before dest
    is written.
    """
    dest = Path(dest)
    elsewhere = f"or save a copy as {dest} yourself, or pass --data PATH / set {ENV_VAR}=PATH"
    remove_stale_temps(dest.parent)
    started = False

    def fetch_into(tmp):
        nonlocal started
        started = True
        with open(tmp, "wb") as f:
            nbytes, digest = _fetch(url, f, dest.name, timeout=timeout, retries=retries, backoff=backoff,
                                    deadline=deadline, size=size, max_bytes=max_bytes, elsewhere=elsewhere)
        problem = _mismatch(nbytes, digest, size, sha256)
        if problem is not None:
            raise DataError(f"the file from {url} is not the expected one ({problem}); try again later, {elsewhere}")

    try:
        # atomic_write creates the temporary file beside dest before calling fetch_into, so a directory
        # we cannot write to is reported before anything is downloaded.
        atomic_write(dest, fetch_into)
    except OSError as err:
        if not started:
            raise DataError(
                f"cannot save the download: {dest.parent} is not a writable directory ({err.strerror or err}); "
                f"pass --data PATH or set {ENV_VAR}=PATH to a copy of the text instead"
            ) from None
        # The disk's fault, not the network's (those became DataError in _fetch): disk full, dest is a
        # directory, ...
        raise DataError(f"cannot write {dest} ({err.strerror or err}); free some space, {elsewhere}") from None
    return dest


def _fetch(url, f, name, *, timeout, retries, backoff, deadline, size, max_bytes, elsewhere):
    """Stream url into the open file f, retrying transient failures; return (bytes written, sha256 hex)."""
    give_up_at = time.monotonic() + deadline
    # The most bytes worth receiving: a body longer than the expected size is the wrong file, however it ends.
    limit = size if size is not None else max_bytes
    problem, tries = None, 0
    while tries <= retries:
        if tries:
            pause = backoff * 2 ** (tries - 1)
            if time.monotonic() + pause >= give_up_at:
                raise _too_slow(url, deadline, f"{problem}, {_count(tries)}", elsewhere)
            time.sleep(pause)
        tries += 1
        f.seek(0)
        f.truncate()  # each try starts from byte 0; a server need not support resuming
        try:
            # "identity" asks for the bytes as stored rather than gzipped, so Content-Length counts the
            # same bytes we write and the progress bar's total is right.
            headers = {"Accept-Encoding": "identity"}
            # No single wait may outlast the deadline either.
            wait = max(0.01, min(timeout, give_up_at - time.monotonic()))
            with requests.get(url, stream=True, timeout=wait, headers=headers) as r:
                if r.status_code >= 500:
                    problem = f"HTTP {r.status_code} {r.reason}"
                    continue
                if r.status_code != 200:
                    raise DataError(f"{url} answered HTTP {r.status_code} {r.reason}; check the URL, {elsewhere}")
                return _stream(r, f, name, url, limit, give_up_at, deadline=deadline, size=size,
                               max_bytes=max_bytes, elsewhere=elsewhere)
        except (requests.Timeout, urllib3.exceptions.ReadTimeoutError):
            problem = "timed out"
        except urllib3.exceptions.HTTPError:  # from _body, which reads urllib3's response directly
            problem = f"the connection broke after {f.tell():,} bytes"  # the server hung up too early
        except requests.ConnectionError as err:
            problem = _reason(err)
        except requests.RequestException as err:  # a malformed URL and the like: retrying cannot help
            raise DataError(f"cannot download {url} ({_reason(err)}); check the URL, {elsewhere}") from None
        if time.monotonic() >= give_up_at:
            raise _too_slow(url, deadline, f"{problem}, {_count(tries)}", elsewhere)
    raise DataError(
        f"could not download {url} ({problem}, {_count(tries)}); check your internet connection, {elsewhere}"
    )


def _stream(r, f, name, url, limit, give_up_at, *, deadline, size, max_bytes, elsewhere):
    """Write the body of the response r into f, at most limit bytes and not past give_up_at;
    return (bytes written, sha256 hex)."""
    digest = hashlib.sha256()
    length = r.headers.get("Content-Length", "")
    total = int(length) if length.isdigit() else None
    if total is not None and total > limit:  # refused before a single byte of the body is read
        raise _too_long(url, f"announces {total:,} bytes", size, max_bytes, elsewhere)
    # disable=None hides the bar when stderr is not a terminal (logs, tests).
    with tqdm(total=total, unit="B", unit_scale=True, desc=name, disable=None) as bar:
        for chunk in _body(r):
            if f.tell() + len(chunk) > limit:
                raise _too_long(url, f"sent more than {limit:,} bytes", size, max_bytes, elsewhere)
            f.write(chunk)
            digest.update(chunk)
            bar.update(len(chunk))
            if time.monotonic() > give_up_at:
                raise _too_slow(url, deadline, f"{f.tell():,} bytes received", elsewhere)
    return f.tell(), digest.hexdigest()


def _count(tries):
    return f"{tries} tries" if tries > 1 else "1 try"


def _body(r):
    """The response body in pieces as they arrive.

    requests' iter_content(n) waits until it has n bytes, so a server dripping one byte at a time would
    never let the loop above look at the clock. urllib3's read1 returns whatever one read from the socket
    gives, at most after one timeout. (urllib3 1.x has no read1; there, read is the best we have.)
    """
    read = getattr(r.raw, "read1", None) or r.raw.read
    while chunk := read(CHUNK_BYTES, decode_content=True):
        yield chunk


def _too_long(url, what, size, max_bytes, elsewhere):
    expected = f"the expected {size:,}" if size is not None else f"the {max_bytes:,} (MAX_TEXT_BYTES) a text may have"
    return DataError(f"the file from {url} is longer than {expected} bytes (it {what}); "
                     f"it is not the right file, check the URL, {elsewhere}")


def _too_slow(url, deadline, progress, elsewhere):
    return DataError(f"downloading {url} took longer than the {deadline:g} s allowed ({progress}); "
                     f"the server or your connection is too slow, try again later, {elsewhere}")


def _reason(err):
    """The short human part of a requests error, such as 'Connection refused' or 'timed out'."""
    if isinstance(err, requests.Timeout) or "timed out" in str(err):
        return "timed out"
    # requests wraps urllib3's error, which wraps the operating system's; the innermost says it plainly.
    seen = err
    while seen is not None:
        if isinstance(seen, OSError) and seen.strerror:
            return seen.strerror
        innermost, seen = seen, seen.__cause__ or seen.__context__
    return " ".join((str(innermost) or type(innermost).__name__).split())[:200]


def _mismatch(nbytes, digest, size, sha256):
    """Why the bytes are not the expected file, or None when they are (or nothing is expected)."""
    if size is not None and nbytes != size:
        return f"{nbytes:,} bytes, expected {size:,}"
    if sha256 is not None and digest != sha256:
        return f"SHA-256 checksum {digest[:16]}..., expected {sha256[:16]}..."
    return None


def _read_bytes(path, origin="", max_bytes=MAX_TEXT_BYTES):
    """The bytes of the regular file at path, at most max_bytes of them, or a DataError saying what to do."""
    # os.stat looks at the path without opening it. That matters: opening a FIFO (named pipe) for reading
    # waits until some other program opens it for writing, maybe forever, and /dev/zero or /dev/urandom
    # never end, so read_bytes() would fill the memory.
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise DataError(
            f"{path}{origin} does not exist; check the path, or drop --data and {ENV_VAR} to use Tiny Shakespeare"
        ) from None
    except OSError as err:
        raise DataError(f"cannot read {path}{origin} ({err.strerror}); check the path and its permissions") from None
    _check_regular(path, origin, info.st_mode)
    if info.st_size > max_bytes:
        raise _too_big(path, origin, f"{info.st_size:,} bytes", max_bytes)
    try:
        # O_NONBLOCK (POSIX): should the path be swapped for a FIFO after os.stat, open returns at once
        # instead of waiting, and the fstat below refuses it. For a regular file it changes nothing.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
        with open(fd, "rb") as f:
            _check_regular(path, origin, os.fstat(f.fileno()).st_mode)
            # One byte more than allowed tells a file at the limit from one that grew past it since os.stat.
            data = f.read(max_bytes + 1)
    except OSError as err:
        raise DataError(f"cannot read {path}{origin} ({err.strerror}); check its permissions") from None
    if len(data) > max_bytes:
        raise _too_big(path, origin, "it grew while being read", max_bytes)
    return data


def _check_regular(path, origin, mode):
    if stat.S_ISDIR(mode):
        raise DataError(f"{path}{origin} is a directory; pass the path of a text file")
    if not stat.S_ISREG(mode):
        kind = ("a named pipe" if stat.S_ISFIFO(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
                else "a socket" if stat.S_ISSOCK(mode) else "something other than a regular file")
        raise DataError(
            f"{path}{origin} is {kind}, not a file on disk; save the text to a file and pass that file's path"
        )


def _too_big(path, origin, what, max_bytes):
    return DataError(
        f"{path}{origin} is larger than {max_bytes:,} bytes ({what}), the most a text may have (MAX_TEXT_BYTES in "
        f"data/shakespeare.py: all of it becomes token ids in memory); train on a part of it, e.g. "
        f"`head -n 200000 {path.name} > part.txt`"
    )


def _decode(data, path, origin, min_chars):
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise DataError(
            f"{path}{origin} is not UTF-8 text (byte {err.start:,} is {data[err.start]:#04x}); "
            f"save it as UTF-8 or pass another file"
        ) from None
    if not text:
        raise DataError(f"{path}{origin} is empty; pass a file with some text in it")
    if len(text) < min_chars:
        raise DataError(
            f"{path}{origin} has {len(text):,} characters, too short for block size {min_chars - 1} "
            f"(it needs at least {min_chars:,}); pass a smaller --block-size or a longer text"
        )
    return text
