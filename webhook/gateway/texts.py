"""What the gateway itself says to users (everything else comes from the Rasa assistant)."""

from __future__ import annotations

WELCOME = "欢迎关注！我是退役军人事务局的小助手“战友”。有什么事，直接打字或者说话告诉我就行。"
WELCOME_BACK = "欢迎回来！有什么可以帮您？回复“菜单”看看我能做什么。"
MAIN_MENU_CHOICES: list[tuple[str, str]] = [
    ("找工作", "/job_search"),
    ("办优待证", "/certificate_apply"),
    ("法律援助", "/legal_help"),
    ("预约老战友谈心", "/counseling_book"),
    ("政策咨询", "/benefits_query"),
    ("找工作人员", "/human_handoff"),
]
VOICE_UNCLEAR = "抱歉，没听清您的语音。请再说一遍，或者直接打字告诉我。"
MEDIA_REPLY = (
    "收到了，谢谢！不过我还看不懂图片、视频和链接。\n"
    "我可以帮您：找工作、办优待证、法律援助、预约老战友谈心、查政策、找附近的服务站。\n"
    "请打字或说话告诉我您要办什么，回复“菜单”也可以。"
)
NOT_UNDERSTOOD = "抱歉，我没太明白您的意思。可以换个说法再说一遍，或者回复“菜单”看看我能帮您办什么。"
EMPTY_TEXT = "请问有什么可以帮您？回复“菜单”看看我能做什么。"
RATE_LIMITED = "您发得有点快，请稍等一分钟再发，我会一条一条回复您。"
APOLOGY = (
    "抱歉，小助手暂时无法回答，您的留言已转给工作人员，我们会尽快联系您。"
    "急事请拨打退役军人服务中心电话 {phone}。"
)
ERROR_REPLY = "抱歉，系统出了点问题，请稍后再试。急事请拨打退役军人服务中心电话 {phone}。"
