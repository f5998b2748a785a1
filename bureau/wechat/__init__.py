"""The WeChat server API client; see `bureau.wechat.client` for the interface and error classes."""

from bureau.wechat.client import (
    UNKNOWN_OUTCOME,
    WeChatApiError,
    WeChatClient,
    get_client,
    in_service_window,
    reset_client,
)

__all__ = [
    "UNKNOWN_OUTCOME",
    "WeChatApiError",
    "WeChatClient",
    "get_client",
    "in_service_window",
    "reset_client",
]
