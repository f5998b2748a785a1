"""Legal-aid actions with real Trackers: the form's answers and the registered case."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from actions.legal import ActionLegalSubmit, ValidateLegalForm
from bureau.models import CaseStatus, Counselor, LegalCase
from tests.actions.helpers import make_tracker, responses, run_action, run_form_validation, slot_events, texts

USER = "o-legal-user"
DOMAIN = {
    "forms": {"legal_form": {"required_slots": ["legal_case_topic", "legal_description", "legal_phone"]}}
}


def _validate(**kwargs):
    kwargs.setdefault("sender_id", USER)
    kwargs.setdefault("active_loop", "legal_form")
    return run_form_validation(ValidateLegalForm(), make_tracker(**kwargs), DOMAIN)


@pytest.fixture
def counselor(session_factory) -> int:
    with session_factory.begin() as session:
        person = Counselor(name="李法援", specialties=["法律援助"], active=True)
        session.add(person)
        session.flush()
        return person.id


def test_topic_from_a_button_or_from_words(counselor) -> None:
    events, _ = _validate(
        text='/inform{"legal_topic":"欠薪"}',
        intent="inform",
        entities=[{"entity": "legal_topic", "value": "欠薪"}],
        requested_slot="legal_case_topic",
    )
    assert slot_events(events) == {"legal_case_topic": "欠薪"}
    events, _ = _validate(
        text="讨工钱",
        intent="legal_help",
        entities=[{"entity": "legal_topic", "value": "工钱"}],
        requested_slot="legal_case_topic",
    )
    assert slot_events(events) == {"legal_case_topic": "欠薪"}
    events, _ = _validate(text="宅基地被邻居占了", intent="inform", requested_slot="legal_case_topic")
    assert slot_events(events) == {"legal_case_topic": "土地纠纷"}
    events, dispatcher = _validate(text="嗯", intent="nlu_fallback", requested_slot="legal_case_topic")
    assert responses(dispatcher) == ["utter_legal_topic_hint"]
    assert slot_events(events) == {"legal_case_topic": None}


def test_description_takes_any_text_but_not_an_interruption(counselor) -> None:
    filled = {"legal_case_topic": "欠薪"}
    events, _ = _validate(
        text="在工地干了半年，老板欠我两万块工资不给",
        intent="out_of_scope",
        requested_slot="legal_description",
        slots=filled,
    )
    assert slot_events(events) == {"legal_description": "在工地干了半年，老板欠我两万块工资不给"}
    events, dispatcher = _validate(
        text="欠钱", intent="inform", requested_slot="legal_description", slots=filled
    )
    assert "一两句话" in texts(dispatcher)[0]
    assert slot_events(events) == {"legal_description": None}
    for intent in ("crisis", "human_handoff", "stop", "main_menu", "greet"):
        events, dispatcher = _validate(
            text="不想活了", intent=intent, requested_slot="legal_description", slots=filled
        )
        assert events == [] and dispatcher.messages == [], intent


def test_phone_is_asked_and_checked(counselor) -> None:
    filled = {"legal_case_topic": "欠薪", "legal_description": "老板欠我两万块工资不给"}
    events, dispatcher = _validate(
        text="我没有电话", intent="deny", requested_slot="legal_phone", slots=filled
    )
    assert responses(dispatcher) == ["utter_phone_invalid"]
    assert slot_events(events) == {"legal_phone": None}
    events, _ = _validate(
        text="13905931234",
        intent="inform",
        entities=[{"entity": "phone", "value": "13905931234"}],
        requested_slot="legal_phone",
        slots=filled,
    )
    assert slot_events(events) == {"legal_phone": "13905931234"}


def test_submit_creates_the_assigned_case_and_says_who_calls(session_factory, counselor) -> None:
    filled = {
        "legal_case_topic": "欠薪",
        "legal_description": "老板欠我两万块工资不给",
        "legal_phone": "13905931234",
    }
    events, dispatcher = run_action(ActionLegalSubmit(), make_tracker(sender_id=USER, slots=filled))
    with session_factory() as session:
        case = session.scalars(select(LegalCase)).one()
        assert (
            case.openid,
            case.topic,
            case.description,
            case.contact_phone,
            case.counselor_id,
            case.status,
        ) == (
            USER,
            "欠薪",
            "老板欠我两万块工资不给",
            "13905931234",
            counselor,
            CaseStatus.ASSIGNED,
        )
    assert texts(dispatcher) == [
        f"已为您登记法律援助：欠薪，编号 F{case.id:05d}。\n老战友工作室的李法援同志会在2个工作日内给您打电话（13905931234），请留意接听。"
    ]
    assert slot_events(events) == {
        "legal_case_topic": None,
        "legal_description": None,
        "legal_phone": None,
        "legal_case_id": case.id,
    }


def test_a_second_case_reuses_the_phone_given_before(session_factory, counselor) -> None:
    with session_factory.begin() as session:
        session.add(LegalCase(openid=USER, topic="工伤", description="摔伤了", contact_phone="13800000009"))
    events, _ = _validate(
        text="老板欠我两万块工资不给",
        intent="inform",
        requested_slot="legal_description",
        slots={"legal_case_topic": "欠薪"},
    )
    assert slot_events(events)["legal_phone"] == "13800000009"


def test_an_invalid_phone_from_a_button_payload_gets_the_hint(counselor) -> None:
    filled = {"legal_case_topic": "欠薪", "legal_description": "老板欠我两万块工资不给"}
    events, dispatcher = _validate(
        text='/inform{"phone":"12345"}',
        intent="inform",
        entities=[{"entity": "phone", "value": "12345"}],
        requested_slot="legal_phone",
        slots=filled,
    )
    assert responses(dispatcher) == ["utter_phone_invalid"]
    assert slot_events(events) == {"legal_phone": None}


def test_an_opening_message_that_tells_the_story_is_not_asked_again(counselor) -> None:
    events, _ = _validate(
        text="老板欠我三个月工资一直不给，怎么办",
        intent="legal_help",
        entities=[{"entity": "legal_topic", "value": "欠薪"}],
    )
    assert slot_events(events) == {
        "legal_case_topic": "欠薪",
        "legal_description": "老板欠我三个月工资一直不给，怎么办",
    }
    events, _ = _validate(text="我要申请法律援助", intent="legal_help")
    assert slot_events(events) == {}


def test_a_story_that_speaks_of_self_harm_gets_the_hotlines_and_an_alert(session_factory, counselor) -> None:
    from bureau.models import CrisisAlert
    from bureau.safety import CRISIS_REPLY

    text = "工资要不回来，我就去跳楼"
    events, dispatcher = _validate(
        text=text, intent="legal_help", requested_slot="legal_description", slots={"legal_case_topic": "欠薪"}
    )
    assert texts(dispatcher)[0] == CRISIS_REPLY
    assert slot_events(events)["legal_description"] == text  # the case is still registered
    with session_factory() as session:
        alert = session.scalars(select(CrisisAlert)).one()
        assert (alert.openid, alert.message, alert.source) == (USER, text, "keyword")
