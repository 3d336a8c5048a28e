"""Writing a file so that a crash, a full disk or Ctrl-C never leaves half of it behind. Used for every file
in a run's --out (runner/files.py) and for the Tiny Shakespeare download (data/shakespeare.py).

Writing straight to `path` would truncate the old file first, so a run killed mid-write would leave a
checkpoint torch.load cannot read. Instead the new content goes to a temporary file in the same directory,
which os.replace then renames onto `path`: a rename within one directory is atomic, so anyone opening
`path` sees either the whole old file or the whole new one.

    from data.atomic import atomic_write, atomic_write_text
    atomic_write("out/ckpt.pt", lambda tmp: torch.save(state, tmp))
    atomic_write_text("out/metrics.json", json.dumps(metrics, indent=2) + "\n")

A process killed with SIGKILL (or a power cut) cannot delete its temporary file. The file's name starts
with TEMP_PREFIX and holds the writer's process id, so remove_stale_temps can later tell a leftover from
a file that a running process is still writing.
"""

import contextlib
import os
import secrets
import stat
import time
from pathlib import Path

TEMP_PREFIX = ".gfs-tmp-"  # gfs = gpt-from-scratch; the leading dot hides it from a plain `ls`
# Where a process id cannot be checked (Windows), a temporary file counts as abandoned once it is this
# old: no write in this project takes anywhere near a day.
STALE_AFTER_SECONDS = 24 * 60 * 60


def atomic_write(path, write, *, prefix=TEMP_PREFIX):
    """Call write(tmp) to fill a temporary file beside path, then move it onto path in one step.

    write gets the temporary file's path (a str), for example `lambda tmp: torch.save(state, tmp)`. If
    anything raises (KeyboardInterrupt included), the temporary file is deleted, the exception goes on
    and the file at path, if there was one, is untouched. path's directory must exist. Returns path.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f"{prefix}{os.getpid()}-{secrets.token_hex(4)}-{os.path.basename(path)}")
    # Created here, before write runs, so a directory we cannot write to fails before any work is done.
    # O_EXCL: never share a file with another writer. 0o666: the umask decides the permissions, as for
    # any new file (tempfile.mkstemp would make it 0o600, and os.replace would carry that over to path).
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        write(tmp)
        # Wait until the bytes are on the disk: else a power cut soon after the rename could leave path
        # naming a file whose content was never written. RDWR: Windows will not flush a read-only handle.
        _fsync(tmp, os.O_RDWR)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)  # missing if os.replace already moved it
        raise
    # The new name is durable only once the directory (a file listing names) is flushed too. Windows
    # cannot open a directory, and some file systems refuse; the new file is in place either way.
    if hasattr(os, "O_DIRECTORY"):
        with contextlib.suppress(OSError):
            _fsync(directory, os.O_RDONLY | os.O_DIRECTORY)
    return path


def atomic_write_text(path, text, *, encoding="utf-8", prefix=TEMP_PREFIX):
    """atomic_write for a string, e.g. JSON, written byte for byte: no newline translation, so the file is
    the same on every operating system. Returns path."""
    return atomic_write(path, lambda tmp: Path(tmp).write_bytes(text.encode(encoding)), prefix=prefix)


def remove_stale_temps(directory, *, prefix=TEMP_PREFIX, max_age=STALE_AFTER_SECONDS):
    """Delete the temporary files that killed writers left in directory; return the paths deleted.

    Only regular files whose name starts with prefix are looked at. One is deleted when the process
    named in it no longer runs or, where that cannot be checked, when it is older than max_age seconds.
    Nothing here raises: this is tidying up, and must never stop a run.
    """
    removed = []
    for path in Path(directory).glob(f"{prefix}*"):  # no match, no error, if directory is missing or unreadable
        with contextlib.suppress(OSError):  # gone already (another process tidied it), or not ours to delete
            info = path.lstat()  # lstat: a symlink is judged as itself, never followed
            alive = process_alive(path.name[len(prefix):].split("-", 1)[0])
            if alive is None:
                alive = time.time() - info.st_mtime < max_age
            if stat.S_ISREG(info.st_mode) and not alive:
                path.unlink()
                removed.append(path)
    return removed


def process_alive(pid):
    """True if the process with this id (an int, or its digits as a str) runs, False if it does not, None
    if we cannot tell (on Windows, or for something that is not a pid).

    A dead writer's pid may since have been given to another process; its leftover is then kept until that
    one exits too. Keeping a small file a while longer is the safe way to be wrong.
    """
    # On Windows os.kill(pid, 0) would not test the process but end it; a pid of 0 means our process group.
    if os.name != "posix" or not str(pid).isdigit() or int(pid) <= 0:
        return None
    try:
        os.kill(int(pid), 0)  # signal 0 sends nothing; it only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, but belongs to another user
        return True
    except (OSError, OverflowError):  # OverflowError: a number too big to be a pid
        return None
    return True


def _fsync(path, flags):
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
