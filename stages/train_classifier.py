"""Stage `train_classifier`: the book's fast feature extraction.

A dense classifier (Flatten -> Dense 256 -> Dropout 0.5 -> Dense 1) is trained on the
cached features, then put on top of the base so that models/feature_extraction.keras
takes raw pixels like every other model.
"""

import numpy as np

from stages.common.cli import run_stage
from stages.common.layout import BASE_MODEL, FEATURES_DIR, model_path
from stages.common.models import (
    compile_binary,
    dense_classifier,
    load_model,
    preprocessing_mode,
    save_model,
    with_classifier,
)
from stages.common.params import load_params
from stages.common.training import fit, model_scope

STAGE = "train_classifier"


def load_features(split: str):
    return np.load(FEATURES_DIR / f"{split}_features.npy", mmap_mode="r"), np.load(FEATURES_DIR / f"{split}_labels.npy")


def main() -> None:
    params = load_params()
    settings = params.train_classifier
    train, validation = load_features("train"), load_features("validation")
    with model_scope(params.training, params.seed):
        classifier = dense_classifier(train[0].shape[1:], params.head)
        compile_binary(classifier, settings.learning_rate, params.training.jit_compile)
    fit(
        classifier, STAGE, train, validation,
        epochs=settings.epochs, batch_size=settings.batch_size, seed=params.seed, resume=params.training.resume,
    )
    model = with_classifier(
        load_model(BASE_MODEL), classifier, params.data.image_size, preprocessing_mode(params.base)
    )
    save_model(model, model_path("feature_extraction"))


if __name__ == "__main__":
    run_stage(main, __file__)
