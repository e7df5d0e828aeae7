"""`classifier paired`: two runs compared on the same test images, image by image: is the difference in test accuracy
real, or could the test split's luck have made it? `dvc metrics diff` shows the difference; this says
whether it means anything (McNemar's exact test), with each accuracy's 95% interval.

    classifier paired                          # HEAD against the workspace, as `dvc metrics diff`
    classifier paired main my-branch           # two git revisions: branches, tags, commits
    classifier paired my-exp my-exp-tta        # two DVC experiments (`dvc exp show` names them)
    classifier paired main workspace --model fine_tuned

Each run's model (default `best`: the one its metrics/evaluate.json names) is read from its
metrics/evaluate/predictions/<model>.csv, which stage evaluate writes, through dvc.api (`workspace`:
the files as they are). The two must have tested the same images with the same classes
(data/classes.json); b counts the images only the first run gets right, c those only the second does.
"""

from __future__ import annotations

import argparse
import io
import json

from classifier.core.errors import StageError
from classifier.core.paths import BEST, CLASSES_FILE, EVALUATION_DIR, EVALUATION_METRICS, MODEL_STAGES, PROJECT_ROOT
from classifier.evaluation.statistics import discordant, mcnemar_p, p_text, verdict, wilson_interval
from classifier.intake.escaping import csv_dict_rows, terminal_text

WORKSPACE = "workspace"
COLUMNS = ["image", "actual", "predicted"]


def read(path: str, rev: str) -> str | None:
    """A file of the repository at `rev` (git's or DVC's), or in the workspace; None if it has none."""
    if rev == WORKSPACE:
        file = PROJECT_ROOT / path
        return file.read_text() if file.is_file() else None
    import dvc.api  # here: dvc takes a second to import
    from dvc.exceptions import DvcException
    from dvc.scm import RevError

    try:
        return dvc.api.read(path, repo=str(PROJECT_ROOT), rev=rev)
    except RevError:
        raise StageError(
            f"no revision or experiment named {rev!r}: see `git log`, `git branch`, `dvc exp show`"
        ) from None
    except (DvcException, FileNotFoundError):
        return None


def needed(path: str, rev: str) -> str:
    text = read(path, rev)
    if text is None:
        raise StageError(f"{rev} has no {path}: run `dvc repro evaluate` there (or `dvc pull` it)")
    return text


def chosen_model(rev: str, model: str) -> str:
    """`model`, or for `best` the model that the run's metrics/evaluate.json names."""
    if model != BEST:
        return model
    text = needed(str(EVALUATION_METRICS), rev)
    try:
        chosen = json.loads(text)["best_model"]
    except (ValueError, KeyError, TypeError):
        raise StageError(f"{rev}: {EVALUATION_METRICS} names no best_model: rerun `dvc repro evaluate` there") from None
    if not isinstance(chosen, str) or chosen not in MODEL_STAGES:
        raise StageError(f"{rev}: {EVALUATION_METRICS} names best_model {chosen!r}, not a model")
    return chosen


def predictions(rev: str, model: str) -> dict[str, tuple[str, str]]:
    """{test image: (actual class, predicted class)} of `model` at `rev`."""
    path = f"{EVALUATION_DIR}/predictions/{model}.csv"
    rows = list(csv_dict_rows(io.StringIO(needed(path, rev))))
    if not rows:
        raise StageError(f"{rev}: {path} has no predictions: models.{model} was false there (not trained)")
    if any(column not in rows[0] for column in COLUMNS):
        raise StageError(f"{rev}: {path} lacks the columns {', '.join(COLUMNS)}: rerun `dvc repro evaluate` there")
    found = {row["image"]: (row["actual"], row["predicted"]) for row in rows}
    if len(found) < len(rows):
        raise StageError(f"{rev}: {path} lists an image more than once: rerun `dvc repro evaluate` there")
    return found


def classes(rev: str) -> list[str]:
    text = needed(str(CLASSES_FILE), rev)
    try:
        return json.loads(text)
    except ValueError:
        raise StageError(f"{rev}: {CLASSES_FILE} is not JSON: rerun `dvc repro` there") from None


def same_test(first: dict, second: dict, revs: tuple[str, str]) -> list[str]:
    """The images both runs tested, in the first run's order; refused unless they are the same images
    with the same true classes (a paired test compares answers to the same questions)."""
    shared = [image for image in first if image in second]
    if len(shared) < len(first) or len(shared) < len(second):
        raise StageError(
            f"the two runs tested different images ({len(first)} at {revs[0]}, {len(second)} at {revs[1]}, "
            f"{len(shared)} in both): a paired test needs the same test split; compare their accuracies' "
            "intervals instead (classifier results)"
        )
    for image in shared:
        if first[image][0] != second[image][0]:
            raise StageError(
                f"{terminal_text(image)} is {terminal_text(first[image][0])} at {revs[0]} but "
                f"{terminal_text(second[image][0])} at {revs[1]}: a paired test needs the same labels"
            )
    return shared


def compare(revs: tuple[str, str], model: str) -> list[str]:
    """The lines that compare `model` (or each run's best) at the two revisions."""
    if classes(revs[0]) != classes(revs[1]):
        raise StageError(
            f"{revs[0]} and {revs[1]} have different classes ({CLASSES_FILE}): a paired test needs the same ones"
        )
    models = [chosen_model(rev, model) for rev in revs]
    found = [predictions(rev, name) for rev, name in zip(revs, models)]
    images = same_test(*found, revs)
    correct = [[run[image][0] == run[image][1] for image in images] for run in found]
    b, c = discordant(*correct)
    p = mcnemar_p(b, c)
    names = [terminal_text(rev) for rev in revs]
    shown_p = p_text(p) if p < 0.001 else f"= {p_text(p)}"  # p < 0.001, p = 0.039
    width = max(map(len, names))
    lines = [f"{names[0]} against {names[1]}, on the same {len(images)} test images:"]
    for name, chosen, right in zip(names, models, correct):
        low, high = wilson_interval(sum(right), len(right))
        accuracy = sum(right) / len(right)
        lines.append(
            f"  {name.ljust(width)}  {chosen:<18}  accuracy {accuracy:.4f} (95% interval {low:.4f}-{high:.4f})"
        )
    lines += [
        f"  b = {b}: images only {names[0]} gets right; c = {c}: only {names[1]}",
        f"  McNemar's exact test: p {shown_p}: {verdict(p, len(images))}",
    ]
    return lines


def run(args: argparse.Namespace) -> None:
    print("\n".join(compare((args.a, args.b), args.model)))
