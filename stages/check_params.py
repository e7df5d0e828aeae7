"""Stage `check_params`: check all of params.yaml whenever any of it changes.

Every stage checks params.yaml when it starts, but DVC starts only the stages whose
declared keys changed: a misspelt key (`learning_rat: 1e-4`) or one added with
`dvc exp run -S +key=...` changes no stage's keys, so without this stage nothing would
run, nothing would complain, and the run would count as an experiment. This stage
declares the whole file, runs first, writes nothing, and takes a second. It also says at once
when `base.weights: imagenet` cannot be had offline (classifier.models.downloads).
"""

from classifier.core.errors import StageError
from classifier.core.params import PARAMS_FILE, load_params
from classifier.core.startup import run_stage
from classifier.models.downloads import imagenet_weights_problem


def main() -> None:
    params = load_params()
    problem = imagenet_weights_problem(params.base)
    if problem:
        raise StageError(problem)
    print(f"check_params: {PARAMS_FILE} is valid")


if __name__ == "__main__":
    run_stage(main, __file__)
