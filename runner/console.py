"""What a run shows and what it listens to: printing that survives a closed pipe, progress that shows in a
terminal and in a notebook, and signals that stop a run between two steps instead of killing it.
"""

import os
import signal
import sys
import threading

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
        self.signum = signum  # the signal that asked to stop; None while none has


class PlainLines:
    """Where tqdm writes when stderr is no terminal: each of its redraws (a carriage return, then the status)
    becomes a line of its own, so a log file or a notebook's !python gets plain lines, not one rewritten line."""

    def write(self, text):
        if text.strip():
            say(text.strip(), file=sys.stderr)

    def flush(self):
        pass


def progress_bar(stage, total, initial, enabled=True):
    """tqdm: a live bar in a terminal; elsewhere a plain line when the run starts, every 15 seconds and after
    its last step (`bigram_v3: step 600/3,000 (20%), loss 2.5012, about 00:12 left`). Not enabled: nothing."""
    if sys.stderr.isatty():
        looks = {"dynamic_ncols": True}  # the bar follows the terminal's width
    else:
        looks = dict(file=PlainLines(), mininterval=PLAIN_PROGRESS_SECONDS, maxinterval=PLAIN_PROGRESS_SECONDS,
                     leave=False,  # its close writes nothing, so a bar closed after an error adds no line
                     bar_format="{desc}: step {n:,}/{total:,} ({percentage:.0f}%){postfix}, about {remaining} left")
    return tqdm(total=total, initial=initial, desc=stage, unit="step", disable=not enabled, **looks)


def say_above_bar(line):
    """say(line) on stdout without tearing a progress bar on stderr: tqdm clears it, then redraws it below."""
    with tqdm.external_write_mode():
        say(line)
