"""How sure a test accuracy is: its 95% Wilson interval, and McNemar's exact test of whether two
classifiers differ on the same test images. Pure Python and numpy, so every number can be checked by hand.

A test split is a sample: 237 right of 262 is 0.905, but any accuracy from about 0.863 to 0.935 could
have given it. Two models tested on the same images differ only where one is right and the other wrong
(b and c images); McNemar's test asks whether b against c is more lopsided than a fair coin would make it.
"""

from __future__ import annotations

from statistics import NormalDist

import numpy as np

ALPHA = 0.05  # a difference is called real below this p-value; the intervals hold 1 - ALPHA = 95%
Z = NormalDist().inv_cdf(1 - ALPHA / 2)  # 1.96: the normal quantile of a two-sided 95% interval


def wilson_interval(hits: int, total: int) -> tuple[float, float]:
    """The 95% Wilson score interval of the proportion hits / total. Unlike p ± 1.96 SE it stays inside
    [0, 1] and is not zero-width at 0 or 1 correct."""
    if total <= 0 or not 0 <= hits <= total:
        raise ValueError(f"need 0 <= hits <= total and total > 0; got {hits} of {total}")
    p = hits / total
    z2 = Z * Z
    centre = (p + z2 / (2 * total)) / (1 + z2 / total)
    half = Z / (1 + z2 / total) * np.sqrt(p * (1 - p) / total + z2 / (4 * total * total))
    # at 0 or all correct the bound is exactly 0 or 1; rounding must not put it a hair outside
    low = 0.0 if hits == 0 else max(0.0, float(centre - half))
    high = 1.0 if hits == total else min(1.0, float(centre + half))
    return low, high


def interval_text(hits: int, total: int) -> str:
    """An accuracy with its interval, as the report shows it: 0.905 (0.863-0.935)."""
    low, high = wilson_interval(hits, total)
    return f"{hits / total:.3f} ({low:.3f}-{high:.3f})"


def discordant(correct_a, correct_b) -> tuple[int, int]:
    """(b, c): the images only classifier A gets right, and those only B gets right; both arrays hold one
    boolean per test image, in the same order."""
    correct_a, correct_b = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    if correct_a.shape != correct_b.shape:
        raise ValueError(f"need one answer per image from each; got {correct_a.shape} and {correct_b.shape}")
    return int(np.sum(correct_a & ~correct_b)), int(np.sum(~correct_a & correct_b))


def mcnemar_p(b: int, c: int) -> float:
    """McNemar's exact two-sided p-value: under no difference, each of the b + c discordant images is
    equally likely to favour either classifier, so min(b, c) is Binomial(b + c, 1/2);
    p = min(1, 2 P(X <= min(b, c))). Exact at every size: the binomial coefficients are integers."""
    if b < 0 or c < 0:
        raise ValueError(f"need counts of images, not {b} and {c}")
    n, k = b + c, min(b, c)
    if n == 0:
        return 1.0
    term, tail = 1, 1  # C(n, 0), and the sum of C(n, i) for i <= k
    for i in range(k):
        term = term * (n - i) // (i + 1)
        tail += term
    return min(1.0, 2 * tail / 2**n)  # Python divides integers of any size exactly, then rounds once


def verdict(p: float, images: int) -> str:
    return "a real difference at 5%" if p < ALPHA else f"not distinguishable on these {images} images"


def p_text(p: float) -> str:
    return "< 0.001" if p < 0.001 else f"{p:.3f}"
