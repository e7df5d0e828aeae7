"""Reference numbers from Chollet, Deep Learning with Python, for the tables and the report."""

from classifier.core.catalog import DOGS_VS_CATS

# Test accuracy with 2,000 training images: 1st edition (ch. 5, pixels / 255) and
# 2nd edition (ch. 8, VGG16's own preprocessing).
BOOK_ACCURACY = {
    "scratch": (0.71, 0.70),
    "scratch_augmented": (0.82, 0.835),
    "feature_extraction": (0.90, 0.975),
    "frozen_augmented": (0.96, 0.977),
    "fine_tuned": (0.97, 0.985),
}
BOOK_COLUMNS = ("book 1st ed.", "book 2nd ed.")
BOOK_NOTE = (
    "The book's columns are its test accuracies on Dogs vs. Cats with 2,000 training images: "
    "1st edition (pixels / 255) and 2nd edition (VGG16's own preprocessing)."
)


def compares_with_book(class_names) -> bool:
    """The book's accuracies are on Dogs vs. Cats: beside any other classes they would mislead."""
    return tuple(class_names) == DOGS_VS_CATS
