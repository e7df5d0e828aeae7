"""Stage `fine_tune`: unfreeze the top of the base and train on at the low learning rate `lr`.

Starts from models/frozen_augmented.keras (a trained head first, so large gradients
from a random head never reach the pretrained layers). `base.fine_tune_from` and every
later layer become trainable: for VGG16's default `block5_conv1`, 10 weight tensors.
"""

from stages.common.cli import run_stage
from stages.common.layout import model_path
from stages.common.models import compile_binary, load_model, nested_base, save_model, unfreeze_from
from stages.common.params import fine_tune_from, load_params
from stages.common.training import fit, model_scope, prepared_splits

STAGE = "fine_tune"


def main() -> None:
    params = load_params()
    settings = params.fine_tune
    with model_scope(params.training, params.seed):
        model = load_model(model_path("frozen_augmented"))
        unfreeze_from(nested_base(model), fine_tune_from(params.base))
        # recompile: trainability changes take effect only then
        compile_binary(model, params.lr, params.training.jit_compile)
    fit(
        model, STAGE, *prepared_splits(),
        epochs=settings.epochs, batch_size=settings.batch_size, seed=params.seed, resume=params.training.resume,
    )
    save_model(model, model_path("fine_tuned"))


if __name__ == "__main__":
    run_stage(main, __file__)
