"""The database briefly unavailable: connects wait for it, cut units of work run again, nothing twice.

PostgreSQL sits behind `FaultProxy` (the server is real; only the network path is cut), as a restart
or failover looks to the application.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from bureau import db
from bureau.models import MessageLog, ProcessedMessage
from wechatsim.faultproxy import FaultProxy


@pytest.fixture
def proxied(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[FaultProxy, sessionmaker]]:
    """A session factory whose every connection goes through a FaultProxy in front of PostgreSQL."""
    monkeypatch.setenv("DB_RETRY_SECONDS", "3")
    url = make_url(pg_url)
    proxy = FaultProxy((url.host or "127.0.0.1", url.port or 5432)).start()
    engine = db.make_engine(url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False))
    try:
        yield proxy, sessionmaker(bind=engine, expire_on_commit=False)
    finally:
        proxy.up()
        engine.dispose()
        proxy.stop()


def _rows(factory: sessionmaker, openid: str) -> int:
    with factory() as session:
        return int(session.scalar(select(func.count()).where(MessageLog.openid == openid)) or 0)


def _degraded(outcome: str) -> float:
    from prometheus_client import REGISTRY

    value = REGISTRY.get_sample_value(
        "zhanyou_degraded_total", {"dependency": "database", "outcome": outcome}
    )
    return value or 0.0


def _log(openid: str) -> MessageLog:
    return MessageLog(openid=openid, direction="in", msg_type="text", content="我想申请优待证")


@pytest.mark.postgres
def test_a_write_during_a_brief_outage_waits_for_the_database_and_lands_once(
    proxied: tuple[FaultProxy, sessionmaker], pg_url: str
) -> None:
    proxy, factory = proxied
    openid = "oOut" + uuid.uuid4().hex[:8]
    assert db.run_transaction(factory, lambda s: s.scalar(select(1))) == 1  # a pooled connection exists
    recovered = _degraded("recovered")
    proxy.down()  # cuts the pooled connection too: pre-ping finds it dead and reconnects
    threading.Timer(1.2, proxy.up).start()
    started = time.monotonic()
    db.run_transaction(factory, lambda s: s.add(_log(openid)), what="test")
    waited = time.monotonic() - started
    assert 1.0 <= waited < 3.5, waited
    assert _rows(db.get_session_factory(pg_url), openid) == 1
    assert _degraded("recovered") == recovered + 1  # zhanyou_degraded_total on /metrics
    # A plain `with factory.begin()` (no run_transaction) waits for the connection the same way.
    proxy.down()
    threading.Timer(0.8, proxy.up).start()
    with factory.begin() as session:
        session.add(_log(openid))
    assert _rows(db.get_session_factory(pg_url), openid) == 2


@pytest.mark.postgres
def test_an_outage_longer_than_the_window_fails_fast_and_writes_nothing(
    proxied: tuple[FaultProxy, sessionmaker], pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DB_RETRY_SECONDS", "1")
    proxy, factory = proxied
    openid = "oLong" + uuid.uuid4().hex[:8]
    proxy.down()
    started = time.monotonic()
    with pytest.raises(OperationalError):
        db.run_transaction(factory, lambda s: s.add(_log(openid)))
    assert time.monotonic() - started < 2.5  # the connect retry and the unit's retry share one window
    proxy.up()
    assert _rows(db.get_session_factory(pg_url), openid) == 0


@pytest.mark.postgres
def test_a_unit_of_work_cut_mid_way_runs_again_and_writes_once(
    proxied: tuple[FaultProxy, sessionmaker], pg_url: str
) -> None:
    proxy, factory = proxied
    openid = "oCut" + uuid.uuid4().hex[:8]
    calls: list[int] = []
    retried: list[int] = []

    def work(session: Session) -> int:
        calls.append(1)
        row = _log(openid)
        session.add(row)
        session.flush()  # the INSERT reached the server, inside the open transaction
        if len(calls) == 1:
            proxy.down()  # the connection dies before COMMIT: the server rolls the INSERT back
            threading.Timer(0.5, proxy.up).start()
            session.execute(select(1))
        return row.id

    row_id = db.run_transaction(factory, work, what="test", on_retry=lambda: retried.append(1))
    assert len(calls) == 2 and retried == [1]
    with db.get_session_factory(pg_url)() as session:
        assert session.scalars(select(MessageLog.id).where(MessageLog.openid == openid)).all() == [row_id]


@pytest.mark.postgres
def test_a_connection_lost_during_commit_is_not_retried(
    proxied: tuple[FaultProxy, sessionmaker], pg_url: str
) -> None:
    """COMMIT may have succeeded when the connection broke: running the unit again could write twice."""
    _proxy, factory = proxied
    openid = "oCommit" + uuid.uuid4().hex[:8]
    calls: list[int] = []

    def lost_after_commit(_session: Any) -> None:
        # The server committed; the answer never came back (what a cut during COMMIT looks like).
        lost = Exception("server closed the connection unexpectedly")
        raise OperationalError("COMMIT", {}, lost, connection_invalidated=True)

    def work(session: Session) -> None:
        calls.append(1)
        session.add(_log(openid))
        event.listen(session, "after_commit", lost_after_commit)

    with pytest.raises(OperationalError) as raised:
        db.run_transaction(factory, work, what="test")
    assert db.is_transient(raised.value)  # an outage, and still not run again
    assert len(calls) == 1
    assert _rows(db.get_session_factory(pg_url), openid) == 1


def test_errors_that_are_not_outages_are_not_retried(session_factory: sessionmaker) -> None:
    key = "msg:" + uuid.uuid4().hex
    db.run_transaction(session_factory, lambda s: s.add(ProcessedMessage(key=key, reply="x")))
    calls: list[int] = []

    def duplicate(session: Session) -> None:
        calls.append(1)
        session.add(ProcessedMessage(key=key, reply="y"))

    with pytest.raises(IntegrityError):
        db.run_transaction(session_factory, duplicate)
    assert calls == [1]
    assert not db.is_transient(ValueError("not a database error"))


def test_an_action_cut_by_an_outage_runs_again_and_answers_once(session_factory: sessionmaker) -> None:
    """The action server's unit of work (BureauAction) retries too; the user reads one answer."""
    from actions.base import BureauAction
    from tests.actions.helpers import make_tracker, run_action

    openid = "oAct" + uuid.uuid4().hex[:8]
    attempts: list[int] = []

    class FileSomething(BureauAction):
        def name(self) -> str:
            return "action_test_file_something"

        def act(self, session: Session, dispatcher: Any, tracker: Any, domain: Any) -> list[Any]:
            attempts.append(1)
            session.add(_log(openid))
            dispatcher.utter_message(text="已登记")
            if len(attempts) == 1:  # what a connection cut before COMMIT raises
                lost = Exception("server closed the connection unexpectedly")
                raise OperationalError("INSERT", {}, lost, connection_invalidated=True)
            return []

    _events, dispatcher = run_action(FileSomething(), make_tracker(sender_id=openid))
    assert len(attempts) == 2
    assert [m.get("text") for m in dispatcher.messages] == ["已登记"]
    assert _rows(session_factory, openid) == 1


@pytest.mark.postgres
@pytest.mark.parametrize("on_driver", [True, False], ids=["straight-on-the-driver", "through-sqlalchemy"])
def test_an_append_on_a_connection_cut_while_idle_runs_again_and_lands_once(
    pg_url: str, on_driver: bool
) -> None:
    """The append engine skips the ping: a pooled connection cut while idle fails the INSERT, which
    then runs again on a new connection once the database is back. With every column given the INSERT
    runs straight on the driver (as the webhook's message log does); with a default left to SQLAlchemy,
    through SQLAlchemy's execution."""
    from sqlalchemy import insert

    from bureau.timeutil import utcnow

    url = make_url(pg_url)
    proxy = FaultProxy((url.host or "127.0.0.1", url.port or 5432)).start()
    engine = db.make_engine(
        url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False),
        isolation_level="AUTOCOMMIT",
        pool_pre_ping=False,
    )
    statement = insert(MessageLog).values(direction="in").returning(MessageLog.id)
    openid = "oApp" + uuid.uuid4().hex[:8]
    row: dict[str, object] = {"openid": openid, "msg_type": "text", "content": "我想申请优待证"}
    if on_driver:
        row.update(unanswered=False, created_at=utcnow())
    assert (db._driver_form(engine, statement, tuple(sorted(row))) is not None) is on_driver
    try:
        first = db.append_row(engine, statement, row, what="test")
        assert _rows(db.get_session_factory(pg_url), openid) == 1  # committed by itself, no COMMIT sent
        proxy.down()  # the pooled connection is cut while idle
        threading.Timer(0.8, proxy.up).start()
        started = time.monotonic()
        second = db.append_row(engine, statement, row, what="test")
        assert 0.6 <= time.monotonic() - started < 3.5
        assert second > first and _rows(db.get_session_factory(pg_url), openid) == 2
    finally:
        proxy.up()
        engine.dispose()
        proxy.stop()
