"""Stage `fine_tune`: unfreeze the top of the base and train on at the low learning rate `lr`.

Starts from models/frozen_augmented.keras (a trained head first, so large gradients
from a random head never reach the pretrained layers). `base.fine_tune_from` and every
later layer become trainable: for VGG16's default `block5_conv1`, 10 weight tensors.
"""

from stages.common.classes import read_classes
from stages.common.cli import run_stage
from stages.common.layout import model_path
from stages.common.models import compile_model, nested_base, unfreeze_from
from stages.common.params import fine_tune_from, load_params
from stages.common.saving import load_model, save_model
from stages.common.training import class_weights, fit, model_scope, prepared_splits

STAGE = "fine_tune"


def main() -> None:
    params = load_params()
    settings = params.fine_tune
    class_names = read_classes()
    train, validation = prepared_splits()
    with model_scope(params.training, params.seed):
        model = load_model(model_path("frozen_augmented"))
        unfreeze_from(nested_base(model), fine_tune_from(params.base))
        # recompile: trainability changes take effect only then
        compile_model(model, params.lr, params.training.jit_compile)
    fit(
        model, STAGE, train, validation,
        epochs=settings.epochs, batch_size=settings.batch_size, seed=params.seed, resume=params.training.resume,
        class_weight=class_weights(params.training.class_weight, train[1], len(class_names)),
    )
    save_model(model, model_path("fine_tuned"), class_names)


if __name__ == "__main__":
    run_stage(main, __file__)
