"""Stage `extract_features`: run the frozen base once over every split and cache its output.

Writes data/features/<split>_features.npy (float32, e.g. (N, 4, 4, 512) for VGG16 at
150x150) and <split>_labels.npy. Only the base, its preprocessing and the image size
matter here, so changing training params downstream never reruns this stage.
"""

import numpy as np

from classifier.core.cli import run_stage
from classifier.core.layout import BASE_MODEL, FEATURES_DIR, SPLITS
from classifier.core.params import load_params
from classifier.intake.prepared import load_prepared
from classifier.models.assembly import feature_extractor
from classifier.models.prediction import predict_to_file
from classifier.models.preprocessing import preprocessing_mode
from classifier.models.saving import load_model


def main() -> None:
    params = load_params()
    base = load_model(BASE_MODEL)
    extractor = feature_extractor(base, params.data.image_size, preprocessing_mode(params.base))
    FEATURES_DIR.mkdir(parents=True, exist_ok=True)
    for split in SPLITS:
        images, labels = load_prepared(split)
        predict_to_file(extractor, images, params.extract_features.batch_size, FEATURES_DIR / f"{split}_features.npy")
        np.save(FEATURES_DIR / f"{split}_labels.npy", labels)
        print(f"extract_features: {split}: {len(images)} images -> features {extractor.output_shape[1:]}")


if __name__ == "__main__":
    run_stage(main, __file__)
