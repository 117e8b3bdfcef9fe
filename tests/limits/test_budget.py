"""Budget periods: UTC days, weeks from Monday and calendar months, each resetting at UTC
midnight; a budget is a positive amount for one of them."""

from __future__ import annotations

import datetime as dt

import pytest

from headend.limits.budget import Budget, money


def at(text: str) -> float:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp()


@pytest.mark.parametrize(
    ("period", "now", "first_day", "resets"),
    [
        ("day", "2026-11-23T23:59:59", "2026-11-23", "2026-11-24 00:00 UTC"),
        ("day", "2026-11-24T00:00:00", "2026-11-24", "2026-11-25 00:00 UTC"),
        ("week", "2026-11-23T08:00:00", "2026-11-23", "2026-11-30 00:00 UTC"),  # a Monday
        ("week", "2026-11-29T23:00:00", "2026-11-23", "2026-11-30 00:00 UTC"),  # its Sunday
        ("month", "2026-12-31T12:00:00", "2026-12-01", "2027-01-01 00:00 UTC"),
        ("month", "2028-02-29T12:00:00", "2028-02-01", "2028-03-01 00:00 UTC"),
    ],
)
def test_a_period_starts_and_resets_at_utc_midnight(
    period: str, now: str, first_day: str, resets: str
) -> None:
    window = Budget(25, period).window(at(now))
    assert (window.first_day, window.resets) == (first_day, resets)
    assert window.resets_at == at(resets.removesuffix(" UTC").replace(" ", "T"))
    assert window.starts_at == at(f"{first_day}T00:00:00")
    assert window.holds(at(now))
    assert not window.holds(window.resets_at)
    assert not window.holds(window.starts_at - 1)


def test_a_budget_is_a_positive_amount_for_a_known_period() -> None:
    assert Budget.of(None, None) is None
    assert Budget.of(5, None) == Budget(5, "month")  # the default period
    with pytest.raises(ValueError, match="needs a budget"):
        Budget.of(None, "day")
    with pytest.raises(ValueError, match="positive"):
        Budget.of(0, "day")
    with pytest.raises(ValueError, match="day, week, month"):
        Budget.of(5, "year")


def test_amounts_are_shown_to_a_millionth() -> None:
    assert [money(x) for x in (0, 25, 0.0300001, 24.99948, 1e-9)] == [
        "0",
        "25",
        "0.03",
        "24.99948",
        "0",
    ]
