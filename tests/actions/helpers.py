"""Build real rasa-sdk Trackers and run actions the way the action server does, for action tests."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher


def make_tracker(
    sender_id: str = "openid-test-user",
    slots: dict[str, Any] | None = None,
    text: str = "",
    intent: str | None = None,
    entities: list[dict[str, Any]] | None = None,
    active_loop: str | None = None,
    confidence: float = 0.95,
    events: list[dict[str, Any]] | None = None,
    latest_action_name: str | None = "action_listen",
    requested_slot: str | None = None,
) -> Tracker:
    """A Tracker for `sender_id` (the user's OpenID) whose latest message is `text` / `intent` / `entities`.

    `entities` are given as Rasa extracts them: [{"entity": "date", "value": "明天下午"}, …].
    `active_loop` is the name of the active form, if any; `requested_slot` goes into the slots.
    """
    all_slots = dict(slots or {})
    if requested_slot is not None:
        all_slots["requested_slot"] = requested_slot
    latest_message: dict[str, Any] = {
        "text": text,
        "intent": {"name": intent, "confidence": confidence} if intent else {},
        "intent_ranking": [{"name": intent, "confidence": confidence}] if intent else [],
        "entities": [
            {"start": 0, "end": 0, "extractor": "DIETClassifier", **entity} for entity in (entities or [])
        ],
    }
    return Tracker(
        sender_id=sender_id,
        slots=all_slots,
        latest_message=latest_message,
        events=list(events or []),
        paused=False,
        followup_action=None,
        active_loop={"name": active_loop} if active_loop else {},
        latest_action_name=latest_action_name,
    )


def run_action(
    action: Action, tracker: Tracker, domain: dict[str, Any] | None = None
) -> tuple[list[dict[str, Any]], CollectingDispatcher]:
    """Run a plain (synchronous) action; return its events and the dispatcher holding what it said."""
    dispatcher = CollectingDispatcher()
    events = action.run(dispatcher, tracker, domain or {})
    return list(events or []), dispatcher


async def run_action_async(
    action: Action, tracker: Tracker, domain: dict[str, Any] | None = None
) -> tuple[list[dict[str, Any]], CollectingDispatcher]:
    """Run an action whose run() is a coroutine (FormValidationAction and friends)."""
    dispatcher = CollectingDispatcher()
    events = await action.run(dispatcher, tracker, domain or {})
    return list(events or []), dispatcher


def texts(dispatcher: CollectingDispatcher) -> list[str]:
    """The plain texts the action sent (responses by name appear as `response:<name>`)."""
    out: list[str] = []
    for message in dispatcher.messages:
        if message.get("text"):
            out.append(message["text"])
        elif message.get("response"):
            out.append(f"response:{message['response']}")
    return out


def responses(dispatcher: CollectingDispatcher) -> list[str]:
    """Names of the domain responses the action uttered, in order."""
    return [m["response"] for m in dispatcher.messages if m.get("response")]


def buttons(dispatcher: CollectingDispatcher) -> list[dict[str, Any]]:
    """Every button the action offered, in order."""
    return [button for m in dispatcher.messages for button in (m.get("buttons") or [])]


def slot_events(events: list[dict[str, Any]]) -> dict[str, Any]:
    """The SlotSet events as {slot: value} (the last value wins)."""
    return {e["name"]: e["value"] for e in events if e.get("event") == "slot"}


def run_form_validation(
    action: Action, tracker: Tracker, domain: dict[str, Any] | None = None
) -> tuple[list[dict[str, Any]], CollectingDispatcher]:
    """Run a FormValidationAction (async) to completion from a synchronous test."""
    import asyncio

    return asyncio.run(run_action_async(action, tracker, domain))
