"""Information answers from staff-editable rows: benefits, return registration, loans, merchants, stations."""

from __future__ import annotations

import re
from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict
from sqlalchemy.orm import Session

from actions.base import BureauAction
from actions.identity import entity_value, intent_payload, latest_text
from bureau.models import MERCHANT_CATEGORIES, TOWNSHIPS
from bureau.services import benefits, identity, merchants, stations

POLICY_CHOICE_PREFIX = "policy:"
MENU_BUTTON = {"title": "返回菜单", "payload": "/main_menu"}
_JUNCHUANGYUAN = re.compile(r"军创园|创业园|孵化|场地|入驻|创业基地")
_YONGJUNDAI = re.compile(r"拥军贷|贷款|借钱|贷")


def policy_payload(slug: str) -> str:
    """The payload that brings a policy's answer back when the user taps it."""
    return intent_payload("benefits_query", choice=POLICY_CHOICE_PREFIX + slug)


def _township(tracker: Tracker) -> str | None:
    value = entity_value(tracker, "township")
    if not value:
        return None
    try:
        return identity.validate_township(value)
    except identity.InvalidInput:
        return None


class ActionBenefits(BureauAction):
    """A benefit policy by topic or question; a menu of policies when the question names none."""

    def name(self) -> str:
        return "action_benefits"

    def act(
        self, session: Session, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[dict[str, Any]]:
        events = [SlotSet("choice", None)]
        choice = entity_value(tracker, "choice") or ""
        if choice.startswith(POLICY_CHOICE_PREFIX):
            policy = benefits.policy_by_slug(session, choice.removeprefix(POLICY_CHOICE_PREFIX))
            found = [policy] if policy is not None else []
        else:
            found = benefits.find_policies(
                session, topic=entity_value(tracker, "benefit_topic"), text=latest_text(tracker)
            )
        if found:
            others = [{"title": p.title, "payload": policy_payload(p.slug)} for p in found[1:]]
            dispatcher.utter_message(text=benefits.answer_text(found[0]), buttons=others)
            return events
        menu = benefits.menu_policies(session)
        if not menu:
            dispatcher.utter_message(response="utter_info_missing")
            return events
        dispatcher.utter_message(
            response="utter_benefits_menu",
            buttons=[{"title": p.title, "payload": policy_payload(p.slug)} for p in menu[:10]],
        )
        return events


def _policy_or_missing(session: Session, dispatcher: CollectingDispatcher, slugs: tuple[str, ...]) -> None:
    rows = [p for p in (benefits.policy_by_slug(session, slug) for slug in slugs) if p is not None]
    if not rows:
        dispatcher.utter_message(response="utter_info_missing")
        return
    dispatcher.utter_message(text="\n\n".join(benefits.answer_text(p) for p in rows))


class ActionReturnRegistration(BureauAction):
    """The return-registration checklist (报到, 户口, 身份证, 社保, 医保) as staff keep it."""

    def name(self) -> str:
        return "action_return_registration"

    def act(
        self, session: Session, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[dict[str, Any]]:
        _policy_or_missing(session, dispatcher, (benefits.RETURN_REGISTRATION_SLUG,))
        return []


class ActionLoans(BureauAction):
    """拥军贷 and 军创园: the one asked about, or both briefly."""

    def name(self) -> str:
        return "action_loans"

    def act(
        self, session: Session, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[dict[str, Any]]:
        text = latest_text(tracker)
        wants_park = bool(_JUNCHUANGYUAN.search(text))
        wants_loan = bool(_YONGJUNDAI.search(text))
        loan_slug, park_slug = benefits.LOAN_SLUGS
        if wants_park and not wants_loan:
            slugs: tuple[str, ...] = (park_slug,)
        elif wants_loan and not wants_park:
            slugs = (loan_slug,)
        else:
            slugs = benefits.LOAN_SLUGS
        _policy_or_missing(session, dispatcher, slugs)
        return []


def _category_buttons(keys: list[str]) -> list[dict[str, str]]:
    return [
        {
            "title": f"{key}·{MERCHANT_CATEGORIES[key]}",
            "payload": intent_payload("merchant_discounts", merchant_category=key),
        }
        for key in keys
    ]


class ActionMerchants(BureauAction):
    """Merchant discounts of one category, in the user's township when named (else county-wide)."""

    def name(self) -> str:
        return "action_merchants"

    def act(
        self, session: Session, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[dict[str, Any]]:
        category = merchants.normalize_category(entity_value(tracker, "merchant_category")) or (
            merchants.normalize_category(latest_text(tracker))
        )
        township = _township(tracker)
        if category is None and (tracker.latest_message.get("intent") or {}).get("name") == "inform":
            # "富溪的呢？" after a list of offers: the same category in another township.
            category = merchants.normalize_category(tracker.get_slot("merchant_category"))
        if category is None:
            keys = merchants.categories_with_offers(session)
            if not keys:
                dispatcher.utter_message(response="utter_merchant_none_at_all")
                return []
            dispatcher.utter_message(response="utter_merchant_pick_category", buttons=_category_buttons(keys))
            return []
        found = merchants.offers(session, category, township)
        note = ""
        if not found and township:
            found = merchants.offers(session, category)
            note = f"{township}暂时没有，下面是全县的：\n" if found else ""
        label = MERCHANT_CATEGORIES[category]
        if not found:
            others = [k for k in merchants.categories_with_offers(session) if k != category]
            dispatcher.utter_message(
                response="utter_merchant_none", category=label, buttons=_category_buttons(others)[:6]
            )
            return []
        lines = [f"{note}拥军优惠·{label}（凭优待证享受）："]
        for index, (merchant, offers) in enumerate(found, start=1):
            where = " ".join(p for p in (merchant.township, merchant.address) if p)
            lines.append(f"{index}. {merchant.name}：{'；'.join(o.description for o in offers)}")
            details = "  ".join(p for p in (where, merchant.phone) if p)
            if details:
                lines.append(f"   {details}")
        dispatcher.utter_message(text="\n".join(lines))
        return []


def _township_buttons() -> list[dict[str, str]]:
    return [{"title": t, "payload": intent_payload("service_station", township=t)} for t in TOWNSHIPS]


class ActionStations(BureauAction):
    """Service stations of a township, or the nearest to the user's last shared location."""

    def name(self) -> str:
        return "action_stations"

    def act(
        self, session: Session, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[dict[str, Any]]:
        township = _township(tracker)
        if township:
            found = stations.stations_in_township(session, township)
            if found:
                shown = found[:3]
                text = f"{township}的退役军人服务站：\n\n" + "\n\n".join(stations.describe(s) for s in shown)
                if len(found) > len(shown):
                    text += f"\n\n另有{len(found) - len(shown)}个村级服务站，可向乡镇服务站询问。"
                dispatcher.utter_message(text=text)
                return []
            center = stations.county_center(session)
            dispatcher.utter_message(
                text=f"{township}暂时没有登记的服务站。"
                + (f"可以找县里：\n{stations.describe(center)}" if center else "")
            )
            return []
        location = stations.last_location(session, tracker.sender_id)
        if location is not None:
            nearest = stations.nearest_stations(session, *location, limit=3)
            if nearest:
                text = "离您最近的服务站：\n\n" + "\n\n".join(stations.describe(s, km) for s, km in nearest)
                dispatcher.utter_message(text=text)
                return []
        center = stations.county_center(session)
        dispatcher.utter_message(
            response="utter_station_pick_township",
            center=stations.describe(center) if center else "",
            buttons=_township_buttons(),
        )
        return []
