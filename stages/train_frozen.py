"""Stage `train_frozen`: the frozen base with a new dense head, trained end to end on
augmented images (the book's "feature extraction with data augmentation").

Only the head learns: for VGG16, 4 trainable weight tensors out of 30.
"""

from classifier.core.params import load_params
from classifier.core.paths import BASE_MODEL
from classifier.core.startup import run_stage
from classifier.models.architecture import dense_classifier, feature_map_shape, preprocessing_mode, with_classifier
from classifier.models.augmentation import augmentation, with_augmentation
from classifier.models.graph import freeze
from classifier.models.saving import load_model
from classifier.models.training.stage import TrainingStage


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
    stage = TrainingStage(params, "frozen_augmented")
    if stage.skipped():
        return
    with stage.building() as classes:
        model = build(params, load_model(BASE_MODEL), classes)
        trained = with_augmentation(model, augmentation(params.augmentation, params.seed))
        stage.compile(trained, params.train_frozen.learning_rate)
    stage.fit(trained)
    stage.save(model)


if __name__ == "__main__":
    run_stage(main, __file__)
