"""Roster import (CSV and Excel, all rows or none, per-row Chinese errors) from the CLI and the upload page."""

from __future__ import annotations

import datetime as dt
import io

import openpyxl
import pytest
from sqlalchemy import func, select

from bureau import idcard, roster
from bureau.models import AuditLog, Veteran
from tests.admin.conftest import make_veteran, token_of


def _number(sequence: int) -> str:
    return idcard.make_number("350926", dt.date(1950, 1, 1) + dt.timedelta(days=sequence * 7), sequence)


def _bad_checksum(number: str) -> str:
    return number[:-1] + ("0" if number[-1] != "0" else "1")


GOOD = [
    ("姓名", "身份证号", "手机号", "乡镇", "村", "类别", "退役时间"),
    ("张建国", _number(1), "13905930001", "双城镇", "东街村", "退役士兵", "1995-12-01"),
    ("李卫东", _number(2), "13905930002", "富溪", "", "伤残军人", "2001/12"),
    ("王秀英", _number(3), "", "乍洋乡", "", "", ""),
]


def _csv(rows: list[tuple[str, ...]], encoding: str = "utf-8-sig") -> bytes:
    return "\n".join(",".join(row) for row in rows).encode(encoding)


def _xlsx(rows: list[tuple[object, ...]]) -> bytes:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    for row in rows:
        sheet.append(list(row))
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def _count(session_factory) -> int:
    with session_factory() as session:
        return int(session.scalar(select(func.count(Veteran.id))) or 0)


def test_a_good_csv_is_imported_whole(session_factory, tmp_path, runner):
    path = tmp_path / "roster.csv"
    path.write_bytes(_csv(GOOD))
    result = runner.invoke(args=["veterans", "import", str(path)])
    assert result.exit_code == 0, result.output
    assert "导入成功：共 3 人" in result.output
    assert "检查并导入" in result.output  # the progress bar's label
    with session_factory() as session:
        people = {v.name: v for v in session.scalars(select(Veteran))}
        assert people["李卫东"].township == "富溪镇"  # short township names are understood
        assert people["李卫东"].discharge_date == dt.date(2001, 12, 1)
        assert people["王秀英"].category == "退役士兵"
        assert people["张建国"].reveal_id_number() == _number(1)
        assert _number(1) not in people["张建国"].id_number_encrypted
        audit = session.scalars(select(AuditLog).where(AuditLog.action == "import")).one()
        assert audit.after == {"count": 3, "file": "roster.csv"}


def test_one_bad_row_stops_the_whole_file_with_per_row_reasons(session_factory, tmp_path, runner):
    make_veteran(session_factory, _number(9), name="已在册")
    rows = [
        *GOOD,
        ("赵一", _bad_checksum(_number(4)), "", "双城镇", "", "", ""),  # line 5
        ("钱二", _number(1), "", "双城镇", "", "", ""),  # line 6: same as line 2
        ("孙三", _number(5), "", "火星乡", "", "", ""),  # line 7
        ("周四", _number(9), "", "", "", "", ""),  # line 8: already on the roster
        ("", _number(6), "123", "", "", "将军", "昨天"),  # line 9
    ]
    path = tmp_path / "roster.csv"
    path.write_bytes(_csv(rows, encoding="gb18030"))  # as Excel on Chinese Windows saves it
    result = runner.invoke(args=["veterans", "import", str(path)])
    assert result.exit_code != 0
    lines = result.output
    assert "第5行：身份证号校验位不对" in lines
    assert "第6行：身份证号重复（与第2行相同）" in lines
    assert "第7行：未知乡镇“火星乡”" in lines
    assert "第8行：身份证号重复，系统里已有这个人" in lines
    for reason in ("姓名是空的", "未知人员类别“将军”", "手机号不对", "退役时间看不懂"):
        assert f"第9行：{reason}" in lines
    assert "没有导入" in lines
    assert _count(session_factory) == 1  # only the one that was there before: nothing half-imported


def test_excel_files_and_numbers_stored_as_numbers(session_factory):
    rows: list[tuple[object, ...]] = [
        GOOD[0],
        GOOD[1],
        ("吴五", 350926197001011234.0, "", "双城镇", "", "", ""),
    ]
    parsed = roster.read_rows(io.BytesIO(_xlsx(rows)), "名册.xlsx")
    with session_factory.begin() as session:
        report = roster.import_roster(session, parsed, "test")
    assert [str(e) for e in report.errors] == [
        "第3行：身份证号被 Excel 存成了数字，后几位已丢失，请把这一列设成“文本”后重新填写"
    ]
    parsed = roster.read_rows(io.BytesIO(_xlsx(GOOD[:3])), "名册.xlsx")
    with session_factory.begin() as session:
        report = roster.import_roster(session, parsed, "test")
    assert report.ok and report.imported == 2
    assert _count(session_factory) == 2


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("a.xls", b"whatever", "不支持旧版 .xls"),
        ("a.txt", b"whatever", "只能导入 .xlsx 或 .csv"),
        ("a.xlsx", b"not a zip", "打不开"),
        ("a.csv", "名字,电话\n张三,1\n".encode(), "缺少这几列：身份证号"),
        ("a.csv", b"", "文件是空的"),
    ],
)
def test_unreadable_files_get_a_clear_answer(name, data, message):
    with pytest.raises(roster.RosterError, match=message):
        roster.read_rows(io.BytesIO(data), name)


def test_the_upload_page_reports_the_bad_row_and_imports_nothing(clerk_client, session_factory):
    rows = [*GOOD, ("赵一", _bad_checksum(_number(4)), "", "双城镇", "", "", "")]
    token = token_of(clerk_client, "/admin/veterans/import")
    response = clerk_client.post(
        "/admin/veterans/import",
        data={"csrf_token": token, "file": (io.BytesIO(_xlsx(rows)), "花名册.xlsx")},
        content_type="multipart/form-data",
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "第5行：身份证号校验位不对" in page and "没有导入" in page
    assert _count(session_factory) == 0
    response = clerk_client.post(
        "/admin/veterans/import",
        data={"csrf_token": token, "file": (io.BytesIO(_xlsx(GOOD)), "花名册.xlsx")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 200
    assert "导入成功：共 3 人" in response.get_data(as_text=True)
    assert _count(session_factory) == 3


def test_the_upload_page_takes_a_roster_larger_than_a_wechat_push(clerk_client, session_factory):
    rows = [GOOD[0]] + [(f"战友{i}", _number(100 + i), "", "双城镇", "", "", "") for i in range(900)]
    data = _csv(rows)
    assert len(data) > 64 * 1024 // 2
    token = token_of(clerk_client, "/admin/veterans/import")
    response = clerk_client.post(
        "/admin/veterans/import",
        data={"csrf_token": token, "file": (io.BytesIO(data + b"\n" * 40_000), "big.csv")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 200, response.get_data(as_text=True)[-500:]
    assert _count(session_factory) == 900


def test_search_by_name_township_and_last_digits(clerk_client, session_factory):
    make_veteran(session_factory, _number(1), name="张建国", township="双城镇")
    make_veteran(session_factory, _number(2), name="李卫东", township="富溪镇")
    page = clerk_client.get("/admin/veterans?name=建国").get_data(as_text=True)
    assert "张建国" in page and "李卫东" not in page
    page = clerk_client.get("/admin/veterans?township=富溪镇").get_data(as_text=True)
    assert "李卫东" in page and "张建国" not in page
    page = clerk_client.get(f"/admin/veterans?id_text={_number(2)[-4:]}").get_data(as_text=True)
    assert "李卫东" in page and "张建国" not in page
