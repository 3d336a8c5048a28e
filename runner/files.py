"""What a run keeps in --out, and how it is written and read back:

    ckpt.pt         the last state: weights, optimizer, random-number generators, progress. --resume
                    continues from it exactly. Written at every evaluation and whenever a run stops.
    best.pt         the weights with the lowest val estimate so far, and the step they come from: what a
                    run reports and samples, and what --sample-only loads.
    tokenizer.json  the vocabulary as plain JSON, for you and other tools (the checkpoints hold it too, so
                    a sample can be drawn without the training text).
    metrics.json    the final figures (runner.report).
    .lock           the process writing here: a second run on the same --out is refused while it lives.

Every file but .lock is written atomically (data/atomic.py), so a crash or a full disk leaves the previous one whole.
A checkpoint is checked when it is read, so one from another stage, another version or a hand edit ends
in one line instead of a traceback deep inside PyTorch.
"""

import io
import json
import os
import time
from contextlib import contextmanager
from pathlib import Path

import torch

from data import CharTokenizer
from data.atomic import STALE_AFTER_SECONDS, atomic_write, process_alive, remove_stale_temps

from .config import UserError, config_problem

CHECKPOINT, BEST, TOKENIZER, METRICS, LOCK = "ckpt.pt", "best.pt", "tokenizer.json", "metrics.json", ".lock"


def write(path, data):
    """Write bytes or text to path atomically; a full disk or a permission problem is one line."""
    data = data.encode("utf-8") if isinstance(data, str) else data
    try:
        atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))
    except OSError as e:
        raise UserError(f"cannot save {os.path.abspath(path)} ({e.strerror or e}); the previous file there is "
                        f"intact: free some space or choose another --out, then --resume") from None


def save_torch(path, payload):
    """torch.save into memory first, so a failed write to disk says why (disk full, file too large)."""
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    write(path, buffer.getvalue())


def save_json(path, obj):
    write(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def read_metrics(out):
    """metrics.json of the run in out, or None when that run has not finished."""
    try:
        return json.loads(Path(out, METRICS).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise UserError(f"{Path(out, METRICS)} is unreadable ({e}); delete it or train again") from None


def load_checkpoint(path, stage, table):
    """Read a checkpoint and check what every use needs: its stage, weights, config and tokenizer."""
    if not os.path.isfile(path):
        raise UserError(f"no trained model at {path}; train first: `python {stage}.py --out {os.path.dirname(path)}`")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated, not a torch file, a pickle that is not plain data
        raise UserError(f"{path} is corrupt or unreadable ({type(e).__name__}); delete it and train again") from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("model"), dict) or "stage" not in ckpt:
        raise UserError(f"{path} is not a gpt-from-scratch checkpoint; delete it and train again")
    if ckpt["stage"] != stage:
        raise UserError(f"{path} was written by {ckpt['stage']}.py, not {stage}.py; point --out at a {stage} run")
    why = config_problem(ckpt.get("config"), table)
    try:
        CharTokenizer.from_dict(ckpt.get("tokenizer"))
    except (ValueError, TypeError) as e:
        why = why or f"its tokenizer is unusable ({e})"
    if why:
        raise UserError(f"{path} is malformed: {why}; delete it and train again")
    return ckpt


def load_weights(model, ckpt, path):
    try:
        model.load_state_dict(ckpt["model"])
    except (RuntimeError, KeyError, TypeError):
        raise UserError(f"{path} does not fit this model (other sizes or vocabulary); use another --out") from None


@contextmanager
def out_lock(out):
    """A lock file in --out naming the process that writes there, while the block runs: one run per --out.

    Created with O_EXCL, so of two runs starting together exactly one gets it; it holds the writer's pid.
    A stale lock (lock_holder says who counts as alive) is taken over.
    """
    path = os.path.join(out, LOCK)
    if os.path.exists(out) and not os.path.isdir(out):
        raise UserError(f"--out {out} is a file, not a directory; choose a directory")
    try:
        os.makedirs(out, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            holder = lock_holder(out)
            if holder:
                raise UserError(f"{out} is in use by process {holder} (lock file {path}); wait for it to finish or "
                                f"use another --out; if no run is using it, delete the lock file") from None
            Path(path).unlink(missing_ok=True)  # stale: its process is gone
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(str(os.getpid()))
        except OSError:
            os.unlink(path)  # a lock without a pid must not block the next run
            raise
    except FileExistsError:
        raise UserError(f"another run took {path} at the same moment; use another --out") from None
    except OSError as e:
        raise UserError(f"cannot write to --out {out} ({e.strerror or e}); free some space or choose "
                        f"another directory") from None
    remove_stale_temps(out)  # the temporary files of killed saves (ours only, by name)
    try:
        yield
    finally:
        Path(path).unlink(missing_ok=True)


def lock_holder(out):
    """The pid of the live run writing in out ("(unknown)" while its fresh lock holds no pid yet), or None.

    A lock is stale, and None is returned, when its process has died (a crash, kill -9), when it names this
    process (a pid reused, as pid 1 is in every container), when it holds no pid (its writer died before
    writing one) and is a minute old, or, where a pid cannot be checked (Windows), when it is a day old.
    """
    path = os.path.join(out, LOCK)
    try:
        pid, age = Path(path).read_text().strip(), time.time() - os.path.getmtime(path)
    except OSError:
        return None  # no lock, or its run just finished
    alive = False if pid == str(os.getpid()) else process_alive(pid) if pid else None
    if (age < (STALE_AFTER_SECONDS if pid else 60)) if alive is None else alive:
        return pid or "(unknown)"
    return None
