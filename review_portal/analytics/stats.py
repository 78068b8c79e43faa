"""Small statistics used by the dashboard: pure functions, no database, tested against published values."""
from __future__ import annotations

import math
from collections.abc import Sequence

# Two-sided 95%: the 0.975 quantile of the standard normal distribution.
Z_95 = 1.959963984540054


def wilson_interval(successes: int, n: int, z: float = Z_95) -> tuple[float, float] | None:
    """Wilson score interval (no continuity correction) for a proportion, as fractions in [0, 1].

    Chosen over the textbook Wald interval because it behaves with small counts and with 0 or n
    successes, which a service with a few dozen cases per reviewer or site produces all the time.
    None when there is nothing to estimate (n == 0).
    """
    if n < 0 or successes < 0 or successes > n:
        raise ValueError(f"need 0 <= successes <= n, got {successes} of {n}")
    if n == 0:
        return None
    p = successes / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = (z / (1 + z2 / n)) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    # Rounding can push the bounds a hair outside [0, 1] at the extremes.
    return max(0.0, centre - half), min(1.0, centre + half)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100) with linear interpolation between order statistics.

    The same definition as numpy's default (Hyndman & Fan type 7) and spreadsheets' PERCENTILE.INC,
    so a coordinator can reproduce any figure from the CSV export. None for no values.
    """
    if not 0 <= q <= 100:
        raise ValueError("q must be between 0 and 100")
    data = sorted(values)
    if not data:
        return None
    position = (len(data) - 1) * q / 100
    lower = math.floor(position)
    upper = min(lower + 1, len(data) - 1)
    fraction = position - lower
    return data[lower] + (data[upper] - data[lower]) * fraction


def median(values: Sequence[float]) -> float | None:
    return percentile(values, 50)


def share(part: int, whole: int) -> float | None:
    """part / whole as a fraction, or None when whole is 0 (shown as a dash, never as 0%)."""
    return part / whole if whole else None
