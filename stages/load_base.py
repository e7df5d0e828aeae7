"""Stage `load_base`: get the pretrained convolutional base once and save it as models/base.keras.

`base.name` is a keras.applications name (vgg16, resnet50, ...) with `base.weights`
(imagenet, null for random weights, or a weights file), or a .keras model in bases/:
a bare base, or any trained model, cut where its feature map is (`base.output_layer`;
by default the one its head reads), with its own weights or, for `base.weights: random`,
the same layers untrained. This is the only stage that may download weights; offline, it
says how to provide them. The saved base takes raw pixels, any input size, and has no head.

What it loads is checked before anything is written (classifier.models.bases): a file Keras
refuses in safe mode (not a .keras archive, a Lambda layer, an unknown class), a full model
with its classifier on top instead of a convolutional base, a weights file that is not one
or is for another architecture: each stops the stage with one line, not five stages later.
"""

from classifier.core.backend import set_seed
from classifier.core.params import load_params
from classifier.core.paths import BASE_MODEL
from classifier.core.startup import run_stage
from classifier.models.bases import build_base, fine_tune_layer
from classifier.models.graph import leaf_layers
from classifier.models.saving import save_model


def main() -> None:
    params = load_params()
    set_seed(params.seed)  # random weights (base.weights: null or random) are the same on every run
    base, origin = build_base(params.base)
    # Checked now so that a typo fails in seconds, not after hours of training.
    layer, why = fine_tune_layer(params.base, base)
    save_model(base, BASE_MODEL)
    print(f"load_base: {origin}")
    print(f"load_base: fine_tune will unfreeze from {layer!r}, {why}")
    print(f"load_base: {base.count_params():,} parameters, {len(leaf_layers(base))} layers -> {BASE_MODEL}")


if __name__ == "__main__":
    run_stage(main, __file__)
