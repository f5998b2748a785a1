"""The queries that run per message use an index on PostgreSQL, not a scan of a growing table.

Loads a realistic number of rows with generate_series (20k veterans and followers, 10k job postings,
100k logged messages …), ANALYZEs, runs the project's own functions, captures the SQL they emit and
EXPLAINs it. A change that loses an index (or a query no index can serve) fails here.
benchmarks/growth/ measures the same operations with timings at 1k–100k veterans.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import Engine, event, text
from sqlalchemy.orm import Session

from bureau import db
from bureau.broadcast.ledger import record_template_event
from bureau.safety import raise_crisis_alert
from bureau.services import certificate, counseling, handoff, hardship, identity, jobs, legal, users
from bureau.wechat.store import DatabaseStore
from webhook.gateway.state import Claims, RateLimiter

pytestmark = pytest.mark.postgres

GROWING_TABLES = (
    "veterans",
    "wechat_users",
    "job_postings",
    "job_subscriptions",
    "certificate_applications",
    "certificate_events",
    "counseling_slots",
    "bookings",
    "legal_cases",
    "hardship_applications",
    "handoff_tickets",
    "crisis_alerts",
    "deliveries",
    "processed_messages",
    "message_log",
    "key_values",
)
VETERANS = 20_000
OPENID = "oHot{:024d}"
TOWNSHIPS_SQL = "(ARRAY['双城镇','富溪镇','城郊乡','乍洋乡','东源乡','黄柏乡','宅中乡','楮坪乡','英山乡'])"
CATEGORIES_SQL = "(ARRAY['保安','司机','普工','电工','厨师','保洁','仓管','文员'])"


def _openid_sql(expression: str) -> str:
    return f"'oHot' || lpad(({expression})::text, 24, '0')"


LOAD = [
    f"""INSERT INTO veterans (id, name, id_number_encrypted, id_number_hash, id_number_masked, phone, township,
        category, is_demo, created_at, updated_at)
        SELECT i, '张' || i, 'x', encode(sha256(('v' || i)::bytea), 'hex'), '350***********' || lpad((i % 10000)::text,
        4, '0'), '139' || lpad(i::text, 8, '0'), {TOWNSHIPS_SQL}[1 + i % 9], '退役士兵', false, now(), now()
        FROM generate_series(1, {VETERANS}) AS i""",
    f"""INSERT INTO wechat_users (openid, veteran_id, subscribed, bind_failures, created_at, last_interaction_at)
        SELECT {_openid_sql("i")}, CASE WHEN i <= 12000 THEN i END, i % 10 <> 0, 0, now(),
        now() - i * interval '1 minute' FROM generate_series(1, {VETERANS}) AS i""",
    f"""INSERT INTO job_postings (id, title, employer, township, category, salary_min, salary_max, latitude, longitude,
        valid_until, status, is_demo, created_at, published_at, description, requirements)
        SELECT i, {CATEGORIES_SQL}[1 + i % 8] || i, '某公司' || (i % 500), {TOWNSHIPS_SQL}[1 + i % 9],
        {CATEGORIES_SQL}[1 + i % 8], 3000, 4000 + i % 2000, 27.2 + (i % 100) / 1000.0, 119.9 + (i % 77) / 1000.0,
        CASE WHEN i % 8 = 0 THEN current_date + i % 60 ELSE current_date - 10 END,
        CASE WHEN i % 8 = 0 THEN 'open' ELSE 'closed' END, false, now() - i * interval '1 hour',
        now() - i * interval '1 hour', '负责门岗巡逻', '身体健康' FROM generate_series(1, 10000) AS i""",
    f"""INSERT INTO job_subscriptions (openid, category, township, created_at)
        SELECT {_openid_sql("i")}, CASE WHEN i % 3 = 0 THEN NULL ELSE {CATEGORIES_SQL}[1 + i % 8] END,
        CASE WHEN i % 2 = 0 THEN NULL ELSE {TOWNSHIPS_SQL}[1 + i % 9] END, now()
        FROM generate_series(1, 10000) AS i""",
    f"""INSERT INTO message_log (openid, direction, msg_type, content, unanswered, created_at)
        SELECT {_openid_sql(f"1 + i % {VETERANS}")}, CASE WHEN i % 2 = 0 THEN 'in' ELSE 'out' END, 'text',
        '我想找工作', false, now() - i * interval '1 minute' FROM generate_series(1, 60000) AS i""",
    """INSERT INTO processed_messages (key, openid_tag, received_at, reply)
        SELECT 'msg:' || i, 'tag', now() - i * interval '5 seconds', '__done__' FROM generate_series(1, 20000) AS i""",
    f"""INSERT INTO key_values (key, value, expires_at)
        SELECT 'choices:' || {_openid_sql("i")}, '[]', now() + interval '10 minutes'
        FROM generate_series(1, 10000) AS i""",
    f"""INSERT INTO certificate_applications (id, veteran_id, openid, status, submitted_by_family, created_at, updated_at)
        SELECT i, i * 4, CASE WHEN i * 4 <= 12000 THEN {_openid_sql("i * 4")} END,
        CASE WHEN i % 10 = 0 THEN 'submitted' ELSE 'ready_for_pickup' END, false, now(), now()
        FROM generate_series(1, 5000) AS i""",
    """INSERT INTO certificate_events (application_id, to_status, actor, at)
        SELECT 1 + i % 5000, 'submitted', 'test', now() FROM generate_series(1, 10000) AS i""",
    """INSERT INTO counselors (id, name, specialties, active, is_demo)
        SELECT i, '老战友' || i, '["谈心", "法律援助"]', true, false FROM generate_series(1, 5) AS i""",
    """INSERT INTO counseling_slots (id, counselor_id, starts_at, ends_at, location)
        SELECT i, 1 + i % 5, date_trunc('hour', now()) + (i - 4900) * interval '1 hour',
        date_trunc('hour', now()) + (i - 4899) * interval '1 hour', '服务站' FROM generate_series(1, 5000) AS i""",
    f"""INSERT INTO bookings (slot_id, openid, status, created_at)
        SELECT i, {_openid_sql(f"1 + i % {VETERANS}")}, CASE WHEN i % 3 = 0 THEN 'booked' ELSE 'done' END, now()
        FROM generate_series(1, 3000) AS i""",
    f"""INSERT INTO legal_cases (openid, topic, description, contact_phone, status, created_at, updated_at)
        SELECT {_openid_sql("i * 7")}, '欠薪', '欠了工资', '13900000000', 'closed', now(), now()
        FROM generate_series(1, 2000) AS i""",
    f"""INSERT INTO hardship_applications (openid, reason, status, created_at, updated_at)
        SELECT {_openid_sql("i * 9")}, '困难', 'closed', now(), now() FROM generate_series(1, 2000) AS i""",
    f"""INSERT INTO handoff_tickets (openid, message, reason, status, needs_phone_call, created_at, updated_at)
        SELECT {_openid_sql("i * 5")}, '人工', 'user_request', 'closed', false, now(), now()
        FROM generate_series(1, 2000) AS i""",
    f"""INSERT INTO crisis_alerts (openid, message, source, status, created_at)
        SELECT {_openid_sql("i * 6")}, '……', 'keyword', 'closed', now() - i * interval '1 hour'
        FROM generate_series(1, 2000) AS i""",
    """INSERT INTO campaigns (id, kind, title, payload, status, created_at)
        SELECT i, 'job', '岗位' || i, '{}', 'done', now() FROM generate_series(1, 10) AS i""",
    f"""INSERT INTO deliveries (campaign_id, openid, status, attempts, wechat_msgid, updated_at)
        SELECT 1 + i % 10, {_openid_sql("i")}, 'sent', 1, i::text, now() FROM generate_series(1, 20000) AS i""",
]


@contextmanager
def captured_sql(engine: Engine) -> Iterator[list[tuple[str, Any]]]:
    """Every statement the engine sends while inside the block, with its parameters."""
    statements: list[tuple[str, Any]] = []

    def before(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        statements.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", before)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", before)


def scans_of_growing_tables(engine: Engine, statement: str, parameters: Any) -> list[str]:
    with engine.connect() as conn:
        plan = "\n".join(row[0] for row in conn.exec_driver_sql("EXPLAIN " + statement, parameters))
        conn.rollback()
    return [table for table in re.findall(r"Seq Scan on (\w+)", plan) if table in GROWING_TABLES]


@pytest.fixture
def loaded(pg_url: str) -> Engine:
    engine = db.get_engine(pg_url)
    with engine.begin() as conn:
        for statement in LOAD:
            conn.execute(text(statement))
        for table in (
            "veterans",
            "job_postings",
            "certificate_applications",
            "counselors",
            "counseling_slots",
            "campaigns",
        ):
            # Explicit ids above; the ORM's inserts must continue after them.
            conn.execute(
                text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
            )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("ANALYZE")
    return engine


def test_hot_queries_use_indexes_not_scans_of_growing_tables(loaded: Engine, pg_url: str) -> None:
    factory = db.get_session_factory(pg_url)
    openid, bound_veteran_id = OPENID.format(4), 4
    future_slot = 4950
    in_session: dict[str, Callable[[Session], Any]] = {
        "find_veteran_by_id_number": lambda s: identity.find_veteran_by_id_number(s, "350926199001011234"),
        "bind": lambda s: identity.bind(s, openid, "张4", "350926199001011234", "13900000004"),
        "touch_user": lambda s: users.touch_user(s, openid),
        "profile": lambda s: identity.profile(s, openid),
        "applications_of": lambda s: [
            certificate.status_text(a) for a in certificate.applications_of(s, openid)
        ],
        "open_application": lambda s: certificate.open_application(s, bound_veteran_id),
        "search_jobs": lambda s: jobs.search_jobs(s),
        "search_jobs filters": lambda s: jobs.search_jobs(
            s, category="保安", township="双城镇", min_salary=3500
        ),
        "search_jobs text": lambda s: jobs.search_jobs(s, text="司机"),
        "search_jobs near": lambda s: jobs.search_jobs(s, near=(27.23, 119.93)),
        "jobs_near": lambda s: jobs.jobs_near(s, 27.23, 119.93),
        "open_job": lambda s: jobs.open_job(s, 8),
        "subscriptions_of": lambda s: jobs.subscriptions_of(s, openid),
        "find_offers": lambda s: counseling.find_offers(s, topic="谈心"),
        "check_slot": lambda s: counseling.check_slot(s, future_slot, openid=openid),
        "book_slot": lambda s: counseling.book_slot(s, openid, future_slot, topic="谈心"),
        "my_bookings": lambda s: counseling.my_bookings(s, openid),
        "my_cases": lambda s: (legal.my_cases(s, openid), legal.known_phone(s, OPENID.format(7))),
        "hardship open_application_of": lambda s: hardship.open_application_of(s, openid),
        "handoff open_ticket": lambda s: handoff.open_ticket(s, openid, "我要找人工"),
        "raise_crisis_alert": lambda s: raise_crisis_alert(s, openid, "不想活了", "keyword"),
        "record_template_event": lambda s: record_template_event(s, openid, "4", "success"),
        "forget_user": lambda s: users.forget_user(s, openid),
    }
    store = DatabaseStore(factory)
    claims = Claims(factory)
    committing: dict[str, Callable[[], Any]] = {
        "claim": lambda: (claims.claim("msg:hot-1", openid), claims.finish("msg:hot-1", "<xml/>")),
        "claim again": lambda: claims.claim("msg:hot-1", openid),
        "rate limit": lambda: RateLimiter(factory, 20).allow(openid),
        "choices get": lambda: store.get("choices:" + openid),
        "choices set": lambda: store.set("choices:" + openid, "[]", ttl=1800),
    }
    findings: list[str] = []
    checked = 0
    for name in [*in_session, *committing]:
        with captured_sql(loaded) as statements:
            if name in in_session:
                with factory() as session:
                    session.begin()
                    in_session[name](session)
                    session.rollback()
            else:
                committing[name]()
        assert statements, f"{name} ran no SQL"
        for statement, parameters in statements:
            if not re.match(r"\s*(SELECT|UPDATE|DELETE)", statement):
                continue
            checked += 1
            for table in scans_of_growing_tables(loaded, statement, parameters):
                findings.append(f"{name}: Seq Scan on {table}: {' '.join(statement.split())[:300]}")
    assert checked >= 40
    assert findings == []

    # The same data and check find a query no index serves, so this test can fail.
    assert scans_of_growing_tables(
        loaded, "SELECT * FROM veterans WHERE phone = %(p)s", {"p": "13900000004"}
    ) == ["veterans"]
    assert scans_of_growing_tables(
        loaded, "SELECT * FROM message_log WHERE content = %(c)s", {"c": "我想找工作"}
    ) == ["message_log"]
