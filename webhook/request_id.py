"""Every request gets an id: the caller's `X-Request-ID` when sane, else a new one.

It is on every log line of the request (see `bureau.logcontext`), in the response's `X-Request-ID`
header, and travels with work the request hands to the gateway's thread pool.
"""

from __future__ import annotations

import contextvars

from flask import Flask, Response, g, request

from bureau import logcontext

HEADER = "X-Request-ID"


def _begin() -> None:
    rid = logcontext.accept_request_id(request.headers.get(HEADER))
    g.request_id = rid
    g.request_id_token = logcontext.request_id.set(rid)


def _stamp(response: Response) -> Response:
    rid = g.get("request_id")
    if rid:
        response.headers[HEADER] = rid
    return response


def _end(_exc: BaseException | None = None) -> None:
    token: contextvars.Token[str] | None = g.pop("request_id_token", None)
    if token is not None:
        try:
            logcontext.request_id.reset(token)
        except ValueError:  # set in another context (should not happen): just clear it
            logcontext.request_id.set(logcontext.NO_REQUEST)


def init_app(app: Flask) -> None:
    logcontext.install()
    app.before_request(_begin)
    app.after_request(_stamp)
    app.teardown_request(_end)
