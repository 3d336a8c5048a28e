"""bench/table.py: a table like the README's Results, in Markdown, from the metrics.json of runs you already made.

Every stage script writes <out>/metrics.json when it finishes (default out/<stage>). This reads them and
prints one row per run, in the order given, so you can put your own numbers beside the README's:

    python -m bench.table                            # every run in out/ (out/bigram_v1 ... out/gpt)
    python -m bench.table out/gpt runs/gpt-dropout   # any run directories, in this order

It trains nothing. `python -m bench.run` prints the same table for its stages section.
"""

import argparse
import json
import sys
from pathlib import Path

from runner.checkpoints import METRICS

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
    """Which step's weights the run kept (its lowest val estimate), of how many: "1,500 of 2,000"."""
    kept = m.get("kept")
    if not isinstance(kept, dict) or kept.get("iter") is None:
        return "—"
    return f"{kept['iter']:,}" + (f" of {m['iters']:,}" if m.get("iters") is not None else "")


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


def read_row(run_dir):
    """(the run's row, None), or (None, why it was skipped)."""
    path = Path(run_dir) / METRICS
    try:
        with open(path, encoding="utf-8") as f:
            return stage_row(json.load(f)), None
    except FileNotFoundError:  # a run that has not finished (or not started) is no error
        return None, (f"no {METRICS} in {run_dir} (a run writes it when training ends: "
                      f"`python <stage>.py --out {run_dir}`)")
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:  # unreadable, not JSON, not a run's
        return None, f"{path} is unreadable ({type(e).__name__}: {e})"


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench.table", description=__doc__.strip().splitlines()[0])
    p.add_argument("runs", nargs="*", metavar="DIR", help="run directories, in the order of the rows (default: out/*)")
    dirs = p.parse_args(argv).runs or sorted(str(d) for d in Path("out").glob("*") if d.is_dir())
    if not dirs:
        print("table.py: error: no runs in out/; train a stage first: `python bigram_v1.py`", file=sys.stderr)
        return 1
    rows = []
    for d in dirs:
        row, why = read_row(d)
        if row:
            rows.append(row)
        else:
            print(f"table.py: skipped: {why}", file=sys.stderr)
    if not rows:
        print(f"table.py: error: nothing to tabulate: all {len(dirs)} run(s) were skipped, each for the reason above",
              file=sys.stderr)
        return 1
    print(markdown_table(COLUMNS, rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
