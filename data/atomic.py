"""Writing a file so that a crash, a full disk or Ctrl-C never leaves half of it behind. Used for every file
in a run's --out (runner/checkpoints.py) and for the Tiny Shakespeare download (data/shakespeare.py).

Writing straight to `path` would truncate the old file first, so a run killed mid-write would leave a
checkpoint torch.load cannot read. Instead the new content goes to `<path>.tmp` in the same directory,
which os.replace then renames onto `path`: a rename within one directory is atomic, so anyone opening
`path` sees either the whole old file or the whole new one.

    atomic_write("out/ckpt.pt", lambda tmp: torch.save(state, tmp))

The temporary file has a fixed name: a save killed outright (SIGKILL, a power cut) leaves it behind, and
the next save to the same path overwrites it. Two writers of one path would share it, which is why a run
writes in its --out only while it holds the directory's lock (runner/checkpoints.py).
"""

import contextlib
import os
from pathlib import Path


def atomic_write(path, write):
    """Call write(tmp) to fill `<path>.tmp`, then move it onto path in one step.

    write gets the temporary file's path (a str), for example `lambda tmp: torch.save(state, tmp)`. If
    anything raises (KeyboardInterrupt included), the temporary file is deleted, the exception goes on
    and the file at path, if there was one, is untouched. path's directory must exist. Returns path.
    """
    path = os.fspath(path)
    tmp = path + ".tmp"
    open(tmp, "wb").close()  # first, so a directory we cannot write to fails before any work is done
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
            _fsync(os.path.dirname(os.path.abspath(path)), os.O_RDONLY | os.O_DIRECTORY)
    return path


def _fsync(path, flags):
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
