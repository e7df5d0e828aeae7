"""Stage `train_classifier`: the book's fast feature extraction.

A dense classifier (Flatten -> Dense 256 -> Dropout 0.5 -> the output layer) is trained
on the cached features, then put on top of the base so that models/feature_extraction.keras
takes raw pixels like every other model.
"""

from classifier.core.params import load_params
from classifier.core.paths import BASE_MODEL
from classifier.core.startup import run_stage
from classifier.intake.prepared.arrays import load_features
from classifier.models.architecture import dense_classifier, preprocessing_mode, with_classifier
from classifier.models.saving import load_model
from classifier.models.training.stage import TrainingStage


def main() -> None:
    params = load_params()
    stage = TrainingStage(
        params, "feature_extraction", data=lambda: (load_features("train"), load_features("validation"))
    )
    if stage.skipped():
        return
    with stage.building() as classes:
        classifier = dense_classifier(stage.train[0].shape[1:], params.head, classes)
        stage.compile(classifier, params.train_classifier.learning_rate)
    stage.fit(classifier)
    stage.save(
        with_classifier(load_model(BASE_MODEL), classifier, params.data.image_size, preprocessing_mode(params.base))
    )


if __name__ == "__main__":
    run_stage(main, __file__)
