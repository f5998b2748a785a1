"""Cookie sessions for the staff console only."""

from __future__ import annotations

from flask import Flask, Request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface

# Paths that never use a session: WeChat's pushes carry no cookie, and neither do the probes.
SESSIONLESS_PATHS = frozenset({"/wechat", "/healthz", "/readyz", "/metrics"})


class StaffSessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, not opened for WeChat's pushes or the health checks.

    Opening one builds a signing serializer per request: about 4 % of the webhook's CPU per message in
    the profile (benchmarks/gateway/REPORT.md) for a session nothing there reads. Those requests get
    Flask's null session, which refuses writes loudly instead of setting a cookie."""

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if request.path in SESSIONLESS_PATHS:
            return None  # Flask falls back to make_null_session
        return super().open_session(app, request)
