"""Stage `fine_tune`: unfreeze the top of the base and train on at the low learning rate `lr`.

Starts from models/frozen_augmented.keras (a trained head first, so large gradients
from a random head never reach the pretrained layers). `base.fine_tune_from` and every
later layer become trainable: for VGG16's default `block5_conv1`, 10 weight tensors.
"""

from stages.common.cli import run_stage
from stages.common.layout import model_path
from stages.common.models import compile_binary, load_model, nested_base, unfreeze_from
from stages.common.params import fine_tune_from, load_params
from stages.common.training import fit, prepared_batches, set_seed

STAGE = "fine_tune"


def main() -> None:
    params = load_params()
    settings = params.fine_tune
    set_seed(params.seed)
    model = load_model(model_path("frozen_augmented"))
    unfreeze_from(nested_base(model), fine_tune_from(params.base))
    compile_binary(model, params.lr)  # recompile: trainability changes take effect only then
    fit(model, STAGE, *prepared_batches(settings.batch_size, params.seed), settings.epochs)
    model.save(model_path("fine_tuned"))


if __name__ == "__main__":
    run_stage(main, __file__)
