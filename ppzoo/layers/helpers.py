"""Channel arithmetic shared by the models."""
import math
from typing import Union

__all__ = ["make_divisible", "resolve_groups", "divisors"]


def make_divisible(value: float, divisor: int = 8, min_value: int = None) -> int:
    """Round ``value`` to the nearest multiple of ``divisor``, never below 90 % of it.

    The channel rounding rule of MobileNetV2 (arXiv 1801.04381, reference TF-slim code):
    every layer width is a multiple of 8 and at least ``min_value`` (default ``divisor``).
    """
    min_value = min_value or divisor
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def divisors(n: int):
    """All positive divisors of ``n``, ascending."""
    return [d for d in range(1, n + 1) if n % d == 0]


def resolve_groups(groups: Union[int, str], in_channels: int, out_channels: int) -> int:
    """Check ``groups`` against both channel counts, or choose it when ``groups="auto"``.

    ``"auto"`` is the rule of the user's notes for pointwise group convolution,
    g = floor(sqrt(C_in)), moved to the nearest value that divides both ``in_channels``
    and ``out_channels`` (the smaller one on a tie). Any other value must be a positive
    int dividing both counts, else ``ValueError`` names the valid choices.
    """
    common = divisors(math.gcd(in_channels, out_channels))
    if groups == "auto":
        target = math.isqrt(in_channels)
        return min(common, key=lambda d: (abs(d - target), d))
    if not isinstance(groups, int) or isinstance(groups, bool) or groups < 1:
        raise ValueError(f"groups must be a positive int or 'auto', got {groups!r}")
    if in_channels % groups or out_channels % groups:
        raise ValueError(
            f"groups={groups} does not divide in_channels={in_channels} and out_channels={out_channels}; "
            f"valid groups: {common}")
    return groups
