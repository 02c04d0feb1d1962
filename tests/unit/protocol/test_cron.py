from __future__ import annotations

from datetime import UTC, datetime

import pytest

from edgefleet.errors import ConfigurationError
from edgefleet.protocol.cron import CronSchedule, next_window_start, window_open
from edgefleet.protocol.v1 import MaintenanceWindow


def at(text: str) -> float:
    """Unix seconds of an ISO time in UTC."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def window(cron: str, duration_s: float) -> list[MaintenanceWindow]:
    return [MaintenanceWindow(cron=cron, duration_s=duration_s)]


def test_every_field_form_parses_to_its_set_of_values() -> None:
    schedule = CronSchedule.parse("*/20 1,3-5 10-20/5 * 7")
    assert schedule.minutes == {0, 20, 40}
    assert schedule.hours == {1, 3, 4, 5}
    assert schedule.days == {10, 15, 20}
    assert schedule.months == set(range(1, 13))
    assert schedule.weekdays == {0}  # 7 is Sunday too


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0 2 * *", "has 4 fields; expected 5"),
        ("60 * * * *", "minute field '60': 60 is not in 0..59"),
        ("0 24 * * *", "hour field '24'"),
        ("0 0 0 * *", "day-of-month field '0': 0 is not in 1..31"),
        ("0 0 * 13 *", "month field '13'"),
        ("0 0 * * 8", "day-of-week field '8'"),
        ("0 0 * JAN *", "month field 'JAN': 'JAN' is not a number"),
        ("5-1 * * * *", "range '5-1' runs backwards"),
        ("*/0 * * * *", "minute field '*/0': 0 is not in 1..60"),
        ("1,,2 * * * *", "an empty list item"),
        ("5/10 * * * *", "a step needs '*' or a range before it"),
    ],
)
def test_a_bad_expression_is_refused_naming_the_field(text: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message.replace("*", r"\*")):
        CronSchedule.parse(text)


def test_restricted_day_of_month_and_day_of_week_match_either() -> None:
    schedule = CronSchedule.parse("0 0 13 * 5")  # the 13th, and every Friday
    assert schedule.matches_day(datetime(2024, 3, 13).date())  # a Wednesday
    assert schedule.matches_day(datetime(2024, 3, 15).date())  # a Friday
    assert not schedule.matches_day(datetime(2024, 3, 14).date())


def test_a_starred_day_field_makes_the_other_one_decide() -> None:
    fridays = CronSchedule.parse("0 0 * * 5")
    assert not fridays.matches_day(datetime(2024, 3, 13).date())
    every_other_friday_date = CronSchedule.parse("0 0 */2 * 5")  # both must hold
    assert every_other_friday_date.matches_day(datetime(2024, 3, 15).date())
    assert not every_other_friday_date.matches_day(datetime(2024, 3, 22).date())


def test_a_window_is_open_from_its_start_for_its_duration() -> None:
    nightly = window("30 2 * * *", 3600)
    assert not window_open(nightly, at("2024-05-01T02:29:59"))
    assert window_open(nightly, at("2024-05-01T02:30:00"))
    assert window_open(nightly, at("2024-05-01T03:29:59"))
    assert not window_open(nightly, at("2024-05-01T03:30:00"))


def test_a_window_that_spans_midnight_and_days() -> None:
    weekend = window("0 22 * * 5", 2.5 * 86400)  # Friday 22:00 to Monday 10:00
    assert window_open(weekend, at("2024-05-04T12:00:00"))  # Saturday
    assert window_open(weekend, at("2024-05-06T09:59:00"))  # Monday morning
    assert not window_open(weekend, at("2024-05-06T10:00:00"))


def test_next_start_is_the_earliest_of_all_windows_and_strictly_later() -> None:
    windows = [
        MaintenanceWindow(cron="0 4 * * *", duration_s=600),
        MaintenanceWindow(cron="0 1 * * 1", duration_s=600),  # Mondays 01:00
    ]
    sunday_noon = at("2024-05-05T12:00:00")
    assert next_window_start(windows, sunday_noon) == at("2024-05-06T01:00:00")
    assert next_window_start(windows, at("2024-05-06T04:00:00")) == at("2024-05-07T04:00:00")


def test_a_date_that_never_comes_has_no_next_start() -> None:
    assert next_window_start(window("0 0 31 2 *", 60), at("2024-01-01T00:00:00")) is None
    assert not window_open(window("0 0 31 2 *", 60), at("2024-02-29T00:00:30"))


def test_leap_day_windows_are_found_years_ahead() -> None:
    leap = window("0 0 29 2 *", 60)
    assert next_window_start(leap, at("2025-01-01T00:00:00")) == at("2028-02-29T00:00:00")


def test_windows_with_a_bad_expression_raise() -> None:
    with pytest.raises(ConfigurationError, match="hour field"):
        window_open(window("0 99 * * *", 60), 0.0)
