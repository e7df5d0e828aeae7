"""Stages `train_scratch` and `train_scratch_augmented`: the book's small convnet, no pretraining.

`python -m stages.train_scratch` trains it plain (models/scratch.keras); with
`--augmented` it adds the augmentation layers and dropout, reading the
`train_scratch_augmented` params section (models/scratch_augmented.keras).
"""

import argparse

from stages.common.cli import run_stage
from stages.common.layout import model_path
from stages.common.models import augmentation, compile_binary, save_model, small_convnet
from stages.common.params import load_params
from stages.common.training import fit, model_scope, prepared_splits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--augmented", action="store_true", help="train with augmentation and dropout")
    augmented = parser.parse_args().augmented
    stage, model_name = ("train_scratch_augmented", "scratch_augmented") if augmented else ("train_scratch", "scratch")
    params = load_params()
    settings = getattr(params, stage)
    with model_scope(params.training, params.seed):
        augment = augmentation(params.augmentation, params.seed) if augmented else None
        model = small_convnet(params.data.image_size, settings.dropout, augment)
        compile_binary(model, settings.learning_rate, params.training.jit_compile)
    fit(
        model, stage, *prepared_splits(),
        epochs=settings.epochs, batch_size=settings.batch_size, seed=params.seed, resume=params.training.resume,
    )
    save_model(model, model_path(model_name))


if __name__ == "__main__":
    run_stage(main, __file__)
