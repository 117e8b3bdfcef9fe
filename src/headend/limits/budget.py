"""A key's budget: what it may spend in a UTC day, week (from Monday) or calendar month.

Periods start at UTC midnight, as usage rows are counted per UTC day, so a period's spend is
the sum of whole days' rows.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

UTC = dt.UTC


def _day(today: dt.date) -> tuple[dt.date, dt.date]:
    return today, today + dt.timedelta(days=1)


def _week(today: dt.date) -> tuple[dt.date, dt.date]:
    monday = today - dt.timedelta(days=today.weekday())
    return monday, monday + dt.timedelta(days=7)


def _month(today: dt.date) -> tuple[dt.date, dt.date]:
    first = today.replace(day=1)
    following = (first + dt.timedelta(days=32)).replace(day=1)
    return first, following


# A period's first day and the day after its last, for any day in it.
PERIODS: dict[str, Callable[[dt.date], tuple[dt.date, dt.date]]] = {
    "day": _day,
    "week": _week,
    "month": _month,
}
DEFAULT_PERIOD = "month"


@dataclass(frozen=True, slots=True)
class Window:
    """The period a moment falls in: its first UTC day and when the next one starts."""

    first_day: str  # as usage rows name days: 2026-11-23
    starts_at: float  # Unix times
    resets_at: float

    def holds(self, now: float) -> bool:
        return self.starts_at <= now < self.resets_at

    @property
    def resets(self) -> str:
        return dt.datetime.fromtimestamp(self.resets_at, UTC).strftime("%Y-%m-%d %H:%M UTC")


@dataclass(frozen=True, slots=True)
class Budget:
    amount: float  # in the currency prices are written in
    period: str  # a key of PERIODS

    def __post_init__(self) -> None:
        if not self.amount > 0:
            raise ValueError("budget must be a positive amount")
        if self.period not in PERIODS:
            raise ValueError(f"budget_period must be one of {', '.join(PERIODS)}")

    @classmethod
    def of(cls, amount: float | None, period: str | None) -> Budget | None:
        """A key's budget from its two settings (a period alone is a mistake)."""
        if amount is None:
            if period is not None:
                raise ValueError("budget_period needs a budget")
            return None
        return cls(amount, period or DEFAULT_PERIOD)

    def window(self, now: float) -> Window:
        first, following = PERIODS[self.period](dt.datetime.fromtimestamp(now, UTC).date())
        starts, resets = (dt.datetime.combine(day, dt.time(), UTC) for day in (first, following))
        return Window(first.isoformat(), starts.timestamp(), resets.timestamp())


def money(amount: float) -> str:
    """An amount to a millionth, as costs are kept: ``24.99948``, ``0``."""
    return f"{amount:.6f}".rstrip("0").rstrip(".") if amount else "0"
