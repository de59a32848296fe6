"""Business days per country: weekends and public holidays (the `holidays` package).

Vectorized with numpy's business-day functions so a million due dates roll in milliseconds.
"""

from __future__ import annotations

from functools import lru_cache

import holidays
import numpy as np

WEEKMASK = "1111100"  # Monday to Friday


@lru_cache(maxsize=256)
def business_calendar(country: str, first_year: int, last_year: int) -> np.busdaycalendar:
    """Weekends and national public holidays of `country` for the given years."""
    try:
        days = holidays.country_holidays(country, years=range(first_year, last_year + 1))
    except NotImplementedError:
        days = {}  # a country the package does not know: weekends only
    return np.busdaycalendar(
        weekmask=WEEKMASK, holidays=sorted(np.datetime64(d, "D") for d in days)
    )


def roll_forward(dates: np.ndarray, calendar: np.busdaycalendar) -> np.ndarray:
    """Each date, or the next business day when it is a weekend or holiday."""
    return np.busday_offset(dates.astype("datetime64[D]"), 0, roll="forward", busdaycal=calendar)


def add_business_days(dates: np.ndarray, days: int, calendar: np.busdaycalendar) -> np.ndarray:
    """`days` business days after (or before, if negative) each date."""
    roll = "forward" if days >= 0 else "backward"
    return np.busday_offset(dates.astype("datetime64[D]"), days, roll=roll, busdaycal=calendar)


def next_business_day_after(dates: np.ndarray, calendar: np.busdaycalendar) -> np.ndarray:
    """The first business day strictly after each date."""
    return np.busday_offset(
        dates.astype("datetime64[D]") + 1, 0, roll="forward", busdaycal=calendar
    )


def is_business_day(dates: np.ndarray, calendar: np.busdaycalendar) -> np.ndarray:
    return np.is_busday(dates.astype("datetime64[D]"), busdaycal=calendar)
