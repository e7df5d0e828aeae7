"""Writing a trained model for serving: a TensorFlow SavedModel, a LiteRT (.tflite) file, an ONNX file.

All three take what the .keras model takes, raw RGB pixels 0-255 as float32 (N, S, S, 3) named
`pixels`, and give what it gives. LiteRT is converted from the SavedModel, so both run one
traced graph. The files are the same byte for byte on every run of the same model (as
dvc.lock's hashes need): the SavedModel lists the variables in the model's order (Keras'
own export lists them in memory-address order) and its fingerprint carries no random UUID.
It tracks the tf.Variables the function reads, not Keras' wrappers of them (those would be
saved as copies that TF1-style loaders, TF Serving's among them, restore but never read).
"""

from __future__ import annotations

import importlib
import shutil
from pathlib import Path

import keras
import tensorflow as tf
from tensorflow.core.protobuf import fingerprint_pb2

from classifier.core.catalog import EXPORT_CONVERTERS
from classifier.core.errors import StageError
from classifier.models.saving import first_sentence

# Each format's file or folder inside the export folder, in the order they are written.
FILES = {"saved_model": "saved_model", "litert": "model.tflite", "onnx": "model.onnx"}
SIGNATURE = "serving_default"  # the signature TF Serving calls unless told otherwise
INPUT_NAME = "pixels"
OUTPUT_NAME = "output_0"  # TensorFlow's name for a signature's one unnamed output


def check_converters(formats: list[str]) -> None:
    """Every listed format's converter imports (the params check only finds it installed); else
    StageError naming it and what to install."""
    for name in formats:
        converter = EXPORT_CONVERTERS[name]
        for module in converter.modules:
            try:
                importlib.import_module(module)
            except ModuleNotFoundError:
                problem = "is not installed"
            except Exception as err:  # installed, but broken against this TensorFlow or NumPy
                problem = f"cannot be imported ({first_sentence(err)})"
            else:
                continue
            raise StageError(
                f"export.formats lists {name} but {module} {problem}: {converter.install}, "
                f"or remove {name} from export.formats"
            )


def export_model(model: keras.Model, folder: Path, formats: list[str]) -> None:
    """Write `formats` of `model` into the new folder `folder` (named as in FILES)."""
    folder.mkdir(parents=True)
    spec = tf.TensorSpec((None, *model.input_shape[1:]), tf.float32, name=INPUT_NAME)
    saved_model = folder / FILES["saved_model"]
    write_saved_model(model, spec, saved_model)  # LiteRT is converted from it, so it is always written
    if "litert" in formats:
        write_litert(saved_model, folder / FILES["litert"])
    if "onnx" in formats:
        model.export(str(folder / FILES["onnx"]), format="onnx", verbose=False, input_signature=[spec])
    if "saved_model" not in formats:
        shutil.rmtree(saved_model)


def write_saved_model(model: keras.Model, spec: tf.TensorSpec, folder: Path) -> None:
    """A SavedModel with the tag `serve`, the signature `serving_default` (`pixels` -> `output_0`)
    and the same function as `serve` (tf.saved_model.load(folder).serve(pixels))."""
    module = tf.Module()
    module.model_variables = [variable.value for variable in model.variables]  # the tf.Variables the function reads
    module.serve = tf.function(lambda pixels: model(pixels, training=False), input_signature=[spec], autograph=False)
    tf.saved_model.save(module, str(folder), signatures={SIGNATURE: module.serve.get_concrete_function()})
    fingerprint = folder / "fingerprint.pb"
    if fingerprint.is_file():  # TensorFlow puts a random UUID beside its hashes of the files
        proto = fingerprint_pb2.FingerprintDef.FromString(fingerprint.read_bytes())
        if "uuid" in proto.DESCRIPTOR.fields_by_name:
            proto.ClearField("uuid")
        fingerprint.write_bytes(proto.SerializeToString(deterministic=True))


def write_litert(saved_model: Path, path: Path) -> None:
    """float32 LiteRT flatbuffer with builtin ops only: it runs on the plain LiteRT runtime (no Flex ops)."""
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model), signature_keys=[SIGNATURE])
    try:
        converted = converter.convert()
    except Exception as err:  # the converter's errors name the ops it cannot express
        raise StageError(
            f"LiteRT cannot convert this model ({first_sentence(err)}): remove litert from export.formats"
        ) from None
    path.write_bytes(converted)  # a full disk is not the converter's: stage export names it
