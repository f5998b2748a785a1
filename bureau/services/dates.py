"""Chinese date-and-time expressions as people type them ("明天下午", "下周三上午", "12月5号", "周五").

Everything is relative to China time (bureau.timeutil). The result is a window of naive China time;
`start_utc` / `end_utc` give the stored (naive UTC) form for queries.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from dataclasses import dataclass

from bureau.timeutil import WEEKDAYS, from_local, to_local, utcnow

_DIGITS = {
    "零": 0,
    "〇": 0,
    "一": 1,
    "二": 2,
    "两": 2,
    "三": 3,
    "四": 4,
    "五": 5,
    "六": 6,
    "七": 7,
    "八": 8,
    "九": 9,
}
_CN_NUMBER = r"[0-9零〇一二两三四五六七八九十]{1,4}"
_WEEKDAY_INDEX = {"一": 0, "二": 1, "三": 2, "四": 3, "五": 4, "六": 5, "日": 6, "天": 6, "七": 6}
for _i in range(1, 8):
    _WEEKDAY_INDEX[str(_i)] = _i - 1

# Parts of the day, in local hours [start, end).
PARTS: dict[str, tuple[int, int]] = {"上午": (8, 12), "中午": (11, 14), "下午": (12, 18), "晚上": (18, 22)}
_PART_WORDS = [
    ("上午", "上午|早上|早晨|清早|一早|上半天|今早|明早"),
    ("中午", "中午|午饭"),
    ("下午", "下午|午后|下半天"),
    ("晚上", "晚上|傍晚|今晚|明晚"),
]


@dataclass(frozen=True)
class DateWindow:
    """A span of local (China) time a person meant; `end` is exclusive."""

    start: dt.datetime
    end: dt.datetime
    label: str
    hours: tuple[int, int] | None = None  # local hours [from, to) on each day, when a time was named

    @property
    def start_utc(self) -> dt.datetime:
        return from_local(self.start)

    @property
    def end_utc(self) -> dt.datetime:
        return from_local(self.end)

    def contains(self, moment_utc: dt.datetime) -> bool:
        """True when a stored (naive UTC) time falls inside the window, hours of the day included."""
        local = to_local(moment_utc)
        if not self.start <= local < self.end:
            return False
        if self.hours is None:
            return True
        minutes = local.hour * 60 + local.minute
        return self.hours[0] * 60 <= minutes < self.hours[1] * 60


def cn_number(text: str) -> int | None:
    """ "12", "十二", "二十五", "三" → int; None when it is not a number."""
    if not text:
        return None
    if text.isdigit():
        return int(text)
    if "十" in text:
        tens, _, ones = text.partition("十")
        tens_value = _DIGITS.get(tens, None) if tens else 1
        ones_value = _DIGITS.get(ones, None) if ones else 0
        if tens_value is None or ones_value is None:
            return None
        return tens_value * 10 + ones_value
    if all(ch in _DIGITS for ch in text):
        value = 0
        for ch in text:
            value = value * 10 + _DIGITS[ch]
        return value
    return None


def _safe_date(year: int, month: int, day: int) -> dt.date | None:
    try:
        return dt.date(year, month, day)
    except ValueError:
        return None


def _find_day(text: str, today: dt.date) -> tuple[dt.date, dt.date, str] | None:
    """The day (or span of days, end exclusive) the text names, with a short label."""
    match = re.search(r"(\d{4})[年\-/.](\d{1,2})[月\-/.](\d{1,2})[日号]?", text)
    if match:
        day = _safe_date(int(match[1]), int(match[2]), int(match[3]))
        if day:
            return day, day + dt.timedelta(days=1), ""
    match = re.search(rf"下个?月({_CN_NUMBER})[日号]", text)
    if match:
        day_number = cn_number(match[1])
        next_month = (today.replace(day=1) + dt.timedelta(days=32)).replace(day=1)
        day = _safe_date(next_month.year, next_month.month, day_number) if day_number else None
        if day:
            return day, day + dt.timedelta(days=1), ""
    match = re.search(rf"({_CN_NUMBER})月({_CN_NUMBER})[日号]?", text) or re.search(
        r"(?<![\d:：.])(\d{1,2})[/.\-](\d{1,2})(?![\d:：])", text
    )
    if match:
        month, day_number = cn_number(match[1]), cn_number(match[2])
        if month and day_number:
            day = _safe_date(today.year, month, day_number)
            if day and day < today:
                day = _safe_date(today.year + 1, month, day_number)
            if day:
                return day, day + dt.timedelta(days=1), ""
    match = re.search(rf"(?<![月\d])({_CN_NUMBER})[日号](?!子)", text)
    if match:
        day_number = cn_number(match[1])
        if day_number:
            day = _safe_date(today.year, today.month, day_number)
            if day is None or day < today:
                next_month = (today.replace(day=1) + dt.timedelta(days=32)).replace(day=1)
                day = _safe_date(next_month.year, next_month.month, day_number)
            if day:
                return day, day + dt.timedelta(days=1), ""

    relative = [("大后天", 3), ("后天", 2), ("明天", 1), ("明儿", 1), ("明早", 1), ("明晚", 1)]
    relative += [("今天", 0), ("今儿", 0), ("今早", 0), ("今晚", 0), ("今日", 0), ("明日", 1)]
    for word, offset in relative:
        if word in text:
            day = today + dt.timedelta(days=offset)
            return day, day + dt.timedelta(days=1), word
    match = re.search(rf"({_CN_NUMBER})天(之?后|以后)", text)
    if match:
        days = cn_number(match[1])
        if days is not None:
            day = today + dt.timedelta(days=days)
            return day, day + dt.timedelta(days=1), ""

    monday = today - dt.timedelta(days=today.weekday())
    match = re.search(r"(下下|下|这|本|今)?个?(?:周|星期|礼拜)([一二三四五六日天七1-7]|末)", text)
    if match:
        prefix, which = match[1] or "", match[2]
        weeks = {"下下": 2, "下": 1}.get(prefix, 0)
        if which == "末":
            start = monday + dt.timedelta(weeks=weeks, days=5)
            if not prefix and start + dt.timedelta(days=2) <= today:
                start += dt.timedelta(weeks=1)
            end = start + dt.timedelta(days=2)
            return max(start, today), end, f"{prefix}周末"
        day = monday + dt.timedelta(weeks=weeks, days=_WEEKDAY_INDEX[which])
        if not prefix and day < today:
            day += dt.timedelta(weeks=1)  # a bare "周五" means the coming Friday
        return day, day + dt.timedelta(days=1), ""
    match = re.search(r"(下下|下|这|本)个?(?:周|星期|礼拜)", text)
    if match:
        weeks = {"下下": 2, "下": 1}.get(match[1], 0)
        start = monday + dt.timedelta(weeks=weeks)
        end = start + dt.timedelta(days=7)
        return max(start, today), end, f"{match[1]}周"
    return None


def _find_time(text: str) -> tuple[int, int, str] | None:
    """Local hours [start, end) named by a part of the day and/or a clock time."""
    part: str | None = None
    for name, words in _PART_WORDS:
        if re.search(words, text):
            part = name
            break
    match = re.search(rf"({_CN_NUMBER})[点:：时](半|[0-5]\d)?", text)
    if match:
        hour = cn_number(match[1])
        if hour is not None and 0 <= hour <= 24:
            if part in ("下午", "晚上") and hour < 12:
                hour += 12
            elif part is None and 1 <= hour <= 6:
                hour += 12  # nobody books a counselor at 3 in the morning: "3点" means 15:00
            minutes = 30 if match[2] == "半" else int(match[2]) if match[2] else 0
            if hour < 24:
                label = f"{hour}:{minutes:02d}"
                return hour, min(hour + 1, 24), label
    if part:
        start, end = PARTS[part]
        return start, end, part
    return None


def parse_date_expression(text: str | None, now: dt.datetime | None = None) -> DateWindow | None:
    """The window of local time a Chinese expression names, or None when it names no day or time.

    `now` is naive UTC (default: the current time). A time of day alone ("下午") means today if that
    part of today is still ahead, else tomorrow.
    """
    if not text:
        return None
    text = unicodedata.normalize("NFKC", text).replace(" ", "")
    local_now = to_local(now or utcnow())
    today = local_now.date()
    day_span = _find_day(text, today)
    time_span = _find_time(text)
    if day_span is None and time_span is None:
        return None
    if day_span is None:
        assert time_span is not None
        first = today if local_now.hour < time_span[1] else today + dt.timedelta(days=1)
        day_span = (first, first + dt.timedelta(days=1), "今天" if first == today else "明天")
    first_day, end_day, _word = day_span
    last_day = end_day - dt.timedelta(days=1)
    hours: tuple[int, int] | None = None
    time_label = ""
    if time_span is None:
        start = dt.datetime.combine(first_day, dt.time())
        end = dt.datetime.combine(end_day, dt.time())
    else:
        hours = (time_span[0], time_span[1])
        start = dt.datetime.combine(first_day, dt.time()) + dt.timedelta(hours=hours[0])
        end = dt.datetime.combine(last_day, dt.time()) + dt.timedelta(hours=hours[1])
        time_label = time_span[2]
    if first_day == last_day:
        day_label = f"{first_day.month}月{first_day.day}日(周{WEEKDAYS[first_day.weekday()]})"
    else:
        day_label = f"{first_day.month}月{first_day.day}日至{last_day.month}月{last_day.day}日"
    return DateWindow(start=start, end=end, label=day_label + time_label, hours=hours)


def past_reason(window: DateWindow, now: dt.datetime | None = None) -> str | None:
    """A short Chinese reason when the whole window is already over, else None."""
    if window.end_utc <= (now or utcnow()):
        return f"{window.label}已经过去了，请说一个以后的时间，比如“明天下午”或“下周三上午”。"
    return None
