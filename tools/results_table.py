"""Print the five models' validation and test accuracy next to the book's test accuracies.

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

from stages.common.book import BOOK_ACCURACY  # noqa: E402
from stages.common.layout import EVALUATION_METRICS, MODEL_STAGES, stage_metrics_dir  # noqa: E402

def metrics_files() -> list[str]:
    return [f"{stage_metrics_dir(stage)}/metrics.json" for stage in MODEL_STAGES.values()] + [str(EVALUATION_METRICS)]


def workspace_metrics() -> dict[str, dict]:
    """{metrics file: its content} for those that exist."""
    return {name: json.loads(Path(name).read_text()) for name in metrics_files() if Path(name).is_file()}


def experiment_metrics(name: str) -> dict[str, dict]:
    shown = json.loads(subprocess.run([sys.executable, "-m", "dvc", "exp", "show", "--json"], check=True, capture_output=True, text=True).stdout)
    for commit in shown:
        for experiment in commit.get("experiments") or []:
            for rev in experiment.get("revs", []):
                if rev.get("name") == name:
                    metrics = rev["data"]["metrics"]
                    return {path: metrics[path]["data"] for path in metrics_files() if path in metrics}
    sys.exit(f"results_table: no experiment named {name!r}; see `dvc exp show`")


def table(metrics: dict[str, dict]) -> str:
    test = metrics.get(str(EVALUATION_METRICS), {})
    lines = [
        "| model | stage | best epoch | val accuracy | test accuracy | test AUC | book 1st ed. | book 2nd ed. |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for model, stage in MODEL_STAGES.items():
        trained = metrics.get(f"{stage_metrics_dir(stage)}/metrics.json")
        cells = [str(trained["best_epoch"]), f"{trained['val']['accuracy']:.3f}"] if trained else ["-", "not run"]
        cells += [f"{test[model]['accuracy']:.3f}", f"{test[model]['auc']:.3f}"] if model in test else ["-", "-"]
        cells += [f"{accuracy:.3f}" for accuracy in BOOK_ACCURACY[model]]
        lines.append(f"| {model} | {stage} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--exp", help="name of a DVC experiment; default: the workspace")
    args = parser.parse_args()
    print(table(experiment_metrics(args.exp) if args.exp else workspace_metrics()))


if __name__ == "__main__":
    main()
