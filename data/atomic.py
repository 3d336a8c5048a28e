"""Writing a file so that a crash, a full disk or Ctrl-C never leaves half of it behind.

Opening `path` and writing to it would truncate the old file first: a run killed mid-write leaves a file
that is neither the old nor the new one, such as a checkpoint torch.load cannot read or a cache that fails
its checksum. Instead the new content goes to a temporary file in the same directory, which is then
renamed onto `path` with os.replace. A rename within one directory is atomic: anyone opening `path` sees
either the whole old file or the whole new one.

    from data.atomic import TEMP_PREFIX, atomic_write, atomic_write_text, process_alive, remove_stale_temps
    atomic_write("out/ckpt.pt", lambda tmp: torch.save(state, tmp))
    atomic_write_text("out/metrics.json", json.dumps(metrics, indent=2) + "\n")

A process killed with SIGKILL (or a power cut) gets no chance to delete its temporary file. Its name
starts with TEMP_PREFIX and holds the writer's process id, so remove_stale_temps can later tell a leftover
from a file that another running process is still writing (process_alive answers that question, and
serves any other file that records a pid, such as a lock).
"""

import os
import secrets
import stat
import time
from pathlib import Path

TEMP_PREFIX = ".gfs-tmp-"  # gfs = gpt-from-scratch; the leading dot hides it from a plain `ls`
# Where a process id cannot be checked (Windows), a temporary file is taken as abandoned once it is this
# old: no write in this project takes anywhere near a day.
STALE_AFTER_SECONDS = 24 * 60 * 60


def atomic_write(path, write, *, prefix=TEMP_PREFIX):
    """Call write(tmp) to fill a temporary file beside path, then move it onto path in one step.

    write gets the temporary file's path (a str) and must write the whole new content there, for example
    `lambda tmp: torch.save(state, tmp)`. If write, or anything after it, raises (KeyboardInterrupt
    included), the temporary file is deleted, the exception goes on to the caller and the file at path,
    if there was one, is untouched. path need not exist yet; its directory must. Returns path.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    tmp = _create_temp(directory, f"{prefix}{os.getpid()}-", f"-{os.path.basename(path)}")
    try:
        write(tmp)
        _fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        # After a successful os.replace there is no temporary file any more, so missing_ok.
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_directory(directory)
    return path


def atomic_write_text(path, text, *, encoding="utf-8", prefix=TEMP_PREFIX):
    """atomic_write for a string, e.g. JSON. The bytes are written as given: no newline translation, so
    the file is the same on every operating system. Returns path."""
    data = text.encode(encoding)
    return atomic_write(path, lambda tmp: Path(tmp).write_bytes(data), prefix=prefix)


def remove_stale_temps(directory, *, prefix=TEMP_PREFIX, max_age=STALE_AFTER_SECONDS):
    """Delete the temporary files that killed writers left in directory; return the paths deleted.

    Only regular files whose name starts with prefix are considered, so nothing else is ever touched. One
    is deleted when the process named in it no longer runs or, where that cannot be checked (Windows, or
    a name without a process id), when it is older than max_age seconds. A missing directory, or a file
    that cannot be deleted, is not an error: this is tidying up, and must never stop a run.
    """
    try:
        names = os.listdir(directory)
    except OSError:  # missing, not a directory, not readable: nothing we can tidy
        return []
    removed = []
    for name in names:
        if not name.startswith(prefix):
            continue
        path = Path(directory) / name
        try:
            info = path.lstat()  # lstat: a symlink is judged as itself, never followed
            if not stat.S_ISREG(info.st_mode):
                continue
            alive = process_alive(name[len(prefix):].split("-", 1)[0])
            if alive is None:
                alive = time.time() - info.st_mtime < max_age
            if not alive:
                path.unlink()
                removed.append(path)
        except OSError:  # gone already (another process tidied it) or not ours to delete
            continue
    return removed


def process_alive(pid):
    """True if the process with this id (an int, or its digits as a str) runs, False if it does not, None
    if we cannot tell.

    A pid freed by a dead writer may since have been given to another process; the leftover is then kept
    until that one exits too. Keeping a small file a while longer is the safe way to be wrong.
    """
    pid = str(pid)
    if os.name != "posix" or not pid.isdigit() or int(pid) <= 0:
        # On Windows os.kill(pid, 0) would not test the process: it would terminate it. A pid of 0 would
        # signal our whole process group.
        return None
    try:
        os.kill(int(pid), 0)  # signal 0 sends nothing; it only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists but belongs to another user
        return True
    except (OSError, OverflowError):  # OverflowError: a number too big to be a pid
        return None
    return True


def _create_temp(directory, prefix, suffix):
    """Create a new, empty file in directory; return its path.

    os.open with O_EXCL fails if the name exists, so two writers can never share a temporary file. Mode
    0o666 lets the umask decide the permissions, as for any file open() creates; tempfile.mkstemp would
    make it 0o600, and os.replace would carry that over to path.
    """
    while True:
        tmp = os.path.join(directory, f"{prefix}{secrets.token_hex(4)}{suffix}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:  # 1 chance in 4 billion: draw another name
            continue
        os.close(fd)
        return tmp


def _fsync_file(path):
    """Wait until the file's bytes are on the disk, not just in the OS's cache.

    Without this, a power cut soon after os.replace can leave path pointing at a file whose content was
    never written: the rename reached the disk before the data did.
    """
    fd = os.open(path, os.O_RDWR)  # RDWR, not RDONLY: Windows refuses to flush a read-only handle
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_directory(directory):
    """Make the rename itself durable, where the OS allows it: a directory is a file listing names, and
    the new name is in it only once the directory is flushed too. Windows cannot open a directory this
    way, and some file systems refuse; the new file is in place either way, so that is not an error."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
