"""Job search (numbered results as buttons), job details, job-notice subscriptions."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict
from sqlalchemy.orm import Session

from actions.base import BureauAction
from actions.identity import entity_value, entity_values, intent_payload, latest_text
from bureau.models import TOWNSHIPS, JobPosting
from bureau.services import identity, jobs, stations

JOB_CHOICE_PREFIX = "job:"
RESULTS_SHOWN = 5


def job_payload(job_id: int) -> str:
    """The payload of a numbered result; the gateway sends it back when the user replies "1"."""
    return intent_payload("job_search", choice=f"{JOB_CHOICE_PREFIX}{job_id}")


def _township(value: str | None) -> str | None:
    if not value:
        return None
    try:
        return identity.validate_township(value)
    except identity.InvalidInput:
        return None


def _is_follow_up(tracker: Tracker) -> bool:
    """A bare answer (inform) right after a search refines it."""
    return (tracker.latest_message.get("intent") or {}).get("name") == "inform"


def _describe_filters(category: str | None, township: str | None, min_salary: int | None) -> str:
    what = f"{township or ''}{category or ''}"
    if min_salary:
        what += f"（{min_salary}元以上）" if what else f"{min_salary}元以上"
    return what


def job_button_title(job: JobPosting) -> str:
    """One line per result: title · township · salary."""
    return " · ".join(part for part in (job.title, job.township or "全县", jobs.salary_text(job)) if part)


def job_detail_text(job: JobPosting) -> str:
    """Everything a job seeker needs to call the employer."""
    lines = [f"【{job.title}】{job.employer}", f"工资：{jobs.salary_text(job)}"]
    place = " ".join(p for p in (job.township, job.address) if p)
    if place:
        lines.append(f"地点：{place}")
    if job.requirements:
        lines.append(f"要求：{job.requirements}")
    if job.description:
        lines.append(f"说明：{job.description}")
    if job.contact:
        lines.append(f"联系：{job.contact}")
    if job.valid_until:
        lines.append(f"截止：{job.valid_until.month}月{job.valid_until.day}日")
    return "\n".join(lines)


class ActionJobSearch(BureauAction):
    """Search open postings with what the message gives (category, township, salary), or show one by number."""

    def name(self) -> str:
        return "action_job_search"

    def act(
        self, session: Session, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = [SlotSet("choice", None)]
        choice = entity_value(tracker, "choice")
        if choice and choice.startswith(JOB_CHOICE_PREFIX):
            self._details(session, dispatcher, choice.removeprefix(JOB_CHOICE_PREFIX))
            return events
        category = entity_value(tracker, "job_category")
        township = _township(entity_value(tracker, "township"))
        if _is_follow_up(tracker):
            # "富溪呢？" after a search: keep what the previous search asked for.
            category = category or tracker.get_slot("job_category")
            township = township or _township(tracker.get_slot("township"))
        min_salary = jobs.parse_min_salary(latest_text(tracker))
        near = None if township else stations.last_location(session, tracker.sender_id)
        keyword = None
        if category is None:
            raw = tuple(v for name in ("township", "job_category") for v in entity_values(tracker, name))
            keyword = jobs.free_text_keyword(latest_text(tracker), raw)

        def search(text: str | None) -> list[JobPosting]:
            return jobs.search_jobs(
                session,
                category=category,
                township=township,
                min_salary=min_salary,
                text=text,
                near=near,
                limit=RESULTS_SHOWN,
            )

        found = search(keyword) if keyword else []
        if found:
            category = keyword
        else:
            # The leftover words may be no job at all ("适合退伍军人"); search without them.
            found = search(None)
        what = _describe_filters(category, township, min_salary)
        if not found:
            buttons = []
            if township or min_salary:
                buttons.append({"title": "看全县的岗位", "payload": self._search_payload(category, None)})
            buttons.append(
                {"title": "有新岗位时通知我", "payload": self._subscribe_payload(category, township)}
            )
            buttons.append({"title": "返回菜单", "payload": "/main_menu"})
            dispatcher.utter_message(response="utter_job_none", what=what or "合适的", buttons=buttons)
            return events
        dispatcher.utter_message(
            response="utter_job_results",
            what=what,
            count=len(found),
            buttons=[{"title": job_button_title(job), "payload": job_payload(job.id)} for job in found],
        )
        return events

    @staticmethod
    def _search_payload(category: str | None, township: str | None, intent: str = "job_search") -> str:
        entities = {"job_category": category, "township": township}
        return intent_payload(intent, **{k: v for k, v in entities.items() if v})

    @staticmethod
    def _subscribe_payload(category: str | None, township: str | None) -> str:
        return ActionJobSearch._search_payload(category, township, "job_subscribe")

    @staticmethod
    def _details(session: Session, dispatcher: CollectingDispatcher, raw_id: str) -> None:
        job = jobs.open_job(session, int(raw_id)) if raw_id.isdigit() else None
        if job is None:
            dispatcher.utter_message(
                response="utter_job_gone", buttons=[{"title": "重新找工作", "payload": "/job_search"}]
            )
            return
        dispatcher.utter_message(
            text=job_detail_text(job),
            buttons=[
                {
                    "title": "类似岗位有新的通知我",
                    "payload": ActionJobSearch._subscribe_payload(job.category, None),
                },
                {"title": "返回菜单", "payload": "/main_menu"},
            ],
        )


class ActionJobSubscribe(BureauAction):
    """Subscribe to job notices with the categories and townships the message names (none = any)."""

    def name(self) -> str:
        return "action_job_subscribe"

    def act(
        self, session: Session, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[dict[str, Any]]:
        categories = entity_values(tracker, "job_category")
        townships = [t for t in (_township(v) for v in entity_values(tracker, "township")) if t in TOWNSHIPS]
        jobs.subscribe(session, tracker.sender_id, categories, townships)
        what = (
            "、".join(townships or ["全县"])
            + "的"
            + ("、".join(categories) if categories else "各类")
            + "岗位"
        )
        dispatcher.utter_message(
            response="utter_job_subscribed",
            what=what,
            buttons=[
                {"title": "取消订阅", "payload": "/job_unsubscribe"},
                {"title": "现在就找", "payload": "/job_search"},
            ],
        )
        return []


class ActionJobUnsubscribe(BureauAction):
    """Stop job notices."""

    def name(self) -> str:
        return "action_job_unsubscribe"

    def act(
        self, session: Session, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[dict[str, Any]]:
        removed = jobs.unsubscribe(session, tracker.sender_id)
        dispatcher.utter_message(response="utter_job_unsubscribed" if removed else "utter_job_not_subscribed")
        return []
