"""What a run shows and what it listens to: printing that survives a closed pipe, progress that shows in a
terminal and in a notebook, and signals that stop a run between two steps instead of killing it.
"""

import math
import os
import signal
import sys
import threading
import time

from tqdm import tqdm

# Ctrl-C, `kill` / `timeout` / a cluster's stop (SIGTERM), and a closed terminal (SIGHUP; POSIX only).
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))
NOTEBOOK_PROGRESS_SECONDS = 15  # without a terminal (a notebook's !python, a log file): a line this often


def make_output_forgiving():
    """Characters the terminal cannot show become '?', instead of a UnicodeEncodeError after training."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(errors="replace")
        except (AttributeError, ValueError, OSError):
            pass  # not a text stream we can reconfigure (a test's capture, say): nothing to do


def say(*args, file=None, **kwargs):
    """print(), but a reader that went away (`python gpt.py | head`) never stops training.

    Once stdout's pipe is closed every later write would fail too, so stdout is pointed at the null
    device and the run goes on to save its checkpoint.
    """
    file = file or sys.stdout
    try:
        print(*args, file=file, flush=True, **kwargs)
    except (BrokenPipeError, ValueError, OSError):  # ValueError: the stream was closed
        devnull = open(os.devnull, "w", encoding="utf-8")
        if file is sys.stdout:
            sys.stdout = devnull
        elif file is sys.stderr:
            sys.stderr = devnull


class StopRequest:
    """Turns Ctrl-C, SIGTERM and SIGHUP into a flag that the training loop reads between two steps.

    Stopping between steps means the checkpoint holds a whole number of steps, so --resume repeats the
    uninterrupted run exactly. A second Ctrl-C quits at once (without saving).
    """

    def __init__(self):
        self.signum = None
        self._previous = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():  # signals reach the main thread only
            for signum in STOP_SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def _handle(self, signum, frame):
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum

    @property
    def requested(self):
        return self.signum is not None

    def name(self):
        return signal.Signals(self.signum).name if self.signum else None

    def exit_status(self):
        return 128 + self.signum  # the shell's convention: 130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP


class ProgressBar:
    """tqdm in a terminal; elsewhere (Colab's !python, a log file) a plain line every few seconds."""

    def __init__(self, stage, total, initial, enabled=True):
        self.stage, self.total, self.step = stage, total, initial
        self.terminal = enabled and sys.stderr.isatty()
        self.enabled = enabled
        self.bar = tqdm(total=total, initial=initial, desc=stage, unit="step", dynamic_ncols=True,
                        file=sys.stderr) if self.terminal else None
        self.started, self.start_step = time.monotonic(), initial
        self.last_line = -math.inf  # the first step prints at once: a notebook shows the run has started

    def update(self, n, loss):
        self.step += n
        if self.bar is not None:
            self.bar.update(n)
            self.bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
        elif self.enabled and time.monotonic() - self.last_line >= NOTEBOOK_PROGRESS_SECONDS:
            self.last_line = time.monotonic()
            elapsed = self.last_line - self.started
            rate = (self.step - self.start_step) / elapsed if elapsed > 0 else 0
            done = self.step - self.start_step
            left = f", about {(self.total - self.step) / rate:.0f} s left" if rate and done >= 10 else ""
            say(f"{self.stage}: step {self.step:,}/{self.total:,} ({self.step / self.total:.0%}), "
                f"loss {loss:.4f}{left}", file=sys.stderr)

    def unpause(self):
        """After an evaluation: its time does not count towards the bar's rate (tqdm restarts its timer)."""
        if self.bar is not None:
            self.bar.unpause()

    def write(self, line):
        """A line for stdout that does not tear the bar."""
        if self.bar is not None:
            try:
                self.bar.clear()
            except (BrokenPipeError, OSError, ValueError):
                pass
            say(line)
            try:
                self.bar.refresh()
            except (BrokenPipeError, OSError, ValueError):
                pass
        else:
            say(line)

    def close(self):
        if self.bar is not None:
            try:
                self.bar.close()
            except (BrokenPipeError, OSError, ValueError):
                pass
