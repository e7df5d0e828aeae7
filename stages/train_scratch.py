"""Stages `train_scratch` and `train_scratch_augmented`: the book's small convnet, no pretraining.

`python -m stages.train_scratch` trains it plain (models/scratch.keras); with
`--augmented` it adds the augmentation layer and dropout, reading the
`train_scratch_augmented` params section (models/scratch_augmented.keras).
"""

import argparse

from classifier.core.params import load_params
from classifier.core.startup import run_stage
from classifier.models.architecture import small_convnet
from classifier.models.augmentation import augmentation, with_augmentation
from classifier.models.training.stage import TrainingStage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--augmented", action="store_true", help="train with augmentation and dropout")
    augmented = parser.parse_args().augmented
    params = load_params()
    stage = TrainingStage(params, "scratch_augmented" if augmented else "scratch")
    if stage.skipped():
        return
    settings = getattr(params, stage.name)
    with stage.building() as classes:
        model = small_convnet(params.data.image_size, settings.dropout, classes)
        trained = with_augmentation(model, augmentation(params.augmentation, params.seed)) if augmented else model
        stage.compile(trained, settings.learning_rate)
    stage.fit(trained)
    stage.save(model)


if __name__ == "__main__":
    run_stage(main, __file__)
