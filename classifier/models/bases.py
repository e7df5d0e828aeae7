"""The convolutional base: a keras.applications one with its weights, or the convolutional part of
any .keras model (a model this pipeline trained, or one saved with include_top=False), checked
before anything is built on it; and the layer fine-tuning starts from.
"""

from __future__ import annotations

import os
from pathlib import Path

import keras

from classifier.core.catalog import KERAS_BASES
from classifier.core.errors import StageError
from classifier.core.paths import dvc_cache_dirs
from classifier.core.schema import BaseParams
from classifier.models.graph import check_layer, convolutional_layers, feature_maps, output_in
from classifier.models.saving import load_model, load_weights

A_BASE = (
    "a convolutional base made of Keras layers: a keras.applications name, or a .keras file with a convolutional "
    "part (a model this pipeline trained, or one saved with include_top=False)"
)


def build_base(base: BaseParams) -> tuple[keras.Model, str]:
    """The convolutional base named by params, with its weights, checked (`check_base`), and
    a few words on where its feature map comes from.

    Every file it reads is loaded in safe mode, and every way it can be wrong (not a model, a
    Lambda layer, no convolutional feature map, an unknown output layer, weights for another
    architecture) is a StageError of one line."""
    for key, path in (("base.name", base.name if base.is_file else None), ("base.weights", base.weights)):
        if path not in (None, "imagenet", "random"):
            check_not_linked_out(key, path)
    if base.weights not in (None, "imagenet", "random") and not Path(base.weights).is_file():
        raise StageError(f"base.weights {base.weights!r} is not a file; give a weights file, imagenet or null")
    if base.is_file:
        return base_from_file(base.name, base.weights, base.output_layer)
    builder = getattr(keras.applications, KERAS_BASES[base.name].builder)
    weights_file = base.weights not in (None, "imagenet", "random")
    try:
        # A weights file is loaded below, where what can go wrong with it is known.
        chosen = "imagenet" if base.weights == "imagenet" else None
        model = builder(include_top=False, weights=chosen, input_shape=(None, None, 3))
    except Exception as err:  # Keras raises a bare Exception when the download fails
        if base.weights != "imagenet":
            raise
        raise StageError(
            f"could not get the ImageNet weights of {base.name} ({err}). Offline: on a machine with internet, "
            f"download the .h5 file at the URL in that message, then copy it into ~/.keras/models/ here "
            f"(Keras looks there before downloading) or set base.weights to its path"
        ) from None
    if weights_file:
        load_weights(model, base.weights, f"base.weights {base.weights!r}", weights_wanted(base.name, base.is_file))
    return model, f"keras.applications {KERAS_BASES[base.name].builder} ({base.weights or 'random'} weights)"


def check_not_linked_out(key: str, path: str) -> None:
    """A base file is read from the repository, or from DVC's cache (`dvc checkout` with cache.type
    symlink leaves links there): a link in bases/ to anywhere else is refused, as data links are
    (classifier.intake.raw.tree), so that nothing a clone lacks goes into the models."""
    link = next((link for link in (Path(path), *Path(path).parents) if link.is_symlink()), None)
    resolved = Path(os.path.realpath(path))
    if link is None or any(resolved.is_relative_to(root) for root in (Path.cwd(), *dvc_cache_dirs(Path.cwd()))):
        return  # where a file may be named (bases/) is the params' rule (classifier.core.rules)
    target = os.readlink(link)
    if link == Path(path):
        where, fix = f"is a link to {target!r}", f"cp --remove-destination {resolved} {path}"
    else:
        where, fix = f"is in {link}, a link to {target!r}", f"a folder in place of the link {link}"
    raise StageError(
        f"{key} {path!r} {where}, outside the repository; nothing outside it is read as a base "
        f"(a clone would not have it): copy the file in instead ({fix})"
    )


def base_from_file(name: str, weights: str | None, output_layer: str | None) -> tuple[keras.Model, str]:
    """A .keras file's convolutional part: the whole model if its output is a feature map, else
    the model cut at `output_layer` or, by default, at the last feature map (what its head
    reads: the base of a transfer model, the last pooling of a convnet)."""
    label = f"base.name {name!r}"
    if not Path(name).is_file():
        raise StageError(f"{label} is not a file; give an existing .keras model or a keras.applications name")
    model = load_model(name, label=label, wanted=A_BASE)
    if weights not in (None, "random"):
        load_weights(model, weights, f"base.weights {weights!r}", weights_wanted(name, is_file=True))
    try:
        rank = len(model.output_shape)
    except (AttributeError, ValueError):  # an unbuilt Sequential model: check_base names it
        rank = None
    if output_layer is not None or rank == 2:
        layer = feature_layer(model, output_layer, label)
        model = keras.Model(model.inputs, output_in(model, layer), name=f"{Path(name).stem}_base")
        where = f"the output of its layer {layer.name!r}"
    else:
        where = "its output"
    check_base(model, label)
    if weights == "random":
        model = keras.models.clone_model(model)  # the same layers, each with fresh initial weights
    kept = "random weights" if weights == "random" else "its weights"
    return model, f"{name}: feature map {tuple(model.output_shape[1:])} from {where}, {kept}"


def feature_layer(model: keras.Model, name: str | None, label: str) -> keras.layers.Layer:
    """The top-level layer of `model` named `name` or, for None, the last one whose output is a feature map."""
    maps = feature_maps(model)
    if name is None:
        if not maps:
            raise StageError(
                f"{label} has no convolutional feature map (no layer outputs (None, H, W, C)): give {A_BASE}"
            )
        return maps[-1]
    names = [layer.name for layer in model.layers]
    if name not in names:
        raise StageError(
            f"base.output_layer {name!r} is not a layer of {label}; layers with a feature map: "
            f"{', '.join(layer.name for layer in maps[-8:]) or 'none'}, or use null for the one its head reads"
        )
    layer = model.get_layer(name)
    if layer not in maps:
        shape = tuple(output_in(model, layer).shape)
        wrong = (
            f"comes before any convolution: its output {shape} is still pixels, not a feature map"
            if len(shape) == 4
            else f"outputs {shape}, not a feature map (None, H, W, C)"
        )
        allowed = ("..., " if len(maps) > 8 else "") + (", ".join(layer.name for layer in maps[-8:]) or "none")
        raise StageError(f"base.output_layer {name!r} of {label} {wrong}; name one of {allowed}, or use null")
    return layer


def weights_wanted(name: str, is_file: bool) -> str:
    """What to give as base.weights for the base `name`."""
    if is_file:
        return "null, or a .weights.h5 file saved (model.save_weights) from the model in base.name"
    return (
        f"imagenet, null, or a weights file of {name} without its top (.weights.h5, or the notop .h5 Keras downloads)"
    )


def check_base(model: keras.Model, label: str) -> None:
    """What every base must be: RGB images in, one convolutional feature map (None, H, W, C) out.

    A full model (its classifier on top) would pass load_base and fail stages later, after
    hours of work: refused here, with what to give instead."""
    try:
        outputs, output = model.outputs, model.output_shape
    except (AttributeError, ValueError):  # a Sequential model saved before it was built
        raise StageError(f"{label} has no defined input and output (an unbuilt model): give {A_BASE}") from None
    if len(outputs) != 1:
        raise StageError(
            f"{label} has {len(outputs)} outputs, not one convolutional feature map (None, H, W, C): give {A_BASE}"
        )
    output = tuple(output)
    if len(output) != 4:
        raise StageError(
            f"{label}'s output is {output}, not a convolutional feature map (None, H, W, C): give {A_BASE}"
        )
    inputs = model.inputs
    shape = tuple(inputs[0].shape) if len(inputs) == 1 else None
    if shape is None or len(shape) != 4 or shape[-1] != 3:
        described = shape if shape is not None else f"{len(inputs)} inputs"
        raise StageError(f"{label} takes {described}, not RGB images (None, H, W, 3): give {A_BASE}")


def fine_tune_layer(params: BaseParams, base: keras.Model) -> tuple[str, str]:
    """(the first layer fine_tune unfreezes, why that one): base.fine_tune_from, the book's choice for
    a keras.applications base, or else the base's last convolutional layer."""
    if params.fine_tune_from is not None:
        name, why = params.fine_tune_from, "as base.fine_tune_from says"
    elif not params.is_file:
        name, why = KERAS_BASES[params.name].fine_tune_from, f"the first layer of {params.name}'s last block"
    else:
        convolutions = convolutional_layers(base)
        if not convolutions:
            raise StageError(
                f"base.fine_tune_from is null but the base {base.name!r} has no convolutional layer; name a layer"
            )
        name, why = convolutions[-1].name, "the base's last convolutional layer (base.fine_tune_from: null)"
    check_layer(base, name)
    return name, why


def check_base_file(path: str, base: BaseParams) -> str:
    """load_base's whole check of a .keras base file (`base_from_file`, then `fine_tune_layer`) on a file not
    yet in bases/: `classifier own` runs it on BASE before it copies anything. A file that is not a Keras
    zip, that safe mode refuses (a Lambda layer), with an unknown layer class, no convolutional feature map,
    or a base.output_layer or base.fine_tune_from it does not have: one line each, nothing written. What it
    gives: load_base's words on the base."""
    model, origin = base_from_file(path, base.weights, base.output_layer)
    fine_tune_layer(base, model)
    return origin
