"""Stage `train_classifier`: the book's fast feature extraction.

A dense classifier (Flatten -> Dense 256 -> Dropout 0.5 -> the output layer) is trained
on the cached features, then put on top of the base so that models/feature_extraction.keras
takes raw pixels like every other model.
"""

import numpy as np

from classifier.core.cli import run_stage
from classifier.core.layout import BASE_MODEL, FEATURES_DIR
from classifier.core.params import load_params
from classifier.intake.classes import read_classes
from classifier.models.assembly import with_classifier
from classifier.models.heads import dense_classifier
from classifier.models.preprocessing import preprocessing_mode
from classifier.models.saving import load_model
from classifier.models.training import compile_stage, fit_stage, model_scope, save_trained, skipped

STAGE = "train_classifier"


def load_features(split: str):
    return np.load(FEATURES_DIR / f"{split}_features.npy", mmap_mode="r"), np.load(FEATURES_DIR / f"{split}_labels.npy")


def main() -> None:
    params = load_params()
    if skipped(params, "feature_extraction"):
        return
    settings = params.train_classifier
    class_names = read_classes()
    train, validation = load_features("train"), load_features("validation")
    with model_scope(params.training, params.seed):
        classifier = dense_classifier(train[0].shape[1:], params.head, len(class_names))
        compile_stage(classifier, settings.learning_rate, settings, params, train)
    fit_stage(classifier, STAGE, train, validation, settings, params, len(class_names))
    model = with_classifier(load_model(BASE_MODEL), classifier, params.data.image_size, preprocessing_mode(params.base))
    save_trained(model, "feature_extraction", class_names, params.training)


if __name__ == "__main__":
    run_stage(main, __file__)
