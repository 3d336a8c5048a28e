"""The exercises (exercises/): every solution passes its check, every untouched stub fails it helpfully.

The checks run as a learner runs them, `python -m pytest exercises`, in a child process: once with
GFS_SOLUTIONS=1 (the solutions), once as the repository ships them (the stubs). A stub's failure must say
"not done yet", without the NotImplementedError's traceback. The rest checks that every exercise names
its stage, its note and its command the same way in its docstring and in exercises/README.md. Some checks
read a slice of Tiny Shakespeare, so the two runs are skipped where it is not at hand, as the other
real-data tests are.
"""

import importlib
import inspect
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
EXERCISES = REPO_ROOT / "exercises"
NAMES = sorted(p.stem for p in EXERCISES.glob("e[0-9][0-9]_*.py"))
README = (EXERCISES / "README.md").read_text(encoding="utf-8")


def start_checks(folder, name, solutions, text):
    """Start every check in a child pytest, as a learner runs them; it writes name.xml (JUnit) and name.txt."""
    env = {k: v for k, v in os.environ.items() if k != "GFS_SOLUTIONS"}
    env["GPT_DATA"] = str(text)  # some checks read a slice of Tiny Shakespeare: the copy conftest found
    if solutions:
        env["GFS_SOLUTIONS"] = "1"
    with open(folder / f"{name}.txt", "w") as out:  # a file, not a pipe: two children never block on a full one
        return subprocess.Popen([sys.executable, "-m", "pytest", "exercises", "-q", "-p", "no:cacheprovider",
                                 f"--junitxml={folder / name}.xml"], cwd=REPO_ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT)


def results_of(folder, name):
    """{test id: None if it passed, else its failure message}, and the run's output."""
    output = (folder / f"{name}.txt").read_text()
    report = folder / f"{name}.xml"
    assert report.is_file(), f"pytest wrote no report:\n{output}"
    results = {}
    for case in ET.parse(report).iter("testcase"):
        problem = next((c for c in case if c.tag in ("failure", "error", "skipped")), None)
        results[f"{case.get('classname')}::{case.get('name')}"] = (
            None if problem is None else f"{problem.tag}: {problem.get('message', '')}")
    return results, output


@pytest.fixture(scope="module")
def runs(tmp_path_factory, shakespeare_path):
    """Both runs at once (each is mostly one core's work): the solutions', then the untouched stubs'."""
    folder = tmp_path_factory.mktemp("exercises")
    procs = {name: start_checks(folder, name, solutions, shakespeare_path)
             for name, solutions in (("solved", True), ("untouched", False))}
    try:
        for proc in procs.values():
            proc.wait(timeout=300)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return [results_of(folder, name) for name in procs]


@pytest.fixture(scope="module")
def solved(runs):
    return runs[0]


@pytest.fixture(scope="module")
def untouched(runs):
    return runs[1]


@pytest.mark.slow
def test_there_are_at_least_ten_exercises_with_checks(solved):
    results, _ = solved
    assert len(NAMES) >= 10, NAMES
    for name in NAMES:
        assert any(f"test_{name}" in test for test in results), f"no check ran for exercises/{name}.py"


@pytest.mark.slow
def test_every_solution_passes_its_check(solved):
    results, output = solved
    failed = {test: why for test, why in results.items() if why is not None}
    assert results and not failed, f"{failed}\n{output[-3000:]}"


@pytest.mark.slow
def test_every_untouched_stub_fails_with_not_done_yet(solved, untouched):
    results, output = untouched
    assert set(results) == set(solved[0]), "the stubs and the solutions should run the same checks"
    passing = [test for test, why in results.items() if why is None]
    assert not passing, f"these checks pass on the repository's exercise files, which must stay stubs: {passing}"
    # each failure: "not done yet", the file to write in, the exercise's hint and its note
    parts = ("not done yet: ", "write it in exercises/", "Hint: ", "Read: notes/")
    unhelpful = {test: why for test, why in results.items() if not all(part in why for part in parts)}
    assert not unhelpful, f"these stubs fail without saying 'not done yet', the hint and the note: {unhelpful}"
    assert "NotImplementedError" not in output and "Traceback" not in output, output[-3000:]


@pytest.mark.parametrize("name", NAMES)
def test_each_exercise_names_its_stage_note_hint_and_command(name):
    doc = importlib.import_module(f"exercises.{name}").__doc__
    assert re.search(r"^Stage: \S", doc, re.M), f"{name}: no 'Stage:' line"
    notes = re.findall(r"\.\./notes/([\w-]+\.md)", doc)
    assert notes, f"{name}: no link to a note"
    for note in notes:
        assert (REPO_ROOT / "notes" / note).is_file(), f"{name} links notes/{note}, which does not exist"
    command = re.search(r"^Check: (python -m pytest exercises -k (\w+))$", doc, re.M)
    assert command, f"{name}: no 'Check: python -m pytest exercises -k ...' line"
    keyword = command.group(2)
    assert [n for n in NAMES if keyword in n] == [name], f"-k {keyword} should select {name}'s checks and no others"
    assert re.search(r"^Hint\. \S", doc, re.M), f"{name}: no 'Hint.' paragraph"
    row = next((line for line in README.splitlines() if f"]({name}.py)" in line), None)
    assert row, f"exercises/README.md has no row for {name}.py"
    assert f"`{command.group(1)}`" in row and f"../notes/{notes[0]}" in row, f"README row disagrees with {name}: {row}"


@pytest.mark.parametrize("name", NAMES)
def test_each_solution_is_marked_and_matches_its_stub(name):
    stub = importlib.import_module(f"exercises.{name}")
    solution = importlib.import_module(f"exercises.solutions.{name}")
    assert solution.__doc__.startswith("SOLUTION to exercise"), f"solutions/{name}.py is not marked as a solution"
    for attr, obj in vars(stub).items():
        if (inspect.isfunction(obj) or inspect.isclass(obj)) and obj.__module__ == stub.__name__:
            assert hasattr(solution, attr), f"solutions/{name}.py lacks {attr}"
            if inspect.isfunction(obj):
                theirs = inspect.signature(getattr(solution, attr))
                assert inspect.signature(obj) == theirs, f"{name}.{attr}: the stub and the solution differ in arguments"


def test_exercise_readme_links_resolve():
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README):
        if not target.startswith("http"):
            assert (EXERCISES / target).exists(), f"exercises/README.md links {target}, which does not exist"
