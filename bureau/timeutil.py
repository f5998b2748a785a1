"""Times are stored as naive UTC; people see China Standard Time (UTC+8, no daylight saving)."""

from __future__ import annotations

import datetime as dt

CST = dt.timezone(dt.timedelta(hours=8), "CST")


def utcnow() -> dt.datetime:
    """The current time as naive UTC, the form every column stores."""
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def to_local(value: dt.datetime) -> dt.datetime:
    """A stored naive-UTC time as naive China time, for display."""
    return value.replace(tzinfo=dt.timezone.utc).astimezone(CST).replace(tzinfo=None)


def from_local(value: dt.datetime) -> dt.datetime:
    """A naive China time (what a person says) as naive UTC for storage."""
    return value.replace(tzinfo=CST).astimezone(dt.timezone.utc).replace(tzinfo=None)


def local_today() -> dt.date:
    """Today's date in China."""
    return to_local(utcnow()).date()


WEEKDAYS = "一二三四五六日"


def format_local(value: dt.datetime, with_weekday: bool = True) -> str:
    """A stored time as people read it: 12月5日(周三) 09:30."""
    local = to_local(value)
    text = f"{local.month}月{local.day}日"
    if with_weekday:
        text += f"(周{WEEKDAYS[local.weekday()]})"
    return f"{text} {local:%H:%M}"
