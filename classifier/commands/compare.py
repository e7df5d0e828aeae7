"""`classifier compare` (`make compare`): experiments side by side, the params that differ between them
and the headline metrics, one experiment per column, so that it fits a terminal where `dvc exp show`
does not.

    classifier compare              # the workspace, its commit and that commit's experiments
    classifier compare demo flowers # only these experiments (and workspace, main: by that name)
    classifier compare --width 160

Reads `dvc exp show --json`; the headline metrics are metrics/headline.json (stage evaluate).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from classifier.commands.recipe import leaves
from classifier.core.errors import StageError
from classifier.core.paths import HEADLINE, PROJECT_ROOT
from classifier.intake.escaping import terminal_text

NOT_RUN = "-"
LONGEST_CELL = 20  # longer values (paths, mostly) keep their end, so that more runs fit


def experiments(shown: list[dict]) -> dict[str, dict]:
    """{name: {"params": {dotted key: value}, "metrics": headline}} in `dvc exp show`'s order."""
    found = {}
    for baseline in shown:
        revisions = [baseline] + [exp["revs"][0] for exp in baseline.get("experiments") or [] if exp.get("revs")]
        for rev in revisions:
            data = rev.get("data") or {}
            params = (data.get("params") or {}).get("params.yaml", {}).get("data") or {}
            metrics = (data.get("metrics") or {}).get(str(HEADLINE), {}).get("data") or {}
            revision = str(rev.get("rev", ""))
            name = rev.get("name") or (revision if revision == "workspace" else revision[:7])
            found.setdefault(name, {"params": leaves(params), "metrics": metrics})
    return found


def cell(value) -> str:
    """A value on one line of the table (a class name in data.classes may hold anything a file name can)."""
    if value is None:
        return NOT_RUN
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.4g}"
    text = json.dumps(value) if isinstance(value, (list, dict)) else terminal_text(value)
    return text if len(text) <= LONGEST_CELL else "…" + text[1 - LONGEST_CELL :]


def table(runs: dict[str, dict], width: int) -> str:
    """The runs that fit `width`, in order; only the params that differ between those shown."""
    names = list(runs)
    while True:
        lines = columns({name: runs[name] for name in names})
        if len(names) == 1 or max(map(len, lines)) <= width:
            break
        names.pop()
    if len(names) < len(runs):
        lines.append(f"({len(runs) - len(names)} more left out to fit {width} columns: name them, or --width)")
    return "\n".join(lines)


def columns(runs: dict[str, dict]) -> list[str]:
    keys = sorted({key for run in runs.values() for key in run["params"]})
    differing = [key for key in keys if len({cell(run["params"].get(key)) for run in runs.values()}) > 1]
    metrics = list(dict.fromkeys(key for run in runs.values() for key in run["metrics"]))
    headline = [[key, *(cell(run["metrics"].get(key)) for run in runs.values())] for key in metrics]
    params = [[terminal_text(key), *(cell(run["params"].get(key)) for run in runs.values())] for key in differing]
    header = ["", *map(terminal_text, runs)]
    widths = [max(len(row[column]) for row in [header, *headline, *params]) for column in range(len(header))]

    def line(row: list[str]) -> str:
        return " | ".join([row[0].ljust(widths[0])] + [text.rjust(widths[i]) for i, text in enumerate(row[1:], 1)])

    rule = "-+-".join("-" * width for width in widths)
    return [line(header), rule, *map(line, headline), *([rule] if headline and params else []), *map(line, params)]


def run(args: argparse.Namespace) -> None:
    command = [sys.executable, "-m", "dvc", "exp", "show", "--json"]
    result = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        raise StageError(f"dvc exp show failed: {result.stderr.strip().splitlines()[-1:]}")
    runs = experiments(json.loads(result.stdout))
    if args.names:
        missing = [name for name in args.names if name not in runs]
        runs = {name: runs[name] for name in args.names if name in runs} or runs
        if missing:
            print(f"compare: not found: {', '.join(missing)}; see `dvc exp show`", file=sys.stderr)
    print(table(runs, args.width), flush=True)
