"""Resident ID-card numbers (GB 11643-1999): validation, normalisation and masking."""

from __future__ import annotations

import datetime as dt
import re

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK_CHARS = "10X98765432"
_SHAPE = re.compile(r"^\d{17}[\dX]$")
# Full-width digits and the letter x are common when typing on a phone.
_FULLWIDTH = str.maketrans("０１２３４５６７８９ＸｘＸ", "0123456789XXX")


class InvalidIdNumber(ValueError):
    """The text is not a valid 18-digit ID-card number; `reason` is a short Chinese explanation."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def normalize(text: str) -> str:
    """Strip spaces and separators, map full-width characters, upper-case the check letter."""
    cleaned = text.translate(_FULLWIDTH).strip().upper()
    return re.sub(r"[\s\-]", "", cleaned)


def check_char(first17: str) -> str:
    """The GB 11643 check character for the first 17 digits."""
    total = sum(int(d) * w for d, w in zip(first17, _WEIGHTS, strict=True))
    return _CHECK_CHARS[total % 11]


def validate(text: str, today: dt.date | None = None) -> str:
    """Return the normalised number, or raise InvalidIdNumber with the reason."""
    number = normalize(text)
    if len(number) != 18:
        raise InvalidIdNumber(f"身份证号应为18位，您输入的是{len(number)}位")
    if not _SHAPE.match(number):
        raise InvalidIdNumber("身份证号只能是数字，最后一位可以是X")
    try:
        birth = dt.date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        raise InvalidIdNumber("身份证号里的出生日期不对") from None
    today = today or dt.date.today()
    if birth > today or birth.year < 1900:
        raise InvalidIdNumber("身份证号里的出生日期不对")
    if number[:2] in {"00", "10", "20", "30", "40", "70", "80", "90"}:
        raise InvalidIdNumber("身份证号开头的地区码不对")
    if check_char(number[:17]) != number[17]:
        raise InvalidIdNumber("身份证号校验位不对，请核对后再发一次")
    return number


def is_valid(text: str) -> bool:
    """True when `text` is a valid ID-card number."""
    try:
        validate(text)
    except InvalidIdNumber:
        return False
    return True


def mask(number: str) -> str:
    """Show only the first 3 and last 4 characters: 350***********1234."""
    number = normalize(number)
    if len(number) <= 7:
        return "*" * len(number)
    return number[:3] + "*" * (len(number) - 7) + number[-4:]


def make_number(region: str, birth: dt.date, sequence: int) -> str:
    """Build a valid number (for demo data and tests): 6-digit region, birth date, 3-digit sequence."""
    first17 = f"{region}{birth:%Y%m%d}{sequence % 1000:03d}"
    return first17 + check_char(first17)


_EMBEDDED = re.compile(r"(?<![0-9A-Za-z])(\d{17}[\dXx]|\d{15})(?![0-9A-Za-z])")


def redact(text: str) -> str:
    """Mask every ID-card-shaped number inside free text (for logs and staff views)."""
    return _EMBEDDED.sub(lambda m: mask(m.group(1)), text)
