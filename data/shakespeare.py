"""Tiny Shakespeare, the text every stage trains on.

The text is the input.txt of Andrej Karpathy's char-rnn project (2015): about 40,000 lines from
Shakespeare's plays in one plain ASCII file of 1,115,394 bytes with 65 distinct characters. It is small
enough to train on a laptop and rich enough that a model must learn real structure (speaker names, line
breaks, verse) before its samples look right.

load_text() looks for the text in this order:

1. a path you give it (the scripts' --data PATH), or else the file named by the GPT_DATA environment
   variable. Any UTF-8 text works here, so you can train on your own writing;
2. the copy cached at data/tinyshakespeare.txt by an earlier run, if its size and SHA-256 checksum match
   (a download cut short would otherwise train without complaint, and quietly worse);
3. a download from GitHub, saved as that cached copy, so the network is needed once.

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

from .atomic import atomic_write

URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
SIZE = 1115394  # bytes; the text is ASCII, so this is also its length in characters
ENV_VAR = "GPT_DATA"
DEFAULT_CACHE = Path(__file__).parent / "tinyshakespeare.txt"
# The largest text load_text reads: 64 MiB, about 60 times Tiny Shakespeare. All of it becomes token ids
# in memory at once (a Python list, then an int64 tensor: about 16 bytes a character), so 64 MiB already
# needs about 1 GiB. A bigger file is more likely a mistake (a disk image, a dataset dump) than a text.
MAX_TEXT_BYTES = 64 * 1024 * 1024


class DataError(Exception):
    """A problem with the training text that the user can fix. The message is one line saying how."""


def load_text(path=None, *, min_chars=2, cache=DEFAULT_CACHE, url=URL, sha256=SHA256, size=SIZE, timeout=10.0,
              retries=3, backoff=0.5, deadline=120.0, max_bytes=MAX_TEXT_BYTES):
    """Return the training text: the file at path or $GPT_DATA if given, else Tiny Shakespeare.

    min_chars is the shortest usable text: the scripts pass 10 * (block_size + 1), because one example is a
    window of block_size characters plus the one that follows, and the validation split (the last 10%)
    must hold one. max_bytes is the longest. The other arguments say what to download, and how patiently
    (see _download). The default deadline, 120 s, is enough for the 1.1 MB text over a link of 10 kB/s;
    over a slower one, download a copy yourself.
    """
    origin = ""
    if path is None and os.environ.get(ENV_VAR):
        path, origin = os.environ[ENV_VAR], f" (from {ENV_VAR})"
    if path is not None and not os.fspath(path):
        raise DataError("--data is empty; pass the path of a text file")
    if path is None:
        path = Path(cache)
        problem = _mismatch(path, size, sha256) if path.is_file() else None
        if problem:  # a warning: the download below repairs the cache, but say why the network is used again
            print(f"{path} is damaged ({problem}); downloading a fresh copy", file=sys.stderr)
        if problem or not path.is_file():
            _download(url, path, size, sha256, timeout=timeout, retries=retries, backoff=backoff, deadline=deadline)
    return _read_text(Path(path), f"{path}{origin}", min_chars, max_bytes)


def _download(url, dest, size, sha256, *, timeout, retries, backoff, deadline):
    """Download url into dest, or raise DataError and leave dest as it was.

    The body goes to a temporary file (atomic_write), renamed onto dest only once its size and checksum
    match. Connection errors, timeouts and server errors (HTTP 5xx) often pass, so they are tried again up
    to `retries` more times, waiting backoff, 2 * backoff, 4 * backoff ... seconds. Three limits stop a
    broken server from hanging the run or filling the disk: timeout bounds each wait for a connection or
    for the next bytes; deadline bounds the whole download, so a server dripping a byte now and then
    cannot keep it going for hours; and a body longer than size is refused.
    """
    give_up_at = time.monotonic() + deadline

    def fetch(tmp):
        for tries in range(retries + 1):
            if tries:  # after a failed try, which set problem
                time.sleep(backoff * 2 ** (tries - 1))
                if time.monotonic() >= give_up_at:
                    raise DataError(f"could not download {url} within {deadline:g} s ({problem}); try again later")
            try:
                return _get(url, tmp, size, sha256, min(timeout, give_up_at - time.monotonic()), give_up_at)
            except (requests.RequestException, urllib3.exceptions.HTTPError) as err:
                problem = _reason(err)
        raise DataError(f"could not download {url} ({problem}, {retries + 1} tries); check your internet connection")

    try:
        atomic_write(dest, fetch)
    except DataError as err:  # one place adds what to do without the network to every download error
        raise DataError(f"{err}, or save the file as {dest}, or pass --data PATH / set {ENV_VAR}=PATH") from None
    except OSError as err:  # the disk's fault, not the network's: no such directory, disk full, ...
        raise DataError(f"cannot write {dest} ({err.strerror or err}); pass --data PATH / set {ENV_VAR}=PATH") from None


def _get(url, tmp, size, sha256, timeout, give_up_at):
    """One try: write the body of url into the file tmp, at most size bytes, and stop at give_up_at."""
    # One timeout bounds both the connection and each wait for bytes. "identity" asks for the bytes as
    # stored, not gzipped, so each read returns the bytes that arrived and the size cap counts them.
    # disable=None shows the progress bar only on a terminal, not in logs.
    headers = {"Accept-Encoding": "identity"}
    bar = tqdm(total=size, unit="B", unit_scale=True, desc=url.rsplit("/", 1)[-1], disable=None)
    with requests.get(url, stream=True, timeout=timeout, headers=headers) as r, open(tmp, "wb") as f, bar:
        if 400 <= r.status_code < 500:  # not tried again: asking again will not make a missing file appear
            raise DataError(f"{url} answered HTTP {r.status_code} {r.reason}; check the URL")
        r.raise_for_status()  # 5xx: tried again
        # read1 returns what the network has delivered, at most after one timeout (requests' iter_content
        # waits for a full chunk), so a server dripping a byte at a time still lets us look at the clock.
        while chunk := r.raw.read1(64 * 1024, decode_content=True):
            if f.tell() + len(chunk) > size:
                raise DataError(f"the file from {url} is longer than the expected {size:,} bytes; check the URL")
            f.write(chunk)
            bar.update(len(chunk))
            if time.monotonic() > give_up_at:
                raise requests.Timeout(f"{f.tell():,} bytes received")
    if problem := _mismatch(Path(tmp), size, sha256):  # a whole answer, but the wrong file: not tried again
        raise DataError(f"the file from {url} is not the expected one ({problem}); check the URL")


def _reason(err):
    """What a requests error says plainly, such as 'Connection refused' or 'timed out': requests wraps
    urllib3's error, which wraps the operating system's, and the innermost one is the plain one."""
    while err.__cause__ or err.__context__:
        err = err.__cause__ or err.__context__
    return getattr(err, "strerror", None) or " ".join(str(err).split()) or type(err).__name__


def _mismatch(path, size, sha256):
    """Why the file at path is not the expected one, or None when it is. The size is compared first: a
    file of the wrong size is damaged whatever its bytes, and is then never read."""
    nbytes = path.stat().st_size
    if nbytes != size:
        return f"{nbytes:,} bytes, expected {size:,}"
    if hashlib.sha256(path.read_bytes()).hexdigest() != sha256:
        return "wrong SHA-256 checksum"
    return None


def _read_text(path, name, min_chars, max_bytes):
    """The text in the file at path, or a one-line DataError saying what to do; name is how to call it."""
    # stat looks at the path without opening it. That matters: opening a named pipe waits until another
    # program writes to it, maybe forever, and /dev/zero never ends, so reading it would fill the memory.
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            kind = "a directory" if stat.S_ISDIR(info.st_mode) else "a named pipe, a device or a socket"
            raise DataError(f"{name} is {kind}, not a text file on disk; pass the path of a text file")
        if info.st_size > max_bytes:
            raise DataError(f"{name} is over MAX_TEXT_BYTES ({max_bytes:,} bytes); train on a part of it")
        data = path.read_bytes()
        text = data.decode("utf-8")
    except FileNotFoundError:
        raise DataError(f"{name} does not exist; check the path") from None
    except OSError as err:
        raise DataError(f"cannot read {name} ({err.strerror}); check its permissions") from None
    except UnicodeDecodeError as err:
        raise DataError(f"{name} is not UTF-8 text (at byte {err.start:,}); save it as UTF-8") from None
    if not text:
        raise DataError(f"{name} is empty; pass a file with some text in it")
    if len(text) < min_chars:
        raise DataError(f"{name} has {len(text):,} characters, needs {min_chars:,}; pass a longer text or a smaller "
                        f"--block-size")
    return text
