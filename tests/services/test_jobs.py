"""Job search, nearby jobs and job-notice subscriptions on a real database."""

from __future__ import annotations

import datetime as dt

import pytest

from bureau.models import JobStatus, JobSubscription
from bureau.services import jobs
from tests.services.veteran_records import make_job, make_user

TODAY = dt.date(2030, 3, 1)
LATER = dt.date(2030, 4, 1)


def _titles(rows):
    return [job.title for job in rows]


def test_search_only_open_postings_newest_first(session_factory):
    with session_factory.begin() as session:
        make_job(session, "老保安", valid_until=LATER, published_at=dt.datetime(2030, 2, 1))
        make_job(session, "新保安", valid_until=LATER, published_at=dt.datetime(2030, 2, 20))
        make_job(session, "今天截止", valid_until=TODAY, published_at=dt.datetime(2030, 2, 10))
        make_job(session, "已过期", valid_until=TODAY - dt.timedelta(days=1))
        make_job(session, "草稿", status=JobStatus.DRAFT, valid_until=LATER)
        make_job(session, "已关闭", status=JobStatus.CLOSED, valid_until=LATER)
        make_job(session, "长期招", valid_until=None, published_at=dt.datetime(2030, 1, 5))
    with session_factory() as session:
        assert _titles(jobs.search_jobs(session, today=TODAY)) == ["新保安", "今天截止", "老保安", "长期招"]
        assert _titles(jobs.search_jobs(session, today=TODAY, limit=2)) == ["新保安", "今天截止"]


def test_search_filters_category_township_salary_and_text(session_factory):
    with session_factory.begin() as session:
        make_job(session, "小区保安", township="双城镇", category="保安", salary_min=2800, salary_max=3500)
        make_job(session, "工厂保安", township="富溪镇", category="保安", salary_min=3500, salary_max=4500)
        make_job(
            session,
            "货车司机",
            township="双城镇",
            category="司机",
            salary_min=5000,
            salary_max=7000,
            description="需A2驾照",
        )
        make_job(session, "叉车司机", township="双城镇", category="普工", salary_min=None, salary_max=None)
    today = dt.date.today()
    with session_factory() as session:
        assert _titles(jobs.search_jobs(session, category="保安", township="双城镇", today=today)) == [
            "小区保安"
        ]
        assert set(_titles(jobs.search_jobs(session, category="保安", today=today))) == {
            "小区保安",
            "工厂保安",
        }
        assert set(_titles(jobs.search_jobs(session, min_salary=4000, today=today))) == {
            "工厂保安",
            "货车司机",
        }
        assert _titles(jobs.search_jobs(session, text="A2驾照", today=today)) == ["货车司机"]
        # A category word that is not a category of the list still finds titles.
        assert set(_titles(jobs.search_jobs(session, category="司机", today=today))) == {
            "货车司机",
            "叉车司机",
        }
        assert jobs.search_jobs(session, category="厨师", today=today) == []


def test_same_day_postings_are_ordered_nearest_first(session_factory):
    same_day = dt.datetime(2030, 2, 1, 9, 0)
    with session_factory.begin() as session:
        make_job(session, "远", latitude=27.30, longitude=119.90, published_at=same_day)
        make_job(session, "近", latitude=27.236, longitude=119.90, published_at=same_day)
        make_job(session, "无坐标", published_at=same_day)
    with session_factory() as session:
        found = jobs.search_jobs(session, near=(27.235, 119.90), today=TODAY)
        assert _titles(found) == ["近", "远", "无坐标"]


def test_jobs_near_returns_distances(session_factory):
    with session_factory.begin() as session:
        make_job(session, "一公里", latitude=27.2440, longitude=119.90)
        make_job(session, "十公里", latitude=27.3249, longitude=119.90)
        make_job(session, "过期", latitude=27.235, longitude=119.90, valid_until=TODAY - dt.timedelta(days=1))
    with session_factory() as session:
        near = jobs.jobs_near(session, 27.235, 119.90, today=TODAY)
        assert [(job.title, round(km)) for job, km in near] == [("一公里", 1), ("十公里", 10)]
        assert jobs.jobs_near(session, 999, 0) == []


def test_open_job_hides_closed_or_expired(session_factory):
    with session_factory.begin() as session:
        open_id = make_job(session, "开放").id
        closed_id = make_job(session, "关闭", status=JobStatus.CLOSED).id
    with session_factory() as session:
        assert jobs.open_job(session, open_id).title == "开放"
        assert jobs.open_job(session, closed_id) is None
        assert jobs.open_job(session, 999999) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("工资3000以上的保安", 3000),
        ("4千左右", 4000),
        ("月薪5k", 5000),
        ("五千块", 5000),
        ("两千以上", 2000),
        ("双城镇的保安", None),
        ("月薪不低于4500", 4500),
    ],
)
def test_parse_min_salary(text, expected):
    assert jobs.parse_min_salary(text) == expected


def test_subscribe_replaces_preferences_and_unsubscribe_removes(session_factory):
    with session_factory.begin() as session:
        rows = jobs.subscribe(session, "o-a", ["保安", "司机"], ["双城镇"])
        assert len(rows) == 2
    with session_factory.begin() as session:
        jobs.subscribe(session, "o-a", [], None)
    with session_factory() as session:
        assert [(s.category, s.township) for s in jobs.subscriptions_of(session, "o-a")] == [(None, None)]
    with session_factory.begin() as session:
        assert jobs.unsubscribe(session, "o-a") == 1
        assert jobs.unsubscribe(session, "o-a") == 0
    with session_factory() as session:
        assert jobs.subscriptions_of(session, "o-a") == []


def test_matching_subscribers_respects_preferences_and_follow_state(session_factory):
    with session_factory.begin() as session:
        make_user(session, "o-gone", subscribed=False)
        jobs.subscribe(session, "o-any", [], [])
        jobs.subscribe(session, "o-guard-here", ["保安"], ["双城镇"])
        jobs.subscribe(session, "o-guard-anywhere", ["保安"], [])
        jobs.subscribe(session, "o-driver", ["司机"], [])
        jobs.subscribe(session, "o-other-town", [], ["富溪镇"])
        jobs.subscribe(session, "o-gone", [], [])
        jobs.subscribe(session, "o-twice", ["保安", "司机"], ["双城镇", "富溪镇"])
        job = make_job(session, category="保安", township="双城镇")
        query = jobs.matching_subscribers(session, job)
        openids = list(session.scalars(query))
    assert openids == ["o-any", "o-guard-anywhere", "o-guard-here", "o-twice"]
    with session_factory() as session:
        assert session.query(JobSubscription).filter_by(openid="o-twice").count() == 4


@pytest.mark.parametrize(
    ("text", "keyword"),
    [
        ("有没有开叉车的活", "叉车"),
        ("英山有没有会计岗位", "会计"),
        ("找个看仓库的活", "仓库"),
        ("我想找工作", None),
        ("最近有招聘吗", None),
        ("工资3000以上的工作", None),
    ],
)
def test_free_text_keyword(text, keyword):
    assert jobs.free_text_keyword(text) == keyword
