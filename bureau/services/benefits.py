"""Benefit and policy answers, kept by staff in benefit_policies rows (found by slug or keyword)."""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from bureau.models import BenefitPolicy

RETURN_REGISTRATION_SLUG = "return_registration"
LOAN_SLUGS = ("loan_yongjundai", "junchuangyuan")
HARDSHIP_SLUG = "kunnan_bangfu"
# Rows answered by their own services, not listed in the general benefits menu.
NOT_IN_MENU = frozenset({"certificate_eligibility", "certificate_materials"})


def policy_by_slug(session: Session, slug: str) -> BenefitPolicy | None:
    """The policy row with this slug, if staff have it."""
    return session.scalars(select(BenefitPolicy).where(BenefitPolicy.slug == slug)).one_or_none()


def all_policies(session: Session) -> list[BenefitPolicy]:
    """Every policy row, by title."""
    return list(session.scalars(select(BenefitPolicy).order_by(BenefitPolicy.id)))


def menu_policies(session: Session) -> list[BenefitPolicy]:
    """The policies offered as choices when a question names no topic."""
    return [p for p in all_policies(session) if p.slug not in NOT_IN_MENU]


def _score(policy: BenefitPolicy, words: list[str]) -> int:
    score = 0
    haystack_title = policy.title or ""
    keywords = [k for k in (policy.keywords or []) if isinstance(k, str) and k]
    for word in words:
        if not word:
            continue
        if word == haystack_title or word in keywords:
            score += 10
        elif word in haystack_title or any(word in k or k in word for k in keywords):
            score += 5
    return score


def find_policies(
    session: Session, topic: str | None = None, text: str | None = None, limit: int = 3
) -> list[BenefitPolicy]:
    """Policies that answer a topic (an entity value) or a free-text question, best first.

    Rows are few (tens), so matching runs in Python over titles and keywords: the same code on
    SQLite and PostgreSQL, and staff edits apply at once.
    """
    words = [topic] if topic else []
    policies = all_policies(session)
    if text:
        compact = re.sub(r"\s", "", text)
        for policy in policies:
            for keyword in [policy.title, *(policy.keywords or [])]:
                if isinstance(keyword, str) and len(keyword) >= 2 and keyword in compact:
                    words.append(keyword)
    if not words:
        return []
    scored = [(policy, _score(policy, words)) for policy in policies]
    scored = [pair for pair in scored if pair[1] > 0]
    scored.sort(key=lambda pair: (-pair[1], pair[0].id))
    return [policy for policy, _ in scored[:limit]]


def answer_text(policy: BenefitPolicy) -> str:
    """A policy as the user reads it: title, answer, and where it comes from."""
    text = f"【{policy.title}】\n{policy.answer.strip()}"
    if policy.source:
        text += f"\n（依据：{policy.source}）"
    return text
