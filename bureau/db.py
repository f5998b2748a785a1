"""Engines and session factories, created lazily and cached per database URL; retries for short outages.

A database that is briefly unreachable (a restart, a failover, a dropped network path) costs a wait, not a
lost write, in two layers, both bounded by `DB_RETRY_SECONDS` (default 3 s, well under WeChat's 5 s):

- connecting: on PostgreSQL every new connection — including the one `pool_pre_ping` makes when it finds a
  pooled connection dead — is retried with backoff until the window ends. Nothing has been sent to the
  server yet, so this is always safe, and it covers every `with factory.begin()` in the code base;
- `run_transaction(factory, work)`: a unit of work cut mid-way by a disconnect (or a serialization
  failure / deadlock) is rolled back and run again. Never after COMMIT was sent: if the connection breaks
  during COMMIT, whether it committed is unknown, so the error goes to the caller instead of risking a
  second copy of a non-idempotent write. `work` must only touch the database (it may run more than once).
"""

from __future__ import annotations

import contextvars
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from bureau.settings import get_settings

logger = logging.getLogger("zhanyou.db")
T = TypeVar("T")
# Set by run_transaction: a connect inside it retries no longer than the transaction's own window.
_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("zhanyou_db_deadline", default=None)


def retry_seconds() -> float:
    """How long a connection attempt or a unit of work keeps retrying through an outage."""
    try:
        return max(0.0, float(os.environ.get("DB_RETRY_SECONDS", "3")))
    except ValueError:
        return 3.0


class Base(DeclarativeBase):
    """Declarative base of every bureau table."""


_lock = threading.Lock()
_engines: dict[str, Engine] = {}
_factories: dict[str, sessionmaker] = {}


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Foreign keys are off by default in SQLite; WAL lets the webhook, the action server and the
    # worker read while one of them writes; busy_timeout turns lock contention into a short wait.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")  # WAL's usual pairing: no fsync per commit, still crash-safe
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine with the settings each backend needs (no caching)."""
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        kwargs.setdefault("connect_args", {}).setdefault("check_same_thread", False)
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_size", 5)
    kwargs.setdefault("max_overflow", 10)
    if url.startswith("postgresql"):
        # A server that accepts the TCP connection but never answers must not hold a request for long.
        kwargs.setdefault("connect_args", {}).setdefault("connect_timeout", 3)
    engine = create_engine(url, **kwargs)
    event.listen(engine, "do_connect", _connect_with_retry)
    return engine


def _connect_with_retry(dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
    """Open a DBAPI connection, retrying refused/failed connects with backoff for `DB_RETRY_SECONDS`."""
    deadline = time.monotonic() + retry_seconds()
    outer = _deadline.get()
    if outer is not None:
        deadline = min(deadline, outer)
    pause = 0.05
    attempt = 0
    while True:
        attempt += 1
        try:
            connection = dialect.connect(*cargs, **cparams)
        except dialect.loaded_dbapi.OperationalError as exc:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                logger.error("event=db_connect_failed attempts=%d error=%s", attempt, _brief(exc))
                _count("gave_up")
                raise
            if attempt == 1:
                logger.warning("event=db_connect_retry error=%s", _brief(exc))
                _count("retry")
            time.sleep(min(pause, remaining))
            pause = min(pause * 2, 0.5)
            continue
        if attempt > 1:
            logger.warning("event=db_reconnected attempts=%d", attempt)
            _count("recovered")
        return connection


def _count(outcome: str) -> None:
    from bureau import metrics  # lazily: metrics is optional for scripts that only need a session

    metrics.DEGRADED.labels("database", outcome).inc()


def _brief(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:160] or type(exc).__name__


def is_transient(exc: BaseException) -> bool:
    """A failure worth running the unit of work again for: a lost connection, a refused connect, or a
    PostgreSQL serialization failure / deadlock (psycopg's OperationalErrors). SQLite's OperationalErrors
    (no such table, disk full…) are not; its lock waits are handled by busy_timeout."""
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    try:
        import psycopg
    except ImportError:  # pragma: no cover - psycopg is in the app's requirements
        return False
    return isinstance(exc.orig, psycopg.OperationalError)


def run_transaction(
    factory: sessionmaker,
    work: Callable[[Session], T],
    *,
    what: str = "transaction",
    on_retry: Callable[[], None] | None = None,
) -> T:
    """Run `work(session)` in one transaction and commit; retry transient failures before COMMIT.

    Retries within `DB_RETRY_SECONDS` (backoff 0.1 s, 0.2 s, 0.4 s…). `on_retry` is called before each
    new attempt (e.g. to forget messages the failed attempt prepared). A failure during COMMIT itself is
    never retried (see the module docstring); neither is any other error.
    """
    deadline = time.monotonic() + retry_seconds()
    token = _deadline.set(deadline)
    try:
        return _run(factory, work, what, on_retry, deadline)
    finally:
        _deadline.reset(token)


def _run(
    factory: sessionmaker,
    work: Callable[[Session], T],
    what: str,
    on_retry: Callable[[], None] | None,
    deadline: float,
) -> T:
    committing = False

    def once() -> T:
        nonlocal committing
        committing = False
        with factory() as session:
            result = work(session)
            session.flush()
            committing = True
            session.commit()
            return result

    return _retrying(once, what, deadline, on_retry, after_commit=lambda: committing)


def _retrying(
    once: Callable[[], T],
    what: str,
    deadline: float,
    on_retry: Callable[[], None] | None = None,
    after_commit: Callable[[], bool] = lambda: False,
) -> T:
    """Call `once` until it returns; a transient failure before `deadline` means another go, with backoff
    (0.1 s, 0.2 s, 0.4 s…), unless `after_commit()` says COMMIT had been sent (its outcome is unknown)."""
    pause = 0.1
    attempt = 0
    while True:
        attempt += 1
        try:
            result = once()
        except DBAPIError as exc:
            remaining = deadline - time.monotonic()
            committed = after_commit()
            if committed or not is_transient(exc) or remaining <= 0:
                if committed and is_transient(exc):
                    logger.error("event=db_commit_outcome_unknown what=%s error=%s", what, _brief(exc))
                    _count("commit_unknown")
                raise
            logger.warning("event=db_retry what=%s attempt=%d error=%s", what, attempt, _brief(exc))
            _count("retry")
            time.sleep(min(pause, remaining))
            pause = min(pause * 2, 1.0)
            if on_retry is not None:
                on_retry()
            continue
        if attempt > 1:
            logger.warning("event=db_retry_succeeded what=%s attempts=%d", what, attempt)
            _count("recovered")
        return result


def append_row(engine: Engine, statement: Any, params: dict[str, Any], *, what: str = "append") -> Any:
    """Run one INSERT (… RETURNING) on `engine` from `get_append_engine`; returns its first column.

    One round trip: the statement commits itself, and no ping precedes it. A dead pooled connection (a
    database restart) fails the statement, and it runs again on a fresh connection within
    `DB_RETRY_SECONDS`. Only for appends where a second copy is harmless (a log line): a connection that
    breaks after the server ran the statement but before its answer arrived leaves the outcome unknown,
    and the retry may write the row twice — where run_transaction would give up instead.
    """
    row = append_returning(engine, statement, params, what=what)
    return row[0] if row else None


def append_returning(
    engine: Engine, statement: Any, params: dict[str, Any], *, what: str = "append"
) -> tuple[Any, ...] | None:
    """`append_row`, with the whole row the statement returns (None if it returned none)."""
    driver = _driver_form(engine, statement, tuple(sorted(params)))
    if driver is None:

        def once() -> tuple[Any, ...] | None:
            with engine.begin() as connection:
                row = connection.execute(statement, params).first()
                return tuple(row) if row is not None else None

    else:
        values = driver.params(params)

        def once() -> tuple[Any, ...] | None:
            return _execute_on_driver(engine, driver.sql, values)

    deadline = time.monotonic() + retry_seconds()
    token = _deadline.set(deadline)
    try:
        return _retrying(once, what, deadline)
    finally:
        _deadline.reset(token)


class _DriverStatement:
    """An INSERT compiled once for the driver: its SQL, its own fixed values, the types' converters."""

    def __init__(self, statement: Any, sql: str, fixed: dict[str, Any], convert: dict[str, Any]) -> None:
        self.statement = statement  # kept, so that the id in the cache key stays its own
        self.sql = sql
        self.fixed = fixed
        self.convert = convert

    def params(self, given: dict[str, Any]) -> dict[str, Any]:
        values = {**self.fixed, **given}
        for name, convert in self.convert.items():
            values[name] = convert(values[name])
        return values


# Keyed by statement id, dialect and parameter names; None: the statement runs through SQLAlchemy.
_driver_statements: dict[tuple[int, str, tuple[str, ...]], _DriverStatement | None] = {}


def _driver_form(engine: Engine, statement: Any, keys: tuple[str, ...]) -> _DriverStatement | None:
    """`statement` compiled for the driver, once; None where it cannot run there as is (SQLite's
    positional style, a Python-side column default to fill in), which leaves it to SQLAlchemy."""
    key = (id(statement), engine.dialect.name, keys)
    if key not in _driver_statements:
        compiled = statement.compile(dialect=engine.dialect, column_keys=list(keys))
        fixed = {name: value for name, value in compiled.params.items() if name not in keys}
        usable = (
            engine.dialect.paramstyle == "pyformat"
            and not compiled.insert_prefetch
            and all(isinstance(value, (str, int, float, bool)) for value in fixed.values())
        )
        found = _DriverStatement(statement, str(compiled), fixed, dict(compiled._bind_processors))
        with _lock:
            _driver_statements[key] = found if usable else None
    return _driver_statements[key]


def _execute_on_driver(engine: Engine, sql: str, params: dict[str, Any]) -> tuple[Any, ...] | None:
    """Run one statement on a pooled connection straight through the driver (the row it returns).

    For the webhook's one write per message: SQLAlchemy's execution machinery (connection and result
    objects, parameter processing) cost as much CPU as the driver's own work. A failure comes back as
    SQLAlchemy's DBAPIError, the connection invalidated when it was lost, as `_retrying` expects."""
    dbapi = engine.dialect.loaded_dbapi
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        try:
            cursor.execute(sql, params)
            row = cursor.fetchone()
        finally:
            cursor.close()
    except dbapi.Error as exc:
        lost = bool(engine.dialect.is_disconnect(exc, raw.dbapi_connection, None))
        if lost:
            raw.invalidate(exc)
        raw.close()
        raise DBAPIError.instance(
            sql, params, exc, dbapi.Error, connection_invalidated=lost, dialect=engine.dialect
        ) from exc
    raw.close()
    return tuple(row) if row is not None else None


def get_append_engine(url: str | None = None) -> Engine:
    """The engine for `append_row` on `url`: on PostgreSQL a small pool of autocommit connections without
    `pool_pre_ping` (each statement is its own transaction; the caller retries a dead connection), else
    the shared engine. The webhook logs every message through it: the ping and the BEGIN/COMMIT round
    trips were half the cost of the hottest write (benchmarks/gateway/REPORT.md)."""
    url = url or get_settings().database_url
    if not url.startswith("postgresql"):
        return get_engine(url)
    key = url + "#append"
    with _lock:
        engine = _engines.get(key)
        if engine is None:
            engine = _engines[key] = make_engine(
                url, isolation_level="AUTOCOMMIT", pool_pre_ping=False, pool_size=4, max_overflow=4
            )
        return engine


def get_engine(url: str | None = None) -> Engine:
    """The shared engine for `url` (default: DATABASE_URL)."""
    url = url or get_settings().database_url
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            engine = _engines[url] = make_engine(url)
        return engine


def get_session_factory(url: str | None = None) -> sessionmaker:
    """The shared session factory for `url`; use as `with factory.begin() as session:`."""
    url = url or get_settings().database_url
    with _lock:
        factory = _factories.get(url)
    if factory is None:
        factory = sessionmaker(bind=get_engine(url), expire_on_commit=False)
        with _lock:
            _factories.setdefault(url, factory)
            factory = _factories[url]
    return factory


def dispose_all() -> None:
    """Close every pooled connection (tests, and after a fork)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()
        _factories.clear()
