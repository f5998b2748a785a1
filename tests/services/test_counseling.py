"""Counseling bookings: free slots, booking races, cancelling, reminders."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from sqlalchemy import select

from bureau import db
from bureau.models import (
    Booking,
    BookingStatus,
    Campaign,
    CounselingSlot,
    Counselor,
    Delivery,
    Veteran,
    WechatUser,
)
from bureau.services import counseling
from bureau.services.dates import parse_date_expression
from bureau.timeutil import from_local

# Saturday 28 November 2026, 10:00 China time.
NOW = from_local(dt.datetime(2026, 11, 28, 10, 0))


def local(month: int, day: int, hour: int, minute: int = 0) -> dt.datetime:
    return from_local(dt.datetime(2026, month, day, hour, minute))


def _seed(session) -> dict[str, int]:
    wang = Counselor(name="王建国", specialties=["谈心", "心理疏导"], active=True)
    li = Counselor(name="李秀英", specialties=["法律援助", "权益维护"], active=True)
    gone = Counselor(name="赵离职", specialties=["谈心"], active=False)
    session.add_all([wang, li, gone])
    session.flush()
    slots = {
        "past": CounselingSlot(counselor_id=wang.id, starts_at=local(11, 27, 9), ends_at=local(11, 27, 10)),
        "soon": CounselingSlot(
            counselor_id=wang.id, starts_at=local(11, 28, 10, 15), ends_at=local(11, 28, 11)
        ),
        "sun_am": CounselingSlot(
            counselor_id=wang.id,
            starts_at=local(11, 29, 9),
            ends_at=local(11, 29, 10),
            location="县退役军人服务中心",
        ),
        "sun_pm": CounselingSlot(
            counselor_id=wang.id, starts_at=local(11, 29, 15), ends_at=local(11, 29, 16)
        ),
        "mon_am": CounselingSlot(counselor_id=wang.id, starts_at=local(11, 30, 9), ends_at=local(11, 30, 10)),
        "wed_am": CounselingSlot(counselor_id=wang.id, starts_at=local(12, 2, 9), ends_at=local(12, 2, 10)),
        "li_sun": CounselingSlot(counselor_id=li.id, starts_at=local(11, 29, 10), ends_at=local(11, 29, 11)),
        "gone": CounselingSlot(counselor_id=gone.id, starts_at=local(11, 29, 8), ends_at=local(11, 29, 9)),
    }
    session.add_all(slots.values())
    session.flush()
    ids = {name: slot.id for name, slot in slots.items()}
    ids["wang"], ids["li"] = wang.id, li.id
    return ids


@pytest.fixture
def seeded(session_factory) -> dict[str, int]:
    with session_factory.begin() as session:
        return _seed(session)


def test_free_slots_are_future_active_free_and_match_the_topic(session_factory, seeded) -> None:
    with session_factory.begin() as session:
        offers = counseling.free_slots(session, topic="谈心", now=NOW, limit=10)
        assert [o.slot_id for o in offers] == [seeded[k] for k in ("sun_am", "sun_pm", "mon_am", "wed_am")]
        assert offers[0].label == "11月29日(周日) 09:00 王建国（县退役军人服务中心）"
        legal = counseling.free_slots(session, topic="法律援助", now=NOW)
        assert [o.slot_id for o in legal] == [seeded["li_sun"]]
        counseling.book_slot(session, "o-a", seeded["sun_am"], now=NOW)
        again = counseling.free_slots(session, topic="谈心", now=NOW, limit=2)
        assert [o.slot_id for o in again] == [seeded["sun_pm"], seeded["mon_am"]]


def test_date_expressions_narrow_the_offers(session_factory, seeded) -> None:
    with session_factory.begin() as session:
        window = parse_date_expression("明天下午", NOW)
        offers = counseling.find_offers(session, topic="谈心", window=window, now=NOW)
        assert [o.slot_id for o in offers.offers] == [seeded["sun_pm"]]
        assert offers.note is None
        window = parse_date_expression("下周三上午", NOW)
        offers = counseling.find_offers(session, topic="谈心", window=window, now=NOW)
        assert [o.slot_id for o in offers.offers] == [seeded["wed_am"]]


def test_nothing_in_the_window_offers_the_nearest_with_a_note(session_factory, seeded) -> None:
    with session_factory.begin() as session:
        window = parse_date_expression("12月10号", NOW)
        result = counseling.find_offers(session, topic="谈心", window=window, now=NOW)
        assert [o.slot_id for o in result.offers] == [seeded[k] for k in ("sun_am", "sun_pm", "mon_am")]
        assert result.note is not None and "12月10日" in result.note
        # nobody with the specialty: any counselor, said so
        result = counseling.find_offers(session, topic="矛盾调解", now=NOW)
        assert result.offers and result.note is not None and "矛盾调解" in result.note


def test_booking_records_the_bound_veteran_and_the_phone(session_factory, seeded) -> None:
    with session_factory.begin() as session:
        veteran = Veteran(
            name="张建国", id_number_encrypted="x", id_number_hash="h1", id_number_masked="350***"
        )
        session.add(veteran)
        session.flush()
        session.add(WechatUser(openid="o-bound", veteran_id=veteran.id))
        session.flush()
        booking = counseling.book_slot(
            session, "o-bound", seeded["sun_am"], topic="谈心", note="想聊聊", phone="13905931234", now=NOW
        )
        booking_id, veteran_id = booking.id, veteran.id
    with session_factory() as session:
        stored = session.get(Booking, booking_id)
        assert stored is not None
        assert (stored.openid, stored.veteran_id, stored.topic, stored.status) == (
            "o-bound",
            veteran_id,
            "谈心",
            BookingStatus.BOOKED,
        )
        assert stored.note == "联系电话 13905931234；想聊聊"


def test_invalid_bookings_get_a_clear_reason(session_factory, seeded) -> None:
    with session_factory.begin() as session:
        cases = [
            (seeded["past"], "past"),
            (seeded["soon"], "past"),
            (seeded["gone"], "not_found"),
            (999999, "not_found"),
        ]
        for slot_id, code in cases:
            with pytest.raises(counseling.BookingError) as err:
                counseling.book_slot(session, "o-a", slot_id, now=NOW)
            assert err.value.code == code
            assert err.value.reason
        counseling.book_slot(session, "o-a", seeded["sun_am"], now=NOW)
        with pytest.raises(counseling.SlotTaken) as taken:
            counseling.book_slot(session, "o-b", seeded["sun_am"], now=NOW)
        assert "别人约走" in taken.value.reason
        # the same user asking twice gets the same booking, not an error
        assert counseling.book_slot(session, "o-a", seeded["sun_am"], now=NOW).openid == "o-a"
        counseling.book_slot(session, "o-a", seeded["sun_pm"], now=NOW)
        counseling.book_slot(session, "o-a", seeded["mon_am"], now=NOW)
        with pytest.raises(counseling.BookingError) as too_many:
            counseling.book_slot(session, "o-a", seeded["wed_am"], now=NOW)
        assert too_many.value.code == "too_many"
    with session_factory() as session:
        assert len(session.scalars(select(Booking)).all()) == 3


def test_overlapping_bookings_of_one_user_are_refused(session_factory, seeded) -> None:
    with session_factory.begin() as session:
        overlap = CounselingSlot(
            counselor_id=seeded["li"], starts_at=local(11, 29, 9, 30), ends_at=local(11, 29, 10, 30)
        )
        session.add(overlap)
        session.flush()
        counseling.book_slot(session, "o-a", seeded["sun_am"], now=NOW)
        with pytest.raises(counseling.BookingError) as err:
            counseling.book_slot(session, "o-a", overlap.id, now=NOW)
        assert err.value.code == "overlap"


def test_cancel_only_ones_own_future_booking(session_factory, seeded) -> None:
    with session_factory.begin() as session:
        mine = counseling.book_slot(session, "o-a", seeded["sun_am"], now=NOW).id
        theirs = counseling.book_slot(session, "o-b", seeded["sun_pm"], now=NOW).id
        past = Booking(slot_id=seeded["past"], openid="o-a", status=BookingStatus.BOOKED)
        session.add(past)
        session.flush()
        past_id = past.id
    with session_factory.begin() as session:
        with pytest.raises(counseling.BookingError) as err:
            counseling.cancel_booking(session, "o-a", theirs, now=NOW)
        assert err.value.code == "not_found"  # no hint that someone else's booking exists
        with pytest.raises(counseling.BookingError) as err:
            counseling.cancel_booking(session, "o-a", past_id, now=NOW)
        assert err.value.code == "past"
        counseling.cancel_booking(session, "o-a", mine, now=NOW)
        with pytest.raises(counseling.BookingError) as err:
            counseling.cancel_booking(session, "o-a", mine, now=NOW)
        assert err.value.code == "not_live"
    with session_factory() as session:
        assert session.get(Booking, theirs).status == BookingStatus.BOOKED  # type: ignore[union-attr]
        cancelled = session.get(Booking, mine)
        assert (
            cancelled is not None
            and cancelled.status == BookingStatus.CANCELLED
            and cancelled.cancelled_at == NOW
        )
        # the freed slot can be booked again
    with session_factory.begin() as session:
        assert counseling.book_slot(session, "o-c", seeded["sun_am"], now=NOW).openid == "o-c"


def test_my_bookings_lists_only_ones_own_upcoming(session_factory, seeded) -> None:
    with session_factory.begin() as session:
        counseling.book_slot(session, "o-a", seeded["mon_am"], now=NOW)
        counseling.book_slot(session, "o-a", seeded["sun_am"], now=NOW)
        counseling.book_slot(session, "o-b", seeded["sun_pm"], now=NOW)
        session.add(Booking(slot_id=seeded["past"], openid="o-a", status=BookingStatus.BOOKED))
    with session_factory() as session:
        mine = counseling.my_bookings(session, "o-a", now=NOW)
        assert [b.slot_id for b in mine] == [seeded["sun_am"], seeded["mon_am"]]
        assert counseling.describe_booking(mine[0]) == "11月29日(周日) 09:00 王建国，地点：县退役军人服务中心"


def test_reminders_go_out_once_the_day_before(session_factory, seeded) -> None:
    with session_factory.begin() as session:
        sunday = counseling.book_slot(session, "o-a", seeded["sun_am"], topic="谈心", now=NOW).id
        counseling.book_slot(session, "o-b", seeded["wed_am"], now=NOW)  # not yet due
        cancelled = counseling.book_slot(session, "o-c", seeded["sun_pm"], now=NOW)
        counseling.cancel_booking(session, "o-c", cancelled.id, now=NOW)
    with session_factory.begin() as session:
        assert [b.id for b in counseling.due_reminders(session, NOW)] == [sunday]
        assert counseling.send_booking_reminders(session, NOW) == 1
    with session_factory.begin() as session:
        assert counseling.due_reminders(session, NOW) == []
        assert counseling.send_booking_reminders(session, NOW + dt.timedelta(hours=1)) == 0
    with session_factory() as session:
        booking = session.get(Booking, sunday)
        assert booking is not None and booking.reminded_at == NOW
        delivery = session.scalars(select(Delivery)).one()
        assert delivery.openid == "o-a"
        campaign = session.get(Campaign, delivery.campaign_id)
        assert campaign is not None and campaign.kind == "booking_reminder"
        assert campaign.payload["text"].startswith(
            "【预约提醒】您明天约了老战友：11月29日(周日) 09:00 王建国（谈心）"
        )
        assert "取消预约" in campaign.payload["text"]


@pytest.mark.postgres
def test_twenty_users_race_for_one_slot_exactly_one_wins(pg_url) -> None:
    factory = db.get_session_factory(pg_url)
    with factory.begin() as session:
        ids = _seed(session)
    target = ids["sun_am"]
    barrier = threading.Barrier(20, timeout=30)
    results: dict[int, object] = {}

    def contender(n: int) -> None:
        barrier.wait()
        try:
            with factory.begin() as session:
                booking = counseling.book_slot(session, f"o-racer-{n}", target, topic="谈心", now=NOW)
                results[n] = ("won", booking.id)
        except counseling.SlotTaken:
            with factory.begin() as session:
                offers = counseling.find_offers(session, topic="谈心", now=NOW)
                results[n] = ("lost", [o.slot_id for o in offers.offers])

    threads = [threading.Thread(target=contender, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    assert len(results) == 20
    winners = [n for n, r in results.items() if r[0] == "won"]  # type: ignore[index]
    losers = [r for r in results.values() if r[0] == "lost"]  # type: ignore[index]
    assert len(winners) == 1 and len(losers) == 19
    for _, offered in losers:  # type: ignore[misc]
        assert offered == [ids["sun_pm"], ids["mon_am"], ids["wed_am"]]
    with factory() as session:
        live = session.scalars(
            select(Booking).where(Booking.slot_id == target, Booking.status == "booked")
        ).all()
        assert [b.openid for b in live] == [f"o-racer-{winners[0]}"]


def test_check_slot_says_why_a_slot_cannot_be_chosen(session_factory, seeded) -> None:
    with session_factory.begin() as session:
        offer = counseling.check_slot(session, seeded["sun_pm"], now=NOW, openid="o-a")
        assert offer.counselor_name == "王建国" and offer.starts_at == local(11, 29, 15)
        counseling.book_slot(session, "o-a", seeded["sun_pm"], now=NOW)
        with pytest.raises(counseling.SlotTaken):
            counseling.check_slot(session, seeded["sun_pm"], now=NOW, openid="o-b")
        with pytest.raises(counseling.BookingError) as err:
            counseling.check_slot(session, seeded["sun_pm"], now=NOW, openid="o-a")
        assert err.value.code == "already_mine"
        with pytest.raises(counseling.BookingError) as err:
            counseling.check_slot(session, seeded["past"], now=NOW)
        assert err.value.code == "past"


def test_no_reminders_at_night(session_factory, seeded) -> None:
    night = from_local(dt.datetime(2026, 11, 28, 22, 30))
    morning = from_local(dt.datetime(2026, 11, 29, 7, 59))
    with session_factory.begin() as session:
        counseling.book_slot(session, "o-a", seeded["sun_pm"], now=NOW)
    with session_factory.begin() as session:
        assert [b.slot_id for b in counseling.due_reminders(session, night)] == [seeded["sun_pm"]]
        assert counseling.send_booking_reminders(session, night) == 0
        assert counseling.send_booking_reminders(session, morning) == 0
        assert counseling.send_booking_reminders(session, morning + dt.timedelta(minutes=1)) == 1
