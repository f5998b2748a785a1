"""优待证 applications: one open per veteran (races included), status timeline, staff changes notify."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from bureau.models import Campaign, CertificateApplication, CertificateEvent, CertificateStatus, Delivery
from bureau.services import certificate, identity
from tests.services.veteran_records import ID_LI, ID_ZHANG, make_policy, make_user, make_veteran

SUBMITTED_AT = dt.datetime(2030, 5, 1, 2, 0)  # 10:00 in China


def _bound_veteran(session, openid="o-a", **kwargs):
    veteran = make_veteran(session, **kwargs)
    make_user(session, openid, veteran)
    return veteran


def test_apply_creates_application_with_first_event(session_factory):
    with session_factory.begin() as session:
        veteran = _bound_veteran(session)
        result = certificate.apply(
            session, "o-a", veteran, phone="13905931234", township="双城镇", category=None, now=SUBMITTED_AT
        )
        assert result.outcome == "created"
        app_id = result.application.id
    with session_factory() as session:
        app = session.get(CertificateApplication, app_id)
        assert (app.status, app.category, app.openid, app.submitted_by_family) == (
            "submitted",
            "退役士兵",
            "o-a",
            False,
        )
        assert [(e.from_status, e.to_status) for e in app.events] == [(None, "submitted")]
        assert "o-a" not in app.events[0].actor
        assert certificate.status_text(app) == f"优待证申请（编号{app_id}）：已提交\n· 5月1日 10:00 已提交"


def test_second_application_reports_the_first(session_factory):
    with session_factory.begin() as session:
        veteran = _bound_veteran(session)
        first = certificate.apply(
            session, "o-a", veteran, phone=None, township=None, category=None
        ).application
    with session_factory.begin() as session:
        veteran = identity.bound_veteran(session, "o-a")
        again = certificate.apply(session, "o-a", veteran, phone=None, township=None, category=None)
        assert (again.outcome, again.application.id) == ("existing", first.id)
    with session_factory() as session:
        assert len(session.scalars(select(CertificateApplication)).all()) == 1


def test_under_a_race_the_unique_index_decides(session_factory, monkeypatch):
    with session_factory.begin() as session:
        veteran = _bound_veteran(session)
        first = certificate.apply(
            session, "o-a", veteran, phone=None, township=None, category=None
        ).application
    # The second request checked before the first committed: its check saw nothing.
    real_check = certificate.open_application
    calls = []

    def stale_then_real(session, veteran_id):
        calls.append(veteran_id)
        return None if len(calls) == 1 else real_check(session, veteran_id)

    monkeypatch.setattr(certificate, "open_application", stale_then_real)
    with session_factory.begin() as session:
        veteran = identity.bound_veteran(session, "o-a")
        result = certificate.apply(session, "o-a", veteran, phone=None, township=None, category=None)
        assert (result.outcome, result.application.id) == ("existing", first.id)
    with session_factory() as session:
        assert len(session.scalars(select(CertificateApplication)).all()) == 1
        assert len(session.scalars(select(CertificateEvent)).all()) == 1


def test_a_new_application_is_allowed_after_rejection(session_factory):
    with session_factory.begin() as session:
        veteran = _bound_veteran(session)
        first = certificate.apply(
            session, "o-a", veteran, phone=None, township=None, category=None
        ).application
        certificate.change_status(session, first.id, CertificateStatus.REJECTED, "staff:wang", "照片不清晰")
        again = certificate.apply(session, "o-a", veteran, phone=None, township=None, category=None)
        assert again.outcome == "created" and again.application.id != first.id


def test_change_status_follows_transitions_records_events_and_notifies(session_factory):
    with session_factory.begin() as session:
        veteran = _bound_veteran(session)
        app_id = certificate.apply(
            session, "o-a", veteran, phone=None, township=None, category=None, now=SUBMITTED_AT
        ).application.id
    steps = [
        (CertificateStatus.UNDER_REVIEW, dt.datetime(2030, 5, 2, 1, 0)),
        (CertificateStatus.APPROVED, dt.datetime(2030, 5, 6, 7, 30)),
        (CertificateStatus.READY, dt.datetime(2030, 5, 10, 3, 0)),
    ]
    for to_status, at in steps:
        with session_factory.begin() as session:
            certificate.change_status(session, app_id, to_status, "staff:wang", now=at)
    with session_factory() as session:
        app = session.get(CertificateApplication, app_id)
        assert app.status == "ready_for_pickup"
        assert [(e.from_status, e.to_status, e.actor) for e in app.events][1:] == [
            ("submitted", "under_review", "staff:wang"),
            ("under_review", "approved", "staff:wang"),
            ("approved", "ready_for_pickup", "staff:wang"),
        ]
        assert certificate.status_text(app).splitlines() == [
            f"优待证申请（编号{app_id}）：可领取",
            "· 5月1日 10:00 已提交",
            "· 5月2日 09:00 审核中",
            "· 5月6日 15:30 已通过",
            "· 5月10日 11:00 可领取",
            "请带身份证到乡镇退役军人服务站领取。",
        ]
        campaigns = session.scalars(select(Campaign).order_by(Campaign.id)).all()
        assert [c.kind for c in campaigns] == ["certificate"] * 3
        assert (
            campaigns[-1].payload["text"]
            == f"您的优待证申请（编号{app_id}）有新进展：可领取。请带身份证到乡镇退役军人服务站领取。"
        )
        assert campaigns[-1].payload["template_fields"]["keyword2"] == "可领取"
        assert {d.openid for d in session.scalars(select(Delivery))} == {"o-a"}


@pytest.mark.parametrize(
    ("path", "bad"),
    [
        ([], CertificateStatus.APPROVED),
        ([CertificateStatus.REJECTED], CertificateStatus.UNDER_REVIEW),
        ([CertificateStatus.UNDER_REVIEW], CertificateStatus.READY),
        ([], "lost"),
    ],
)
def test_forbidden_transitions_change_nothing(session_factory, path, bad):
    with session_factory.begin() as session:
        veteran = _bound_veteran(session)
        app_id = certificate.apply(
            session, "o-a", veteran, phone=None, township=None, category=None
        ).application.id
        for step in path:
            certificate.change_status(session, app_id, step, "staff:wang", "材料不全")
    with pytest.raises(certificate.InvalidTransition), session_factory.begin() as session:
        certificate.change_status(session, app_id, bad, "staff:wang")
    with session_factory() as session:
        assert len(session.get(CertificateApplication, app_id).events) == 1 + len(path)
    with pytest.raises(LookupError), session_factory.begin() as session:
        certificate.change_status(session, 987654, CertificateStatus.UNDER_REVIEW, "staff:wang")


def test_rejection_reason_is_shown_and_sent(session_factory):
    with session_factory.begin() as session:
        veteran = _bound_veteran(session)
        app_id = certificate.apply(
            session, "o-a", veteran, phone=None, township=None, category=None
        ).application.id
        certificate.change_status(session, app_id, CertificateStatus.REJECTED, "staff:wang", "照片不清晰")
    with session_factory() as session:
        app = session.get(CertificateApplication, app_id)
        assert certificate.status_text(app).endswith("原因：照片不清晰")
        assert "原因：照片不清晰" in session.scalars(select(Campaign)).one().payload["text"]


def test_a_user_sees_only_their_own_applications(session_factory):
    with session_factory.begin() as session:
        zhang = _bound_veteran(session, "o-zhang")
        li = _bound_veteran(session, "o-li", name="李秀英", id_number=ID_LI, phone="13799876543")
        a = certificate.apply(
            session, "o-zhang", zhang, phone=None, township=None, category=None
        ).application.id
        b = certificate.apply(
            session, "o-family", li, phone=None, township=None, category=None, by_family=True
        ).application.id
        make_user(session, "o-stranger")
    with session_factory() as session:
        assert [x.id for x in certificate.applications_of(session, "o-zhang")] == [a]
        assert [x.id for x in certificate.applications_of(session, "o-li")] == [b]  # filed for her by family
        assert [x.id for x in certificate.applications_of(session, "o-family")] == [b]
        assert certificate.applications_of(session, "o-stranger") == []


def test_family_lookup_needs_matching_name(session_factory):
    with session_factory.begin() as session:
        make_veteran(session)
    with session_factory() as session:
        assert certificate.find_veteran_for_family(session, "张建国", ID_ZHANG).name == "张建国"
        assert certificate.find_veteran_for_family(session, "张三", ID_ZHANG) is None
        assert certificate.find_veteran_for_family(session, "张建国", ID_LI) is None


def test_eligibility_and_materials_come_from_policy_rows(session_factory):
    with session_factory() as session:
        assert certificate.materials_answer(session) is None
        assert certificate.eligibility_answer(session, "军属").startswith("现役军人家属暂不在本局办理")
    with session_factory.begin() as session:
        make_policy(session, "certificate_eligibility", "优待证申领条件", "持有本县户籍的退役军人均可申领。")
        make_policy(session, "certificate_materials", "优待证所需材料", "身份证、退役证、近期照片。")
    with session_factory() as session:
        assert certificate.materials_answer(session) == "身份证、退役证、近期照片。"
        assert (
            certificate.eligibility_answer(session, "烈属")
            == "烈士遗属可以申领《烈士遗属优待证》。\n持有本县户籍的退役军人均可申领。"
        )
        assert certificate.eligibility_answer(session, None) == "持有本县户籍的退役军人均可申领。"
