"""Request IDs on log lines: a context variable every log record of this process is stamped with.

`install()` makes every `LogRecord` carry `record.request_id` ("-" outside a request), so any handler's
format can show it (`%(request_id)s`). The webhook sets the id per request (`webhook.request_id`);
`ContextThreadPool` carries it into worker threads, so work a request hands to a pool (a late answer
sent through the customer-service API) logs under the same id.
"""

from __future__ import annotations

import contextvars
import logging
import re
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

NO_REQUEST = "-"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s rid=%(request_id)s %(message)s"
_VALID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("zhanyou_request_id", default=NO_REQUEST)

_installed = False
_install_lock = threading.Lock()


def new_request_id() -> str:
    return uuid.uuid4().hex


def accept_request_id(header: str | None) -> str:
    """The caller's id when it is a sane token (letters, digits, `._:-`, ≤ 64), else a new one."""
    if header and _VALID.match(header.strip()):
        return header.strip()
    return new_request_id()


def current() -> str:
    return request_id.get()


def install() -> None:
    """Stamp `request_id` on every log record of this process (idempotent)."""
    global _installed
    with _install_lock:
        if _installed:
            return
        previous = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            record.request_id = request_id.get()
            return record

        logging.setLogRecordFactory(factory)
        _installed = True


class ContextThreadPool(ThreadPoolExecutor):
    """A thread pool whose tasks run in a copy of the submitter's context (its request id included)."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        context = contextvars.copy_context()
        return super().submit(context.run, fn, *args, **kwargs)
