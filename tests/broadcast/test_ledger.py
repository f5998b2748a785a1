"""The ledger: disjoint claims, fencing, recovery of dead workers' claims, TEMPLATESENDJOBFINISH."""

from __future__ import annotations

import datetime as dt
import threading

from sqlalchemy import select

from bureau import db
from bureau.broadcast import campaigns, ledger
from bureau.models import Campaign, Delivery, DeliveryStatus
from bureau.timeutil import utcnow
from tests.broadcast.conftest import add_job, add_user


def _campaign(factory, n: int, prefix: str = "u") -> int:
    with factory.begin() as s:
        for i in range(n):
            add_user(s, f"{prefix}{i:04d}", subscriptions=[(None, None)])
        job_id = add_job(s).id
    with factory.begin() as s:
        return campaigns.publish_job(s, job_id, enqueue=False).id


def _statuses(factory, cid: int) -> dict[str, str]:
    with factory.begin() as s:
        return dict(
            s.execute(select(Delivery.openid, Delivery.status).where(Delivery.campaign_id == cid)).all()
        )


def test_claims_are_disjoint_and_skip_paused_and_backed_off_rows(session_factory):
    cid = _campaign(session_factory, 12)
    with session_factory.begin() as s:
        later = s.scalars(select(Delivery).where(Delivery.openid == "u0000")).one()
        later.not_before = utcnow() + dt.timedelta(minutes=5)
    with session_factory.begin() as s:
        a = ledger.claim_batch(s, "wA", 5)
    with session_factory.begin() as s:
        b = ledger.claim_batch(s, "wB", 100)
    ids_a, ids_b = {c.id for c in a}, {c.id for c in b}
    assert len(ids_a) == 5 and len(ids_b) == 6 and not ids_a & ids_b
    assert "u0000" not in {c.openid for c in a + b}  # still backing off
    assert a[0].kind == "job" and "保安员" in a[0].payload["text"] and a[0].subscribed

    cid2 = _campaign(session_factory, 3, prefix="p")
    with session_factory.begin() as s:
        campaigns.pause(s, cid2)
    with session_factory.begin() as s:
        assert ledger.claim_batch(s, "wC", 100) == []
    assert cid != cid2


def test_writes_are_fenced_on_the_claim(session_factory):
    _campaign(session_factory, 1)
    with session_factory.begin() as s:
        (c,) = ledger.claim_batch(s, "wA", 1)
    with session_factory.begin() as s:
        assert not ledger.mark_attempt(s, c.id, "wB", "custom")  # not B's claim
        assert ledger.mark_attempt(s, c.id, "wA", "custom")
        assert not ledger.mark_attempt(s, c.id, "wA", "custom")  # one attempt per claim
    with session_factory.begin() as s:
        assert not ledger.record_outcome(s, c.id, "wB", DeliveryStatus.SENT)
        assert ledger.record_outcome(s, c.id, "wA", DeliveryStatus.SENT, "custom")
    with session_factory.begin() as s:
        row = s.get(Delivery, c.id)
        assert (row.status, row.attempts, row.channel) == (DeliveryStatus.SENT, 1, "custom")


def test_pausing_stops_an_attempt_that_was_claimed_before(session_factory):
    cid = _campaign(session_factory, 1)
    with session_factory.begin() as s:
        (c,) = ledger.claim_batch(s, "wA", 1)
    with session_factory.begin() as s:
        campaigns.pause(s, cid)
    with session_factory.begin() as s:
        assert not ledger.mark_attempt(s, c.id, "wA", "custom")
        assert ledger.release(s, "wA", [c.id]) == 1
    assert _statuses(session_factory, cid) == {"u0000": DeliveryStatus.PENDING}


def test_dead_workers_claims_are_recovered_and_unknown_outcomes_reconciled(session_factory):
    cid = _campaign(session_factory, 4)
    old = utcnow() - dt.timedelta(seconds=120)
    with session_factory.begin() as s:
        claimed = ledger.claim_batch(s, "dead", 4)
        by_openid = {c.openid: c.id for c in claimed}
        for openid, channel in (("u0001", "custom"), ("u0002", "template"), ("u0003", "template")):
            assert ledger.mark_attempt(s, by_openid[openid], "dead", channel)
        for row in s.scalars(select(Delivery).where(Delivery.campaign_id == cid)):
            row.claimed_at = old
            if row.attempt_at:
                row.attempt_at = old
        # u0003's template went out long ago: WeChat's event never came
        s.get(Delivery, by_openid["u0003"]).attempt_at = utcnow() - dt.timedelta(hours=1)
    with session_factory.begin() as s:
        assert ledger.expire_claims(s, lease_seconds=60, template_grace_seconds=600) == (1, 1, 1)
    with session_factory.begin() as s:
        rows = {d.openid: d for d in s.scalars(select(Delivery).where(Delivery.campaign_id == cid))}
        assert rows["u0000"].status == DeliveryStatus.PENDING and rows["u0000"].claimed_by is None
        # a customer-service message has no receipt: taken as delivered, never sent twice
        assert (rows["u0001"].status, rows["u0001"].reason) == (DeliveryStatus.SENT, ledger.UNCONFIRMED)
        assert rows["u0002"].status == DeliveryStatus.SENDING  # waiting for TEMPLATESENDJOBFINISH
        # a template message WeChat never confirmed within the grace time: sent again
        assert (rows["u0003"].status, rows["u0003"].reason) == (DeliveryStatus.PENDING, ledger.NO_RECEIPT)
        assert rows["u0003"].attempt_at is None and rows["u0003"].attempts == 1
    # The event arrives for u0002: its outcome is now known.
    with session_factory.begin() as s:
        assert ledger.record_template_event(s, "u0002", "5001", "failed:user block")
    with session_factory.begin() as s:
        row = s.scalars(select(Delivery).where(Delivery.openid == "u0002")).one()
        assert (row.status, row.reason, row.wechat_msgid) == (DeliveryStatus.FAILED, "user_block", "5001")


def test_claims_of_named_dead_owners_expire_without_waiting_for_the_lease(session_factory):
    cid = _campaign(session_factory, 2)
    with session_factory.begin() as s:
        (a,) = ledger.claim_batch(s, "host:1:dead", 1)
        (b,) = ledger.claim_batch(s, "host:2:alive", 1)
        assert set(ledger.claim_owners(s)) == {"host:1:dead", "host:2:alive"}
    with session_factory.begin() as s:
        assert ledger.expire_claims(s, 60, 600, owners=["host:1:dead"]) == (1, 0, 0)
    statuses = _statuses(session_factory, cid)
    assert statuses[a.openid] == DeliveryStatus.PENDING and statuses[b.openid] == DeliveryStatus.SENDING


def test_template_event_by_msgid_confirms_delivery(session_factory):
    _campaign(session_factory, 1)
    with session_factory.begin() as s:
        (c,) = ledger.claim_batch(s, "w", 1)
        ledger.mark_attempt(s, c.id, "w", "template")
        ledger.record_outcome(s, c.id, "w", DeliveryStatus.SENT, "template", msgid="777")
    with session_factory.begin() as s:
        assert ledger.record_template_event(s, "u0000", "777", "success")
        assert not ledger.record_template_event(s, "nobody", "778", "success")
    with session_factory.begin() as s:
        row = s.get(Delivery, c.id)
        assert (row.status, row.reason) == (DeliveryStatus.SENT, "confirmed")


def test_finished_campaigns_are_closed(session_factory):
    cid = _campaign(session_factory, 1)
    with session_factory.begin() as s:
        (c,) = ledger.claim_batch(s, "w", 1)
        assert ledger.finish_campaigns(s) == []
        ledger.mark_attempt(s, c.id, "w", "custom")
        ledger.record_outcome(s, c.id, "w", DeliveryStatus.SENT, "custom")
    with session_factory.begin() as s:
        assert ledger.finish_campaigns(s) == [cid]
        campaign = s.get(Campaign, cid)
        assert campaign.status == "done" and campaign.finished_at is not None


def test_postgresql_skip_locked_lets_many_workers_claim_concurrently(pg_url):
    factory = db.get_session_factory(pg_url)
    cid = _campaign(factory, 400)
    claims: dict[str, list[int]] = {}
    errors: list[BaseException] = []

    def worker(name: str) -> None:
        mine: list[int] = []
        try:
            for _ in range(200):
                with factory.begin() as s:
                    batch = ledger.claim_batch(s, name, 7, cid)
                if not batch:
                    break
                mine += [c.id for c in batch]
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        claims[name] = mine

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    every = [i for ids in claims.values() for i in ids]
    assert len(every) == 400 and len(set(every)) == 400
    assert sum(1 for ids in claims.values() if ids) >= 2  # the work really was shared
