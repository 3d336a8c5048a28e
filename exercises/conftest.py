"""Turns an exercise that is not written yet into one short "not done yet" line with its hint.

Every stub raises NotImplementedError("not done yet: ..."). Without this hook the learner would see that
error's traceback, which says nothing they do not know; with it they see which function to write, in
which file, the exercise's hint and the note to read.
"""

import re

import pytest
import torch

# The checks' tensors are tiny: one thread runs them faster than several that wait on each other,
# and much faster on a machine whose other cores are busy.
torch.set_num_threads(1)


def hint_of(module):
    """The 'Hint.' paragraph and the 'Note:' link of an exercise's docstring."""
    doc = module.__doc__ or ""
    hint = re.search(r"^Hint\.\s+(.*?)(?:\n\s*\n|\Z)", doc, re.S | re.M)
    note = re.search(r"Note:\s*(\S+)", doc)
    text = " ".join(hint.group(1).split()) if hint else ""
    return text, (note.group(1) if note else "")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    module = getattr(item.module, "ex", None)  # each check file loads its exercise as `ex`
    if call.excinfo is None or module is None or not call.excinfo.errisinstance(NotImplementedError):
        return
    path = module.__name__.replace(".", "/") + ".py"
    hint, note = hint_of(module)
    lines = [f"{call.excinfo.value}", f"  write it in {path}, then run this check again."]
    if hint:
        lines.append(f"  Hint: {hint}")
    if note:
        lines.append(f"  Read: {note.replace('../', '')}")
    report.longrepr = "\n".join(lines)  # replaces the traceback, which would say nothing the learner needs
