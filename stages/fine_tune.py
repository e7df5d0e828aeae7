"""Stage `fine_tune`: unfreeze the top of the base and train on at the low learning rate `lr`.

Starts from a trained model, so that large gradients from a random head never reach the
pretrained layers: models/frozen_augmented.keras (the book), or with `fine_tune.start_from:
feature_extraction` the head trained on cached features, which costs far less on a CPU; the
same augmentation goes in front. `base.fine_tune_from` and every later layer become trainable: for VGG16's default
`block5_conv1`, 10 weight tensors; for a .keras base with null, its last convolutional layer.
"""

from classifier.core.params import load_params
from classifier.core.paths import model_path
from classifier.core.startup import run_stage
from classifier.models.augmentation import augmentation, with_augmentation
from classifier.models.bases import fine_tune_layer
from classifier.models.graph import nested_base, unfreeze_from
from classifier.models.saving import load_model
from classifier.models.training.stage import TrainingStage


def main() -> None:
    params = load_params()
    stage = TrainingStage(params, "fine_tuned")
    if stage.skipped():
        return
    with stage.building():
        model = load_model(model_path(params.fine_tune.start_from))
        layer, why = fine_tune_layer(params.base, nested_base(model))
        print(f"{stage.name}: unfreezing from {layer!r}, {why}")
        unfreeze_from(nested_base(model), layer)
        trained = with_augmentation(model, augmentation(params.augmentation, params.seed))
        stage.compile(trained, params.lr)  # after unfreezing: trainability changes take effect only then
    stage.fit(trained)
    stage.save(model)


if __name__ == "__main__":
    run_stage(main, __file__)
