"""The dashboard's statistics against published and hand-computed values."""
import numpy as np
import pytest

from review_portal.analytics.stats import median, percentile, share, wilson_interval


# Newcombe RG. Two-sided confidence intervals for the single proportion: comparison of seven methods.
# Stat Med 1998;17:857-872, Table I, method 3 (Wilson score interval without continuity correction).
@pytest.mark.parametrize("k, n, low, high", [
    (81, 263, 0.2553, 0.3662),
    (15, 148, 0.0624, 0.1605),
    (0, 20, 0.0000, 0.1611),
    (1, 29, 0.0061, 0.1718),
])
def test_wilson_interval_matches_newcombe_1998(k, n, low, high):
    lo, hi = wilson_interval(k, n)
    assert lo == pytest.approx(low, abs=5e-5)
    assert hi == pytest.approx(high, abs=5e-5)


def test_wilson_interval_for_the_mayo_figures():
    # 188 of 286 refined (Van Such 2017): the interval brackets the point estimate and stays inside [0, 1].
    lo, hi = wilson_interval(188, 286)
    assert lo < 188 / 286 < hi
    assert (round(lo, 3), round(hi, 3)) == (0.601, 0.710)
    assert wilson_interval(286, 286)[1] == 1.0
    assert wilson_interval(0, 286)[0] == 0.0


def test_wilson_interval_edges():
    assert wilson_interval(0, 0) is None
    with pytest.raises(ValueError):
        wilson_interval(3, 2)
    with pytest.raises(ValueError):
        wilson_interval(-1, 2)


def test_percentile_by_hand_and_against_numpy():
    assert median([1, 2, 3, 4]) == 2.5
    assert percentile([1, 2, 3, 4], 90) == pytest.approx(3.7)
    assert percentile([5], 90) == 5
    assert percentile([], 50) is None
    assert median([3, 1, 2]) == 2
    rng = np.random.default_rng(3)
    values = list(rng.gamma(2.0, 2.0, size=37))
    for q in (0, 10, 50, 90, 100):
        assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))
    with pytest.raises(ValueError):
        percentile([1], 101)


def test_share():
    assert share(1, 4) == 0.25
    assert share(0, 0) is None
