"""The schema of params.yaml: one pydantic model per section, in the file's order.

Every key is required (DVC tracks params by key, so a missing key would break `dvc repro`
anyway) and unknown keys are refused. Types are strict where YAML could slip a wrong one
through (`epochs: 3.0`, `resume: 1`); numbers stay lax because PyYAML reads `1e-05`, as
`dvc exp run -S lr=1e-5` writes it, as a string. Bounds are declared on the fields; rules
between fields are in classifier.core.rules, the one-line messages in classifier.core.params.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StrictInt, StrictStr
from pydantic_core import PydanticCustomError

from classifier.core.paths import SPLITS

# The book's small convnet halves the image four times (2x2 max pooling): 16 pixels is the least
# that leaves it a feature map (below 46 its 3x3 convolutions pad instead of shrinking the image).
MIN_IMAGE_SIZE = 16
# Each prepared image takes size x size x 3 bytes (3 MiB at 1024) and the bases' feature maps grow
# with its square: past 1024 the arrays and a batch of activations outgrow a machine's memory.
MAX_IMAGE_SIZE = 1024
MAX_SEED = 2**32 - 1  # NumPy's and TensorFlow's seeds are 32-bit
# PIL calls an image of more than 89,478,485 pixels a possible decompression bomb (a warning) and refuses
# one of more than twice that as it opens it: data.max_pixels can go no higher. Below a megapixel (3 MB
# decoded) the limit would guard nothing, and is more likely megapixels written as pixels (50 for 50 MP).
PIL_BOMB_PIXELS = 89_478_485
MIN_MAX_PIXELS = 1_000_000
MAX_SHARD_MB = 65536  # 64 GB: far beyond what one host reads at once
MAX_MAX_PIXELS = 2 * PIL_BOMB_PIXELS
# The counts that multiply a stage's time, memory or picture size, bounded well above what the book
# and the Keras guides use and below what takes days, exhausts memory or draws a picture no one opens.
MAX_BATCH_SIZE = 1024  # 1024 images at 150 pixels: 6 GB of VGG16's first activations
MAX_EPOCHS = 1000  # also the most patience
MAX_DENSE_UNITS = 4096  # VGG16's own dense layers
MAX_TOP_K = 100
MAX_GALLERY = 100  # 25 rows of mistakes
MAX_LAYERS_SHOWN = 16  # explain's activation and filter layers: a block of the picture each
MAX_FILTERS = 64  # per layer: the book's 8x8 grid (600 would draw a 95 MB picture)
MAX_FILTER_STEPS = 500  # the book takes 40 gradient-ascent steps
MAX_FILTER_SIZE = 256  # the book's are 150 and 200 pixels; a layer's filters ascend in one batch
MAX_GRADCAM_PER_CLASS = 10  # times the first 8 classes: 40 rows of heatmaps
MAX_JOIN_TIMEOUT = 86400  # a day: a cluster's queue may start its processes hours apart, never days
MAX_VIEWS = 32  # extract_features' views of each training image: the training features grow by as much


def _number(value):
    """A float, also from a string ("1e-05"); never a bool (YAML's `true` is not 1.0)."""
    if isinstance(value, bool):
        raise PydanticCustomError("float_type", "not a number")
    return value


def _class_name(value):
    """Class names read from a labels CSV may be numbers: 3 means "3"."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _listed_once(items: list) -> list:
    repeated = sorted({item for item in items if items.count(item) > 1})
    if repeated:
        raise ValueError(f"lists {', '.join(map(repr, repeated))} more than once")
    return items


def _split_share(value):
    """A fraction of each class, or for Kaggle's naming an index range [start, end)."""
    if isinstance(value, list):
        if len(value) == 2 and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return tuple(value)
        raise ValueError(f"must be a [start, end) pair of integers like [0, 1000]; got {value!r}")
    try:
        fraction = float(_number(value))
    except (TypeError, ValueError, PydanticCustomError):
        fraction = math.nan
    if not math.isfinite(fraction):
        raise ValueError(
            f"must be a fraction of each class like 0.8 or, for Kaggle's cat.N.jpg naming, an index range "
            f"[start, end) like [0, 1000]; got {value!r}"
        )
    return fraction


Number = Annotated[float, BeforeValidator(_number), Field(allow_inf_nan=False)]
Text = Annotated[StrictStr, Field(min_length=1)]
ClassName = Annotated[StrictStr, BeforeValidator(_class_name), Field(min_length=1)]
ClassNames = Annotated[list[ClassName], Field(min_length=1), AfterValidator(_listed_once)]
SplitShare = Annotated[tuple[int, int] | float, BeforeValidator(_split_share)]
BatchSize = Annotated[StrictInt, Field(ge=1, le=MAX_BATCH_SIZE)]
Epochs = Annotated[StrictInt, Field(ge=1, le=MAX_EPOCHS)]
Fraction = Annotated[Number, Field(ge=0, le=1)]
Dropout = Annotated[Number, Field(ge=0, le=0.99)]
# A learning rate of 0 trains nothing; above 1 (RMSprop, Adam) the weights blow up at once.
LearningRate = Annotated[Number, Field(gt=0, le=1)]
# The models the training stages write (layout.MODEL_STAGES), as explain.model and export.model name them,
# or `best`: the one with the best validation accuracy (stage evaluate).
ModelName = Literal["best", "scratch", "scratch_augmented", "feature_extraction", "frozen_augmented", "fine_tuned"]
ExportFormat = Literal["saved_model", "litert", "onnx"]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def keys(self) -> list[str]:
        return list(type(self).model_fields)


class SplitParams(Section):
    train: SplitShare
    validation: SplitShare
    test: SplitShare

    @property
    def is_ranges(self) -> bool:
        return isinstance(self.train, tuple)

    def as_dict(self) -> dict[str, tuple[int, int] | float]:
        return {name: getattr(self, name) for name in SPLITS}


class DataParams(Section):
    raw_dir: Text
    image_size: StrictInt = Field(
        ge=MIN_IMAGE_SIZE, le=MAX_IMAGE_SIZE, description="pixels per side; the small convnet halves it four times"
    )
    on_bad_image: Literal["fail", "skip"]
    max_pixels: StrictInt = Field(
        ge=MIN_MAX_PIXELS, le=MAX_MAX_PIXELS, description="width x height above which an image is refused"
    )
    shard_mb: StrictInt = Field(ge=1, le=MAX_SHARD_MB, description="megabytes of prepared images per shard, at most")
    split: SplitParams
    classes: ClassNames | None  # null: every class found, sorted by name; or the ones to use, in label order
    class_groups: Annotated[dict[ClassName, ClassNames], Field(min_length=1)] | None  # {group: [class, ...]}
    label_column: Text  # the labels CSV's column that holds the label (arrays with a labels table)
    on_duplicate_across_splits: Literal["fail", "warn"]  # the same image in two splits: a leak


class BaseParams(Section):
    name: Text
    weights: Text | None
    output_layer: Text | None  # a .keras base: the layer whose output is the feature map; null: the one its head reads
    fine_tune_from: Text | None
    preprocessing: Literal["native", "rescale"]

    @property
    def is_file(self) -> bool:
        return self.name.endswith(".keras")


class AugmentationParams(Section):
    rotation_degrees: Annotated[Number, Field(ge=0, le=180)]
    width_shift: Fraction
    height_shift: Fraction
    shear: Fraction
    zoom: Fraction
    horizontal_flip: StrictBool


class HeadParams(Section):
    pooling: Literal["flatten", "average"]
    dense_units: StrictInt = Field(ge=1, le=MAX_DENSE_UNITS)
    dropout: Dropout


class BatchParams(Section):
    batch_size: BatchSize


class ExtractParams(BatchParams):
    views: StrictInt = Field(
        ge=1, le=MAX_VIEWS, description="views of each training image: the plain one, then augmented ones"
    )


Patience = Annotated[
    StrictInt | None,
    Field(ge=1, le=MAX_EPOCHS, description="null: every epoch; n: stop after n epochs without a lower val loss"),
]


class TrainingParams(Section):
    epochs: Epochs
    patience: Patience
    batch_size: BatchSize
    learning_rate: LearningRate


class FineTuneParams(Section):
    """The learning rate is the top-level `lr`, so `dvc exp run -S lr=...` sweeps it."""

    start_from: Literal["frozen_augmented", "feature_extraction"]
    epochs: Epochs
    patience: Patience
    batch_size: BatchSize


class ScratchParams(TrainingParams):
    dropout: Dropout


class RunParams(Section):
    """How the training stages run (section `training`), the same for all of them."""

    resume: StrictBool
    deterministic: StrictBool
    distribute: Literal["none", "mirrored", "multi_host"]
    join_timeout: StrictInt = Field(
        ge=1,
        le=MAX_JOIN_TIMEOUT,
        description="multi_host: seconds a process waits for every process of its cluster to join",
    )
    mixed_precision: StrictBool
    jit_compile: StrictBool
    class_weight: Literal["balanced"] | None  # balanced: weigh each class by 1 / its share of the training images
    # the share of each one-hot target spread evenly over the classes (Szegedy et al. 2016; 0.1 is usual): at
    # most half, so that the right class keeps most of it
    label_smoothing: Annotated[Number, Field(ge=0, le=0.5)]


class OptimizerParams(Section):
    """The optimizer and learning-rate schedule of every training stage (section `optimizer`); each stage's own
    learning rate (fine_tune's: `lr`) is the peak. The book's: RMSprop at a constant rate."""

    name: Literal["rmsprop", "adam", "adamw"]
    weight_decay: Annotated[Number, Field(ge=0, le=1, description="AdamW's decoupled weight decay")]
    schedule: Literal["constant", "cosine"]
    warmup_epochs: StrictInt = Field(ge=0, le=MAX_EPOCHS, description="cosine: epochs of linear warm-up from 0")


class EvaluateParams(Section):
    batch_size: BatchSize
    top_k: StrictInt = Field(
        ge=1, le=MAX_TOP_K, description="top-k accuracy is reported when k is below the number of classes"
    )
    gallery_size: StrictInt = Field(ge=1, le=MAX_GALLERY, description="how many of the worst mistakes to show")
    tta: StrictBool  # test-time augmentation: each image's probabilities averaged with its mirror image's


class ExplainParams(Section):
    model: ModelName
    image: StrictInt = Field(ge=0, description="the index of a test image")
    activation_layers: StrictInt = Field(ge=1, le=MAX_LAYERS_SHOWN)
    filter_layers: StrictInt = Field(ge=1, le=MAX_LAYERS_SHOWN)
    filters: StrictInt = Field(ge=1, le=MAX_FILTERS, description="filter patterns per layer")
    filter_steps: StrictInt = Field(ge=1, le=MAX_FILTER_STEPS, description="gradient-ascent steps per pattern")
    filter_size: StrictInt = Field(
        ge=48, le=MAX_FILTER_SIZE, description="pixels per side of the filter patterns; the small convnet needs 46"
    )
    gradcam_per_class: StrictInt = Field(
        ge=1, le=MAX_GRADCAM_PER_CLASS, description="test images per class with a Grad-CAM heatmap"
    )


class ExportParams(Section):
    model: ModelName
    formats: Annotated[list[ExportFormat], Field(min_length=1), AfterValidator(_listed_once)]


class ModelsParams(Section):
    """Which models are trained: false skips one (its stage writes a placeholder in a second)."""

    scratch: StrictBool
    scratch_augmented: StrictBool
    feature_extraction: StrictBool
    frozen_augmented: StrictBool
    fine_tuned: StrictBool


class Params(Section):
    seed: StrictInt = Field(ge=0, le=MAX_SEED)
    lr: LearningRate = Field(description="the fine-tuning learning rate")
    models: ModelsParams
    data: DataParams
    base: BaseParams
    augmentation: AugmentationParams
    head: HeadParams
    training: RunParams
    optimizer: OptimizerParams
    extract_features: ExtractParams
    train_classifier: TrainingParams
    train_frozen: TrainingParams
    fine_tune: FineTuneParams
    train_scratch: ScratchParams
    train_scratch_augmented: ScratchParams
    evaluate: EvaluateParams
    explain: ExplainParams
    export: ExportParams
