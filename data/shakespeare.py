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
a temporary file and renamed into place only once it passes the check, so an interrupted download never
leaves a half-written cache behind.

Offline? Save input.txt as data/tinyshakespeare.txt, or pass --data PATH, or set GPT_DATA=PATH.
"""

import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path

import requests
from tqdm import tqdm

URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
SIZE = 1115394  # bytes; the text is ASCII, so this is also its length in characters
ENV_VAR = "GPT_DATA"
DEFAULT_CACHE = Path(__file__).parent / "tinyshakespeare.txt"

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
):
    """Return the training text: the file at path or $GPT_DATA if given, else Tiny Shakespeare.

    min_chars is the shortest usable text. The scripts pass block_size + 1, because one training example
    is a window of block_size characters plus the character that follows it.
    """
    origin = ""
    if path is None and os.environ.get(ENV_VAR):
        path, origin = os.environ[ENV_VAR], f" (from {ENV_VAR})"
    if path is not None:
        # Not checksummed: training on a text other than Tiny Shakespeare is allowed.
        path = Path(path)
        return _decode(_read_bytes(path, origin), path, origin, min_chars)

    cache = Path(cache)
    if cache.is_file():
        data = _read_bytes(cache)
        problem = _mismatch(len(data), hashlib.sha256(data).hexdigest(), size, sha256)
        if problem is None:
            return _decode(data, cache, "", min_chars)
        # A warning, not an error: a fresh download repairs the cache, but the user should know why the
        # network is being used again.
        print(f"{cache} is damaged ({problem}); downloading a fresh copy", file=sys.stderr)
    download(url, cache, sha256=sha256, size=size, timeout=timeout, retries=retries, backoff=backoff)
    return _decode(_read_bytes(cache), cache, "", min_chars)


def download(url, dest, *, sha256=None, size=None, timeout=10.0, retries=3, backoff=0.5):
    """Download url to dest and return dest as a Path; on any failure raise DataError and leave dest as it was.

    Connection errors, timeouts and server errors (HTTP 5xx) are often gone a moment later, so they are
    tried again up to `retries` more times, waiting backoff, 2 * backoff, 4 * backoff, ... seconds in
    between. A 4xx answer is not retried: asking again will not make a missing file appear. timeout
    bounds the wait to connect and every wait for more bytes, so a stalled server ends in an error
    instead of a hang. When given, size (bytes) and sha256 (hex digest) must match before dest is written.
    """
    dest = Path(dest)
    elsewhere = f"or save a copy as {dest} yourself, or pass --data PATH / set {ENV_VAR}=PATH"
    # The temporary file sits beside dest so that os.replace below is a rename within one directory,
    # which is atomic: dest is either the old file or the whole, verified new one, never a part.
    try:
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".download-", suffix=".tmp")
    except OSError as err:
        raise DataError(
            f"cannot save the download: {dest.parent} is not a writable directory ({err.strerror}); "
            f"pass --data PATH or set {ENV_VAR}=PATH to a copy of the text instead"
        ) from None
    try:
        with os.fdopen(fd, "wb") as f:
            nbytes, digest = _fetch(url, f, dest.name, timeout, retries, backoff, elsewhere)
        problem = _mismatch(nbytes, digest, size, sha256)
        if problem is not None:
            raise DataError(f"the file from {url} is not the expected one ({problem}); try again later, {elsewhere}")
        os.replace(tmp, dest)
    except OSError as err:  # the disk's fault, not the network's: disk full, dest is a directory, ...
        Path(tmp).unlink(missing_ok=True)
        raise DataError(f"cannot write {dest} ({err.strerror or err}); free some space, {elsewhere}") from None
    except BaseException:  # Ctrl-C included: remove the partial file, then let the interrupt through
        Path(tmp).unlink(missing_ok=True)
        raise
    return dest


def _fetch(url, f, name, timeout, retries, backoff, elsewhere):
    """Stream url into the open file f, retrying transient failures; return (bytes written, sha256 hex)."""
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(backoff * 2 ** (attempt - 1))
        f.seek(0)
        f.truncate()  # each try starts from byte 0; a server need not support resuming
        digest = hashlib.sha256()
        try:
            # "identity" asks for the bytes as stored rather than gzipped, so Content-Length counts the
            # same bytes we write and the progress bar's total is right.
            headers = {"Accept-Encoding": "identity"}
            with requests.get(url, stream=True, timeout=timeout, headers=headers) as r:
                if r.status_code >= 500:
                    problem = f"HTTP {r.status_code} {r.reason}"
                    continue
                if r.status_code != 200:
                    raise DataError(f"{url} answered HTTP {r.status_code} {r.reason}; check the URL, {elsewhere}")
                length = r.headers.get("Content-Length", "")
                total = int(length) if length.isdigit() else None
                # disable=None hides the bar when stderr is not a terminal (logs, tests).
                with tqdm(total=total, unit="B", unit_scale=True, desc=name, disable=None) as bar:
                    for chunk in r.iter_content(CHUNK_BYTES):
                        f.write(chunk)
                        digest.update(chunk)
                        bar.update(len(chunk))
                return f.tell(), digest.hexdigest()
        except requests.exceptions.ChunkedEncodingError:  # the server hung up before sending everything
            problem = f"the connection broke after {f.tell():,} bytes"
        except (requests.ConnectionError, requests.Timeout) as err:
            problem = _reason(err)
        except requests.RequestException as err:  # a malformed URL and the like: retrying cannot help
            raise DataError(f"cannot download {url} ({_reason(err)}); check the URL, {elsewhere}") from None
    tries = f"{retries + 1} tries" if retries else "1 try"
    raise DataError(f"could not download {url} ({problem}, {tries}); check your internet connection, {elsewhere}")


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


def _read_bytes(path, origin=""):
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise DataError(
            f"{path}{origin} does not exist; check the path, or drop --data and {ENV_VAR} to use Tiny Shakespeare"
        ) from None
    except IsADirectoryError:
        raise DataError(f"{path}{origin} is a directory; pass the path of a text file") from None
    except OSError as err:
        raise DataError(f"cannot read {path}{origin} ({err.strerror}); check its permissions") from None


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
