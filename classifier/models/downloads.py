"""Whether a keras.applications base's ImageNet weights can be had: from Keras' cache, or by download.

Asked by stage check_params, before any stage runs, so that offline the pipeline stops with one
line on how to give a base instead of after split and prepare. Online nothing changes: Keras
downloads the weights into its cache (~/.keras/models/) when load_base builds the base.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from classifier.core.schema import BaseParams

WEIGHTS_HOST = ("storage.googleapis.com", 443)  # where keras.applications downloads from
PROBE_SECONDS = 3.0


def keras_cache() -> Path:
    """Where Keras keeps downloaded weights (KERAS_HOME, else ~/.keras), as keras.utils.get_file reads it."""
    return Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras") / "models"


def cached_weights(name: str) -> list[Path]:
    """The no-top weight files of keras.applications base `name` in Keras' cache."""
    folder = keras_cache()
    if not folder.is_dir():
        return []
    return [
        path
        for path in folder.iterdir()
        if path.name.startswith(f"{name}_") or path.name.startswith(f"{name.replace('_', '')}_")
        if "notop" in path.name or "no_top" in path.name
    ]


def reachable(host: tuple[str, int], seconds: float = PROBE_SECONDS) -> bool:
    try:
        socket.create_connection(host, timeout=seconds).close()
    except OSError:
        return False
    return True


def imagenet_weights_problem(base: BaseParams, host: tuple[str, int] = WEIGHTS_HOST) -> str | None:
    """One line when `base.weights: imagenet` names weights that are neither cached nor downloadable."""
    if base.weights != "imagenet" or base.is_file or cached_weights(base.name) or reachable(host):
        return None
    return (
        f"base.weights: imagenet, but the ImageNet weights of {base.name} are not in {keras_cache()}/ and "
        f"{host[0]} cannot be reached (offline?): give a base file (`make own BASE=path/to/base.keras`, or "
        "base.name: bases/<file>.keras with base.weights: null), copy the weights' notop .h5 file into "
        f"{keras_cache()}/, or set base.weights: null to train on random weights"
    )
