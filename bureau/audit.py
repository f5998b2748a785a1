"""The audit log: who changed what, when, with the values before and after.

Every change made by staff (and any service acting for them) is recorded with `record`, in the same
transaction as the change itself, so a change and its audit row are committed or lost together.
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy.orm import Session

from bureau import idcard
from bureau.models import AuditLog

# Columns that hold secrets or their derivatives never enter the log, even encrypted.
_NEVER_LOGGED = {"password_hash", "id_number_encrypted", "id_number_hash"}


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return idcard.redact(value)
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_jsonable(v) for v in value]
    return idcard.redact(str(value))


def snapshot(obj: Any, fields: Iterable[str] | None = None) -> dict[str, Any]:
    """The loggable values of a model instance (all its columns, or `fields`), secrets left out."""
    if fields is None:
        fields = [column.key for column in obj.__table__.columns]
    return {name: _jsonable(getattr(obj, name, None)) for name in fields if name not in _NEVER_LOGGED}


def record(
    session: Session,
    actor: str,
    action: str,
    entity: str,
    entity_id: Any,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
) -> AuditLog:
    """Add one audit row to `session` (committed with the caller's transaction).

    `before`/`after` are plain dicts (see `snapshot`); ID-card numbers in them are masked and
    secret columns dropped, so a log reader never sees what the console itself hides.
    """
    row = AuditLog(
        actor=actor[:64],
        action=action[:40],
        entity=entity[:40],
        entity_id=None if entity_id is None else str(entity_id)[:64],
        before=None if before is None else _clean(before),
        after=None if after is None else _clean(after),
    )
    session.add(row)
    session.flush()
    return row


def _clean(values: Mapping[str, Any]) -> dict[str, Any]:
    return {str(k): _jsonable(v) for k, v in values.items() if k not in _NEVER_LOGGED}


def changed(before: Mapping[str, Any], after: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Only the keys whose values differ, for a compact before/after pair."""
    keys = [k for k in after if before.get(k) != after.get(k)]
    return {k: before.get(k) for k in keys}, {k: after.get(k) for k in keys}
