"""The crisis safety net: recognise self-harm talk, answer it at once, and alert a person.

Used by the gateway (before and whatever Rasa does) and by the crisis action. Over-inclusive on
purpose: a false alarm costs a staff member a phone call, a missed one may cost a life. Everyday
hyperbole ("气死我了", "笑死", "累死了", "想死你了") is not a crisis.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata

from sqlalchemy import select
from sqlalchemy.orm import Session

from bureau import idcard, secrets_box
from bureau.models import CaseStatus, CrisisAlert, StaffUser
from bureau.notifications import notify_user
from bureau.timeutil import format_local, utcnow

CRISIS_REPLY = (
    "您不是一个人，我们都在您身边。\n"
    "请马上拨打24小时心理援助热线 12356，有人会认真听您说。\n"
    "如果有危险，请立刻拨打 120（急救）或 110（报警）。\n"
    "老战友工作室的同志会尽快联系您。现在请先待在安全的地方，告诉身边的家人或朋友来陪着您。"
)

# Alerts from one user within this window are one situation: staff get one alert that grows.
ALERT_MERGE_WINDOW = dt.timedelta(minutes=10)
_MAX_ALERT_TEXT = 4000

# Traditional forms and common look-alikes, mapped before matching.
_CHAR_MAP = str.maketrans(
    {
        "殺": "杀",
        "輕": "轻",
        "樓": "楼",
        "遺": "遗",
        "書": "书",
        "結": "结",
        "藥": "药",
        "農": "农",
        "撐": "撑",
        "弔": "吊",
        "盡": "尽",
        "斷": "断",
        "燒": "烧",
        "搂": "楼",  # 跳搂: a frequent slip of the pinyin keyboard
        "刹": "杀",  # 自刹/自煞: same sound
        "煞": "杀",
        "碗": "腕",  # 割碗
        "相": "想",  # 不相活了
        "向": "想",  # 不向活了
    }
)
# Everything that is not a letter, digit or Han character is dropped, so "不 想 活" and "不…想…活" match.
_NOISE = re.compile(r"[^0-9a-z\u4e00-\u9fff]+")

# "想死你了" (miss you terribly) and friends are affection, not despair.
_NOT_CRISIS = re.compile(r"想死(你|您|我们|你们|大家|他|她|它|宝宝|人了)|想死我了")

_NEG = "(不|毋|唔|莫|冇|无|没|不太|不大|不怎么|一点都不|真不|实在不)"
_CRISIS_PATTERNS = [
    # not wanting to live
    _NEG + r"想(再)?(继续)?(活|生存)(?!动|儿|计|泼|跃|络|该|干|期|塞)",
    r"不想再活",
    r"不活了",
    r"活不(下去|成了|了了)",
    r"没法活了",
    r"过不下去了?.{0,4}(死|活)",
    r"活(着|得)(真|好|太|还|也|都)?(没|没有|有什么|有啥|还有啥|还有什么|啥)(意思|意义|劲|盼头|用)",
    r"(人生|活着|日子)(已经|真的|都)?(没|没有)(意义|意思|盼头|希望)",
    r"活(够|腻)了",
    r"活着(好|太|真|真的|实在)累",
    r"不想(再)?撑",
    r"不想或了",
    r"不想(再)?醒",
    r"别再睁开",
    r"想(彻底|永远)?解脱",
    r"想(从这个世界)?消失",
    r"没(有)?什么(好|值得)留恋",
    r"生不如死",
    r"生无可恋",
    r"没有?活路",
    r"没有?活下去的",
    # wanting to die
    r"想死",
    r"想si(?![a-z])",
    r"(我|我要|我想|只能|只好|准备|打算|干脆)去死",
    r"想去死",
    r"去死算了",
    r"想着.{0,3}死",
    r"我死了.{0,8}(轻松|解脱|好过|省心|清净)",
    r"(撞死|淹死|摔死|撞墙)算了",
    r"把自己(烧|吊|淹|弄死|杀)",
    r"结束(这|所有)?(种|些)?痛苦",
    r"寻死",
    r"求死",
    r"让我死",
    r"死了(就|也|倒|才|反而)?(算了|算球|好了|拉倒|干净|解脱|轻松)",
    r"不如(去)?死",
    r"(拖累|对不起).{0,8}(走了|要走)",
    r"(要走了|准备走了).{0,6}对不起",
    r"来世再(做|见|报)",
    r"活着.{0,10}没意思",
    r"拿刀.{0,3}割",
    r"(再见|保重).{0,10}不会再(麻烦|打扰)|不会再(麻烦|打扰).{0,10}(再见|保重)",
    r"东西.{0,6}分给.{0,12}用不着",
    r"死给(他|她|你)们?看",
    r"一死了之",
    r"一了百了",
    r"死在(他|她)们",
    # explicit acts and means
    r"自杀",
    r"自sha",
    r"zisha",
    r"buxianghuo",
    r"自尽",
    r"自残",
    r"自缢",
    r"自刎",
    r"自焚",
    r"轻生",
    r"寻短见",
    r"想不开",
    r"自我了断",
    r"了(结|断)(自己|生命|此生|残生)",
    r"了此残生",
    r"结束(自己的?|我的?)?(生命|性命|这一切|一切)",
    r"跳(楼|河|江|海|桥|崖|湖|水库|下去)",
    r"卧轨",
    r"割(腕|脉|手)",
    r"上吊",
    r"吊颈",
    r"吊死",
    r"烧炭",
    r"(喝|吃|食|啉|吞|买)(了)?(农药|敌敌畏|百草枯|老鼠药|鼠药|毒药)",
    r"农药(买|准备)好",
    r"敌敌畏|百草枯",
    r"(?<!不)想喝药",
    r"(绳子|药).{0,3}(准备|买|攒)好",
    r"安眠药.{0,2}睡过去",
    r"(在|站在|爬上|爬到)楼顶",
    r"(一|整)(瓶|把)安眠药",
    r"(攒|吞|吃光)(了)?.{0,3}安眠药",
    r"服毒",
    r"伤害自己",
    r"同归于尽",
    # farewells and giving up
    r"遗书",
    r"遗言",
    r"(交代|安排)(好)?(了)?后事",
    r"后事.{0,3}(交代|安排)",
    r"撑不(下去|住了)",
    r"熬不下去",
    r"坚持不下去了",
    r"扛不住了",
    r"(离开|告别)这个世界",
    r"从这个世界消失",
    r"再见了?这个世界",
    r"下辈子再(见|还|做)",
    r"永别了",
    r"不想再醒",
    r"永远睡(下去|过去|着)",
    r"最后一(条|次).{0,4}消息",
    r"(陪|去找|去见).{0,6}(牺牲|走了|地下)的?战友(?!的?(墓|坟|家|亲|遗|父|母|老|孩|子|名|事))",
]
_CRISIS = re.compile("|".join(f"(?:{p})" for p in _CRISIS_PATTERNS))


def _normalize(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower().translate(_CHAR_MAP)
    return _NOISE.sub("", text)


def looks_like_crisis(text: str) -> bool:
    """True when the text may speak of self-harm or suicide (explicit, veiled, dialect, typo)."""
    if not text:
        return False
    normalized = _NOT_CRISIS.sub("", _normalize(text))
    return _CRISIS.search(normalized) is not None


def _staff_text(alert: CrisisAlert, openid: str, text: str) -> str:
    return (
        f"【紧急·危机预警 #{alert.id}】用户 {secrets_box.openid_tag(openid)} "
        f"于 {format_local(alert.created_at)} 发来：“{text[:200]}”。"
        "请立即登录后台查看，并尽快电话联系。"
    )


def raise_crisis_alert(session: Session, openid: str, text: str, source: str) -> CrisisAlert:
    """Open (or extend) the urgent alert for this user and push it to the on-duty staff.

    One open alert per user within ALERT_MERGE_WINDOW: a second message is appended to it instead of
    opening another. ID-card numbers are masked before storage. The caller's transaction commits it.
    """
    now = utcnow()
    clean = idcard.redact(text or "").strip() or "（无文字）"
    alert = session.scalars(
        select(CrisisAlert)
        .where(
            CrisisAlert.openid == openid,
            CrisisAlert.status == CaseStatus.OPEN,
            CrisisAlert.created_at >= now - ALERT_MERGE_WINDOW,
        )
        .order_by(CrisisAlert.created_at.desc(), CrisisAlert.id.desc())
        .limit(1)
        .with_for_update()
    ).first()
    if alert is not None:
        if clean not in alert.message.split("\n"):
            alert.message = (alert.message + "\n" + clean)[-_MAX_ALERT_TEXT:]
    else:
        alert = CrisisAlert(
            openid=openid,
            message=clean[:_MAX_ALERT_TEXT],
            source=source,
            status=CaseStatus.OPEN,
            created_at=now,
        )
        session.add(alert)
        session.flush()
    if alert.staff_notified_at is None:
        on_duty = session.scalars(
            select(StaffUser).where(
                StaffUser.on_duty.is_(True), StaffUser.active.is_(True), StaffUser.openid.is_not(None)
            )
        ).all()
        for staff in on_duty:
            assert staff.openid is not None
            notify_user(
                session, staff.openid, "crisis_duty", _staff_text(alert, openid, clean), created_by="safety"
            )
        if on_duty:
            alert.staff_notified_at = now
    session.flush()
    return alert
