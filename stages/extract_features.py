"""Stage `extract_features`: run the frozen base once over every split and cache its output.

Writes data/features/<split>_features.npy (float32, e.g. (N, 4, 4, 512) for VGG16 at
150x150) and <split>_labels.npy. Only the base, its preprocessing and the image size
matter here (and, for augmented views, augmentation.* and seed), so changing the training
stages' own params never reruns this stage.

With `extract_features.views: k` above 1, the training split gets k views of each image:
the plain one and k-1 through the augmentation layer the training stages use (augmentation.*,
seeded from `seed` and the view), k x N rows, view-major (rows v*N .. (v+1)*N - 1 are view v),
and its labels repeated k times to match; validation and test keep the plain images only.
"""

import numpy as np

from classifier.core.errors import StageError
from classifier.core.outputs import replacing
from classifier.core.params import load_params
from classifier.core.paths import BASE_MODEL, FEATURES_DIR, SPLITS
from classifier.core.startup import run_stage
from classifier.intake.prepared.arrays import load_prepared
from classifier.models.architecture import feature_extractor, preprocessing_mode
from classifier.models.augmentation import augmented_views
from classifier.models.prediction import predict_to_file
from classifier.models.saving import load_model

PLAIN = (None,)  # one view: the images as they are


def train_views(params) -> tuple:
    """The plain view, then views - 1 augmented ones (augmentation and seed are read only then)."""
    views = params.extract_features.views
    return PLAIN if views == 1 else (*PLAIN, *augmented_views(params.augmentation, params.seed, views - 1))


def main() -> None:
    params = load_params()
    base = load_model(BASE_MODEL)
    mode = preprocessing_mode(params.base)
    extractor = feature_extractor(base, params.data.image_size, mode)
    prepared = {split: load_prepared(split) for split in SPLITS}  # every split checked before any is run
    row_bytes = int(np.prod(extractor.output_shape[1:])) * 4 + 4  # float32 features and a label
    copies = {split: params.extract_features.views if split == "train" else 1 for split in SPLITS}
    needed = sum(copies[split] * len(labels) * row_bytes for split, (_, labels) in prepared.items())
    # Written beside data/features, which they replace once every split is done: a full disk, values that
    # are not numbers or Ctrl-C leave an earlier run's features as they were.
    with replacing(FEATURES_DIR, needed) as new:
        for split in SPLITS:
            images, labels = prepared[split]
            views = train_views(params) if split == "train" else PLAIN
            out = new / f"{split}_features.npy"
            not_finite = predict_to_file(extractor, images, params.extract_features.batch_size, out, views)
            if not_finite:
                raise StageError(
                    f"the base gives features that are not finite numbers (NaN or infinity) for {not_finite} of the "
                    f"{len(images) * len(views)} {split} rows: its weights (models/base.keras) or its preprocessing "
                    f"(base.preprocessing: {params.base.preprocessing}) do not fit these images; nothing is written: "
                    f"check base.weights and base.preprocessing, then run `dvc repro` again"
                )
            np.save(new / f"{split}_labels.npy", np.tile(labels, len(views)))
            shown = f" x {len(views)} views" if len(views) > 1 else ""
            print(f"extract_features: {split}: {len(images)} images{shown} -> features {extractor.output_shape[1:]}")


if __name__ == "__main__":
    run_stage(main, __file__)
