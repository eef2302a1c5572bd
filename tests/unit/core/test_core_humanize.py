"""Docker's human durations (go-units HumanDuration)."""

from __future__ import annotations

import pytest

from dockyard.core.humanize import human_duration

MINUTE = 60
HOUR = 3600
DAY = 24 * HOUR


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (-5, "Less than a second"),
        (0, "Less than a second"),
        (0.99, "Less than a second"),
        (1, "1 second"),
        (1.9, "1 second"),
        (2, "2 seconds"),
        (59.9, "59 seconds"),
        (60, "About a minute"),
        (119, "About a minute"),
        (120, "2 minutes"),
        (59 * MINUTE + 59, "59 minutes"),
        (HOUR, "About an hour"),
        (HOUR + 29 * MINUTE, "About an hour"),
        (HOUR + 30 * MINUTE, "2 hours"),
        (5 * HOUR, "5 hours"),
        (47 * HOUR, "47 hours"),
        (47 * HOUR + 31 * MINUTE, "2 days"),
        (48 * HOUR, "2 days"),
        (13 * DAY, "13 days"),
        (14 * DAY, "2 weeks"),
        (59 * DAY, "8 weeks"),
        (60 * DAY, "2 months"),
        (729 * DAY, "24 months"),
        (730 * DAY, "2 years"),
        (3650 * DAY, "10 years"),
    ],
)
def test_go_units_strings(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(2 * HOUR + 30 * MINUTE, "3 hours"), (4 * HOUR + 30 * MINUTE, "5 hours")],
)
def test_hours_round_half_away_from_zero_like_go(seconds: float, text: str) -> None:
    # Go's Duration.Round(time.Hour) rounds halfway values away from zero; Python's
    # round() would give 2 and 4 here.
    assert human_duration(seconds) == text
