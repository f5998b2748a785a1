"""Discounts of the 拥军优属联盟 merchants, by category (食 住 行 …) and township."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, selectinload

from bureau.models import MERCHANT_CATEGORIES, Merchant, MerchantOffer
from bureau.timeutil import local_today

# Words people use for a category, besides its one-character key and its name in MERCHANT_CATEGORIES.
_ALIASES = {
    "吃": "食",
    "吃饭": "食",
    "饭店": "食",
    "酒店": "住",
    "宾馆": "住",
    "旅馆": "住",
    "坐车": "行",
    "加油": "行",
    "打车": "行",
    "买东西": "购",
    "超市": "购",
    "景区": "游",
    "门票": "游",
    "旅游": "游",
    "看病": "康",
    "医院": "康",
    "药店": "康",
    "体检": "康",
    "话费": "联",
    "宽带": "联",
    "手机": "联",
    "理发": "商",
    "洗车": "商",
    "银行": "贷",
    "贷款": "贷",
    "婚宴": "庆",
    "结婚": "庆",
    "喜宴": "庆",
}


def normalize_category(text: str | None) -> str | None:
    """The one-character category key for "食", "餐饮", "吃饭" …; None when unknown."""
    if not text:
        return None
    cleaned = text.strip()
    if cleaned in MERCHANT_CATEGORIES:
        return cleaned
    for key, name in MERCHANT_CATEGORIES.items():
        if cleaned == name or name in cleaned:
            return key
    for word, key in _ALIASES.items():
        if word in cleaned:
            return key
    return None


def offers(
    session: Session,
    category: str,
    township: str | None = None,
    limit: int = 5,
    today: dt.date | None = None,
) -> list[tuple[Merchant, list[MerchantOffer]]]:
    """Active merchants of a category with their current offers; a township narrows the list."""
    today = today or local_today()
    query = (
        select(Merchant)
        .where(Merchant.active.is_(True), Merchant.category == category)
        .options(selectinload(Merchant.offers))
        .order_by(Merchant.id)
    )
    if township:
        query = query.where(Merchant.township == township)
    results: list[tuple[Merchant, list[MerchantOffer]]] = []
    for merchant in session.scalars(query):
        current = [o for o in merchant.offers if o.valid_until is None or o.valid_until >= today]
        if current:
            results.append((merchant, current))
        if len(results) >= limit:
            break
    return results


def categories_with_offers(session: Session, today: dt.date | None = None) -> list[str]:
    """Category keys that have at least one merchant with a current offer, in the standard order."""
    today = today or local_today()
    present = set(
        session.scalars(
            select(Merchant.category)
            .join(MerchantOffer, MerchantOffer.merchant_id == Merchant.id)
            .where(
                Merchant.active.is_(True),
                or_(MerchantOffer.valid_until.is_(None), MerchantOffer.valid_until >= today),
            )
            .distinct()
        )
    )
    return [key for key in MERCHANT_CATEGORIES if key in present]
