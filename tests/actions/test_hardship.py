"""Hardship-aid actions: bind first or family route, the form's reason check, one open application."""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from actions.hardship import ActionHardshipStart, ActionHardshipSubmit, ValidateHardshipForm
from bureau.models import HardshipApplication
from tests.actions.helpers import make_tracker, run_action, run_action_async, slot_events
from tests.services.veteran_records import ID_ZHANG, make_policy, make_user, make_veteran

FORM_SLOTS = ["hardship_name", "hardship_id_number", "hardship_phone", "hardship_township", "hardship_reason"]
DOMAIN = {"forms": {"hardship_form": {"required_slots": FORM_SLOTS}}}
CLEARED = {slot: None for slot in FORM_SLOTS} | {
    "hardship_family": None,
    "hardship_failures": 0,
    "hardship_gave_up": None,
}


def _start(sender="o-a", entities=None):
    tracker = make_tracker(sender, intent="hardship_aid", text="家里困难想申请帮扶", entities=entities or [])
    return run_action(ActionHardshipStart(), tracker)


def test_unbound_user_reads_the_policy_and_is_asked_to_bind(session_factory):
    with session_factory.begin() as session:
        make_policy(session, "kunnan_bangfu", "困难帮扶", "遇到重大困难可申请临时救助。")
    events, dispatcher = _start()
    assert slot_events(events) == {"choice": None, "hardship_ready": False}
    assert dispatcher.messages[0]["text"] == "【困难帮扶】\n遇到重大困难可申请临时救助。"
    assert (dispatcher.messages[1]["response"], dispatcher.messages[1]["family_payload"]) == (
        "utter_ask_bind_first",
        '/hardship_aid{"choice":"family"}',
    )


def test_bound_user_is_asked_only_for_the_reason_and_can_file_once(session_factory):
    with session_factory.begin() as session:
        veteran_id = make_user(session, "o-a", make_veteran(session)).veteran_id
    events, dispatcher = _start()
    assert [m["response"] for m in dispatcher.messages] == ["utter_hardship_intro"]
    assert slot_events(events) == CLEARED | {
        "choice": None,
        "hardship_family": False,
        "hardship_name": "张建国",
        "hardship_phone": "13905931234",
        "hardship_township": "双城镇",
        "hardship_ready": True,
    }
    slots = {k: v for k, v in slot_events(events).items() if v is not None} | {
        "hardship_reason": "老伴住院，医药费负担重"
    }
    events, dispatcher = run_action(ActionHardshipSubmit(), make_tracker("o-a", slots=slots))
    assert slot_events(events) == CLEARED | {"hardship_ready": None}
    with session_factory() as session:
        app = session.scalars(select(HardshipApplication)).one()
        assert (app.veteran_id, app.reason, app.openid) == (veteran_id, "老伴住院，医药费负担重", "o-a")
    assert [(m["response"], m["number"], m["phone"]) for m in dispatcher.messages] == [
        ("utter_hardship_submitted", app.id, "139****1234")
    ]
    events, dispatcher = _start()
    assert [(m["response"], m["number"]) for m in dispatcher.messages] == [
        ("utter_hardship_existing", app.id)
    ]
    assert slot_events(events)["hardship_ready"] is False


def test_family_route_links_the_roster_when_name_and_number_match(session_factory):
    with session_factory.begin() as session:
        veteran_id = make_veteran(session).id
    events, _ = _start("o-son", entities=[{"entity": "choice", "value": "family"}])
    assert slot_events(events)["hardship_family"] is True
    slots = {
        "hardship_family": True,
        "hardship_name": "张建国",
        "hardship_id_number": ID_ZHANG,
        "hardship_phone": "13799876543",
        "hardship_township": "双城镇",
        "hardship_reason": "父亲摔伤需要照护",
    }
    _, dispatcher = run_action(ActionHardshipSubmit(), make_tracker("o-son", slots=slots))
    assert [m["response"] for m in dispatcher.messages] == ["utter_hardship_submitted"]
    with session_factory() as session:
        app = session.scalars(select(HardshipApplication)).one()
        assert (app.veteran_id, app.openid, app.applicant_name) == (veteran_id, "o-son", "张建国")


def _validate(slot, value, failures=0):
    tracker = make_tracker(
        "o-a",
        slots={
            slot: value,
            "hardship_failures": failures,
            "hardship_family": False,
            "hardship_phone": "13905931234",
            "hardship_township": "双城镇",
        },
        text=value,
        active_loop="hardship_form",
        requested_slot=slot,
        events=[{"event": "user", "text": value}, {"event": "slot", "name": slot, "value": value}],
    )
    return asyncio.run(run_action_async(ValidateHardshipForm(), tracker, DOMAIN))


def test_reason_is_checked_and_re_asked(db_url):
    events, dispatcher = _validate("hardship_reason", "难")
    assert slot_events(events) == {
        "hardship_reason": None,
        "hardship_failures": 1,
        "requested_slot": "hardship_reason",
    }
    assert dispatcher.messages[0]["reason"] == "请多说几句，比如家里遇到了什么困难、需要哪方面的帮助"
    events, dispatcher = _validate("hardship_reason", "难", failures=2)
    assert slot_events(events)["hardship_gave_up"] is True
    assert [m["response"] for m in dispatcher.messages] == ["utter_form_offer_human"]
