"""What a run keeps on disk, in --out:

    ckpt.pt         the last state: weights, optimizer, random-number generators, progress. --resume
                    continues from it exactly. Written at every evaluation and whenever a run stops.
    best.pt         the weights with the lowest val estimate so far, with the step they were reached at.
                    What a run reports, samples from, and what --sample-only loads.
    tokenizer.json  the vocabulary, so a sample can be drawn without the training text.
    metrics.json    the final figures (see runner.report).
    .lock           the process writing here; a second run on the same --out is refused while it lives.

Every file is written atomically (data.atomic), so a crash or a full disk leaves the previous one intact.
"""

import io
import json
import os
import socket
import time
from dataclasses import asdict, dataclass, field

import torch

from data import CharTokenizer
from data.atomic import STALE_AFTER_SECONDS, atomic_write, atomic_write_text, process_alive, remove_stale_temps

from .cli import config_problem

CHECKPOINT = "ckpt.pt"
BEST = "best.pt"
TOKENIZER = "tokenizer.json"
METRICS = "metrics.json"
LOCK = ".lock"


class CheckpointError(Exception):
    """A checkpoint that is missing, unreadable or does not fit the run: one line saying what to do."""


@dataclass
class Progress:
    """Where a run stands: everything about it that is not a tensor."""

    step: int = 0
    history: list = field(default_factory=list)  # one {"iter", "seconds", "train", "val"} per evaluation
    step_losses: list = field(default_factory=list)  # the training loss of every step
    train_seconds: float = 0.0  # optimizer steps only, evaluations and saves not counted
    best: dict = None  # the evaluation whose weights best.pt holds

    def evaluated_at(self, step):
        return bool(self.history) and self.history[-1]["iter"] == step

    def evaluations_since_best(self):
        if self.best is None:
            return 0
        return sum(1 for h in self.history if h["iter"] > self.best["iter"])


@dataclass
class RunState:
    """The objects a checkpoint is made from."""

    stage: str
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    cfg: dict
    tok: CharTokenizer
    text_sha256: str
    batch_gen: torch.Generator
    progress: Progress
    world_size: int = 1


def save_checkpoint(out, state, rng_states):
    """Write ckpt.pt (the whole run) and tokenizer.json. rng_states: one entry per process."""
    payload = {
        "stage": state.stage,
        "model": state.model.state_dict(),
        "optimizer": state.optimizer.state_dict(),
        "config": state.cfg,
        "tokenizer": state.tok.to_dict(),
        "text_sha256": state.text_sha256,
        "world_size": state.world_size,
        "rng": rng_states,
        **asdict(state.progress),
    }
    write_torch(os.path.join(out, CHECKPOINT), payload)
    tokenizer = os.path.join(out, TOKENIZER)
    write(tokenizer, lambda: state.tok.save(tokenizer))  # itself an atomic write


def save_best(out, state, evaluation):
    """Write best.pt: the weights of this evaluation, which beat every earlier one on val."""
    payload = {"stage": state.stage, "model": state.model.state_dict(), "config": state.cfg,
               "tokenizer": state.tok.to_dict(), "text_sha256": state.text_sha256, **evaluation}
    write_torch(os.path.join(out, BEST), payload)


def rng_state(batch_gen):
    state = {"torch": torch.get_rng_state(), "batches": batch_gen.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state, batch_gen):
    torch.set_rng_state(state["torch"])
    batch_gen.set_state(state["batches"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def write_torch(path, payload):
    """torch.save, serialized in memory first: a failed write to disk then raises an OSError whose errno
    says why (disk full, file too large), where torch's own file writer reports only "unexpected pos"."""
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    write(path, lambda: atomic_write(path, lambda tmp: open_and_write(tmp, buffer.getbuffer())))


def open_and_write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def write(path, atomic_save):
    """Run atomic_save(), which writes path atomically; a full disk, a quota or a permission problem
    becomes one line naming the path and the cause."""
    try:
        atomic_save()
    except OSError as e:
        raise CheckpointError(f"cannot save {os.path.abspath(path)} ({e.strerror or e}); the previous file there "
                              f"is intact: free some space or choose another --out, then --resume") from None


def write_json(path, obj):
    text = json.dumps(obj, indent=2) + "\n"
    write(path, lambda: atomic_write_text(path, text))


# ----------------------------------------------------------------------------------------------------
# loading, and checking what was loaded: a checkpoint may come from an older version, another stage,
# or a hand edit, and must fail in one line rather than deep inside PyTorch

RESUME_KEYS = {"optimizer": dict, "step": int, "history": list, "step_losses": list, "train_seconds": (int, float),
               "rng": (dict, list)}


def load(path, stage, defaults, for_resume):
    if not os.path.exists(path):
        raise CheckpointError(f"no checkpoint at {path}; train first with `python {stage}.py --out {os.path.dirname(path)}`")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"checkpoint {path} is corrupt or unreadable ({type(e).__name__}); "
                              f"delete it and train again") from None
    if not isinstance(ckpt, dict) or "stage" not in ckpt or "model" not in ckpt:
        raise CheckpointError(f"{path} is not a gpt-from-scratch checkpoint; delete it and train again")
    if ckpt["stage"] != stage:
        raise CheckpointError(f"checkpoint {path} was written by {ckpt['stage']}.py, not {stage}.py; "
                              f"point --out at a {stage} run (default out/{stage})")
    problem = checkpoint_problem(ckpt, defaults, for_resume)
    if problem:
        raise CheckpointError(f"checkpoint {path} is malformed: {problem}; delete it and train again")
    return ckpt


def checkpoint_problem(ckpt, defaults, for_resume):
    """The first thing that makes ckpt unusable, or None."""
    if not isinstance(ckpt["model"], dict):
        return "its weights are not a state dict"
    problem = config_problem(ckpt.get("config"), required=defaults)
    if problem:
        return problem
    try:
        CharTokenizer.from_dict(ckpt.get("tokenizer"))
    except (ValueError, TypeError) as e:
        return f"its tokenizer is unusable ({e})"
    if not for_resume:
        return None
    for key, kind in RESUME_KEYS.items():
        if not isinstance(ckpt.get(key), kind) or isinstance(ckpt.get(key), bool):
            return f"{key} is missing or not a {getattr(kind, '__name__', 'number')}"
    step, cfg = ckpt["step"], ckpt["config"]
    if not 0 <= step <= cfg["max_iters"]:
        return f"its step {step} is outside 0..max_iters ({cfg['max_iters']})"
    if len(ckpt["step_losses"]) != step:
        return f"it holds {len(ckpt['step_losses'])} step losses for {step} steps"
    for h in ckpt["history"]:
        if not (isinstance(h, dict) and isinstance(h.get("iter"), int) and 0 <= h["iter"] <= step
                and all(isinstance(h.get(k), (int, float)) for k in ("train", "val", "seconds"))):
            return "its history has an entry without a valid iter, train, val and seconds"
    best = ckpt.get("best")
    if best is not None and not (isinstance(best, dict) and isinstance(best.get("iter"), int)
                                 and isinstance(best.get("val"), (int, float))):
        return "its best-model record is malformed"
    if not (ckpt["train_seconds"] >= 0):
        return "its train_seconds is negative"
    return None


def load_weights(model, ckpt, path):
    try:
        model.load_state_dict(ckpt["model"])
    except (RuntimeError, KeyError, TypeError):
        raise CheckpointError(f"the checkpoint {path} does not fit this model (different sizes or vocabulary); "
                              f"use another --out or train again") from None


def trained_model_in(out):
    """The checkpoint files of a model already trained in out (empty when there is none)."""
    return [name for name in (CHECKPOINT, BEST) if os.path.exists(os.path.join(out, name))]


# ----------------------------------------------------------------------------------------------------
# one writer per --out


class OutLock:
    """A lock file in --out that names the process writing there.

    Created with O_EXCL, so of two runs starting together exactly one gets it. A lock whose process has
    died (a crash, a kill -9) is stale and is taken over; one whose process still runs refuses the second
    run with its pid. Works on every OS; where a process id cannot be checked (Windows), a lock is only
    taken over when its process id is our own or it is more than a day old.
    """

    def __init__(self, out):
        self.path = os.path.join(out, LOCK)
        self.held = False

    def __enter__(self):
        out = os.path.dirname(self.path)
        for _ in range(2):
            try:
                os.makedirs(out, exist_ok=True)
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                owner = self._owner()
                if owner is not None and owner.get("pid") != os.getpid() and self._owner_alive(owner):
                    raise CheckpointError(
                        f"{os.path.dirname(os.path.abspath(self.path))} is in use by process {owner.get('pid')} "
                        f"on {owner.get('host', '?')} (lock file {self.path}); wait for it to finish, or use "
                        f"another --out") from None
                try:
                    os.unlink(self.path)  # stale: its process is gone
                except FileNotFoundError:
                    pass
                continue
            except OSError as e:
                raise CheckpointError(f"cannot write to --out {out} ({e.strerror or e}); choose another "
                                      f"directory") from None
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump({"pid": os.getpid(), "host": socket.gethostname()}, f)
            self.held = True
            remove_stale_temps(out)  # temp files of killed saves (only ours, by prefix)
            return self
        raise CheckpointError(f"cannot take the lock {self.path}: another run keeps taking it; use another --out")

    def __exit__(self, *exc):
        if self.held:
            try:
                os.unlink(self.path)
            except OSError:
                pass
            self.held = False

    def _owner(self):
        try:
            with open(self.path, encoding="utf-8") as f:
                owner = json.load(f)
            return owner if isinstance(owner, dict) else {}
        except (OSError, ValueError):
            return {}  # unreadable or half-written: treated as held by an unknown process

    def _owner_alive(self, owner):
        if owner.get("host") not in (None, socket.gethostname()):
            return True  # another machine (a shared disk): we cannot check it, so we do not take it over
        pid = owner.get("pid")
        if not isinstance(pid, int):
            return self._young()
        alive = process_alive(pid)
        return self._young() if alive is None else alive

    def _young(self):
        try:
            return time.time() - os.path.getmtime(self.path) < STALE_AFTER_SECONDS
        except OSError:
            return False
