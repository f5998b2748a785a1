"""Binding actions with real Trackers on a real database: prefill, masked profile, retries, lockout."""

from __future__ import annotations

import asyncio
import datetime as dt

from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from actions import identity as identity_actions
from actions.identity import ActionBindStart, ActionBindSubmit, ValidateBindForm
from bureau.db import get_session_factory
from bureau.models import WechatUser
from bureau.services import identity
from tests.actions.helpers import buttons, make_tracker, run_action, run_action_async, slot_events
from tests.services.veteran_records import ID_ZHANG, make_user, make_veteran

DOMAIN = {"forms": {"bind_form": {"required_slots": ["bind_name", "bind_id_number", "bind_phone"]}}}
CLEARED = {
    "bind_name": None,
    "bind_id_number": None,
    "bind_phone": None,
    "bind_failures": 0,
    "bind_gave_up": None,
    "bind_ready": None,
}


def _submit(openid: str, name: str, number: str, phone: str):
    tracker = make_tracker(openid, slots={"bind_name": name, "bind_id_number": number, "bind_phone": phone})
    return run_action(ActionBindSubmit(), tracker)


def _validate(slot: str, value: str, failures: int = 0):
    tracker = make_tracker(
        "o-a",
        slots={slot: value, "bind_failures": failures},
        intent="inform",
        text=value,
        active_loop="bind_form",
        requested_slot=slot,
        events=[{"event": "user", "text": value}, {"event": "slot", "name": slot, "value": value}],
    )
    return asyncio.run(run_action_async(ValidateBindForm(), tracker, DOMAIN))


def test_start_for_an_unbound_user_prefills_what_the_message_gives(db_url):
    tracker = make_tracker(
        "o-a",
        intent="bind_identity",
        text=f"绑定身份 张建国 {ID_ZHANG} 电话139-0593-1234",
        entities=[
            {"entity": "person_name", "value": "张建国"},
            {"entity": "id_number", "value": ID_ZHANG},
            {"entity": "phone", "value": "139-0593-1234"},
        ],
    )
    events, dispatcher = run_action(ActionBindStart(), tracker)
    assert [m["response"] for m in dispatcher.messages] == ["utter_bind_intro"]
    assert slot_events(events) == {
        **CLEARED,
        "choice": None,
        "bind_name": "张建国",
        "bind_id_number": ID_ZHANG,
        "bind_phone": "13905931234",
        "bind_ready": True,
    }


def test_start_skips_invalid_entities_for_the_form_to_ask(db_url):
    tracker = make_tracker(
        "o-a", intent="bind_identity", entities=[{"entity": "id_number", "value": "350926"}]
    )
    events, _ = run_action(ActionBindStart(), tracker)
    assert slot_events(events)["bind_id_number"] is None
    assert slot_events(events)["bind_ready"] is True


def test_bound_user_sees_only_masked_information_and_can_unbind(session_factory):
    with session_factory.begin() as session:
        make_user(session, "o-a", make_veteran(session))
    events, dispatcher = run_action(ActionBindStart(), make_tracker("o-a", intent="bind_identity"))
    assert slot_events(events) == {"choice": None, "bind_ready": False}
    [message] = dispatcher.messages
    assert message["response"] == "utter_bind_profile"
    assert {k: message[k] for k in ("name", "id_masked", "phone_masked", "township", "category")} == {
        "name": "张*国",
        "id_masked": "350***********" + ID_ZHANG[-4:],
        "phone_masked": "139****1234",
        "township": "双城镇",
        "category": "退役士兵",
    }
    assert ID_ZHANG not in str(dispatcher.messages) and "13905931234" not in str(dispatcher.messages)

    unbind = make_tracker("o-a", intent="bind_identity", entities=[{"entity": "choice", "value": "unbind"}])
    events, dispatcher = run_action(ActionBindStart(), unbind)
    assert [m["response"] for m in dispatcher.messages] == ["utter_bind_unbound"]
    with session_factory() as session:
        assert session.get(WechatUser, "o-a").veteran_id is None
    _, dispatcher = run_action(ActionBindStart(), unbind)
    assert [m["response"] for m in dispatcher.messages] == ["utter_bind_not_bound"]


def test_submit_binds_when_all_three_match(session_factory):
    with session_factory.begin() as session:
        veteran_id = make_veteran(session).id
    events, dispatcher = _submit("o-a", "张建国", ID_ZHANG, "13905931234")
    assert slot_events(events) == CLEARED
    assert [(m["response"], m.get("name")) for m in dispatcher.messages] == [("utter_bind_success", "张*国")]
    # One tap continues to the certificate, where most people were going.
    assert [b["payload"] for b in dispatcher.messages[0]["buttons"]][0] == "/certificate_apply"
    with session_factory() as session:
        assert session.get(WechatUser, "o-a").veteran_id == veteran_id


def test_five_failures_lock_for_a_day_and_unlock_after(session_factory, monkeypatch):
    with session_factory.begin() as session:
        make_veteran(session)
    now = [dt.datetime(2030, 5, 1, 2, 0)]
    monkeypatch.setattr(identity, "utcnow", lambda: now[0])
    said = []
    for _ in range(5):
        _, dispatcher = _submit("o-a", "张建国", ID_ZHANG, "13900000000")
        [message] = dispatcher.messages
        said.append((message["response"], message.get("attempts_left")))
    assert said == [
        ("utter_bind_mismatch", 4),
        ("utter_bind_mismatch", 3),
        ("utter_bind_mismatch", 2),
        ("utter_bind_mismatch", 1),
        ("utter_bind_locked", None),
    ]
    assert dispatcher.messages[0]["until"] == "5月2日 10:00"
    # While locked, starting again is refused, and so is the right answer.
    now[0] = dt.datetime(2030, 5, 2, 1, 59)
    events, dispatcher = run_action(ActionBindStart(), make_tracker("o-a", intent="bind_identity"))
    assert [m["response"] for m in dispatcher.messages] == ["utter_bind_locked"]
    assert slot_events(events)["bind_ready"] is False
    _, dispatcher = _submit("o-a", "张建国", ID_ZHANG, "13905931234")
    assert [m["response"] for m in dispatcher.messages] == ["utter_bind_locked"]
    # A day later the form opens again and the right answer binds.
    now[0] = dt.datetime(2030, 5, 2, 2, 1)
    events, _ = run_action(ActionBindStart(), make_tracker("o-a", intent="bind_identity"))
    assert slot_events(events)["bind_ready"] is True
    _, dispatcher = _submit("o-a", "张建国", ID_ZHANG, "13905931234")
    assert [m["response"] for m in dispatcher.messages] == ["utter_bind_success"]


def test_mismatch_offers_retry_and_a_person(session_factory):
    with session_factory.begin() as session:
        make_veteran(session)
    _, dispatcher = _submit("o-a", "张建民", ID_ZHANG, "13905931234")
    assert [b["payload"] for b in buttons(dispatcher)] == ["/bind_identity", "/human_handoff"]


def test_invalid_id_is_reasked_with_reason_and_the_third_failure_offers_a_person(db_url):
    bad = ID_ZHANG[:-1] + ("0" if ID_ZHANG[-1] != "0" else "1")
    events, dispatcher = _validate("bind_id_number", bad)
    assert slot_events(events) == {"bind_id_number": None, "bind_failures": 1}
    assert [(m["response"], m["reason"]) for m in dispatcher.messages] == [
        ("utter_form_invalid", "身份证号校验位不对，请核对后再发一次")
    ]
    events, dispatcher = _validate("bind_id_number", "12345", failures=1)
    assert slot_events(events) == {"bind_id_number": None, "bind_failures": 2}
    assert dispatcher.messages[0]["reason"] == "身份证号应为18位，您输入的是5位"
    events, dispatcher = _validate("bind_id_number", "12345", failures=2)
    assert slot_events(events) == {
        "bind_id_number": None,
        "bind_failures": 0,
        "bind_gave_up": True,
        "requested_slot": None,  # the form ends
    }
    assert [m["response"] for m in dispatcher.messages] == ["utter_form_offer_human"]
    assert buttons(dispatcher)[0] == {"title": "转人工", "payload": "/human_handoff"}
    # The submit action then files nothing and clears the form.
    tracker = make_tracker("o-a", slots={"bind_gave_up": True, "bind_id_number": None})
    events, dispatcher = run_action(ActionBindSubmit(), tracker)
    assert dispatcher.messages == [] and slot_events(events) == CLEARED


def test_invalid_phone_and_name_have_reasons_and_valid_answers_reset_the_count(db_url):
    events, dispatcher = _validate("bind_phone", "1390593", failures=0)
    assert dispatcher.messages[0]["reason"] == "手机号应为11位，您发的是7位"
    events, dispatcher = _validate("bind_phone", "139 0593 1234", failures=2)
    assert slot_events(events) == {"bind_phone": "13905931234", "bind_failures": 0}
    assert dispatcher.messages == []
    events, dispatcher = _validate("bind_name", "abc")
    assert dispatcher.messages[0]["reason"] == "请发身份证上的中文姓名，比如 张建国"


def test_a_database_error_gets_a_short_apology(db_url, monkeypatch):
    def broken(*args, **kwargs):
        raise OperationalError("SELECT 1", {}, Exception("database is down"))

    monkeypatch.setattr(identity_actions.identity, "lock_state", broken)
    events, dispatcher = run_action(ActionBindStart(), make_tracker("o-a", intent="bind_identity"))
    assert events == []
    assert [m["response"] for m in dispatcher.messages] == ["utter_system_error"]


def test_the_session_factory_is_the_test_database(db_url, session_factory):
    assert get_session_factory() is session_factory
    with session_factory() as session:
        assert session.scalars(select(WechatUser)).all() == []


def test_every_response_and_action_of_the_slice_is_in_the_domain():
    """The names the actions use must exist in bot/domain, or Rasa would say nothing at all."""
    import re
    from pathlib import Path

    from actions import certificate, hardship, info, jobs

    root = Path(__file__).resolve().parents[2]
    domain = "\n".join(p.read_text(encoding="utf-8") for p in (root / "bot" / "domain").glob("*.yml"))
    modules = (identity_actions, jobs, certificate, info, hardship)
    used = set()
    for module in modules:
        used |= set(re.findall(r'response="(utter_\w+)"', Path(module.__file__).read_text(encoding="utf-8")))
    assert used, "no responses found"
    missing = sorted(name for name in used if not re.search(rf"^  {name}:", domain, re.M))
    assert missing == []
    for module in modules:
        for value in vars(module).values():
            if isinstance(value, type) and value.__module__ == module.__name__ and "name" in vars(value):
                if value.__name__.startswith(("Action", "Validate")):
                    assert f"  - {value().name()}\n" in domain, value.__name__


def test_the_action_server_registers_every_action_of_the_slice():
    from rasa_sdk.executor import ActionExecutor

    executor = ActionExecutor()
    executor.register_package("actions")
    expected = {
        "action_bind_start", "action_bind_submit", "validate_bind_form",
        "action_job_search", "action_job_subscribe", "action_job_unsubscribe",
        "action_cert_start", "action_cert_submit", "action_cert_status", "validate_certificate_form",
        "action_benefits", "action_return_registration", "action_loans", "action_merchants", "action_stations",
        "action_hardship_start", "action_hardship_submit", "validate_hardship_form",
    }  # fmt: skip
    assert expected <= set(executor.actions)


def test_opening_the_form_does_not_judge_slots_the_start_action_cleared(db_url):
    # action_bind_start clears the form's slots (SlotSet None); rasa-sdk then hands those slots to the
    # validator on the form's first run. Nothing was answered yet, so nothing may be reported wrong.
    cleared = [
        {"event": "slot", "name": slot, "value": None}
        for slot in ("bind_name", "bind_id_number", "bind_phone")
    ]
    tracker = make_tracker(
        "o-fresh",
        slots={"bind_name": None, "bind_id_number": None, "bind_phone": None, "bind_failures": 0},
        intent="bind_identity",
        text="/bind_identity",
        active_loop="bind_form",
        events=[{"event": "user", "text": "/bind_identity"}, *cleared],
    )
    events, dispatcher = asyncio.run(run_action_async(ValidateBindForm(), tracker, DOMAIN))
    assert dispatcher.messages == []
    assert slot_events(events).get("bind_gave_up") is None
