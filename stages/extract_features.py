"""Stage `extract_features`: run the frozen base once over every split and cache its output.

Writes data/features/<split>_features.npy (float32, e.g. (N, 4, 4, 512) for VGG16 at
150x150) and <split>_labels.npy. Only the base, its preprocessing and the image size
matter here, so changing training params downstream never reruns this stage.
"""

import numpy as np

from classifier.core.cli import run_stage
from classifier.intake.images import load_prepared, release
from classifier.core.layout import BASE_MODEL, FEATURES_DIR
from classifier.models.bases import feature_extractor, preprocessing_mode
from classifier.core.params import SPLITS, load_params
from classifier.models.prediction import predict_batches
from classifier.models.saving import load_model


RELEASE_EVERY = 1024  # images between two releases of the memory maps' pages


def extract(extractor, images: np.ndarray, batch_size: int, out_path) -> None:
    """Stream features batch by batch into a memory-mapped .npy file; resident memory
    stays bounded by RELEASE_EVERY images, whatever the size of the split."""
    shape = (len(images), *extractor.output_shape[1:])
    features = np.lib.format.open_memmap(out_path, mode="w+", dtype=np.float32, shape=shape)
    for start, output in predict_batches(extractor, images, batch_size):
        features[start : start + len(output)] = output
        if (start + len(output)) // RELEASE_EVERY > start // RELEASE_EVERY:
            release(features)
            release(images)
    features.flush()


def main() -> None:
    params = load_params()
    base = load_model(BASE_MODEL)
    extractor = feature_extractor(base, params.data.image_size, preprocessing_mode(params.base))
    FEATURES_DIR.mkdir(parents=True, exist_ok=True)
    for split in SPLITS:
        images, labels = load_prepared(split)
        extract(extractor, images, params.extract_features.batch_size, FEATURES_DIR / f"{split}_features.npy")
        np.save(FEATURES_DIR / f"{split}_labels.npy", labels)
        print(f"extract_features: {split}: {len(images)} images -> features {extractor.output_shape[1:]}")


if __name__ == "__main__":
    run_stage(main, __file__)
