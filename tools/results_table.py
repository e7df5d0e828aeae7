"""Print the validation table of the five models next to the book's test accuracies.

    python tools/results_table.py             # from metrics/ in the workspace
    python tools/results_table.py --exp demo  # from a DVC experiment (after `make demo`)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere in the repo

from stages.common.layout import MODEL_STAGES, stage_metrics_dir  # noqa: E402

# The book's test accuracies: 1st edition (pixels / 255) and 2nd edition (VGG16 preprocessing).
BOOK_ACCURACY = {
    "scratch": (0.71, 0.70),
    "scratch_augmented": (0.82, 0.835),
    "feature_extraction": (0.90, 0.975),
    "frozen_augmented": (0.96, 0.977),
    "fine_tuned": (0.97, 0.985),
}


def workspace_metrics() -> dict[str, dict]:
    found = {}
    for model, stage in MODEL_STAGES.items():
        path = stage_metrics_dir(stage) / "metrics.json"
        if path.is_file():
            found[model] = json.loads(path.read_text())
    return found


def experiment_metrics(name: str) -> dict[str, dict]:
    shown = json.loads(subprocess.run(["dvc", "exp", "show", "--json"], check=True, capture_output=True, text=True).stdout)
    for commit in shown:
        for experiment in commit.get("experiments") or []:
            for rev in experiment.get("revs", []):
                if rev.get("name") == name:
                    metrics = rev["data"]["metrics"]
                    return {
                        model: metrics[path]["data"]
                        for model, stage in MODEL_STAGES.items()
                        if (path := f"{stage_metrics_dir(stage)}/metrics.json") in metrics
                    }
    sys.exit(f"results_table: no experiment named {name!r}; see `dvc exp show`")


def table(metrics: dict[str, dict]) -> str:
    lines = [
        "| model | stage | best epoch | val accuracy | val loss | book 1st ed. (test) | book 2nd ed. (test) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for model, stage in MODEL_STAGES.items():
        first, second = BOOK_ACCURACY[model]
        if model in metrics:
            m = metrics[model]
            row = f"{m['best_epoch']} | {m['val']['accuracy']:.3f} | {m['val']['loss']:.3f}"
        else:
            row = "- | not run | -"
        lines.append(f"| {model} | {stage} | {row} | {first:.3f} | {second:.3f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--exp", help="name of a DVC experiment; default: the workspace")
    args = parser.parse_args()
    print(table(experiment_metrics(args.exp) if args.exp else workspace_metrics()))


if __name__ == "__main__":
    main()
