"""Chinese date expressions, relative to China time."""

from __future__ import annotations

import datetime as dt

import pytest

from bureau.services.dates import cn_number, parse_date_expression, past_reason
from bureau.timeutil import from_local

# Saturday 28 November 2026, 10:00 in China (02:00 UTC).
NOW = from_local(dt.datetime(2026, 11, 28, 10, 0))


def _span(text: str, now: dt.datetime = NOW) -> tuple[dt.datetime, dt.datetime]:
    window = parse_date_expression(text, now)
    assert window is not None, text
    return window.start, window.end


def D(month: int, day: int, hour: int = 0, year: int = 2026) -> dt.datetime:  # noqa: N802
    return dt.datetime(year, month, day, hour)


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("明天下午", D(11, 29, 12), D(11, 29, 18)),
        ("下周三上午", D(12, 2, 8), D(12, 2, 12)),
        ("12月5号", D(12, 5), D(12, 6)),
        ("十二月五日", D(12, 5), D(12, 6)),
        ("12/5", D(12, 5), D(12, 6)),
        ("周五", D(12, 4), D(12, 5)),
        ("星期五", D(12, 4), D(12, 5)),
        ("礼拜三下午", D(12, 2, 12), D(12, 2, 18)),
        ("周六", D(11, 28), D(11, 29)),  # today is Saturday
        ("下周六", D(12, 5), D(12, 6)),
        ("下下周一", D(12, 7), D(12, 8)),
        ("星期天", D(11, 29), D(11, 30)),
        ("今天", D(11, 28), D(11, 29)),
        ("后天上午", D(11, 30, 8), D(11, 30, 12)),
        ("大后天", D(12, 1), D(12, 2)),
        ("明早", D(11, 29, 8), D(11, 29, 12)),
        ("明天下午3点", D(11, 29, 15), D(11, 29, 16)),
        ("明天三点", D(11, 29, 15), D(11, 29, 16)),
        ("后天上午10点", D(11, 30, 10), D(11, 30, 11)),
        ("5号", D(12, 5), D(12, 6)),  # the 5th of this month is over: next month's
        ("30号", D(11, 30), D(12, 1)),
        ("2027年1月2日", D(1, 2, year=2027), D(1, 3, year=2027)),
        ("3月1号", D(3, 1, year=2027), D(3, 2, year=2027)),  # March is behind us: next year's
        ("三天后", D(12, 1), D(12, 2)),
        ("下周", D(11, 30), D(12, 7)),
        ("周末", D(11, 28), D(11, 30)),
        ("我想约明天下午谈心", D(11, 29, 12), D(11, 29, 18)),
        ("下个月3号", D(12, 3), D(12, 4)),
        ("下月十五号上午", D(12, 15, 8), D(12, 15, 12)),
        ("后天下午两点半", D(11, 30, 14), D(11, 30, 15)),
    ],
)
def test_expressions(text: str, start: dt.datetime, end: dt.datetime) -> None:
    assert _span(text) == (start, end)


def test_a_part_of_the_day_alone_means_the_next_one() -> None:
    assert _span("下午") == (D(11, 28, 12), D(11, 28, 18))
    evening = from_local(dt.datetime(2026, 11, 28, 19, 0))
    assert _span("下午", evening) == (D(11, 29, 12), D(11, 29, 18))


def test_a_week_window_keeps_the_hours_of_each_day() -> None:
    window = parse_date_expression("下周上午", NOW)
    assert window is not None
    assert window.hours == (8, 12)
    assert window.contains(from_local(dt.datetime(2026, 12, 3, 9, 30)))
    assert not window.contains(from_local(dt.datetime(2026, 12, 3, 14, 0)))
    assert not window.contains(from_local(dt.datetime(2026, 12, 8, 9, 0)))


def test_labels_read_naturally() -> None:
    window = parse_date_expression("12月5号下午", NOW)
    assert window is not None and window.label == "12月5日(周六)下午"
    window = parse_date_expression("明天3点半", NOW)
    assert window is not None and window.label == "11月29日(周日)15:30"


def test_windows_convert_to_utc_for_queries() -> None:
    window = parse_date_expression("明天下午", NOW)
    assert window is not None
    assert window.start_utc == dt.datetime(2026, 11, 29, 4, 0)
    assert window.end_utc == dt.datetime(2026, 11, 29, 10, 0)


@pytest.mark.parametrize("text", ["", None, "你好", "预约谈心", "我想找工作", "13905931234", "2月30号"])
def test_no_date_means_none(text: str | None) -> None:
    assert parse_date_expression(text, NOW) is None


def test_past_reason_only_for_a_window_that_is_over() -> None:
    window = parse_date_expression("2026年11月27日", NOW)
    assert window is not None
    reason = past_reason(window, NOW)
    assert reason is not None and "已经过去" in reason
    today = parse_date_expression("今天", NOW)
    assert today is not None and past_reason(today, NOW) is None


@pytest.mark.parametrize(
    ("text", "value"), [("5", 5), ("十", 10), ("十二", 12), ("二十五", 25), ("三十一", 31), ("两", 2)]
)
def test_cn_number(text: str, value: int) -> None:
    assert cn_number(text) == value
