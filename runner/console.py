"""What a run shows and what it listens to: printing that survives a closed pipe, progress that shows in a
terminal and in a notebook, and signals that stop a run between two steps instead of killing it.
"""

import os
import signal
import sys
import threading
import time

from tqdm import tqdm

# Ctrl-C, `kill` / `timeout` / a cluster's stop (SIGTERM), and a closed terminal (SIGHUP; POSIX only)
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))
PLAIN_PROGRESS_SECONDS = 15  # without a terminal (a notebook's !python, a log file): a line this often


def make_output_forgiving():
    """Characters the terminal cannot show become '?', instead of a UnicodeEncodeError after training."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(errors="replace")
        except (AttributeError, ValueError, OSError):
            pass  # not a text stream we can reconfigure (a test's capture, say)


def say(*args, file=None, **kwargs):
    """print(), but a reader that went away (`python gpt.py | head`) never stops training: once the pipe
    is closed every later write would fail too, so that stream goes to the null device from then on."""
    file = file or sys.stdout
    try:
        print(*args, file=file, flush=True, **kwargs)
    except (BrokenPipeError, ValueError, OSError):  # ValueError: the stream was closed
        if file in (sys.stdout, sys.stderr):
            setattr(sys, "stdout" if file is sys.stdout else "stderr", open(os.devnull, "w", encoding="utf-8"))


class StopRequest:
    """Turns Ctrl-C, SIGTERM and SIGHUP into a flag the training loop reads between two steps.

    Stopping between steps means the checkpoint holds a whole number of steps, so --resume repeats the
    uninterrupted run exactly. A second Ctrl-C quits at once (without saving).
    """

    def __init__(self):
        self.signum, self.previous = None, {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():  # signals reach the main thread only
            self.previous = {signum: signal.signal(signum, self.handle) for signum in STOP_SIGNALS}
        return self

    def __exit__(self, *exc):
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)

    def handle(self, signum, frame):
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum

    @property
    def requested(self):
        return self.signum is not None

    def name(self):
        return signal.Signals(self.signum).name

    def exit_status(self):
        return 128 + self.signum  # the shell's convention: 130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP


class ProgressBar:
    """tqdm in a terminal; elsewhere (a notebook's !python, a log file) a plain line every 15 seconds."""

    def __init__(self, stage, total, initial, enabled=True):
        self.stage, self.total, self.step, self.enabled = stage, total, initial, enabled
        terminal = enabled and sys.stderr.isatty()
        self.bar = tqdm(total=total, initial=initial, desc=stage, unit="step", dynamic_ncols=True) if terminal else None
        self.start, self.start_step, self.last_line = time.monotonic(), initial, None

    def update(self, n, loss):
        self.step += n
        if self.bar is not None:
            self.bar.update(n)
            self.bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
        elif self.enabled and (self.last_line is None or time.monotonic() - self.last_line >= PLAIN_PROGRESS_SECONDS):
            self.last_line = time.monotonic()  # the first step prints at once: a notebook shows the run started
            rate = (self.step - self.start_step) / max(self.last_line - self.start, 1e-9)  # steps a second
            left = f", about {(self.total - self.step) / rate:.0f} s left" if self.step - self.start_step >= 10 else ""
            done = f"{self.step:,}/{self.total:,} ({self.step / self.total:.0%})"
            say(f"{self.stage}: step {done}, loss {loss:.4f}{left}", file=sys.stderr)

    def unpause(self):
        """After an evaluation: its time does not count towards the bar's rate (tqdm restarts its timer)."""
        if self.bar is not None:
            self.bar.unpause()

    def write(self, line):
        """A line for stdout that does not tear the bar."""
        if self.bar is None:
            return say(line)
        with tqdm.external_write_mode():  # clears the bar, then redraws it below the line
            say(line)

    def close(self):
        if self.bar is not None:
            try:
                self.bar.close()
            except (OSError, ValueError):  # stderr went away
                pass
