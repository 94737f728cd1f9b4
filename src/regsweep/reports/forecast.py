"""A deliberately simple capacity forecast: a least-squares line through (time, bytes)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

_DAY = 86400.0


@dataclass(frozen=True)
class Forecast:
    """``bytes(t) = intercept_bytes + slope_bytes_per_day * days since start``."""

    start: datetime
    slope_bytes_per_day: float
    intercept_bytes: float
    target_bytes: float
    reaches_at: datetime | None  # when the line reaches the target; None if it never does

    def at(self, when: datetime) -> float:
        days = (when - self.start).total_seconds() / _DAY
        return self.intercept_bytes + self.slope_bytes_per_day * days


def linear_forecast(
    times: Sequence[datetime], values: Sequence[float], target_bytes: float
) -> Forecast:
    """Fit a line to ``values`` over ``times`` (timezone-aware) and say when it reaches
    ``target_bytes``. Needs at least two distinct times (ValueError otherwise). A flat or
    shrinking trend gives ``reaches_at`` None; a target already passed gives a past time."""
    if len(times) != len(values):
        raise ValueError("times and values differ in length")
    if len(set(times)) < 2:
        raise ValueError("a forecast needs at least two distinct times")
    start = min(times)
    xs = [(t - start).total_seconds() / _DAY for t in times]
    n = len(xs)
    mx = sum(xs) / n
    my = sum(values) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, values, strict=True))
    slope = sxy / sxx
    intercept = my - slope * mx
    reaches = None
    if slope > 0:
        try:
            reaches = start + timedelta(days=(target_bytes - intercept) / slope)
        except OverflowError:  # beyond year 9999: never, for any practical purpose
            reaches = None
    return Forecast(start, slope, intercept, target_bytes, reaches)
