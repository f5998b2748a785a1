"""Job actions: results at once from the first message, numbered choices, details, subscriptions."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from actions.jobs import ActionJobSearch, ActionJobSubscribe, ActionJobUnsubscribe
from bureau.models import JobStatus, JobSubscription
from tests.actions.helpers import buttons, make_tracker, run_action, slot_events
from tests.services.veteran_records import make_job, make_user


def _search(text: str, entities=None, sender="o-a"):
    return run_action(
        ActionJobSearch(), make_tracker(sender, text=text, intent="job_search", entities=entities or [])
    )


def test_township_and_category_in_the_first_message_give_results_at_once(session_factory):
    with session_factory.begin() as session:
        guard = make_job(
            session, "小区保安", township="双城镇", category="保安", salary_min=3000, salary_max=4000
        )
        make_job(session, "工厂保安", township="富溪镇", category="保安")
        make_job(session, "货车司机", township="双城镇", category="司机")
    events, dispatcher = _search(
        "双城镇有没有保安的工作",
        [{"entity": "township", "value": "双城镇"}, {"entity": "job_category", "value": "保安"}],
    )
    assert slot_events(events) == {"choice": None}
    [message] = dispatcher.messages
    assert (message["response"], message["what"], message["count"]) == ("utter_job_results", "双城镇保安", 1)
    assert message["buttons"] == [
        {
            "title": "小区保安 · 双城镇 · 3000-4000元/月",
            "payload": '/job_search{"choice":"job:' + str(guard.id) + '"}',
        }
    ]


def test_salary_in_the_text_filters(session_factory):
    with session_factory.begin() as session:
        make_job(session, "低薪", salary_min=2000, salary_max=2500)
        make_job(session, "高薪", salary_min=4000, salary_max=6000)
    _, dispatcher = _search("工资4000以上的工作")
    assert [b["title"].split(" · ")[0] for b in buttons(dispatcher)] == ["高薪"]
    assert dispatcher.messages[0]["what"] == "4000元以上"


def test_a_numbered_choice_shows_the_details(session_factory):
    with session_factory.begin() as session:
        job = make_job(
            session,
            "小区保安",
            requirements="55岁以下",
            address="双城镇东门路8号",
            valid_until=dt.date(2099, 6, 30),
        )
        closed = make_job(session, "已招满", status=JobStatus.CLOSED)
    events, dispatcher = _search(
        '/job_search{"choice":"job:' + str(job.id) + '"}', [{"entity": "choice", "value": f"job:{job.id}"}]
    )
    assert slot_events(events) == {"choice": None}
    [message] = dispatcher.messages
    assert message["text"] == (
        "【小区保安】柘荣县某物业公司\n工资：3000-4000元/月\n地点：双城镇 双城镇东门路8号\n要求：55岁以下\n"
        "联系：林经理 13800000000\n截止：6月30日"
    )
    assert message["buttons"][0]["payload"] == '/job_subscribe{"job_category":"保安"}'
    _, dispatcher = _search("x", [{"entity": "choice", "value": f"job:{closed.id}"}])
    assert [m["response"] for m in dispatcher.messages] == ["utter_job_gone"]


def test_no_results_offers_county_wide_and_a_subscription(session_factory):
    with session_factory.begin() as session:
        make_job(session, "小区保安", township="双城镇")
    _, dispatcher = _search(
        "英山有保安吗", [{"entity": "township", "value": "英山"}, {"entity": "job_category", "value": "保安"}]
    )
    [message] = dispatcher.messages
    assert (message["response"], message["what"]) == ("utter_job_none", "英山乡保安")
    assert [b["payload"] for b in message["buttons"]] == [
        '/job_search{"job_category":"保安"}',
        '/job_subscribe{"job_category":"保安","township":"英山乡"}',
        "/main_menu",
    ]


def test_without_filters_the_nearest_of_the_newest_come_first(session_factory):
    same_day = dt.datetime(2030, 2, 1, 9, 0)
    with session_factory.begin() as session:
        make_user(session, "o-a", last_latitude=27.16, last_longitude=119.82)
        make_job(session, "县城", latitude=27.236, longitude=119.90, published_at=same_day)
        make_job(
            session, "英山", township="英山乡", latitude=27.161, longitude=119.821, published_at=same_day
        )
    _, dispatcher = _search("找工作")
    assert [b["title"].split(" · ")[0] for b in buttons(dispatcher)] == ["英山", "县城"]


def test_subscribe_with_preferences_then_unsubscribe(session_factory):
    tracker = make_tracker(
        "o-a",
        intent="job_subscribe",
        text="有双城镇的保安和司机岗位就通知我",
        entities=[
            {"entity": "township", "value": "双城镇"},
            {"entity": "job_category", "value": "保安"},
            {"entity": "job_category", "value": "司机"},
        ],
    )
    events, dispatcher = run_action(ActionJobSubscribe(), tracker)
    assert events == []
    assert (dispatcher.messages[0]["response"], dispatcher.messages[0]["what"]) == (
        "utter_job_subscribed",
        "双城镇的保安、司机岗位",
    )
    with session_factory() as session:
        rows = session.scalars(select(JobSubscription).order_by(JobSubscription.category)).all()
        assert [(r.openid, r.category, r.township) for r in rows] == [
            ("o-a", "保安", "双城镇"),
            ("o-a", "司机", "双城镇"),
        ]
    _, dispatcher = run_action(
        ActionJobSubscribe(), make_tracker("o-a", intent="job_subscribe", text="订阅招聘")
    )
    assert dispatcher.messages[0]["what"] == "全县的各类岗位"
    _, dispatcher = run_action(ActionJobUnsubscribe(), make_tracker("o-a", intent="job_unsubscribe"))
    assert [m["response"] for m in dispatcher.messages] == ["utter_job_unsubscribed"]
    _, dispatcher = run_action(ActionJobUnsubscribe(), make_tracker("o-a", intent="job_unsubscribe"))
    assert [m["response"] for m in dispatcher.messages] == ["utter_job_not_subscribed"]
    with session_factory() as session:
        assert session.scalars(select(JobSubscription)).all() == []


def test_one_user_cannot_unsubscribe_another(session_factory):
    with session_factory.begin() as session:
        make_user(session, "o-b")
        session.add(JobSubscription(openid="o-b", category=None, township=None))
    run_action(ActionJobUnsubscribe(), make_tracker("o-a", intent="job_unsubscribe"))
    with session_factory() as session:
        assert [s.openid for s in session.scalars(select(JobSubscription))] == ["o-b"]


def test_free_text_finds_titles_and_falls_back_to_all_jobs(session_factory):
    with session_factory.begin() as session:
        make_job(session, "叉车司机", category="普工", published_at=dt.datetime(2030, 1, 1))
        make_job(session, "小区保安", published_at=dt.datetime(2030, 1, 2))
    _, dispatcher = _search("有没有开叉车的活")
    assert dispatcher.messages[0]["what"] == "叉车"
    assert [b["title"].split(" · ")[0] for b in buttons(dispatcher)] == ["叉车司机"]
    _, dispatcher = _search("有没有适合退伍军人的工作")
    assert dispatcher.messages[0]["what"] == ""
    assert [b["title"].split(" · ")[0] for b in buttons(dispatcher)] == ["小区保安", "叉车司机"]


def test_a_bare_township_after_a_search_keeps_the_category(session_factory):
    with session_factory.begin() as session:
        make_job(session, "富溪保安", township="富溪镇", category="保安")
        make_job(session, "富溪司机", township="富溪镇", category="司机")
    tracker = make_tracker(
        "o-a",
        text="富溪呢",
        intent="inform",
        entities=[{"entity": "township", "value": "富溪镇"}],
        slots={"job_category": "保安", "township": "富溪镇"},
    )
    _, dispatcher = run_action(ActionJobSearch(), tracker)
    assert dispatcher.messages[0]["what"] == "富溪镇保安"
    assert [b["title"].split(" · ")[0] for b in buttons(dispatcher)] == ["富溪保安"]
    # A new question (job_search) does not inherit the old category from the slot.
    tracker = make_tracker(
        "o-a",
        text="富溪有什么工作",
        intent="job_search",
        entities=[{"entity": "township", "value": "富溪镇"}],
        slots={"job_category": "保安"},
    )
    _, dispatcher = run_action(ActionJobSearch(), tracker)
    assert len(buttons(dispatcher)) == 2
