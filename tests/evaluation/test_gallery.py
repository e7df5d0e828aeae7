"""classifier/evaluation/gallery.py: the picture of the most confident mistakes, from predictions as stage
evaluate makes them (a sigmoid unit's, a softmax's, a small convnet's)."""

from __future__ import annotations

import keras
import numpy as np

from classifier.evaluation.gallery import most_wrong_gallery
from classifier.evaluation.metrics import predicted_classes
from classifier.models import architecture
from classifier.models.prediction import predict_probabilities
from tests.support.pictures import capture_figures, picture_size

# index:     0      1      2      3      4      5      6
# actual:    cat    dog    cat    dog    dog    cat    cat
# P(dog):    .55    .2     .9     .95    .5     .1     .7
# wrong?     yes    yes    yes    no     no(.5 = dog)  no   yes
# P(true class): .45  .2   .1    .95    .5    .9    .3  -> most confident mistakes 2, 1, 6, 0
GALLERY_LABELS = np.array([0, 1, 0, 1, 1, 0, 0], np.uint8)  # uint8, as load_prepared gives them
GALLERY_P = np.array([0.55, 0.2, 0.9, 0.95, 0.5, 0.1, 0.7], np.float32)
GALLERY_NAMES = [f"img{i}.jpg" for i in range(7)]


def gallery_probabilities(p_dog) -> np.ndarray:
    return architecture.class_probabilities(np.asarray(p_dog, np.float32)[:, None])  # as the stage gets them


def gallery_images(count: int = 7) -> np.ndarray:
    return np.random.default_rng(1).integers(0, 256, (count, 16, 16, 3)).astype(np.uint8)


def shown_names(axes) -> list[str]:
    return [axis.get_title().split("\n")[0] for axis in axes.flat if axis.get_title()]


def gallery(tmp_path, labels, probabilities, names, class_names=("cat", "dog"), **kwargs) -> tuple[int, tuple]:
    out = tmp_path / "most_wrong.png"
    wrong = most_wrong_gallery(
        gallery_images(len(labels)), labels, probabilities, names, list(class_names), "tiny", out, **kwargs
    )
    picture_size(out)
    return wrong, out


def test_most_wrong_gallery_counts_and_orders_the_mistakes(tmp_path, monkeypatch):
    made = capture_figures(monkeypatch)
    wrong, _ = gallery(tmp_path, GALLERY_LABELS, gallery_probabilities(GALLERY_P), GALLERY_NAMES)
    assert wrong == 4
    ((figure, axes),) = made
    assert shown_names(axes) == ["img2.jpg", "img1.jpg", "img6.jpg", "img0.jpg"]
    assert axes.flat[0].get_title() == "img2.jpg\ntrue cat\npredicted dog (0.90)"
    assert axes.flat[1].get_title() == "img1.jpg\ntrue dog\npredicted cat (0.80)"
    assert figure._suptitle.get_text() == "tiny: the 4 most confident mistakes of 4 (7 test images)"


def test_most_wrong_gallery_of_three_classes(tmp_path, monkeypatch):
    # index:      0              1              2              3              4
    # actual:     cat            dog            fox            fox            dog
    # P(c,d,f):   .1 .3 .6       .2 .7 .1       .5 .45 .05     .3 .3 .4       .6 .3 .1
    # predicted:  fox            dog            cat            fox            cat
    # P(true):    .1 (wrong)     right          .05 (wrong)    right          .3 (wrong) -> 2, 0, 4
    made = capture_figures(monkeypatch)
    labels = np.array([0, 1, 2, 2, 1], np.uint8)
    probabilities = np.array(
        [[0.1, 0.3, 0.6], [0.2, 0.7, 0.1], [0.5, 0.45, 0.05], [0.3, 0.3, 0.4], [0.6, 0.3, 0.1]], np.float32
    )
    wrong, _ = gallery(tmp_path, labels, probabilities, GALLERY_NAMES[:5], ("cat", "dog", "fox"))
    assert wrong == 3
    ((figure, axes),) = made
    assert [axis.get_title() for axis in axes.flat if axis.get_title()] == [
        "img2.jpg\ntrue fox\npredicted cat (0.50)",
        "img0.jpg\ntrue cat\npredicted fox (0.60)",
        "img4.jpg\ntrue dog\npredicted cat (0.60)",
    ]


def test_most_wrong_gallery_shows_at_most_count(tmp_path, monkeypatch):
    made = capture_figures(monkeypatch)
    wrong, _ = gallery(tmp_path, GALLERY_LABELS, gallery_probabilities(GALLERY_P), GALLERY_NAMES, count=2)
    assert wrong == 4  # all the mistakes are counted, only the worst 2 shown
    ((figure, axes),) = made
    assert shown_names(axes) == ["img2.jpg", "img1.jpg"]
    assert "the 2 most confident mistakes of 4" in figure._suptitle.get_text()


def test_most_wrong_gallery_with_more_mistakes_than_a_row(tmp_path, monkeypatch):
    made = capture_figures(monkeypatch)
    rng = np.random.default_rng(2)
    labels = np.array([0, 1] * 5, np.uint8)
    p = np.where(labels == 1, rng.uniform(0, 0.45, 10), rng.uniform(0.55, 1, 10))  # all ten wrong
    wrong, _ = gallery(tmp_path, labels, gallery_probabilities(p), [f"n{i}" for i in range(10)], count=9)
    assert wrong == 10
    ((figure, axes),) = made
    errors = np.abs(labels - p)
    assert shown_names(axes) == [f"n{i}" for i in np.argsort(-errors)[:9]]


def test_most_wrong_gallery_without_mistakes(tmp_path, monkeypatch):
    made = capture_figures(monkeypatch)
    labels = np.array([0, 1, 1, 0], np.uint8)
    wrong, _ = gallery(tmp_path, labels, gallery_probabilities([0.1, 0.5, 0.99, 0.49]), GALLERY_NAMES[:4])
    assert wrong == 0
    ((figure, axes),) = made
    assert shown_names(axes) == []
    assert [text.get_text() for axis in figure.axes for text in axis.texts] == ["no mistakes on the test split"]
    assert figure._suptitle.get_text() == "tiny: the 0 most confident mistakes of 0 (4 test images)"


def test_most_wrong_gallery_of_a_small_convnet_predicting_three_classes(tmp_path):
    """End to end from a model the stages build: predictions as evaluate makes them, then the picture."""
    keras.utils.set_random_seed(1)
    convnet = architecture.small_convnet(16, dropout=0.0, num_classes=3)
    images = np.random.default_rng(3).integers(0, 256, (12, 16, 16, 3)).astype(np.uint8)
    probabilities = predict_probabilities(convnet, images, batch_size=5)
    assert probabilities.shape == (12, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, atol=1e-5)
    labels = (predicted_classes(probabilities) + np.arange(12) % 2).astype(np.uint8) % 3  # every other one wrong
    wrong = most_wrong_gallery(
        images, labels, probabilities, [f"i{n}" for n in range(12)], ["a", "b", "c"], "convnet", tmp_path / "w.png", 4
    )
    assert wrong == 6
    picture_size(tmp_path / "w.png")
