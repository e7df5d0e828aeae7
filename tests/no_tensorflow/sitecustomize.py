"""Put this folder on PYTHONPATH to run Python as on a machine without TensorFlow (tests of what must
work with only JAX or PyTorch installed): Python's path finder no longer sees the packages below,
so `import tensorflow` fails with ModuleNotFoundError, `importlib.util.find_spec` says None and
`"tensorflow" in sys.modules` stays False, as they would there."""

import importlib.machinery

HIDDEN = ("tensorflow", "tf_keras", "tensorboard", "tf2onnx")
_find_spec = importlib.machinery.PathFinder.find_spec


def _find_spec_without_tensorflow(cls, fullname, path=None, target=None):
    if fullname.split(".")[0] in HIDDEN:
        return None
    return _find_spec(fullname, path, target)


importlib.machinery.PathFinder.find_spec = classmethod(_find_spec_without_tensorflow)
