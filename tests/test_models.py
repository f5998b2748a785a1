"""The bureau's tables on SQLite and PostgreSQL: ID numbers, constraints, migrations."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from bureau import idcard, secrets_box
from bureau.models import (
    Booking,
    BookingStatus,
    CertificateApplication,
    CertificateStatus,
    CounselingSlot,
    Counselor,
    Veteran,
)

VALID_ID = idcard.make_number("350926", dt.date(1975, 3, 8), 123)


def _veteran(number: str = VALID_ID) -> Veteran:
    veteran = Veteran(name="张建国", phone="13905931234", township="双城镇", category="退役士兵")
    veteran.set_id_number(number)
    return veteran


def test_id_number_is_encrypted_at_rest_and_masked(session_factory, db_url):
    with session_factory.begin() as session:
        session.add(_veteran())
    with session_factory() as session:
        stored = session.scalars(select(Veteran)).one()
        assert VALID_ID not in stored.id_number_encrypted
        assert stored.id_number_masked == "350***********" + VALID_ID[-4:]
        assert stored.reveal_id_number() == VALID_ID
        assert VALID_ID not in repr(stored)
        found = session.scalars(
            select(Veteran).where(Veteran.id_number_hash == secrets_box.lookup_hash(VALID_ID))
        ).one()
        assert found.id == stored.id


def test_the_same_id_number_cannot_be_stored_twice(session_factory):
    with session_factory.begin() as session:
        session.add(_veteran())
    with pytest.raises(IntegrityError), session_factory.begin() as session:
        session.add(_veteran(VALID_ID.lower()))


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (VALID_ID[:-1] + ("0" if VALID_ID[-1] != "0" else "1"), "校验位"),
        ("35092619750308123", "18位"),
        ("3509261975030812A4", "数字"),
        ("350926197502301234", "出生日期"),
    ],
)
def test_invalid_id_numbers_are_refused_with_a_reason(text, reason):
    with pytest.raises(idcard.InvalidIdNumber) as excinfo:
        _veteran(text)
    assert reason in excinfo.value.reason


def test_id_number_input_is_normalised():
    spaced = f" {VALID_ID[:6]} {VALID_ID[6:14]} {VALID_ID[14:]} "
    assert idcard.validate(spaced) == VALID_ID
    fullwidth = VALID_ID.translate(str.maketrans("0123456789", "０１２３４５６７８９"))
    assert idcard.validate(fullwidth) == VALID_ID


def test_redact_masks_numbers_inside_text():
    assert idcard.redact(f"我的身份证是{VALID_ID}谢谢") == f"我的身份证是{idcard.mask(VALID_ID)}谢谢"


def test_a_slot_cannot_be_booked_twice_but_can_be_rebooked_after_cancel(session_factory):
    with session_factory.begin() as session:
        counselor = Counselor(name="林老兵", specialties=["谈心"])
        slot = CounselingSlot(
            counselor=counselor,
            starts_at=dt.datetime(2030, 1, 2, 1, 0),
            ends_at=dt.datetime(2030, 1, 2, 2, 0),
        )
        session.add_all([counselor, slot])
        session.flush()
        slot_id = slot.id
        session.add(Booking(slot_id=slot_id, openid="o-first"))
    with pytest.raises(IntegrityError), session_factory.begin() as session:
        session.add(Booking(slot_id=slot_id, openid="o-second"))
    with session_factory.begin() as session:
        first = session.scalars(select(Booking)).one()
        first.status = BookingStatus.CANCELLED
    with session_factory.begin() as session:
        session.add(Booking(slot_id=slot_id, openid="o-second"))
    with session_factory() as session:
        live = session.scalars(select(Booking).where(Booking.status == BookingStatus.BOOKED)).all()
        assert [b.openid for b in live] == ["o-second"]


def test_one_open_certificate_application_per_veteran(session_factory):
    with session_factory.begin() as session:
        veteran = _veteran()
        session.add(veteran)
        session.flush()
        veteran_id = veteran.id
        session.add(CertificateApplication(veteran_id=veteran_id))
    with pytest.raises(IntegrityError), session_factory.begin() as session:
        session.add(CertificateApplication(veteran_id=veteran_id))
    with session_factory.begin() as session:
        session.scalars(select(CertificateApplication)).one().status = CertificateStatus.REJECTED
    with session_factory.begin() as session:
        session.add(CertificateApplication(veteran_id=veteran_id))


@pytest.mark.postgres
def test_concurrent_bookings_of_one_slot_on_postgresql_leave_exactly_one(pg_url):
    import threading

    from bureau.db import get_session_factory

    factory = get_session_factory(pg_url)
    with factory.begin() as session:
        counselor = Counselor(name="陈老兵", specialties=["心理疏导"])
        slot = CounselingSlot(
            counselor=counselor, starts_at=dt.datetime(2030, 2, 1, 1), ends_at=dt.datetime(2030, 2, 1, 2)
        )
        session.add_all([counselor, slot])
        session.flush()
        slot_id = slot.id

    barrier = threading.Barrier(20)
    outcomes: list[str] = []
    lock = threading.Lock()

    def book(n: int) -> None:
        barrier.wait()
        try:
            with factory.begin() as session:
                session.add(Booking(slot_id=slot_id, openid=f"o-racer-{n}"))
            result = "won"
        except IntegrityError:
            result = "lost"
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=book, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(outcomes) == ["lost"] * 19 + ["won"]
    with factory() as session:
        assert len(session.scalars(select(Booking).where(Booking.slot_id == slot_id)).all()) == 1
