"""bench/table.py: the README's results table, in Markdown, from the metrics.json of runs you already made.

Every stage script writes <out>/metrics.json when it finishes (default out/<stage>). This reads them and
prints one row per run, so you can put your own numbers beside the README's:

    python bench/table.py                                  # out/bigram_v1 out/bigram_v2 out/bigram_v3 out/gpt
    python bench/table.py out/gpt runs/gpt-dropout         # any run directories, in the order given

It trains nothing. It imports the runner (and so PyTorch, a second or two) for two names only: the list of
stages (runner.cli.STAGES, the one list every part of the project uses) and the metrics file's name.
`python bench/run.py` uses the same table for its stages section.
"""

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `python bench/table.py` puts bench/ on the path; the runner lives one level up

from runner import METRICS  # noqa: E402  (the file name every run writes)
from runner.cli import STAGES  # noqa: E402  (the reading order: bigram_v1, bigram_v2, bigram_v3, gpt)

DEFAULT_DIRS = tuple(f"out/{stage}" for stage in STAGES)  # where each stage script saves by default
COLUMNS = ("stage", "params", "val loss (full split)", "kept step", "bigram floor", "train seconds", "tokens/s",
           "device")


def fmt(value, spec, missing="—"):
    """format(value, spec), or a dash for a number that was not measured."""
    return missing if value is None else format(value, spec)


def markdown_table(headers, rows):
    """A Markdown table: the first column left-aligned (names), the others right-aligned (numbers)."""
    lines = ["| " + " | ".join(headers) + " |", "|:--" + "|--:" * (len(headers) - 1) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def kept_step(m):
    """Which step's weights the run kept (its lowest val estimate), of how many: "1,500 of 2,000".

    A run reports its kept model, not necessarily its last step's; its full-split losses are that model's.
    metrics.json written before runs kept the best model has no "kept": then a dash.
    """
    kept = m.get("kept")
    if not isinstance(kept, dict) or kept.get("iter") is None:
        return "—"
    iters = m.get("iters")
    return f"{kept['iter']:,}" + (f" of {iters:,}" if iters is not None else "")


def stage_row(m):
    """One table row from a run's metrics.json (a dict)."""
    device = m["device"] + (f" ({m['dtype']})" if m.get("dtype") else "")
    if (m.get("world_size") or 1) > 1:
        device += f", {m['world_size']} processes"
    return [
        m["stage"],
        f"{m['params']:,}",
        fmt(m.get("val_loss"), ".4f"),  # None after --final-eval 0: the run skipped the measurement
        kept_step(m),
        fmt(m.get("bigram_floor"), ".4f"),
        fmt(m.get("train_seconds"), ".1f"),
        fmt(m.get("tokens_per_second"), ",.0f"),
        device,
    ]


def stages_table(metrics):
    return markdown_table(COLUMNS, [stage_row(m) for m in metrics])


def read_metrics(run_dir):
    """The metrics dict of the run in run_dir; FileNotFoundError if that run never finished."""
    with open(Path(run_dir) / METRICS, encoding="utf-8") as f:
        return json.load(f)


def main(argv=None):
    dirs = (sys.argv[1:] if argv is None else argv) or list(DEFAULT_DIRS)
    if any(d in ("-h", "--help") for d in dirs):
        print(__doc__.strip())
        return 0
    rows = []
    for d in dirs:
        try:
            rows.append(stage_row(read_metrics(d)))
        except FileNotFoundError:
            # a stage you have not trained yet is no error: say so, and tabulate the others
            name = Path(d).name
            train = f"python {name}.py" if d == f"out/{name}" and name in STAGES else f"python <stage>.py --out {d}"
            print(f"table.py: no {METRICS} in {d} (a run writes it when training ends: `{train}`); skipped",
                  file=sys.stderr)
        except (OSError, ValueError, KeyError, TypeError) as e:  # unreadable, not JSON, or not a stage's metrics
            print(f"table.py: cannot read {Path(d) / METRICS} ({type(e).__name__}: {e}); skipped", file=sys.stderr)
    if not rows:
        print(f"table.py: error: no {METRICS} found in {' '.join(dirs)}; run a stage script first", file=sys.stderr)
        return 1
    print(markdown_table(COLUMNS, rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
