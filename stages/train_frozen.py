"""Stage `train_frozen`: the frozen base with a new dense head, trained end to end on
augmented images (the book's "feature extraction with data augmentation").

Only the head learns: for VGG16, 4 trainable weight tensors out of 30.
"""

from stages.common.cli import run_stage
from stages.common.layout import BASE_MODEL, model_path
from stages.common.models import (
    augmentation,
    compile_binary,
    dense_classifier,
    freeze,
    load_model,
    preprocessing_mode,
    save_model,
    with_classifier,
)
from stages.common.params import load_params
from stages.common.training import fit, model_scope, prepared_splits

STAGE = "train_frozen"


def build(params, base):
    """The frozen base, with augmentation in front and a fresh dense head on top."""
    features_shape = base.compute_output_shape((None, params.data.image_size, params.data.image_size, 3))[1:]
    freeze(base)
    return with_classifier(
        base,
        dense_classifier(features_shape, params.head),
        params.data.image_size,
        preprocessing_mode(params.base),
        augment=augmentation(params.augmentation, params.seed),
    )


def main() -> None:
    params = load_params()
    settings = params.train_frozen
    with model_scope(params.training, params.seed):
        model = build(params, load_model(BASE_MODEL))
        compile_binary(model, settings.learning_rate, params.training.jit_compile)
    fit(
        model, STAGE, *prepared_splits(),
        epochs=settings.epochs, batch_size=settings.batch_size, seed=params.seed, resume=params.training.resume,
    )
    save_model(model, model_path("frozen_augmented"))


if __name__ == "__main__":
    run_stage(main, __file__)
