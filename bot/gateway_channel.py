"""Rasa's REST channel, plus how the message was understood, for the WeChat gateway.

Loaded by Rasa (`.venv-rasa`) from `bot/credentials.yml`; it is served at `/webhooks/gateway/webhook`.
Request and body are exactly those of Rasa's REST channel (`{"sender", "message"}` in, the list of bot
messages out). The intent Rasa recognised comes back in the headers `X-Rasa-Intent` and
`X-Rasa-Intent-Confidence`, so the gateway can file it in its message log without a second request
(reading the tracker back costs Rasa as much CPU as a small turn).

The message is parsed here and handed to Rasa already parsed (`UserMessage.parse_data`), so the NLU runs
once, as it does for the REST channel.
"""

from __future__ import annotations

import logging
from asyncio import CancelledError
from collections.abc import Awaitable, Callable
from typing import Any

from rasa.core.channels.channel import CollectingOutputChannel, UserMessage
from rasa.core.channels.rest import RestInput
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

logger = logging.getLogger(__name__)

INTENT_HEADER = "X-Rasa-Intent"
CONFIDENCE_HEADER = "X-Rasa-Intent-Confidence"


class GatewayInput(RestInput):
    """`POST /webhooks/gateway/webhook`: the REST channel with the parsed intent in response headers."""

    @classmethod
    def name(cls) -> str:
        return "gateway"

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        webhook = Blueprint("gateway_webhook", __name__)

        @webhook.route("/", methods=["GET"])
        async def health(_request: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @webhook.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> HTTPResponse:
            sender_id = await self._extract_sender(request)
            text = self._extract_message(request)
            parse_data = await _parse(request, text)
            collector = CollectingOutputChannel()
            failed = False
            try:
                await on_new_message(
                    UserMessage(
                        text,
                        collector,
                        sender_id,
                        parse_data=parse_data,
                        input_channel=self.name(),
                        metadata=self.get_metadata(request),
                    )
                )
            except CancelledError:
                logger.error("gateway channel: the message timed out")
            except Exception:
                # E.g. the lock or tracker store (Redis) is down. Unlike the REST channel's silent empty
                # answer, say so (503) when nothing was said: the gateway then apologises and keeps the
                # message for staff instead of telling the user it did not understand.
                logger.exception("gateway channel: the message failed")
                failed = True
            status = 503 if failed and not collector.messages else 200
            return response.json(collector.messages, status=status, headers=_intent_headers(parse_data))

        return webhook


async def _parse(request: Request, text: str | None) -> dict[str, Any] | None:
    """The NLU's reading of `text`; None (Rasa parses it itself later) if the agent cannot parse now."""
    agent = getattr(request.app.ctx, "agent", None)
    if agent is None or not text or not agent.is_ready():
        return None
    try:
        return await agent.parse_message(text)
    except Exception:
        logger.exception("gateway channel: parsing failed; Rasa will parse the message itself")
        return None


def _intent_headers(parse_data: dict[str, Any] | None) -> dict[str, str]:
    intent = (parse_data or {}).get("intent") or {}
    name = intent.get("name")
    if not name:
        return {}
    return {INTENT_HEADER: str(name), CONFIDENCE_HEADER: f"{float(intent.get('confidence') or 0.0):.4f}"}
