"""Core actions: main menu, stop, the two-stage fallback."""

from __future__ import annotations

from actions.core import ActionFallback, ActionMainMenu, ActionStop, menu_buttons
from tests.actions.helpers import make_tracker, responses, run_action, slot_events


def _user(intent: str, text: str = "x") -> dict:
    return {"event": "user", "text": text, "parse_data": {"intent": {"name": intent, "confidence": 0.2}}}


def test_main_menu_leaves_the_form_and_forgets_its_answers() -> None:
    tracker = make_tracker(
        text="0",
        intent="main_menu",
        active_loop="counsel_form",
        requested_slot="counsel_slot_id",
        slots={"counsel_topic": "谈心", "legal_phone": "13905931234", "township": "双城镇"},
    )
    events, dispatcher = run_action(ActionMainMenu(), tracker)
    assert responses(dispatcher) == ["utter_main_menu"]
    assert events[0] == {"event": "active_loop", "timestamp": None, "name": None}
    assert slot_events(events) == {"requested_slot": None, "counsel_topic": None, "legal_phone": None}


def test_stop_inside_and_outside_a_form() -> None:
    events, dispatcher = run_action(
        ActionStop(),
        make_tracker(
            text="不办了", intent="stop", active_loop="legal_form", slots={"legal_case_topic": "欠薪"}
        ),
    )
    assert responses(dispatcher) == ["utter_stopped_form"]
    assert slot_events(events) == {"requested_slot": None, "legal_case_topic": None}
    events, dispatcher = run_action(ActionStop(), make_tracker(text="算了", intent="stop"))
    assert responses(dispatcher) == ["utter_stopped_nothing"]
    assert events == []


def test_first_miss_shows_the_menu_second_offers_a_person() -> None:
    first = make_tracker(
        text="阿巴阿巴", intent="nlu_fallback", events=[_user("greet"), _user("nlu_fallback")]
    )
    events, dispatcher = run_action(ActionFallback(), first)
    assert responses(dispatcher) == ["utter_fallback_menu"]
    assert events == []
    second = make_tracker(
        text="嗯嗯嗯",
        intent="nlu_fallback",
        events=[_user("greet"), _user("nlu_fallback"), _user("nlu_fallback")],
    )
    events, dispatcher = run_action(ActionFallback(), second)
    assert responses(dispatcher) == ["utter_fallback_offer_handoff"]
    assert slot_events(events) == {"core_offer_handoff": True}
    # understood in between: counting starts again
    again = make_tracker(
        text="嗯嗯",
        intent="nlu_fallback",
        events=[_user("nlu_fallback"), _user("job_search"), _user("nlu_fallback")],
    )
    _, dispatcher = run_action(ActionFallback(), again)
    assert responses(dispatcher) == ["utter_fallback_menu"]


def test_menu_buttons_match_the_domain_menu() -> None:
    import pathlib

    from ruamel.yaml import YAML

    domain = YAML(typ="safe").load(
        pathlib.Path(__file__).parents[2].joinpath("bot/domain/core.yml").read_text(encoding="utf-8")
    )
    in_domain = domain["responses"]["utter_main_menu"][0]["buttons"]
    assert in_domain == menu_buttons()
    assert [b["title"] for b in in_domain] == [
        "找工作",
        "优待证办理/查询",
        "法律援助",
        "预约老战友",
        "政策待遇",
        "服务站",
        "转人工",
    ]
    assert domain["responses"]["utter_fallback_menu"][0]["buttons"] == menu_buttons()
