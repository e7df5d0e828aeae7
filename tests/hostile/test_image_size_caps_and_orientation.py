"""Caps on what costs memory or time, and photos taken on their side: what prepare, predict and params do.

Images are decoded by one function (classifier.intake.decoding.decode_image) for prepare and predict.
The huge images are valid 1-bit PNGs of a few KB (a 12000x12000 one is 18 KB): refused from their
header, none is ever decoded here; the large JPEG's memory is measured in a subprocess.

Pixel limit (data.max_pixels, default 89,478,485: PIL's own decompression-bomb warning threshold)
 1. a 12000x12000 image (144 megapixels) in data/split                   -> prepare stops listing it: its size,
                                                                            the limit and the fix; writes no
                                                                            manifest and no metrics
 2. an image over a lowered data.max_pixels, data.on_bad_image: skip     -> left out, in skipped.csv with
                                                                            the reason; the others prepared
 3. `classifier predict` on a folder holding the 144-megapixel image
    and a photo                                                          -> one line naming it, the photo
                                                                            still predicted, exit status 1;
    `--max-pixels 50`                                                    -> refused by the argument parser
 4. an image over PIL's own limit (196 megapixels)                        -> the same kind of line, not PIL's
                                                                            "decompression bomb DOS attack"
Large images decoded reduced
 5. a 6000x6000 JPEG decoded to 64x64                                    -> < 16 MiB of memory (a full decode
                                                                            takes 100+): DCT scaling (draft);
                                                                            the pixels within a few levels of a
                                                                            full decode's, and repeatable
 6. an image under 4 times the output per side (a guard)                 -> exactly a full decode and the
                                                                            bilinear resize, as ever
EXIF orientation
 7. a JPEG with EXIF orientation 6 (a phone held upright)                -> upright in prepare's array and in
                                                                            predict's decoding, the same pixels
 8. a JPEG whose EXIF block is garbage (a guard)                         -> decoded as stored, not refused
Counts that multiply work, in params.yaml
 9. explain.filters 600, gallery_size 600, a batch of 100000, epochs
    100000, patience 0, dense_units 100000, data.max_pixels 50 (megapixels
    written as pixels), ...: each count past its range                   -> one line: key, range, value
10. every count at the top of its range                                  -> loads
"""

from __future__ import annotations

import io
import json
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

from classifier.core import schema
from classifier.core.errors import ParamsError, StageError
from classifier.core.params import load_params
from classifier.intake.decoding import decode_image
from classifier.intake.prepared.arrays import load_prepared
from classifier.intake.tables import prepared_rows
from classifier.models import saving
from classifier.serving.predicting import decoded_images
from stages import prepare, split
from tests.support.commands import run_command
from tests.support.files import encode, jpeg, read_csv
from tests.support.params import write_params
from tests.support.paths import ROOT

SIZE = 16  # data.image_size here, and the tiny classifier's input side
RANGES = {"train": [0, 4], "validation": [4, 6], "test": [6, 8]}  # cat.0 to cat.3 train, cat.4 and 5 validation
RED, BLUE = (220, 20, 20), (20, 20, 220)
HUGE = (12000, 12000)  # 144 megapixels
ORIENTATION = 0x0112  # the EXIF tag


def one_bit_png(width: int, height: int) -> bytes:
    """A valid black 1-bit grayscale PNG, written by hand: a few KB whatever its size (PIL would build it in
    memory first, a byte a pixel)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = (b"\x00" + bytes((width + 7) // 8)) * height  # filter type 0, then the row's bits
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b"")


def sideways_photo() -> bytes:
    """A JPEG stored 200x100, red left half and blue right half, whose EXIF says: turn me 90 degrees
    clockwise (orientation 6, as a phone held upright writes it). Upright it is red on top of blue."""
    image = Image.new("RGB", (200, 100), RED)
    image.paste(BLUE, (100, 0, 200, 100))
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    return encode(image, "JPEG", quality=95, exif=exif.tobytes())


def check_upright(array: np.ndarray) -> None:
    """Red on top, blue below (as stored, unturned, it would be red left, blue right)."""
    top, bottom = array[: SIZE // 2 - 2].reshape(-1, 3), array[SIZE // 2 + 2 :].reshape(-1, 3)
    assert np.abs(top.astype(int) - RED).max() <= 12, array[:, :, 0]
    assert np.abs(bottom.astype(int) - BLUE).max() <= 12, array[:, :, 2]


# --- a tiny project: raw images, split, prepare ----------------------------------------------------------


def project(work: Path, raw: Path, images: dict[str, bytes], **data) -> Path:
    """Raw cats (red) and dogs (blue) 0-7, some replaced by `images`; params.yaml's data section updated
    with `data`; `split` run in the workspace (the current folder); the workspace."""
    for label, color in zip(("cat", "dog"), (RED, BLUE)):
        for i in range(8):
            (raw / f"{label}.{i}.jpg").write_bytes(jpeg(size=(30 + i, 24), color=color))
    for name, content in images.items():
        (raw / name).write_bytes(content)
    changes = {"data.raw_dir": str(raw), "data.image_size": SIZE, "data.split": RANGES}
    write_params(work, changes | {f"data.{key}": value for key, value in data.items()})
    split.main()
    return work


def test_a_144_megapixel_image_stops_prepare_naming_it(work, raw):
    project(work, raw, {"cat.1.jpg": one_bit_png(*HUGE)})  # a PNG named .jpg, as ever
    with pytest.raises(StageError) as info:
        prepare.main()
    assert str(info.value).splitlines()[:2] == [
        "1 images cannot be decoded:",
        "  data/split/train/cat/cat.1.jpg: 12000x12000 = 144,000,000 pixels, more than data.max_pixels allows "
        "(89,478,485): downscale it, or raise data.max_pixels",
    ]
    assert not list((work / "data" / "prepared").rglob("images-*.csv"))  # no shard tables: no record of the arrays
    assert not (work / "metrics" / "prepare.json").exists()


def test_an_image_over_a_lowered_limit_is_skipped_when_asked(work, raw):
    large = jpeg(size=(1250, 1000), color=BLUE)  # 1.25 megapixels
    project(work, raw, {"dog.5.jpg": large}, max_pixels=1_000_000, on_bad_image="skip")
    prepare.main()
    skipped = read_csv(work / "data" / "prepared" / "skipped.csv")
    assert [(row["path"], row["error"]) for row in skipped] == [
        (
            "validation/dog/dog.5.jpg",
            "1250x1000 = 1,250,000 pixels, more than data.max_pixels allows (1,000,000): downscale it, "
            "or raise data.max_pixels",
        )
    ]
    report = json.loads((work / "metrics" / "prepare.json").read_text())
    assert report == {
        "train": {"images": 8, "skipped": 0},
        "validation": {"images": 3, "skipped": 1, "skipped_by_class": {"dog": 1}},
        "test": {"images": 4, "skipped": 0},
    }


@pytest.fixture(scope="module")
def classifier(tmp_path_factory) -> Path:
    """A tiny two-class classifier nobody trained, saved as this pipeline saves its models."""
    keras.utils.set_random_seed(0)
    pixels = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Flatten()(keras.layers.Conv2D(2, 3, name="conv")(keras.layers.Rescaling(1 / 255)(pixels)))
    model = keras.Model(pixels, keras.layers.Dense(2, activation="softmax", name="predictions")(x))
    path = tmp_path_factory.mktemp("model") / "classifier.keras"
    saving.save_model(model, path, ["cat", "dog"])
    return path


def test_predict_refuses_a_144_megapixel_image_and_predicts_the_rest(classifier, tmp_path, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "huge.png").write_bytes(one_bit_png(*HUGE))
    (folder / "photo.jpg").write_bytes(jpeg(size=(40, 30), color=RED))
    assert run_command(["predict", str(folder), "--model", str(classifier)]) == 1
    out, err = capsys.readouterr()
    assert err == (
        f"predict: error: {folder / 'huge.png'}: 12000x12000 = 144,000,000 pixels, more than --max-pixels allows "
        f"(89,478,485): downscale it, or raise --max-pixels\n"
    )
    assert [line.split(", ")[0] for line in out.splitlines()] == [str(folder / "photo.jpg")]


def test_predict_refuses_a_max_pixels_out_of_range(capsys):
    with pytest.raises(SystemExit) as info:
        run_command(["predict", "photo.jpg", "--max-pixels", "50"])
    assert info.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "classifier predict: error: argument --max-pixels: 50: give 1000000 to 178956970 (width x height)"
    )


def test_an_image_over_pil_s_own_limit_gets_the_same_kind_of_line():
    with pytest.raises(ValueError) as info:
        decode_image(one_bit_png(14000, 14000), SIZE)
    assert str(info.value) == (
        "more than 178,956,970 pixels, more than PIL opens (a possible decompression bomb) and more than "
        "data.max_pixels allows (89,478,485): downscale it"
    )


# --- large images decoded reduced ---------------------------------------------------------------------------

# Peak memory (VmHWM, reset by exec, unlike ru_maxrss) that decoding a file adds, in a fresh process.
PEAK = """
import io, sys
from PIL import Image
from classifier.intake.decoding import decode_image

def peak_kib():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))

data = open(sys.argv[1], "rb").read()
before = peak_kib()
if sys.argv[2] == "full":
    Image.open(io.BytesIO(data)).load()
else:
    decode_image(data, int(sys.argv[2]))
print(peak_kib() - before)
"""


def added_peak_mib(path: Path, how: str) -> float:
    result = subprocess.run(
        [sys.executable, "-c", PEAK, str(path), how], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return int(result.stdout) / 1024


def smooth_photo(width: int, height: int) -> Image.Image:
    """Gradients in three directions: photo-like, no noise for the JPEG to smear."""
    channels = [Image.linear_gradient("L"), Image.linear_gradient("L").rotate(90), Image.radial_gradient("L")]
    return Image.merge("RGB", [channel.resize((width, height), Image.Resampling.BICUBIC) for channel in channels])


def full_decode(data: bytes, size: int) -> np.ndarray:
    """How every image was decoded before large ones were reduced: all its pixels, then the bilinear resize."""
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR))


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="reads the peak memory from Linux's /proc")
def test_a_large_jpeg_is_decoded_in_bounded_memory(tmp_path):
    path = tmp_path / "large.jpg"
    data = encode(smooth_photo(6000, 6000), "JPEG", quality=90)
    path.write_bytes(data)
    full = added_peak_mib(path, "full")
    assert full > 100  # 6000 x 6000 x 3 bytes: what the measurement must see
    assert added_peak_mib(path, "64") < 16
    array = decode_image(data, 64)
    assert np.abs(array.astype(int) - full_decode(data, 64)).max() <= 3
    assert np.array_equal(array, decode_image(data, 64))


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_an_image_under_four_times_the_output_decodes_as_ever(fmt):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (250, 500, 3), dtype=np.uint8)  # 250 < 4 x 64
    data = encode(Image.fromarray(pixels), fmt)
    assert np.array_equal(decode_image(data, 64), full_decode(data, 64))


# --- EXIF orientation ---------------------------------------------------------------------------------------


def test_a_photo_taken_on_its_side_is_upright_in_prepare_and_predict(work, raw, tmp_path):
    project(work, raw, {"cat.0.jpg": sideways_photo()})
    prepare.main()
    images, _ = load_prepared("train")
    ((index, row),) = [
        (index, row) for index, row in enumerate(prepared_rows("train")) if row["path"].endswith("cat.0.jpg")
    ]
    prepared = images[index]
    check_upright(prepared)
    copy = tmp_path / "photo.jpg"
    shutil.copy2(work / "data" / "split" / row["path"], copy)
    readable, pixels, failed = decoded_images([copy], SIZE)  # predict's decoding
    assert (readable, failed) == ([copy], 0)
    assert np.array_equal(pixels[0], prepared)


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")  # PIL's, as it opens the file
def test_a_jpeg_with_a_garbage_exif_block_is_decoded_as_stored():
    image = Image.new("RGB", (40, 20), RED)
    image.paste(BLUE, (20, 0, 40, 20))
    array = decode_image(encode(image, "JPEG", quality=95, exif=b"Exif\x00\x00MM\x00\x2a\x00\x00\x00\x08\x00\x05"), 8)
    assert np.abs(array[:, 0].astype(int) - RED).max() <= 12  # red left, as stored
    assert np.abs(array[:, 7].astype(int) - BLUE).max() <= 12


# --- counts that multiply work ------------------------------------------------------------------------------


TRAINING = ("train_classifier", "train_frozen", "fine_tune", "train_scratch", "train_scratch_augmented")
PATIENCE = "(null: every epoch; n: stop after n epochs without a lower val loss) "
# (keys, a value past the range, the line's end after "params.yaml: <key> ")
TOO_MUCH = [
    (("explain", "filters"), 600, "(filter patterns per layer) must be between 1 and 64; got 600"),
    (("explain", "filter_layers"), 100, "must be between 1 and 16; got 100"),
    (("explain", "activation_layers"), 100, "must be between 1 and 16; got 100"),
    (("explain", "filter_steps"), 100000, "(gradient-ascent steps per pattern) must be between 1 and 500; got 100000"),
    (
        ("explain", "filter_size"),
        1024,
        "(pixels per side of the filter patterns; the small convnet needs 46) must be between 48 and 256; got 1024",
    ),
    (
        ("explain", "gradcam_per_class"),
        600,
        "(test images per class with a Grad-CAM heatmap) must be between 1 and 10; got 600",
    ),
    (("evaluate", "gallery_size"), 600, "(how many of the worst mistakes to show) must be between 1 and 100; got 600"),
    (
        ("evaluate", "top_k"),
        1000,
        "(top-k accuracy is reported when k is below the number of classes) must be between 1 and 100; got 1000",
    ),
    (("evaluate", "batch_size"), 100000, "must be between 1 and 1024; got 100000"),
    (("extract_features", "batch_size"), 4096, "must be between 1 and 1024; got 4096"),
    *[((stage, "batch_size"), 2048, "must be between 1 and 1024; got 2048") for stage in TRAINING],
    *[((stage, "epochs"), 100000, "must be between 1 and 1000; got 100000") for stage in TRAINING],
    (("train_frozen", "patience"), 0, PATIENCE + "must be between 1 and 1000; got 0"),
    (("fine_tune", "patience"), 5000, PATIENCE + "must be between 1 and 1000; got 5000"),
    (("head", "dense_units"), 100000, "must be between 1 and 4096; got 100000"),
    (
        ("data", "max_pixels"),
        50,
        "(width x height above which an image is refused) must be between 1000000 and 178956970; got 50",
    ),
    (
        ("data", "max_pixels"),
        10**9,
        "(width x height above which an image is refused) must be between 1000000 and 178956970; got 1000000000",
    ),
]


@pytest.mark.parametrize("keys, value, end", TOO_MUCH, ids=[f"{'.'.join(k)}={v}" for k, v, _ in TOO_MUCH])
def test_a_count_past_its_range_is_one_line(tmp_path, keys, value, end):
    with pytest.raises(ParamsError) as info:
        load_params(write_params(tmp_path, {".".join(keys): value}))
    assert str(info.value) == f"params.yaml: {'.'.join(keys)} {end}"


def test_every_count_at_the_top_of_its_range_loads(tmp_path):
    tops = {
        ("explain", "filters"): schema.MAX_FILTERS,
        ("explain", "filter_layers"): schema.MAX_LAYERS_SHOWN,
        ("explain", "activation_layers"): schema.MAX_LAYERS_SHOWN,
        ("explain", "filter_steps"): schema.MAX_FILTER_STEPS,
        ("explain", "filter_size"): schema.MAX_FILTER_SIZE,
        ("explain", "gradcam_per_class"): schema.MAX_GRADCAM_PER_CLASS,
        ("evaluate", "gallery_size"): schema.MAX_GALLERY,
        ("evaluate", "top_k"): schema.MAX_TOP_K,
        ("evaluate", "batch_size"): schema.MAX_BATCH_SIZE,
        ("extract_features", "batch_size"): schema.MAX_BATCH_SIZE,
        ("head", "dense_units"): schema.MAX_DENSE_UNITS,
        ("data", "max_pixels"): schema.MAX_MAX_PIXELS,
        **{(stage, key): top for stage in TRAINING for key, top in (("batch_size", 1024), ("epochs", 1000))},
        **{(stage, "patience"): 1000 for stage in TRAINING},
    }
    params = load_params(write_params(tmp_path, {".".join(keys): top for keys, top in tops.items()}))
    assert params.explain.filters == 64 and params.fine_tune.patience == 1000
    assert params.data.max_pixels == 2 * Image.MAX_IMAGE_PIXELS  # where PIL stops opening images
