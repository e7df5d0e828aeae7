"""classifier/evaluation/statistics.py: how sure a test accuracy is, the Wilson interval and McNemar's exact
test against values worked out by hand (and scipy's binomial test where it is installed)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from classifier.evaluation.statistics import Z, discordant, interval_text, mcnemar_p, p_text, verdict, wilson_interval

# --- the Wilson interval ---


def test_z_is_the_two_sided_95_percent_normal_quantile():
    assert Z == pytest.approx(1.959964, abs=1e-6)


def test_wilson_of_237_right_of_262():
    # p = 0.90458; centre (p + z²/2n) / (1 + z²/n) = 0.89873, half-width 0.03580
    low, high = wilson_interval(237, 262)
    assert low == pytest.approx(0.8629, abs=1e-4)
    assert high == pytest.approx(0.9345, abs=1e-4)
    assert interval_text(237, 262) == "0.905 (0.863-0.935)"


def test_wilson_of_5_right_of_8_by_the_formula():
    p, n, z2 = 5 / 8, 8, Z * Z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = Z / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    assert wilson_interval(5, 8) == pytest.approx((centre - half, centre + half), abs=1e-12)
    assert wilson_interval(5, 8) == pytest.approx((0.3057, 0.8632), abs=1e-4)


def test_wilson_at_none_and_all_right_stays_in_0_1_and_is_not_zero_width():
    # at 0 of n the upper bound is z² / (n + z²); at n of n the lower is n / (n + z²)
    assert wilson_interval(0, 10) == (0.0, pytest.approx(Z**2 / (10 + Z**2)))
    assert wilson_interval(10, 10) == (pytest.approx(10 / (10 + Z**2)), 1.0)
    assert wilson_interval(0, 10)[1] == pytest.approx(0.2775, abs=1e-4)
    assert wilson_interval(10, 10)[0] == pytest.approx(0.7225, abs=1e-4)
    assert wilson_interval(1, 1) == (pytest.approx(1 / (1 + Z**2)), 1.0)


@pytest.mark.parametrize("total", [1, 2, 7, 50, 1000, 10_000])
def test_wilson_holds_the_accuracy_and_narrows_with_more_images(total):
    for hits in sorted({0, 1, total // 3, total // 2, total - 1, total}):
        low, high = wilson_interval(hits, total)
        assert 0 <= low <= hits / total <= high <= 1
        assert low < high
    assert np.diff(wilson_interval(total // 2, total)) > np.diff(wilson_interval(10 * total // 2, 10 * total))


def test_wilson_refuses_impossible_counts():
    for hits, total in ((1, 0), (0, 0), (5, 4), (-1, 4)):
        with pytest.raises(ValueError, match="need 0 <= hits <= total"):
            wilson_interval(hits, total)


# --- McNemar's exact test ---


def test_mcnemar_of_10_against_2():
    # 2 P(X <= 2), X ~ Binomial(12, 1/2): 2 (1 + 12 + 66) / 4096 = 158 / 4096
    assert mcnemar_p(10, 2) == pytest.approx(158 / 4096, abs=1e-15)
    assert round(mcnemar_p(10, 2), 4) == 0.0386
    assert mcnemar_p(2, 10) == mcnemar_p(10, 2)


def test_mcnemar_without_a_lopsided_count_is_1():
    assert mcnemar_p(0, 0) == 1.0  # the two agree on every image
    assert mcnemar_p(7, 7) == 1.0
    assert mcnemar_p(3, 2) == 1.0  # 2 (1 + 5 + 10) / 32 = 1: capped
    assert mcnemar_p(6, 5) == 1.0


def test_mcnemar_small_hand_values_and_monotony():
    assert mcnemar_p(5, 0) == pytest.approx(2 / 32)  # 2 P(X = 0) of 5 coins
    assert mcnemar_p(6, 0) == pytest.approx(2 / 64)
    assert mcnemar_p(8, 1) == pytest.approx(2 * (1 + 9) / 512)
    values = [mcnemar_p(20 - c, c) for c in range(11)]  # the same 20 images, ever less lopsided
    assert all(a < b for a, b in zip(values, values[1:-1]))


def test_mcnemar_of_large_counts_is_finite_and_near_the_chi_square_approximation():
    # with continuity correction: chi² = (|b - c| - 1)² / (b + c), p = erfc(sqrt(chi² / 2))
    for b, c in ((300, 400), (2000, 2100), (10_000, 10_300)):
        chi2 = (abs(b - c) - 1) ** 2 / (b + c)
        assert mcnemar_p(b, c) == pytest.approx(math.erfc(math.sqrt(chi2 / 2)), rel=0.05)
    assert mcnemar_p(0, 5000) == 0.0  # 2 / 2**5000 is below any float: no overflow, no error


def test_mcnemar_matches_scipys_binomial_test():
    stats = pytest.importorskip("scipy.stats")
    for b, c in ((10, 2), (13, 4), (300, 400), (45, 60), (1, 9)):
        assert mcnemar_p(b, c) == pytest.approx(stats.binomtest(min(b, c), b + c, 0.5).pvalue, rel=1e-9)


def test_mcnemar_refuses_negative_counts():
    with pytest.raises(ValueError, match="need counts of images"):
        mcnemar_p(-1, 3)


def test_discordant_counts_the_images_only_one_gets_right():
    a = [True, True, False, False, True, False]
    b = [True, False, True, False, False, False]
    assert discordant(a, b) == (2, 1)  # 1 and 4 only a; 2 only b
    assert discordant(b, a) == (1, 2)
    with pytest.raises(ValueError, match="one answer per image"):
        discordant(a, b[:-1])


def test_verdict_and_p_text():
    assert verdict(0.0386, 262) == "a real difference at 5%"
    assert verdict(0.05, 262) == "not distinguishable on these 262 images"
    assert verdict(1.0, 12) == "not distinguishable on these 12 images"
    assert p_text(0.0386) == "0.039" and p_text(1.0) == "1.000" and p_text(0.0004) == "< 0.001"
