"""Stage `train_frozen`: the frozen base with a new dense head, trained end to end on
augmented images (the book's "feature extraction with data augmentation").

Only the head learns: for VGG16, 4 trainable weight tensors out of 30.
"""

from classifier.core.cli import run_stage
from classifier.core.layout import BASE_MODEL
from classifier.core.params import load_params
from classifier.intake.classes import read_classes
from classifier.models.assembly import feature_map_shape, with_classifier
from classifier.models.augmentation import augmentation, with_augmentation
from classifier.models.graph import freeze
from classifier.models.heads import dense_classifier
from classifier.models.preprocessing import preprocessing_mode
from classifier.models.saving import load_model
from classifier.models.training import compile_stage, fit_stage, model_scope, prepared_splits, save_trained, skipped

STAGE = "train_frozen"


def build(params, base, num_classes: int):
    """The frozen base with a fresh dense head on top: the model saved."""
    features_shape = feature_map_shape(base, params.data.image_size)
    freeze(base)
    return with_classifier(
        base,
        dense_classifier(features_shape, params.head, num_classes),
        params.data.image_size,
        preprocessing_mode(params.base),
    )


def main() -> None:
    params = load_params()
    if skipped(params, "frozen_augmented"):
        return
    settings = params.train_frozen
    class_names = read_classes()
    train, validation = prepared_splits()
    with model_scope(params.training, params.seed):
        model = build(params, load_model(BASE_MODEL), len(class_names))
        trained = with_augmentation(model, augmentation(params.augmentation, params.seed))
        compile_stage(trained, settings.learning_rate, settings, params, train)
    fit_stage(trained, STAGE, train, validation, settings, params, len(class_names))
    save_trained(model, "frozen_augmented", class_names, params.training)


if __name__ == "__main__":
    run_stage(main, __file__)
