"""Rasa's responses → what WeChat can show: one passive reply plus follow-ups for the customer-service API.

- texts are joined; buttons become numbered choices with tappable `weixin://bizmsgmenu` links;
- an image (`image`) or a link article (`custom: {"news": {title, description, url, picurl}}`) becomes a
  news reply with one article (WeChat allows only one in a reply to a user message) when nothing else
  needs saying; otherwise it is added to the text as a link;
- text longer than PASSIVE_LIMIT UTF-8 bytes is split at line breaks; the rest goes out as follow-ups.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from webhook.gateway.protocol import clean_text

PASSIVE_LIMIT = 2000
MAX_FOLLOWUPS = 5  # WeChat allows 5 customer-service messages per user message
MAIN_MENU_PAYLOAD = "/main_menu"
MENU_WORDS = {"0", "菜单", "主菜单", "目录", "返回", "返回菜单"}
TOO_LONG_NOTE = "\n……内容较多，其余部分请拨打服务中心电话咨询。"


@dataclass
class Outcome:
    """What to answer: a passive text or news reply (or nothing), plus follow-up texts."""

    text: str = ""
    article: dict[str, str] | None = None
    followups: list[str] = field(default_factory=list)
    choices: list[tuple[str, str]] = field(default_factory=list)
    # Rasa's fresh answer: `choices` become the user's pending choices when the reply goes out (stored
    # together with the reply's claim, webhook.gateway.views), replacing the previous ones.
    remember_choices: bool = False

    @property
    def empty(self) -> bool:
        return not self.text and self.article is None

    def all_texts(self) -> list[str]:
        """Every text of the answer in order (for delivery through the customer-service API)."""
        return [t for t in [self.text, *self.followups] if t]


def _safe_title(title: str) -> str:
    # Inside href="…": quotes, ampersands and angle brackets would break the link.
    return re.sub(r'[<>"&\n\r]', "", title).strip()


def choices_block(choices: list[tuple[str, str]], header: str | None = "请选择：") -> str:
    """Numbered, tappable choices; tapping sends the title back, typing the number works too."""
    lines = [header] if header else []
    for number, (title, _payload) in enumerate(choices, start=1):
        safe = _safe_title(title)
        lines.append(
            f'{number}. <a href="weixin://bizmsgmenu?msgmenucontent={safe}&msgmenuid={number}">{safe}</a>'
        )
    lines.append("回复数字即可")
    return "\n".join(lines)


def split_utf8(text: str, limit: int = PASSIVE_LIMIT) -> list[str]:
    """Pieces of at most `limit` UTF-8 bytes, cut at line breaks where possible, never inside a character."""
    pieces: list[str] = []
    current = ""
    for line in text.split("\n"):
        candidate = line if not current else current + "\n" + line
        if len(candidate.encode("utf-8")) <= limit:
            current = candidate
            continue
        if current:
            pieces.append(current)
        current = ""
        while len(line.encode("utf-8")) > limit:
            cut = line.encode("utf-8")[:limit].decode("utf-8", "ignore")
            pieces.append(cut)
            line = line[len(cut) :]
        current = line
    if current or not pieces:
        pieces.append(current)
    return [p for p in pieces if p.strip()] or [""]


def _article_of(message: dict[str, Any]) -> dict[str, str] | None:
    custom = message.get("custom")
    if isinstance(custom, dict) and isinstance(custom.get("news"), dict):
        news = custom["news"]
        if news.get("url") or news.get("title"):
            return {k: str(news.get(k) or "") for k in ("title", "description", "url", "picurl")}
    image = message.get("image")
    if isinstance(image, str) and image.startswith(("http://", "https://")):
        return {"title": "", "description": "", "url": image, "picurl": image}
    return None


def render(responses: list[dict[str, Any]]) -> Outcome:
    """Turn Rasa's responses into an Outcome (see the module docstring)."""
    texts: list[str] = []
    choices: list[tuple[str, str]] = []
    articles: list[dict[str, str]] = []
    for message in responses:
        text = message.get("text")
        if isinstance(text, str) and clean_text(text).strip():
            texts.append(clean_text(text).strip())
        for button in message.get("buttons") or []:
            if isinstance(button, dict) and button.get("title") and button.get("payload"):
                choices.append((clean_text(str(button["title"])), str(button["payload"])))
        article = _article_of(message)
        if article:
            articles.append(article)
    body = "\n\n".join(texts)
    if len(articles) == 1 and not choices and len(body) <= 120:
        article = dict(articles[0])
        article["title"] = article["title"] or (texts[0][:60] if texts else "点击查看")
        if not article["description"] and body != article["title"]:
            article["description"] = body
        return Outcome(article=article)
    for article in articles:
        label = _safe_title(article["title"] or "点击查看")
        body += ("\n" if body else "") + f'<a href="{article["url"]}">{label}</a>'
    if choices:
        block = choices_block(choices, header=None if body else "请选择：")
        body = f"{body}\n{block}" if body else block
    pieces = split_utf8(body)
    if len(pieces) > MAX_FOLLOWUPS + 1:
        pieces = pieces[: MAX_FOLLOWUPS + 1]
        last = pieces[-1]
        while len((last + TOO_LONG_NOTE).encode("utf-8")) > PASSIVE_LIMIT:
            last = last[:-50]
        pieces[-1] = last + TOO_LONG_NOTE
    return Outcome(text=pieces[0], followups=pieces[1:], choices=choices)


def normalize_input(text: str) -> str:
    """Full-width digits and letters to half-width, surrounding spaces and final punctuation removed."""
    return unicodedata.normalize("NFKC", text).strip().rstrip("。.!！")


def resolve_choice(text: str, choices: list[tuple[str, str]]) -> str:
    """What to send Rasa for the user's `text`: a chosen button's payload, the main menu, or the text."""
    normalized = normalize_input(text)
    if normalized in MENU_WORDS:
        return MAIN_MENU_PAYLOAD
    if choices:
        if normalized.isdigit() and 1 <= int(normalized) <= len(choices):
            return choices[int(normalized) - 1][1]
        for title, payload in choices:
            if normalized == normalize_input(title) or normalized == _safe_title(title):
                return payload
    return text
