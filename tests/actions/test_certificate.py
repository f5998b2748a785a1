"""优待证 actions: questions answered from policy rows, the form, one open application, own status only."""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from actions.certificate import ActionCertStart, ActionCertStatus, ActionCertSubmit, ValidateCertificateForm
from bureau.models import CertificateApplication
from bureau.services import certificate
from tests.actions.helpers import buttons, make_tracker, run_action, run_action_async, slot_events
from tests.services.veteran_records import ID_LI, ID_ZHANG, make_policy, make_user, make_veteran

FORM_SLOTS = ["cert_name", "cert_id_number", "cert_phone", "cert_township", "cert_category"]
DOMAIN = {"forms": {"certificate_form": {"required_slots": FORM_SLOTS}}}
CLEARED = {slot: None for slot in FORM_SLOTS} | {
    "cert_family": None,
    "cert_failures": 0,
    "cert_gave_up": None,
}


def _start(sender="o-a", text="我要申请优待证", entities=None):
    tracker = make_tracker(sender, intent="certificate_apply", text=text, entities=entities or [])
    return run_action(ActionCertStart(), tracker)


def _submit(sender, **slots):
    return run_action(ActionCertSubmit(), make_tracker(sender, slots=slots))


def _bound(session, openid="o-a", **kwargs):
    veteran = make_veteran(session, **kwargs)
    make_user(session, openid, veteran)
    return veteran


def test_unbound_user_is_asked_to_bind_first_with_a_family_option(db_url):
    events, dispatcher = _start()
    assert slot_events(events) == {"choice": None, "cert_ready": False}
    [message] = dispatcher.messages
    assert (message["response"], message["family_payload"]) == (
        "utter_ask_bind_first",
        '/certificate_apply{"choice":"family"}',
    )


def test_materials_and_eligibility_questions_are_answered_from_policy_rows(session_factory):
    with session_factory.begin() as session:
        make_policy(session, "certificate_materials", "优待证所需材料", "身份证、退役证、近期白底照片。")
        make_policy(session, "certificate_eligibility", "优待证申领条件", "本县户籍退役军人可申领。")
    events, dispatcher = _start(text="办优待证需要什么材料")
    assert slot_events(events)["cert_ready"] is False
    assert dispatcher.messages[0]["text"] == "身份证、退役证、近期白底照片。"
    assert buttons(dispatcher) == [{"title": "我要申请", "payload": '/certificate_apply{"choice":"apply"}'}]
    _, dispatcher = _start(
        text="烈属能不能办优待证", entities=[{"entity": "veteran_category", "value": "烈属"}]
    )
    assert dispatcher.messages[0]["text"] == "烈士遗属可以申领《烈士遗属优待证》。\n本县户籍退役军人可申领。"


def test_bound_user_form_starts_with_the_record_prefilled(session_factory):
    with session_factory.begin() as session:
        _bound(session)
    events, dispatcher = _start(
        text="申请优待证 我现在住富溪", entities=[{"entity": "township", "value": "富溪"}]
    )
    assert dispatcher.messages == []
    assert slot_events(events) == CLEARED | {
        "choice": None,
        "cert_family": False,
        "cert_phone": "13905931234",
        "cert_township": "富溪镇",
        "cert_category": "退役士兵",
        "cert_ready": True,
    }


def test_submit_then_a_second_application_tells_the_status_of_the_first(session_factory):
    with session_factory.begin() as session:
        _bound(session)
    events, dispatcher = _submit(
        "o-a", cert_phone="13905931234", cert_township="双城镇", cert_category="退役士兵", cert_family=False
    )
    assert slot_events(events) == CLEARED | {"cert_ready": None}
    [message] = dispatcher.messages
    with session_factory() as session:
        app = session.scalars(select(CertificateApplication)).one()
        first_status = certificate.status_text(app)
    assert (message["response"], message["number"], message["phone"], message["township"]) == (
        "utter_cert_submitted",
        app.id,
        "139****1234",
        "双城镇",
    )
    events, dispatcher = _start()
    assert slot_events(events) == {"choice": None, "cert_ready": False}
    assert [(m["response"], m["status"]) for m in dispatcher.messages] == [
        ("utter_cert_existing", first_status)
    ]
    assert first_status.startswith(f"优待证申请（编号{app.id}）：已提交\n· ")


def test_family_member_files_for_a_veteran_on_the_roster(session_factory):
    with session_factory.begin() as session:
        veteran_id = make_veteran(session).id
    events, dispatcher = _start(
        sender="o-son", text="家属代办", entities=[{"entity": "choice", "value": "family"}]
    )
    assert [m["response"] for m in dispatcher.messages] == ["utter_cert_family_intro"]
    assert slot_events(events)["cert_family"] is True and slot_events(events)["cert_ready"] is True
    form = dict(cert_family=True, cert_phone="13799876543", cert_township="双城镇", cert_category="退役士兵")
    _, dispatcher = _submit("o-son", cert_name="张建民", cert_id_number=ID_ZHANG, **form)
    assert [m["response"] for m in dispatcher.messages] == ["utter_cert_family_not_found"]
    _, dispatcher = _submit("o-son", cert_name="张建国", cert_id_number=ID_ZHANG, **form)
    assert [m["response"] for m in dispatcher.messages] == ["utter_cert_submitted"]
    with session_factory() as session:
        app = session.scalars(select(CertificateApplication)).one()
        assert (app.veteran_id, app.openid, app.submitted_by_family) == (veteran_id, "o-son", True)
    # Someone else who knows the name and number learns only that an application exists.
    _, dispatcher = _submit("o-neighbour", cert_name="张建国", cert_id_number=ID_ZHANG, **form)
    assert [m["response"] for m in dispatcher.messages] == ["utter_cert_family_existing"]
    assert "status" not in dispatcher.messages[0]


def test_status_shows_only_the_users_own_application(session_factory):
    with session_factory.begin() as session:
        zhang = _bound(session, "o-zhang")
        _bound(session, "o-li", name="李秀英", id_number=ID_LI, phone="13799876543")
        app = certificate.apply(
            session, "o-zhang", zhang, phone=None, township=None, category=None
        ).application
        certificate.change_status(session, app.id, "under_review", "staff:wang")
    _, dispatcher = run_action(ActionCertStatus(), make_tracker("o-zhang", intent="certificate_status"))
    text = dispatcher.messages[0]["text"]
    assert text.startswith(f"优待证申请（编号{app.id}）：审核中\n· ") and text.count("\n· ") == 2
    _, dispatcher = run_action(ActionCertStatus(), make_tracker("o-li", intent="certificate_status"))
    assert [m["response"] for m in dispatcher.messages] == ["utter_cert_none"]
    assert str(app.id) not in str(dispatcher.messages)
    _, dispatcher = run_action(ActionCertStatus(), make_tracker("o-stranger", intent="certificate_status"))
    assert [m["response"] for m in dispatcher.messages] == ["utter_cert_none_unbound"]
    assert buttons(dispatcher)[0]["payload"] == "/bind_identity"


def _validate(slot, value, failures=0, family=True):
    tracker = make_tracker(
        "o-a",
        slots={slot: value, "cert_failures": failures, "cert_family": family},
        intent="inform",
        text=value,
        active_loop="certificate_form",
        requested_slot=slot,
        events=[{"event": "user", "text": value}, {"event": "slot", "name": slot, "value": value}],
    )
    return asyncio.run(run_action_async(ValidateCertificateForm(), tracker, DOMAIN))


def test_form_validation_reasons_and_next_slot(db_url):
    events, dispatcher = _validate("cert_phone", "0593", family=False)
    assert slot_events(events) == {"cert_phone": None, "cert_failures": 1, "requested_slot": "cert_phone"}
    assert dispatcher.messages[0]["reason"].startswith("电话号码格式不对")
    events, _ = _validate("cert_phone", "13905931234", family=False)
    assert slot_events(events) == {
        "cert_phone": "13905931234",
        "cert_failures": 0,
        "requested_slot": "cert_township",
    }
    # Family route: all five slots, in the domain's order, which Rasa's form requests itself.
    events, _ = _validate("cert_phone", "13905931234", family=True)
    assert slot_events(events) == {"cert_phone": "13905931234", "cert_failures": 0}
    events, dispatcher = _validate("cert_township", "福州", failures=1)
    assert slot_events(events)["cert_failures"] == 2
    assert dispatcher.messages[0]["reason"].startswith("没找到这个乡镇")
    events, dispatcher = _validate("cert_category", "学生", failures=2)
    assert slot_events(events) == {
        "cert_category": None,
        "cert_failures": 0,
        "cert_gave_up": True,
        "requested_slot": None,
    }
    assert [m["response"] for m in dispatcher.messages] == ["utter_form_offer_human"]
    assert "/human_handoff" in [b["payload"] for b in buttons(dispatcher)]
    events, dispatcher = _submit("o-a", cert_gave_up=True)
    assert dispatcher.messages == [] and slot_events(events) == CLEARED | {"cert_ready": None}


def test_invalid_id_number_in_the_family_route(db_url):
    events, dispatcher = _validate("cert_id_number", "35092619750308")
    assert slot_events(events)["cert_id_number"] is None
    assert dispatcher.messages[0]["reason"] == "身份证号应为18位，您输入的是14位"
    events, _ = _validate("cert_id_number", ID_ZHANG)
    assert slot_events(events)["cert_id_number"] == ID_ZHANG


def test_a_category_without_a_certificate_is_told_so_and_nothing_is_filed(session_factory):
    with session_factory.begin() as session:
        _bound(session, category="军属")
    _, dispatcher = _start(
        text="我是军属 申请优待证", entities=[{"entity": "veteran_category", "value": "军属"}]
    )
    assert dispatcher.messages[0]["text"].startswith("现役军人家属暂不在本局办理优待证")
    _, dispatcher = _start(
        text="我是退役士兵 想办优待证", entities=[{"entity": "veteran_category", "value": "退役士兵"}]
    )
    assert dispatcher.messages == []  # an eligible category goes straight to the form
    events, dispatcher = _submit(
        "o-a", cert_phone="13905931234", cert_township="双城镇", cert_category="军属"
    )
    assert dispatcher.messages[0]["text"].startswith("现役军人家属暂不在本局办理优待证")
    assert slot_events(events) == CLEARED | {"cert_ready": None}
    with session_factory() as session:
        assert session.scalars(select(CertificateApplication)).all() == []
