"""Late binding to the domain services the console calls (written by other engineers).

The console never re-implements a service: it looks the function up when a page needs it, so a missing
one gives the staff member a clear message instead of breaking the whole console.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


class ServiceMissing(RuntimeError):
    """The named service function is not installed; the message names it for the lead."""


def service(dotted: str) -> Callable[..., Any]:
    """The function `bureau.x.y.name` given as 'x.y:name' relative to `bureau.`."""
    module_name, _, attr = dotted.partition(":")
    try:
        module = importlib.import_module(f"bureau.{module_name}")
        func = getattr(module, attr)
    except (ImportError, AttributeError) as exc:
        raise ServiceMissing(f"系统缺少功能 bureau.{module_name}.{attr}，请联系技术人员。") from exc
    return func


def available(dotted: str) -> bool:
    try:
        service(dotted)
    except ServiceMissing:
        return False
    return True
