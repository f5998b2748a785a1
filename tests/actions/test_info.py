"""Information actions answer from the database rows staff edit: policies, loans, merchants, stations."""

from __future__ import annotations

from sqlalchemy.exc import OperationalError

from actions import info
from actions.info import (
    ActionBenefits,
    ActionLoans,
    ActionMerchants,
    ActionReturnRegistration,
    ActionStations,
)
from tests.actions.helpers import buttons, make_tracker, run_action, slot_events
from tests.services.veteran_records import make_merchant, make_policy, make_station, make_user


def _run(action, text="", intent="benefits_query", entities=None, sender="o-a"):
    return run_action(action, make_tracker(sender, text=text, intent=intent, entities=entities or []))


def test_benefit_by_topic_by_choice_and_menu(session_factory):
    with session_factory.begin() as session:
        make_policy(session, "dingqi_buzhu", "定期补助金", "每月发放。", ["定期补助金", "定补"])
        make_policy(session, "yiwubing_youdaijin", "义务兵优待金", "按年发放。", ["义务兵优待金", "优待金"])
        make_policy(session, "certificate_materials", "优待证所需材料", "身份证。", ["优待证材料"])
    events, dispatcher = _run(
        ActionBenefits(), "定补怎么领", entities=[{"entity": "benefit_topic", "value": "定期补助金"}]
    )
    assert slot_events(events) == {"choice": None}
    assert dispatcher.messages[0]["text"] == "【定期补助金】\n每月发放。"
    _, dispatcher = _run(ActionBenefits(), "有什么政策")
    assert dispatcher.messages[0]["response"] == "utter_benefits_menu"
    assert buttons(dispatcher) == [
        {"title": "定期补助金", "payload": '/benefits_query{"choice":"policy:dingqi_buzhu"}'},
        {"title": "义务兵优待金", "payload": '/benefits_query{"choice":"policy:yiwubing_youdaijin"}'},
    ]
    _, dispatcher = _run(
        ActionBenefits(), entities=[{"entity": "choice", "value": "policy:yiwubing_youdaijin"}]
    )
    assert dispatcher.messages[0]["text"] == "【义务兵优待金】\n按年发放。"


def test_an_edit_by_staff_is_what_users_read_next(session_factory):
    with session_factory.begin() as session:
        policy = make_policy(session, "return_registration", "退役报到", "30日内到县退役军人服务中心报到。")
    _, dispatcher = _run(ActionReturnRegistration(), intent="return_registration")
    assert dispatcher.messages[0]["text"] == "【退役报到】\n30日内到县退役军人服务中心报到。"
    with session_factory.begin() as session:
        session.get(type(policy), policy.id).answer = "报到、户口、身份证、社保、医保：一次办好。"
    _, dispatcher = _run(ActionReturnRegistration(), intent="return_registration")
    assert dispatcher.messages[0]["text"] == "【退役报到】\n报到、户口、身份证、社保、医保：一次办好。"


def test_missing_rows_get_a_polite_pointer_not_an_error(db_url):
    for action, intent in ((ActionReturnRegistration(), "return_registration"), (ActionLoans(), "loan_info")):
        _, dispatcher = _run(action, intent=intent)
        assert [m["response"] for m in dispatcher.messages] == ["utter_info_missing"]
    _, dispatcher = _run(ActionBenefits(), "有什么政策")
    assert [m["response"] for m in dispatcher.messages] == ["utter_info_missing"]


def test_loans_answer_what_was_asked(session_factory):
    with session_factory.begin() as session:
        make_policy(session, "loan_yongjundai", "拥军贷", "最高30万元。")
        make_policy(session, "junchuangyuan", "军创园", "免费场地。")
    _, dispatcher = _run(ActionLoans(), "拥军贷要什么条件", intent="loan_info")
    assert dispatcher.messages[0]["text"] == "【拥军贷】\n最高30万元。"
    _, dispatcher = _run(ActionLoans(), "入驻军创园有什么条件", intent="loan_info")
    assert dispatcher.messages[0]["text"] == "【军创园】\n免费场地。"
    _, dispatcher = _run(ActionLoans(), "退伍了想创业", intent="loan_info")
    assert dispatcher.messages[0]["text"] == "【拥军贷】\n最高30万元。\n\n【军创园】\n免费场地。"


def test_merchants_by_category_and_township(session_factory):
    with session_factory.begin() as session:
        make_merchant(session, "老兵饭店", "食", "双城镇", [("凭优待证9折", None)])
        make_merchant(session, "富溪小吃", "食", "富溪镇", [("送饮料", None)])
        make_merchant(session, "同心宾馆", "住", "双城镇", [("房费8折", None)])
    _, dispatcher = _run(ActionMerchants(), "有什么优惠", intent="merchant_discounts")
    assert dispatcher.messages[0]["response"] == "utter_merchant_pick_category"
    assert buttons(dispatcher) == [
        {"title": "食·餐饮", "payload": '/merchant_discounts{"merchant_category":"食"}'},
        {"title": "住·住宿", "payload": '/merchant_discounts{"merchant_category":"住"}'},
    ]
    _, dispatcher = _run(
        ActionMerchants(),
        "富溪吃饭有优惠吗",
        intent="merchant_discounts",
        entities=[{"entity": "township", "value": "富溪"}],
    )
    assert dispatcher.messages[0]["text"] == (
        "拥军优惠·餐饮（凭优待证享受）：\n1. 富溪小吃：送饮料\n   富溪镇 某街1号  0593-8000000"
    )
    _, dispatcher = _run(
        ActionMerchants(),
        "",
        intent="merchant_discounts",
        entities=[{"entity": "merchant_category", "value": "住"}, {"entity": "township", "value": "英山乡"}],
    )
    assert dispatcher.messages[0]["text"].startswith("英山乡暂时没有，下面是全县的：\n拥军优惠·住宿")
    _, dispatcher = _run(
        ActionMerchants(),
        "",
        intent="merchant_discounts",
        entities=[{"entity": "merchant_category", "value": "康"}],
    )
    assert (dispatcher.messages[0]["response"], dispatcher.messages[0]["category"]) == (
        "utter_merchant_none",
        "医疗康养",
    )


def test_stations_by_township_by_location_or_ask(session_factory):
    with session_factory.begin() as session:
        make_station(session, "柘荣县退役军人服务中心", "county", None, 27.2360, 119.9000)
        make_station(session, "英山乡退役军人服务站", "township", "英山乡", 27.1600, 119.8200)
        make_user(session, "o-located", last_latitude=27.161, last_longitude=119.821)
    _, dispatcher = _run(
        ActionStations(), intent="service_station", entities=[{"entity": "township", "value": "英山"}]
    )
    assert dispatcher.messages[0]["text"] == (
        "英山乡的退役军人服务站：\n\n英山乡退役军人服务站\n地址：英山乡某路1号\n电话：0593-8350000\n时间：周一至周五 8:00-17:30"
    )
    _, dispatcher = _run(ActionStations(), intent="service_station", sender="o-located")
    text = dispatcher.messages[0]["text"]
    assert text.startswith("离您最近的服务站：\n\n英山乡退役军人服务站（约0.1公里）")
    assert "柘荣县退役军人服务中心（约11.4公里）" in text
    _, dispatcher = _run(ActionStations(), intent="service_station", sender="o-nowhere")
    assert dispatcher.messages[0]["response"] == "utter_station_pick_township"
    assert len(buttons(dispatcher)) == 9
    assert buttons(dispatcher)[0] == {"title": "双城镇", "payload": '/service_station{"township":"双城镇"}'}
    _, dispatcher = _run(
        ActionStations(), intent="service_station", entities=[{"entity": "township", "value": "乍洋"}]
    )
    assert dispatcher.messages[0]["text"].startswith(
        "乍洋乡暂时没有登记的服务站。可以找县里：\n柘荣县退役军人服务中心"
    )


def test_database_errors_become_an_apology(db_url, monkeypatch):
    def broken(*args, **kwargs):
        raise OperationalError("SELECT 1", {}, Exception("down"))

    monkeypatch.setattr(info.stations, "stations_in_township", broken)
    events, dispatcher = _run(
        ActionStations(), intent="service_station", entities=[{"entity": "township", "value": "英山"}]
    )
    assert (events, [m["response"] for m in dispatcher.messages]) == ([], ["utter_system_error"])


def test_a_bare_township_after_merchant_offers_keeps_the_category(session_factory):
    with session_factory.begin() as session:
        make_merchant(session, "富溪小吃", "食", "富溪镇", [("送饮料", None)])
        make_merchant(session, "富溪宾馆", "住", "富溪镇", [("8折", None)])
    tracker = make_tracker(
        "o-a",
        text="富溪的呢",
        intent="inform",
        entities=[{"entity": "township", "value": "富溪"}],
        slots={"merchant_category": "食"},
    )
    _, dispatcher = run_action(ActionMerchants(), tracker)
    assert dispatcher.messages[0]["text"].startswith("拥军优惠·餐饮（凭优待证享受）：\n1. 富溪小吃")
