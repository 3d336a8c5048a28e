"""How the checks talk to the learner: hints in tiers, "not done yet" in one line, and forgiving -k.

- `--hints N` (1, 2 or 3) sets how many tiers of hints a failing check shows (checks/common.py).
- A stub raises NotImplementedError("not done yet: ..."). Its traceback says nothing the learner does not
  know, so it is replaced by which function to write, in which file, its hint and the note to read.
- `-k attention-head` means `-k attention_head`: test names use underscores, and a hyphen would deselect
  every check without a word. When -k still selects nothing, one line lists the names that work.
"""

import re
from pathlib import Path

import pytest
import torch

from exercises.checks import common

# The checks' tensors are tiny: one thread runs them faster than several that wait on each other,
# and much faster on a machine whose other cores are busy.
torch.set_num_threads(1)


def pytest_addoption(parser):
    parser.addoption("--hints", type=int, choices=(1, 2, 3), default=1,
                     help="exercises: how much help a failing check gives: 1 a nudge, 2 the calls, 3 the answer")


def pytest_configure(config):
    common.HINT_LEVEL = config.getoption("hints")
    if config.option.keyword:  # words in -k: a hyphen in a name is an underscore in the checks' names
        config.option.keyword = re.sub(r"(?<=\w)-(?=\w)", "_", config.option.keyword)


def exercise_names():
    return sorted(p.stem.split("_", 1)[1] for p in Path(__file__).parent.glob("e[0-9][0-9]_*.py"))


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED and config.option.keyword:
        names = ", ".join(exercise_names())
        terminalreporter.write_line(f"-k {config.option.keyword} matched no check; each exercise's own name "
                                    f"works: {names}")


def stub_hint(module, excinfo):
    """The hint for the function whose stub raised: 'not done yet: make_batch(...)' -> HINTS['make_batch']."""
    hints = getattr(module, "HINTS", {})
    said = re.match(r"not done yet: ([\w.]+)", str(excinfo.value))
    name = said.group(1) if said else ""
    return hints.get(name) or hints.get(name.split(".")[0])


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    exercise = getattr(item.module, "ex", None)  # each check file loads its exercise as `ex`
    if (call.excinfo is None or not isinstance(exercise, common.Exercise)
            or not call.excinfo.errisinstance(NotImplementedError)):
        return
    lines = [f"{call.excinfo.value}", f"  write it in {exercise.path}, then run this check again."]
    hint = stub_hint(item.module, call.excinfo)
    if hint:
        lines.append(f"  {hint.text()}")
    note = re.search(r"Note:\s*\.\./(\S+)", exercise.module().__doc__ or "")
    if note:
        lines.append(f"  Read: {note.group(1)}")
    report.longrepr = "\n".join(lines)  # replaces the traceback, which would say nothing the learner needs
