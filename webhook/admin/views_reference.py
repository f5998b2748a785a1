"""Reference data the bot answers from: merchants and offers, benefit policies, service stations.

The bot reads these tables on every question, so a saved change is used immediately.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from sqlalchemy import select

from bureau import audit, idcard
from bureau.models import MERCHANT_CATEGORIES as MERCHANT_CATS
from bureau.models import TOWNSHIPS, BenefitPolicy, Merchant, MerchantOffer, ServiceStation
from webhook.admin import bp
from webhook.admin.paging import paginate
from webhook.admin.security import actor_name, roles_required
from webhook.database import get_db


@dataclass(frozen=True)
class Field:
    name: str
    label: str
    kind: str = "text"  # text / textarea / select / float / bool / list / date
    required: bool = False
    max_length: int = 200
    choices: tuple[tuple[str, str], ...] = ()
    hint: str = ""


@dataclass(frozen=True)
class Kind:
    slug: str
    title: str
    model: Any
    entity: str
    fields: tuple[Field, ...]
    columns: tuple[str, ...]
    order: tuple[str, ...] = ("id",)
    search: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)


TOWNSHIP_CHOICES = (("", "（县级/不限）"),) + tuple((t, t) for t in TOWNSHIPS)
KINDS: dict[str, Kind] = {
    "merchants": Kind(
        "merchants",
        "拥军优属商家",
        Merchant,
        "merchant",
        (
            Field("name", "商家名称", required=True, max_length=100),
            Field("category", "类别", "select", True, choices=tuple(MERCHANT_CATS.items())),
            Field("township", "乡镇", "select", choices=TOWNSHIP_CHOICES),
            Field("address", "地址", max_length=200),
            Field("phone", "电话", max_length=30),
            Field("active", "在用（机器人会推荐）", "bool"),
        ),
        ("name", "category", "township", "phone", "active"),
        ("category", "name"),
        ("name", "address"),
    ),
    "policies": Kind(
        "policies",
        "优待政策问答",
        BenefitPolicy,
        "benefit_policy",
        (
            Field(
                "slug", "编号（英文字母）", required=True, max_length=40, hint="例如 bus-free，唯一，不要改"
            ),
            Field("title", "标题", required=True, max_length=100),
            Field("keywords", "关键词", "list", hint="用逗号或空格隔开，战友问到这些词时给出这条答复"),
            Field("question", "常见问法", "textarea", True, 2000),
            Field("answer", "答复内容", "textarea", True, 4000, hint="简短、口语化，老战友在手机上好读"),
            Field("source", "政策依据", max_length=200),
        ),
        ("title", "keywords", "updated_at"),
        ("slug",),
        ("title", "answer"),
    ),
    "stations": Kind(
        "stations",
        "服务站",
        ServiceStation,
        "service_station",
        (
            Field("name", "名称", required=True, max_length=80),
            Field(
                "level",
                "级别",
                "select",
                True,
                choices=(("county", "县级"), ("township", "乡镇"), ("village", "村（社区）")),
            ),
            Field("township", "乡镇", "select", choices=TOWNSHIP_CHOICES),
            Field("village", "村（社区）", max_length=40),
            Field("address", "地址", required=True, max_length=200),
            Field("phone", "电话", max_length=30),
            Field("hours", "办公时间", max_length=100),
            Field("latitude", "纬度", "float"),
            Field("longitude", "经度", "float"),
        ),
        ("name", "level", "township", "phone", "hours"),
        ("level", "township", "name"),
        ("name", "address"),
    ),
}
LEVEL_LABELS = {"county": "县级", "township": "乡镇", "village": "村（社区）"}


def _kind(slug: str) -> Kind:
    kind = KINDS.get(slug)
    if kind is None:
        abort(404)
    return kind


def _display(kind: Kind, row: Any, name: str) -> str:
    value = getattr(row, name)
    if name == "category" and kind.slug == "merchants":
        return MERCHANT_CATS.get(value, value)
    if name == "level":
        return LEVEL_LABELS.get(value, value)
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, list):
        return idcard.redact("、".join(str(v) for v in value))
    if isinstance(value, dt.datetime):
        from bureau.timeutil import format_local

        return format_local(value, with_weekday=False)
    return "" if value is None else idcard.redact(str(value))


def _parse(kind: Kind) -> tuple[dict[str, Any], list[str]]:
    values: dict[str, Any] = {}
    errors: list[str] = []
    for f in kind.fields:
        raw = request.form.get(f.name, "").strip()
        if f.kind == "bool":
            values[f.name] = request.form.get(f.name) == "1"
            continue
        if f.required and not raw:
            errors.append(f"请填写{f.label}")
        if len(raw) > f.max_length:
            errors.append(f"{f.label}太长了（最多{f.max_length}字）")
        if f.kind == "select":
            allowed = {value for value, _ in f.choices}
            if raw not in allowed:
                errors.append(f"请选择{f.label}")
            values[f.name] = raw or None
        elif f.kind == "float":
            try:
                values[f.name] = float(raw) if raw else None
            except ValueError:
                errors.append(f"{f.label}请填数字")
                values[f.name] = raw
        elif f.kind == "list":
            values[f.name] = [w for w in re.split(r"[,，、\s]+", raw) if w]
        else:
            values[f.name] = raw or None
    if (
        kind.slug == "policies"
        and values.get("slug")
        and not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", values["slug"])
    ):
        errors.append("编号只能用小写字母、数字和 -")
    return values, errors


@bp.get("/ref/<slug>")
@roles_required("clerk")
def ref_list(slug: str) -> Any:
    kind = _kind(slug)
    db = get_db()
    q = request.args.get("q", "").strip()
    query = select(kind.model)
    if q and kind.search:
        from sqlalchemy import or_

        query = query.where(or_(*(getattr(kind.model, c).contains(q) for c in kind.search)))
    query = query.order_by(*(getattr(kind.model, c) for c in kind.order), kind.model.id)
    page = paginate(db, query)
    labels = {f.name: f.label for f in kind.fields} | {"updated_at": "更新时间"}
    return render_template("admin/ref_list.html", kind=kind, page=page, q=q, labels=labels, display=_display)


@bp.route("/ref/<slug>/new", methods=["GET", "POST"])
@roles_required("clerk")
def ref_new(slug: str) -> Any:
    kind = _kind(slug)
    db = get_db()
    values: dict[str, Any] = {"active": True}
    errors: list[str] = []
    if request.method == "POST":
        values, errors = _parse(kind)
        if kind.slug == "policies" and values.get("slug"):
            if (
                db.scalars(select(BenefitPolicy).where(BenefitPolicy.slug == values["slug"])).first()
                is not None
            ):
                errors.append("这个编号已经有了")
        if not errors:
            row = kind.model(**values)
            db.add(row)
            db.flush()
            audit.record(db, actor_name(), "create", kind.entity, row.id, None, audit.snapshot(row))
            db.commit()
            flash("已添加，机器人马上就会用到。", "ok")
            return redirect(url_for("admin.ref_edit", slug=slug, row_id=row.id))
    return render_template(
        "admin/ref_form.html", kind=kind, row=None, values=values, errors=errors, offers=[]
    )


@bp.route("/ref/<slug>/<int:row_id>", methods=["GET", "POST"])
@roles_required("clerk")
def ref_edit(slug: str, row_id: int) -> Any:
    kind = _kind(slug)
    db = get_db()
    row = db.get(kind.model, row_id) or abort(404)
    values = {f.name: getattr(row, f.name) for f in kind.fields}
    errors: list[str] = []
    if request.method == "POST":
        values, errors = _parse(kind)
        if kind.slug == "policies" and values.get("slug") and values["slug"] != row.slug:
            if (
                db.scalars(select(BenefitPolicy).where(BenefitPolicy.slug == values["slug"])).first()
                is not None
            ):
                errors.append("这个编号已经有了")
        if not errors:
            before = audit.snapshot(row)
            for key, value in values.items():
                setattr(row, key, value)
            db.flush()
            audit.record(
                db, actor_name(), "update", kind.entity, row.id, *audit.changed(before, audit.snapshot(row))
            )
            db.commit()
            flash("已保存，机器人马上就会用新内容回答。", "ok")
            return redirect(url_for("admin.ref_edit", slug=slug, row_id=row.id))
    offers = list(row.offers) if kind.slug == "merchants" else []
    return render_template(
        "admin/ref_form.html", kind=kind, row=row, values=values, errors=errors, offers=offers
    )


@bp.post("/ref/<slug>/<int:row_id>/delete")
@roles_required("clerk")
def ref_delete(slug: str, row_id: int) -> Any:
    kind = _kind(slug)
    db = get_db()
    row = db.get(kind.model, row_id) or abort(404)
    audit.record(db, actor_name(), "delete", kind.entity, row.id, audit.snapshot(row), None)
    db.delete(row)
    db.commit()
    flash("已删除。", "ok")
    return redirect(url_for("admin.ref_list", slug=slug))


@bp.post("/ref/merchants/<int:row_id>/offers")
@roles_required("clerk")
def offer_add(row_id: int) -> Any:
    db = get_db()
    merchant = db.get(Merchant, row_id) or abort(404)
    description = request.form.get("description", "").strip()
    raw_until = request.form.get("valid_until", "").strip()
    try:
        valid_until = dt.date.fromisoformat(raw_until) if raw_until else None
    except ValueError:
        valid_until = None
        flash("截止日期格式不对。", "error")
        return redirect(url_for("admin.ref_edit", slug="merchants", row_id=row_id))
    if not description or len(description) > 500:
        flash("请填写优惠内容（500字以内）。", "error")
        return redirect(url_for("admin.ref_edit", slug="merchants", row_id=row_id))
    offer = MerchantOffer(merchant_id=merchant.id, description=description, valid_until=valid_until)
    db.add(offer)
    db.flush()
    audit.record(db, actor_name(), "create", "merchant_offer", offer.id, None, audit.snapshot(offer))
    db.commit()
    flash("优惠已添加。", "ok")
    return redirect(url_for("admin.ref_edit", slug="merchants", row_id=row_id))


@bp.post("/ref/merchants/<int:row_id>/offers/<int:offer_id>/delete")
@roles_required("clerk")
def offer_delete(row_id: int, offer_id: int) -> Any:
    db = get_db()
    offer = db.get(MerchantOffer, offer_id)
    if offer is None or offer.merchant_id != row_id:
        abort(404)
    audit.record(db, actor_name(), "delete", "merchant_offer", offer.id, audit.snapshot(offer), None)
    db.delete(offer)
    db.commit()
    flash("优惠已删除。", "ok")
    return redirect(url_for("admin.ref_edit", slug="merchants", row_id=row_id))
