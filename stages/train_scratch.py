"""Stages `train_scratch` and `train_scratch_augmented`: the book's small convnet, no pretraining.

`python -m stages.train_scratch` trains it plain (models/scratch.keras); with
`--augmented` it adds the augmentation layer and dropout, reading the
`train_scratch_augmented` params section (models/scratch_augmented.keras).
"""

import argparse

from classifier.core.cli import run_stage
from classifier.core.params import load_params
from classifier.intake.classes import read_classes
from classifier.models.assembly import small_convnet
from classifier.models.augmentation import augmentation, with_augmentation
from classifier.models.training import compile_stage, fit_stage, model_scope, prepared_splits, save_trained, skipped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--augmented", action="store_true", help="train with augmentation and dropout")
    augmented = parser.parse_args().augmented
    stage, model_name = ("train_scratch_augmented", "scratch_augmented") if augmented else ("train_scratch", "scratch")
    params = load_params()
    if skipped(params, model_name):
        return
    settings = getattr(params, stage)
    class_names = read_classes()
    train, validation = prepared_splits()
    with model_scope(params.training, params.seed):
        model = small_convnet(params.data.image_size, settings.dropout, len(class_names))
        trained = with_augmentation(model, augmentation(params.augmentation, params.seed)) if augmented else model
        compile_stage(trained, settings.learning_rate, settings, params, train)
    fit_stage(trained, stage, train, validation, settings, params, len(class_names))
    save_trained(model, model_name, class_names, params.training)


if __name__ == "__main__":
    run_stage(main, __file__)
