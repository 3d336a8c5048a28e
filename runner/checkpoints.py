"""What a run keeps in --out, how it is written and read back, and the lock that lets one run write there:

    ckpt.pt         the last state: weights, optimizer, random-number generators, progress. --resume
                    continues from it exactly. Written at every evaluation and whenever a run stops.
    best.pt         the weights with the lowest val estimate so far, and that evaluation: what a run
                    reports and samples, and what --sample-only loads.
    tokenizer.json  the vocabulary as plain JSON, for you and other tools (the checkpoints hold it too).
    metrics.json    the final figures of a finished run (NaN, from a diverged run, written as null).
    .lock           locked by the operating system while a run writes here, and released when it ends
                    however it ends, so a lock is never stale; it holds the writer's pid for messages.

Every file but .lock is written to `<name>.tmp`, flushed, then renamed (data.atomic_write), so a crash or
a full disk leaves the previous file whole; under the lock no other run writes the same temporary file.
A file a user may have edited (a checkpoint, metrics.json) is checked once, where it is read, and an
unusable one ends in one line with its reason.
"""

import io
import json
import os
import time
from contextlib import suppress
from pathlib import Path
from types import SimpleNamespace

import torch

from data import CharTokenizer, DataError, atomic_write

from .cli import config_problem

CHECKPOINT, BEST, TOKENIZER, METRICS, LOCK = "ckpt.pt", "best.pt", "tokenizer.json", "metrics.json", ".lock"
STAGES = ("bigram_v1", "bigram_v2", "bigram_v3", "gpt")  # the reading order
try:
    import fcntl
except ImportError:  # Windows
    import msvcrt


def write(path, data):
    """Write bytes or text to path atomically; a full disk or a permission problem is one line."""
    data = data.encode("utf-8") if isinstance(data, str) else data
    try:
        atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))
    except OSError as e:  # the previous file at path is whole (atomic_write)
        raise DataError(f"cannot save {os.path.abspath(path)} ({e.strerror or e}); free some space or choose "
                        f"another --out (a checkpoint saved before is intact: --resume)") from None


def save_torch(path, payload):
    """torch.save into memory first, so a failed write to disk says why (disk full, file too large)."""
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    write(path, buffer.getvalue())


def save_json(path, obj):
    # JSON has no NaN: a diverged run's NaN and infinite losses go through Python's NaN tokens to null
    plain = json.loads(json.dumps(obj), parse_constant=lambda _: None)
    write(path, json.dumps(plain, indent=2, ensure_ascii=False) + "\n")


def read_checkpoint(path, stage, table, build_model):
    """A checkpoint and the model it holds, checked for everything a use needs, or one DataError with its
    reason. Returns (ckpt, model on the CPU, tokenizer)."""
    if not os.path.isfile(path):
        out = os.path.dirname(path)
        again = " --overwrite" if any(os.path.exists(os.path.join(out, n)) for n in (CHECKPOINT, BEST, METRICS)) else ""
        raise DataError(f"no trained model at {path}; train first: `python {stage}.py --out {out}{again}`")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)  # no code from the file runs
        if not isinstance(ckpt, dict) or not isinstance(ckpt.get("model"), dict):
            raise ValueError("it holds no model")
        if ckpt.get("stage") != stage:
            raise ValueError(f"it was written by {ckpt.get('stage')}.py; point --out at a {stage} run")
        if not isinstance(ckpt.get("seed", 0), int) or ckpt.get("dtype", "float32") not in ("float32", "bfloat16"):
            raise ValueError("its seed or dtype is not one a run writes")
        if why := config_problem(ckpt.get("config"), table):
            raise ValueError(why)
        tok = CharTokenizer.from_dict(ckpt.get("tokenizer"))
        with torch.random.fork_rng(devices=[]):  # building the model draws its init: not from the run's generator
            model = build_model(ckpt["config"], tok.vocab_size)
        model.load_state_dict(ckpt["model"])
    except Exception as e:  # truncated, not a torch file, a pickle that is not plain data, edited, other sizes
        raise unusable(path, stage, e) from None
    return ckpt, model, tok


def unusable(path, stage, e):
    """The one line for a checkpoint that cannot be used, with its reason: e, what went wrong in reading it."""
    first = str(e).partition("\n")[0]
    why = first if isinstance(e, ValueError) else f"{type(e).__name__}: {first[:80]}"
    return DataError(f"{path} is not a usable {stage} checkpoint ({why}); delete it, or train again with --overwrite")


def read_metrics(out):
    """metrics.json of the run in out, or None when that run has not finished."""
    try:
        metrics = json.loads(Path(out, METRICS).read_text(encoding="utf-8"))
        if not isinstance(metrics, dict):
            raise ValueError("not the metrics a run writes")
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise DataError(f"{Path(out, METRICS)} is unusable ({e}); delete it or train again") from None
    return metrics


def load_run(out, stage, build_model=None, table=None, metrics=True):
    """The kept model of stage's run in out: best.pt when there is one, else ckpt.pt (a run stopped early).
    build_model and table: the stage's (by default imported from the stage module).

    Returns a namespace: stage; model (on the CPU, in eval mode); tok; cfg; metrics (metrics.json, or None
    for a run that has not finished, or not read: metrics=False); path (the checkpoint the weights came
    from); step (the step of those weights); val (their val estimate, nan before the first evaluation);
    busy (the pid of a run still writing in out, or None).
    """
    if build_model is None:
        module = __import__(stage)
        build_model, table = module.build_model, module.HYPERPARAMETERS
    out = os.path.abspath(out)
    path = next((os.path.join(out, n) for n in (BEST, CHECKPOINT) if os.path.isfile(os.path.join(out, n))),
                os.path.join(out, BEST))
    ckpt, model, tok = read_checkpoint(path, stage, table, build_model)
    step = ckpt.get("iter", ckpt.get("step", 0))  # best.pt names its evaluation's step "iter"
    val = ckpt["val"] if "val" in ckpt else (ckpt["history"][-1]["val"] if ckpt.get("history") else float("nan"))
    return SimpleNamespace(stage=stage, model=model.eval(), tok=tok, cfg=ckpt["config"], path=path, step=step,
                           val=val, metrics=read_metrics(out) if metrics else None, busy=lock_holder(out))


def take(f):
    """Lock the open file f without waiting; False when another process holds it."""
    try:
        if os.name == "nt":
            f.seek(0)
            msvcrt.locking(f.fileno(), msvcrt.LK_NBLCK, 1)
        else:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False


def lock(out):
    """Lock .lock in out: one run writes in out at a time. Returns the open file; closing it (or the end of the
    process, however it ends) releases the lock."""
    try:
        os.makedirs(out, exist_ok=True)
        f = open(os.path.join(out, LOCK), "a+", encoding="utf-8")
    except OSError as e:
        raise DataError(f"cannot use --out {out} ({e.strerror or e}); choose another directory") from None
    for _ in range(20):  # a reader (load_run: --sample-only, the figures, the explorer) holds it an instant
        if take(f):
            break
        time.sleep(0.025)
    else:
        f.close()
        raise DataError(f"{out} is in use by process {lock_holder(out)}; wait for it to finish or use another --out")
    with suppress(OSError):  # the pid, for the message above; a disk too full for it still locks
        f.truncate(0)
        f.write(str(os.getpid()))
        f.flush()
    return f


def lock_holder(out):
    """The pid written by the run that holds out's lock (or "unknown"), or None when no run holds it."""
    try:
        with open(os.path.join(out, LOCK), encoding="utf-8") as f:  # missing: no run has written here
            if take(f):
                return None  # free (closing the file releases our short hold)
            f.seek(0)
            return f.read().strip() or "unknown"
    except OSError:
        return None
