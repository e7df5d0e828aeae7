"""Stage `explain`: what the convnet learned (the book's 5.4), as three pictures in metrics/explain/.

activations.png: one test image (explain.image) in the model's first convolutional layers;
filters.png: the patterns that most excite a few filters of layers spread over its depth, by
gradient ascent in pixel space; gradcam.png: where it looks, as Grad-CAM heatmaps of the
predicted class's logit on the last feature map for the first test images of each class.
"""

from classifier.core.backend import set_seed
from classifier.core.errors import StageError
from classifier.core.outputs import replacing
from classifier.core.params import load_params
from classifier.core.paths import EXPLAIN_DIR, model_path
from classifier.core.startup import run_stage
from classifier.explanation import internals
from classifier.explanation.pictures import activations_figure, filters_figure, grad_cam_figure
from classifier.intake.prepared.arrays import load_prepared, read_classes
from classifier.models.architecture import check_trained_on
from classifier.models.best_model import using, which_model
from classifier.models.saving import load_model


def chosen(layers: list, asked: int, key: str) -> list:
    if len(layers) < asked:
        print(f"explain: {key} asks for {asked} convolutional layers, the model has {len(layers)}: showing those")
    return layers


def main() -> None:
    params = load_params()
    settings = params.explain
    class_names = read_classes()
    images, labels = load_prepared("test")
    count, index = len(labels), settings.image
    if index >= count:
        raise StageError(f"explain.image {index} is beyond the test split's {count} images: give 0 to {count - 1}")
    path = model_path(settings.model)  # models/best.keras for `best`: a copy of the chosen one
    name = which_model(settings.model)
    print(f"explain: {using(settings.model, name)}")
    model = load_model(path)
    check_trained_on(model, path, class_names)
    set_seed(params.seed)
    # Drawn beside metrics/explain, which they replace once all three are: a full disk, a refusal or Ctrl-C
    # leaves an earlier run's pictures as they were.
    with replacing(EXPLAIN_DIR) as folder:
        image, label = images[index], labels[index]
        asked = settings.activation_layers
        layers = chosen(internals.first_convolutions(model, asked), asked, "explain.activation_layers")
        activations_figure(
            image,
            [layer.name for layer in layers],
            internals.activations(model, image, layers),
            f"test image {index} ({class_names[label]})",
            f"{name}: activations of its first {len(layers)} convolutional layers",
            folder / "activations.png",
        )

        asked = settings.filter_layers
        layers = chosen(internals.spread_convolutions(model, asked), asked, "explain.filter_layers")
        steps, size = settings.filter_steps, settings.filter_size
        patterns = [
            internals.filter_patterns(model, layer, settings.filters, steps, size, params.seed) for layer in layers
        ]
        filters_figure(
            [layer.name for layer in layers],
            patterns,
            f"{name}: filter patterns ({steps} steps of gradient ascent, {size}x{size} pixels)",
            folder / "filters.png",
        )

        rows = internals.grad_cam_rows(labels, settings.gradcam_per_class)
        heatmaps, probabilities = internals.grad_cam(model, images[rows])
        grad_cam_figure(
            images[rows],
            heatmaps,
            probabilities,
            labels[rows],
            [f"test image {row}" for row in rows],
            class_names,
            name,
            folder / "gradcam.png",
        )


if __name__ == "__main__":
    run_stage(main, __file__)
