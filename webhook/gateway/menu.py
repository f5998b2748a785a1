"""The account's custom menu (three buttons of CLICK keys) and the keys' intents."""

from __future__ import annotations

from typing import Any

# key → (button name, Rasa payload)
MENU_KEYS: dict[str, tuple[str, str]] = {
    "CERT_APPLY": ("优待证办理", "/certificate_apply"),
    "CERT_STATUS": ("办理进度", "/certificate_status"),
    "LEGAL_HELP": ("法律援助", "/legal_help"),
    "HARDSHIP_AID": ("困难帮扶", "/hardship_aid"),
    "BENEFITS": ("政策问答", "/benefits_query"),
    "JOB_SEARCH": ("找工作", "/job_search"),
    "JOB_SUBSCRIBE": ("订阅岗位", "/job_subscribe"),
    "LOAN_INFO": ("创业贷款", "/loan_info"),
    "RETURN_REG": ("返乡报到", "/return_registration"),
    "COUNSELING": ("预约谈心", "/counseling_book"),
    "MERCHANTS": ("优待商家", "/merchant_discounts"),
    "STATIONS": ("服务站", "/service_station"),
    "BIND": ("身份绑定", "/bind_identity"),
    "HUMAN": ("找工作人员", "/human_handoff"),
}

MENU_LAYOUT: list[tuple[str, list[str]]] = [
    ("办事服务", ["CERT_APPLY", "CERT_STATUS", "LEGAL_HELP", "HARDSHIP_AID", "BENEFITS"]),
    ("就业创业", ["JOB_SEARCH", "JOB_SUBSCRIBE", "LOAN_INFO", "RETURN_REG"]),
    ("老战友", ["COUNSELING", "MERCHANTS", "STATIONS", "BIND", "HUMAN"]),
]


def payload_for_key(key: str) -> str:
    """The Rasa message for a menu click; unknown keys open the main menu."""
    entry = MENU_KEYS.get(key.strip())
    return entry[1] if entry else "/main_menu"


def build_menu() -> dict[str, Any]:
    """The body of `cgi-bin/menu/create`."""
    return {
        "button": [
            {
                "name": name,
                "sub_button": [{"type": "click", "name": MENU_KEYS[key][0], "key": key} for key in keys],
            }
            for name, keys in MENU_LAYOUT
        ]
    }
