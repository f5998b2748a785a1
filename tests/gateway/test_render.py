"""Rendering Rasa's responses for WeChat: joining, numbered choices, news, splitting, choice mapping."""

from __future__ import annotations

from webhook.gateway.render import (
    PASSIVE_LIMIT,
    choices_block,
    render,
    resolve_choice,
    split_utf8,
)


def test_texts_are_joined_and_buttons_numbered() -> None:
    outcome = render(
        [
            {"recipient_id": "o", "text": "您好！"},
            {
                "recipient_id": "o",
                "text": "想办什么？",
                "buttons": [{"title": "找工作", "payload": "/job_search"}],
            },
            {
                "recipient_id": "o",
                "buttons": [{"title": '"坏"&<标题>', "payload": "/x"}, {"title": "", "payload": "/y"}],
            },
        ]
    )
    assert outcome.text.startswith(
        '您好！\n\n想办什么？\n1. <a href="weixin://bizmsgmenu?msgmenucontent=找工作&msgmenuid=1">'
    )
    assert '2. <a href="weixin://bizmsgmenu?msgmenucontent=坏标题&msgmenuid=2">' in outcome.text
    assert outcome.choices == [("找工作", "/job_search"), ('"坏"&<标题>', "/x")]
    assert choices_block([("是", "/affirm")]).startswith("请选择：\n1. ")


def test_choice_mapping() -> None:
    choices = [("找工作", "/job_search"), ('坏"标题', "/x")]
    assert resolve_choice("1", choices) == "/job_search"
    assert resolve_choice(" ２。", choices) == "/x"
    assert resolve_choice("找工作", choices) == "/job_search"
    assert resolve_choice("坏标题", choices) == "/x"  # the tapped link sends the sanitised title
    assert resolve_choice("3", choices) == "3"
    assert resolve_choice("菜单", []) == "/main_menu" and resolve_choice("0", choices) == "/main_menu"
    assert resolve_choice("我想找工作", choices) == "我想找工作"


def test_split_respects_bytes_lines_and_characters() -> None:
    text = "\n".join(["甲" * 600, "乙" * 600, "丙" * 10])  # 1800 bytes per long line
    pieces = split_utf8(text)
    assert pieces == ["甲" * 600, "乙" * 600 + "\n" + "丙" * 10]
    one_line = "字" * 1500 + "a"  # 4501 bytes, no line break: cut between characters
    pieces = split_utf8(one_line)
    assert "".join(pieces) == one_line and all(len(p.encode()) <= PASSIVE_LIMIT for p in pieces)
    assert split_utf8("") == [""]


def test_very_long_answers_stop_at_the_quota_with_a_note() -> None:
    outcome = render([{"recipient_id": "o", "text": "\n".join(["长" * 600] * 20)}])
    assert len(outcome.followups) == 5
    assert outcome.followups[-1].endswith("其余部分请拨打服务中心电话咨询。")
    assert all(len(p.encode()) <= PASSIVE_LIMIT for p in [outcome.text, *outcome.followups])


def test_news_only_when_nothing_else_needs_saying() -> None:
    news = render(
        [
            {
                "recipient_id": "o",
                "custom": {
                    "news": {
                        "title": "招聘会",
                        "url": "https://e.invalid/a",
                        "picurl": "https://e.invalid/p.jpg",
                    }
                },
            }
        ]
    )
    assert news.article == {
        "title": "招聘会",
        "description": "",
        "url": "https://e.invalid/a",
        "picurl": "https://e.invalid/p.jpg",
    }
    with_buttons = render(
        [
            {"recipient_id": "o", "image": "https://e.invalid/p.jpg"},
            {"recipient_id": "o", "text": "要报名吗？", "buttons": [{"title": "报名", "payload": "/affirm"}]},
        ]
    )
    assert with_buttons.article is None
    assert (
        '<a href="https://e.invalid/p.jpg">点击查看</a>' in with_buttons.text and "1. <a" in with_buttons.text
    )
    assert render([{"recipient_id": "o", "image": "javascript:alert(1)"}]).empty
