"""Identity binding: an OpenID proves it is a veteran on the roster (name + ID number + phone).

Also the input checks every form shares (phone, township, name, veteran category), each raising
`InvalidInput` with a short Chinese reason the user can act on.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from bureau import idcard, secrets_box
from bureau.models import TOWNSHIPS, VETERAN_CATEGORIES, Veteran, WechatUser
from bureau.timeutil import utcnow

MAX_BIND_FAILURES = 5
BIND_LOCK = dt.timedelta(days=1)

_FULLWIDTH_DIGITS = str.maketrans("０１２３４５６７８９－＋", "0123456789-+")
_MOBILE = re.compile(r"^1[3-9]\d{9}$")
_LANDLINE = re.compile(r"^0\d{2,3}-?\d{7,8}$")
_NAME = re.compile(r"^[\u4e00-\u9fff·]{2,15}$")
# People write a township without its suffix ("双城", "富溪"); the suffixes are 镇 or 乡.
_TOWNSHIP_BY_STEM = {t[:-1]: t for t in TOWNSHIPS}


class InvalidInput(ValueError):
    """A value a user typed is not acceptable; `reason` says why, in Chinese."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def validate_phone(text: str) -> str:
    """A mobile number (1[3-9] + 9 digits) or a landline (0593-8352233); returns it normalised."""
    cleaned = re.sub(r"[\s()（）]", "", (text or "").translate(_FULLWIDTH_DIGITS))
    cleaned = re.sub(r"^(\+?86)(?=1\d{10}$)", "", cleaned)
    digits_only = cleaned.replace("-", "")
    if _MOBILE.match(digits_only):
        return digits_only
    if _LANDLINE.match(cleaned):
        return cleaned
    if not re.search(r"\d", cleaned):
        raise InvalidInput("请发电话号码的数字，比如 13905931234")
    if digits_only.startswith("1") and len(digits_only) != 11:
        raise InvalidInput(f"手机号应为11位，您发的是{len(digits_only)}位")
    raise InvalidInput("电话号码格式不对，手机号是1开头的11位数字，座机请带区号，如 0593-8352233")


def validate_id_number(text: str) -> str:
    """The normalised ID-card number, or InvalidInput with idcard's reason."""
    try:
        return idcard.validate(text or "")
    except idcard.InvalidIdNumber as exc:
        raise InvalidInput(exc.reason) from None


def validate_township(text: str) -> str:
    """The canonical township name (accepts "双城" for 双城镇)."""
    cleaned = re.sub(r"\s", "", text or "").removeprefix("柘荣县").removeprefix("柘荣")
    if cleaned in TOWNSHIPS:
        return cleaned
    stem = cleaned.rstrip("镇乡")
    if stem in _TOWNSHIP_BY_STEM:
        return _TOWNSHIP_BY_STEM[stem]
    for township in TOWNSHIPS:
        if township[:-1] and township[:-1] in cleaned:
            return township
    raise InvalidInput("没找到这个乡镇。柘荣县的乡镇有：" + "、".join(TOWNSHIPS))


def validate_name(text: str) -> str:
    """A person's name in Chinese characters (2–15, "·" allowed)."""
    cleaned = re.sub(r"\s", "", text or "")
    for prefix in ("我叫", "我是", "姓名", "名字叫", "名字是", "叫"):
        if cleaned.startswith(prefix) and len(cleaned) > len(prefix) + 1:
            cleaned = cleaned[len(prefix) :]
            break
    if not _NAME.match(cleaned) or _looks_like_a_sentence(cleaned):
        raise InvalidInput("请发身份证上的中文姓名，比如 张建国")
    return cleaned


# A name step accepts any text (the NLU cannot know names), so plain chat and questions are refused here.
_NOT_NAME_WORDS = (
    "工作",
    "优待",
    "补助",
    "补贴",
    "预约",
    "申请",
    "怎么",
    "什么",
    "哪里",
    "多少",
    "谢谢",
    "你好",
    "不是",
    "没有",
    "可以",
    "好的",
    "是的",
    "知道",
    "菜单",
    "人工",
    "取消",
    "不想",
    "帮忙",
    "查询",
    "办理",
    "政策",
    "服务",
    "绑定",
    "身份",
    "手机",
    "电话",
    "不用",
    "算了",
)
_NOT_NAME_CHARS = set("吗呢吧啊么嘛呀哦噢嗯？?！!，,。")


def _looks_like_a_sentence(text: str) -> bool:
    if "·" not in text and len(text) > 4:
        return True  # Han names are 2–4 characters; longer ones (minorities) carry a "·"
    return any(word in text for word in _NOT_NAME_WORDS) or bool(_NOT_NAME_CHARS & set(text))


def validate_veteran_category(text: str) -> str:
    """One of models.VETERAN_CATEGORIES."""
    cleaned = re.sub(r"\s", "", text or "")
    if cleaned in VETERAN_CATEGORIES:
        return cleaned
    for category in VETERAN_CATEGORIES:
        if category in cleaned:
            return category
    raise InvalidInput("请从这些里选一个：" + "、".join(VETERAN_CATEGORIES))


def mask_phone(phone: str | None) -> str:
    """138****1234 for a mobile; a landline keeps its area code and last 2 digits."""
    if not phone:
        return "未登记"
    if len(phone) == 11 and phone.isdigit():
        return phone[:3] + "****" + phone[-4:]
    return phone[:-4] + "**" + phone[-2:] if len(phone) > 6 else "*" * len(phone)


def mask_name(name: str) -> str:
    """张*国 / 张* — enough for the owner to recognise, little for anyone else."""
    if len(name) <= 1:
        return name
    if len(name) == 2:
        return name[0] + "*"
    return name[0] + "*" * (len(name) - 2) + name[-1]


def get_or_create_user(session: Session, openid: str) -> WechatUser:
    """The follower row of `openid` (created if a message arrives before the subscribe event)."""
    user = session.get(WechatUser, openid)
    if user is None:
        user = WechatUser(openid=openid, bind_failures=0, subscribed=True)
        session.add(user)
        session.flush()
    return user


def bound_veteran(session: Session, openid: str) -> Veteran | None:
    """The veteran this OpenID is bound to, if any."""
    user = session.get(WechatUser, openid)
    if user is None or user.veteran_id is None:
        return None
    return session.get(Veteran, user.veteran_id)


def find_veteran_by_id_number(session: Session, id_number: str) -> Veteran | None:
    """The roster entry with this ID number (looked up by keyed hash, never decrypted)."""
    normalized = idcard.normalize(id_number)
    return session.scalars(
        select(Veteran).where(Veteran.id_number_hash == secrets_box.lookup_hash(normalized))
    ).one_or_none()


@dataclass(frozen=True)
class BindResult:
    """Outcome of a binding attempt: bound, mismatch, or locked."""

    outcome: str
    veteran: Veteran | None = None
    attempts_left: int = 0
    locked_until: dt.datetime | None = None


def lock_state(session: Session, openid: str, now: dt.datetime | None = None) -> dt.datetime | None:
    """The (naive UTC) end of the current binding lock, or None when the user may try."""
    now = now or utcnow()
    user = session.get(WechatUser, openid)
    if user is None or user.bind_locked_until is None or user.bind_locked_until <= now:
        return None
    return user.bind_locked_until


def bind(
    session: Session, openid: str, name: str, id_number: str, phone: str, now: dt.datetime | None = None
) -> BindResult:
    """Bind `openid` to the veteran whose name, ID number and phone all match.

    Five failed attempts lock binding for a day; the counter restarts once the lock has expired or
    on success. A mismatch never says which of the three values was wrong.
    """
    now = now or utcnow()
    user = session.get(WechatUser, openid, with_for_update=True) or get_or_create_user(session, openid)
    if user.bind_locked_until is not None:
        if user.bind_locked_until > now:
            return BindResult("locked", locked_until=user.bind_locked_until)
        user.bind_locked_until = None
        user.bind_failures = 0

    veteran = None
    try:
        number = idcard.validate(id_number)
        phone_normalized = validate_phone(phone)
        veteran = find_veteran_by_id_number(session, number)
    except (idcard.InvalidIdNumber, InvalidInput):
        veteran = None
    matches = (
        veteran is not None
        and veteran.name.strip() == name.strip()
        and veteran.phone is not None
        and _same_phone(veteran.phone, phone_normalized)
    )
    if not matches or veteran is None:
        user.bind_failures = (user.bind_failures or 0) + 1
        if user.bind_failures >= MAX_BIND_FAILURES:
            user.bind_locked_until = now + BIND_LOCK
            user.bind_failures = 0
            return BindResult("locked", locked_until=user.bind_locked_until)
        return BindResult("mismatch", attempts_left=MAX_BIND_FAILURES - user.bind_failures)

    user.veteran_id = veteran.id
    user.bind_failures = 0
    user.bind_locked_until = None
    return BindResult("bound", veteran=veteran)


def _same_phone(stored: str, given: str) -> bool:
    def digits(value: str) -> str:
        return re.sub(r"\D", "", value)

    return digits(stored) == digits(given)


def unbind(session: Session, openid: str) -> bool:
    """Remove the binding; True when there was one."""
    user = session.get(WechatUser, openid)
    if user is None or user.veteran_id is None:
        return False
    user.veteran_id = None
    return True


@dataclass(frozen=True)
class Profile:
    """What a bound user may see about themselves — masked."""

    name: str
    id_number_masked: str
    phone_masked: str
    township: str | None
    category: str


def profile(session: Session, openid: str) -> Profile | None:
    """The masked record of the veteran bound to `openid` (None when unbound)."""
    veteran = bound_veteran(session, openid)
    if veteran is None:
        return None
    return Profile(
        name=mask_name(veteran.name),
        id_number_masked=veteran.id_number_masked,
        phone_masked=mask_phone(veteran.phone),
        township=veteran.township,
        category=veteran.category,
    )
