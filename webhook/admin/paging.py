"""Page-by-page listing for the console's tables."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import request
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

PER_PAGE = 50


@dataclass
class Page:
    items: list[Any]
    total: int
    page: int
    pages: int

    def args(self, page: int) -> dict[str, Any]:
        """The current query string with another page number (for the pager links)."""
        values: dict[str, Any] = {k: v for k, v in request.args.items() if k != "page"}
        values["page"] = page
        return values


def paginate(db: Session, query: Select[Any], per_page: int = PER_PAGE, scalars: bool = True) -> Page:
    page = max(1, request.args.get("page", 1, type=int) or 1)
    total = db.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
    pages = max(1, (total + per_page - 1) // per_page)
    page = min(page, pages)
    limited = query.limit(per_page).offset((page - 1) * per_page)
    items = list(db.scalars(limited).all()) if scalars else list(db.execute(limited).all())
    return Page(items=items, total=total, page=page, pages=pages)
