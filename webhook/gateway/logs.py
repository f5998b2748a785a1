"""Structured gateway logs: `event=... key=value` lines, OpenIDs as tags, ID numbers masked."""

from __future__ import annotations

import json
import logging
from typing import Any

from bureau import idcard, secrets_box

logger = logging.getLogger("zhanyou.gateway")


def _format(value: Any) -> str:
    text = idcard.redact(str(value))
    if not text or any(c in text for c in ' "=\n\t'):
        return json.dumps(text, ensure_ascii=False)
    return text


def log_event(event: str, openid: str | None = None, level: int = logging.INFO, **fields: Any) -> None:
    """One log line; `openid` is logged only as its pseudonymous tag, free text is redacted."""
    parts = [f"event={event}"]
    if openid:
        parts.append(f"user={secrets_box.openid_tag(openid)}")
    parts.extend(f"{key}={_format(value)}" for key, value in fields.items() if value is not None)
    logger.log(level, " ".join(parts))
