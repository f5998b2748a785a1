"""The bureau's veteran roster: import from Excel/CSV (all rows or none) and export filtered lists.

Import validates every row first (ID-card checksum, duplicates in the file and in the database,
township, category, phone, date) and inserts only when no row has an error, so a file is never
half-imported. Errors are reported per row in Chinese: "第5行：身份证号校验位不对".
Exports carry masked ID numbers only.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from bureau import audit, idcard, secrets_box
from bureau.models import TOWNSHIPS, VETERAN_CATEGORIES, Veteran

MAX_ROWS = 20_000
# Header spellings seen in real county rosters, mapped to our fields.
HEADERS: dict[str, tuple[str, ...]] = {
    "name": ("姓名", "名字"),
    "id_number": ("身份证号", "身份证号码", "公民身份号码", "身份证"),
    "phone": ("手机号", "电话", "联系电话", "手机", "手机号码"),
    "township": ("乡镇", "所在乡镇", "乡镇（街道）", "乡镇(街道)"),
    "village": ("村", "村居", "村（社区）", "村(社区)", "所在村"),
    "category": ("类别", "人员类别", "优抚类别"),
    "discharge_date": ("退役时间", "退役日期", "退伍时间"),
}
REQUIRED = ("name", "id_number")
EXPORT_COLUMNS = ("姓名", "身份证号（已脱敏）", "手机号", "乡镇", "村", "类别", "退役时间")
_PHONE = re.compile(r"^(1\d{10}|0\d{2,3}-?\d{7,8})$")


class RosterError(ValueError):
    """The file as a whole cannot be read; `args[0]` is a Chinese explanation."""


@dataclass(frozen=True)
class RowError:
    line: int  # the row number a clerk sees in Excel (the header is row 1)
    message: str

    def __str__(self) -> str:
        return f"第{self.line}行：{self.message}"


@dataclass
class ImportReport:
    rows: int = 0
    imported: int = 0
    errors: list[RowError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self) -> str:
        if self.ok:
            return f"导入成功：共 {self.imported} 人。"
        return f"没有导入：{self.rows} 行里有 {len(self.errors)} 处问题，请改好后重新导入整个文件。"


# ---------------------------------------------------------------- reading


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def _map_header(header: list[str]) -> dict[str, int]:
    columns: dict[str, int] = {}
    for index, raw in enumerate(header):
        title = raw.strip().replace(" ", "").replace("*", "")
        for key, names in HEADERS.items():
            if title in names and key not in columns:
                columns[key] = index
    missing = [HEADERS[key][0] for key in REQUIRED if key not in columns]
    if missing:
        raise RosterError(f"第1行应是表头，缺少这几列：{'、'.join(missing)}")
    return columns


def _rows_from_table(table: Iterable[list[Any]]) -> list[tuple[int, dict[str, str]]]:
    iterator = iter(table)
    try:
        header = [_cell_text(v) for v in next(iterator)]
    except StopIteration:
        raise RosterError("文件是空的") from None
    columns = _map_header(header)
    rows: list[tuple[int, dict[str, str]]] = []
    for line, raw in enumerate(iterator, start=2):
        cells = list(raw)
        values = {key: _cell_text(cells[i]) if i < len(cells) else "" for key, i in columns.items()}
        if not any(values.values()):
            continue  # blank lines at the end of a sheet
        # Excel turns a long number into a float and loses the last digits; say so plainly.
        id_cell = cells[columns["id_number"]] if columns["id_number"] < len(cells) else None
        if isinstance(id_cell, float):
            values["_excel_number"] = "1"
        rows.append((line, values))
        if len(rows) > MAX_ROWS:
            raise RosterError(f"一次最多导入 {MAX_ROWS} 行，请分成几个文件")
    return rows


def _decode(data: bytes) -> str:
    for encoding in ("utf-8-sig", "gb18030"):  # Excel on Chinese Windows saves CSV as GBK
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise RosterError("读不出文件的文字编码，请另存为 UTF-8 的 CSV 或 .xlsx 文件")


def read_rows(
    source: str | Path | IO[bytes], filename: str | None = None
) -> list[tuple[int, dict[str, str]]]:
    """(line, {field: text}) for every non-blank data row of a .csv or .xlsx file."""
    name = (filename or (str(source) if isinstance(source, str | Path) else "")).lower()
    if isinstance(source, str | Path):
        data = Path(source).read_bytes()
    else:
        data = source.read()
    if name.endswith(".csv"):
        text = _decode(data)
        return _rows_from_table(list(row) for row in csv.reader(io.StringIO(text)))
    if name.endswith((".xlsx", ".xlsm")):
        from zipfile import BadZipFile

        import openpyxl

        try:
            workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        except (BadZipFile, KeyError, ValueError, OSError):
            raise RosterError("这个 Excel 文件打不开，请用 Excel 另存为 .xlsx 后再试") from None
        try:
            sheet = workbook.worksheets[0]
            return _rows_from_table(list(row) for row in sheet.iter_rows(values_only=True))
        finally:
            workbook.close()
    if name.endswith(".xls"):
        raise RosterError("不支持旧版 .xls 文件，请用 Excel 另存为 .xlsx 后再导入")
    raise RosterError("只能导入 .xlsx 或 .csv 文件")


# ---------------------------------------------------------------- validating and importing


def normalize_township(text: str) -> str | None:
    """The township's full name ("双城" → "双城镇"), or None when it is not one of ours."""
    text = text.strip()
    if text in TOWNSHIPS:
        return text
    for township in TOWNSHIPS:
        if text and township.startswith(text) and len(text) >= 2:
            return township
    return None


def _parse_date(text: str) -> dt.date:
    cleaned = text.replace("年", "-").replace("月", "-").replace("日", "").replace("/", "-").replace(".", "-")
    parts = [p for p in cleaned.split("-") if p]
    if len(parts) == 2:
        parts.append("1")
    if len(parts) != 3:
        raise ValueError(text)
    return dt.date(int(parts[0]), int(parts[1]), int(parts[2]))


def validate_rows(
    session: Session,
    rows: list[tuple[int, dict[str, str]]],
    progress: Callable[[int], None] | None = None,
) -> tuple[list[dict[str, Any]], list[RowError]]:
    """Check every row; returns the clean values and every problem found (all rows are checked)."""
    errors: list[RowError] = []
    clean: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    hashes: dict[str, int] = {}
    for line, values in rows:
        row_errors: list[str] = []
        name = values.get("name", "").strip()
        if not name:
            row_errors.append("姓名是空的")
        elif len(name) > 50:
            row_errors.append("姓名太长")
        number = ""
        if values.get("_excel_number"):
            row_errors.append("身份证号被 Excel 存成了数字，后几位已丢失，请把这一列设成“文本”后重新填写")
        else:
            try:
                number = idcard.validate(values.get("id_number", ""))
            except idcard.InvalidIdNumber as exc:
                reason = exc.reason.split("，请")[0]
                if not values.get("id_number", "").strip():
                    reason = "身份证号是空的"
                row_errors.append(reason)
        if number:
            if number in seen:
                row_errors.append(f"身份证号重复（与第{seen[number]}行相同）")
            else:
                seen[number] = line
                hashes[secrets_box.lookup_hash(number)] = line
        township_text = values.get("township", "").strip()
        township = normalize_township(township_text) if township_text else None
        if township_text and township is None:
            row_errors.append(f"未知乡镇“{township_text}”")
        category = values.get("category", "").strip() or "退役士兵"
        if category not in VETERAN_CATEGORIES:
            row_errors.append(f"未知人员类别“{category}”")
        phone = values.get("phone", "").replace(" ", "")
        if phone and not _PHONE.match(phone):
            row_errors.append("手机号不对")
        discharge: dt.date | None = None
        if values.get("discharge_date", "").strip():
            try:
                discharge = _parse_date(values["discharge_date"].strip())
            except ValueError:
                row_errors.append("退役时间看不懂，请写成 2010-12-01")
        errors.extend(RowError(line, message) for message in row_errors)
        if not row_errors:
            clean.append(
                {
                    "_line": line,
                    "name": name,
                    "id_number": number,
                    "phone": phone or None,
                    "township": township,
                    "village": values.get("village", "").strip()[:40] or None,
                    "category": category,
                    "discharge_date": discharge,
                }
            )
        if progress is not None:
            progress(1)
    # People already on the roster, found by keyed hash in batches (the numbers stay encrypted).
    hash_list = list(hashes)
    for start in range(0, len(hash_list), 500):
        batch = hash_list[start : start + 500]
        for found in session.scalars(select(Veteran.id_number_hash).where(Veteran.id_number_hash.in_(batch))):
            errors.append(RowError(hashes[found], "身份证号重复，系统里已有这个人"))
    errors.sort(key=lambda e: e.line)
    return clean, errors


def import_roster(
    session: Session,
    rows: list[tuple[int, dict[str, str]]],
    actor: str,
    progress: Callable[[int], None] | None = None,
    source_name: str | None = None,
) -> ImportReport:
    """Validate all rows, then add all veterans to `session` — or none when any row is wrong.

    The caller commits (one transaction). `progress(n)` is called as rows are checked and then added.
    """
    report = ImportReport(rows=len(rows))
    clean, errors = validate_rows(session, rows, progress)
    if errors:
        report.errors = errors
        return report
    for values in clean:
        veteran = Veteran(
            name=values["name"],
            phone=values["phone"],
            township=values["township"],
            village=values["village"],
            category=values["category"],
            discharge_date=values["discharge_date"],
        )
        veteran.set_id_number(values["id_number"])
        session.add(veteran)
        if progress is not None:
            progress(1)
    session.flush()
    report.imported = len(clean)
    audit.record(
        session, actor, "import", "veteran", None, None, {"count": len(clean), "file": source_name or ""}
    )
    return report


# ---------------------------------------------------------------- searching and exporting


def search_query(name: str = "", id_text: str = "", township: str = "", category: str = "") -> Select[Any]:
    """Veterans filtered by name, (masked or full) ID number, township and category."""
    query = select(Veteran)
    if name.strip():
        query = query.where(Veteran.name.contains(name.strip()))
    id_text = idcard.normalize(id_text)
    if id_text:
        if idcard.is_valid(id_text):
            query = query.where(Veteran.id_number_hash == secrets_box.lookup_hash(id_text))
        else:
            # What staff can see is the masked form: match its visible parts (e.g. the last 4).
            visible = id_text.replace("*", "")
            if len(id_text) == 18 and "*" in id_text:
                query = query.where(Veteran.id_number_masked == id_text)
            else:
                query = query.where(Veteran.id_number_masked.contains(visible))
    if township in TOWNSHIPS:
        query = query.where(Veteran.township == township)
    if category in VETERAN_CATEGORIES:
        query = query.where(Veteran.category == category)
    return query.order_by(Veteran.township, Veteran.name, Veteran.id)


def export_rows(session: Session, query: Select[Any]) -> Iterator[tuple[Any, ...]]:
    """Rows for an export: the header, then one row per veteran, with the masked ID number only."""
    yield EXPORT_COLUMNS
    for veteran in session.scalars(query.execution_options(yield_per=500)):
        yield (
            veteran.name,
            veteran.id_number_masked,
            veteran.phone or "",
            veteran.township or "",
            veteran.village or "",
            veteran.category,
            veteran.discharge_date.isoformat() if veteran.discharge_date else "",
        )


def export_xlsx(session: Session, query: Select[Any]) -> bytes:
    """An .xlsx workbook of the filtered roster (masked ID numbers)."""
    import openpyxl

    workbook = openpyxl.Workbook(write_only=True)
    sheet = workbook.create_sheet("退役军人名单")
    for row in export_rows(session, query):
        sheet.append(list(row))
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()
