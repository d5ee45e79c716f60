"""Writes the spreadsheet fixtures under tests/fixtures/files/ (committed; rerun only to change them).

    python -m venv /tmp/fx && /tmp/fx/bin/pip install openpyxl xlwt odfpy
    /tmp/fx/bin/python scripts/make_file_fixtures.py

customers.xlsx, sheet "客户" (the second sheet; the first, "说明", is a note):
    row 1: a title merged over A1:E1 ("客户名单 2026")
    row 2: header 客户编号 | 姓名 | 城市 | 年龄 | 注册日期 | 登录时间 | VIP | 余额
    rows 3-7: five customers; row 6 has "unknown" in 年龄 (a cell of the wrong type)
    rows 8-9: empty (formatted only), to be ignored
sales.xlsx, sheet "Sales": a two-row header whose first row merges "Q1" over B1:C1 and "Q2" over D1:E1,
    second row "id | north | south | north | south"; three data rows.
customers.xls / customers.ods: the same customers as one sheet "客户" with the header in row 1.
../fuzz/excel/far-cells.xlsx: two cells, at A1 and XFD1048576 (a sheet spanning 17 billion cells).
"""
import datetime as dt
import os

import openpyxl
import xlwt
from odf.opendocument import OpenDocumentSpreadsheet
from odf.table import Table, TableCell, TableRow
from odf.text import P

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "files")
HEADER = ["客户编号", "姓名", "城市", "年龄", "注册日期", "登录时间", "VIP", "余额"]
ROWS = [
    [1, "张三", "北京", 34, dt.date(2024, 1, 15), dt.datetime(2026, 3, 1, 8, 30), True, 1200.5],
    [2, "李四", "上海", 28, dt.date(2023, 7, 1), dt.datetime(2026, 3, 2, 9, 0), False, 0.0],
    [3, "王五", "北京", 45, dt.date(2022, 12, 31), dt.datetime(2026, 3, 3, 18, 45, 10), True, 88.25],
    [4, "赵六", "广州", "unknown", dt.date(2025, 5, 5), dt.datetime(2026, 3, 4, 0, 0, 1), False, 10.0],
    [5, "钱七", "深圳", 51, dt.date(2021, 2, 28), dt.datetime(2026, 3, 5, 12, 0), True, 3.75],
]


def xlsx_customers():
    wb = openpyxl.Workbook()
    note = wb.active
    note.title = "说明"
    note["A1"] = "customers are on the next sheet"
    ws = wb.create_sheet("客户")
    ws["A1"] = "客户名单 2026"
    ws.merge_cells("A1:E1")
    for c, h in enumerate(HEADER, start=1):
        ws.cell(row=2, column=c, value=h)
    for r, row in enumerate(ROWS, start=3):
        for c, v in enumerate(row, start=1):
            cell = ws.cell(row=r, column=c, value=v)
            if isinstance(v, dt.datetime):
                cell.number_format = "yyyy-mm-dd hh:mm:ss"
            elif isinstance(v, dt.date):
                cell.number_format = "yyyy-mm-dd"
    for r in (8, 9):
        ws.cell(row=r, column=1).number_format = "0.00"  # styled but empty: must be ignored
    wb.save(os.path.join(OUT, "customers.xlsx"))


def xlsx_sales():
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Sales"
    ws["A1"] = "id"
    ws.merge_cells("A1:A2")
    ws["B1"] = "Q1"
    ws.merge_cells("B1:C1")
    ws["D1"] = "Q2"
    ws.merge_cells("D1:E1")
    for c, h in enumerate(["north", "south", "north", "south"], start=2):
        ws.cell(row=2, column=c, value=h)
    for r, row in enumerate([[1, 10, 20, 30, 40], [2, 11, 21, 31, 41], [3, 12, 22, 32, 42]], start=3):
        for c, v in enumerate(row, start=1):
            ws.cell(row=r, column=c, value=v)
    wb.save(os.path.join(OUT, "sales.xlsx"))


def xls_customers():
    wb = xlwt.Workbook(encoding="utf-8")
    ws = wb.add_sheet("客户")
    date_style = xlwt.easyxf(num_format_str="yyyy-mm-dd")
    ts_style = xlwt.easyxf(num_format_str="yyyy-mm-dd hh:mm:ss")
    for c, h in enumerate(HEADER):
        ws.write(0, c, h)
    for r, row in enumerate(ROWS, start=1):
        for c, v in enumerate(row):
            if isinstance(v, dt.datetime):
                ws.write(r, c, v, ts_style)
            elif isinstance(v, dt.date):
                ws.write(r, c, dt.datetime(v.year, v.month, v.day), date_style)
            else:
                ws.write(r, c, v)
    wb.save(os.path.join(OUT, "customers.xls"))


def ods_customers():
    doc = OpenDocumentSpreadsheet()
    table = Table(name="客户")

    def cell(v):
        if isinstance(v, bool):
            tc = TableCell(valuetype="boolean", booleanvalue="true" if v else "false")
        elif isinstance(v, (int, float)):
            tc = TableCell(valuetype="float", value=str(v))
        elif isinstance(v, dt.datetime):
            tc = TableCell(valuetype="date", datevalue=v.strftime("%Y-%m-%dT%H:%M:%S"))
        elif isinstance(v, dt.date):
            tc = TableCell(valuetype="date", datevalue=v.strftime("%Y-%m-%d"))
        else:
            tc = TableCell(valuetype="string")
        tc.addElement(P(text=str(v)))
        return tc

    for row in [HEADER] + ROWS:
        tr = TableRow()
        for v in row:
            tr.addElement(cell(v))
        table.addElement(tr)
    doc.spreadsheet.addElement(table)
    doc.save(os.path.join(OUT, "customers.ods"))


def xlsx_far_cells():
    wb = openpyxl.Workbook()
    ws = wb.active
    ws["A1"] = "id"
    ws["XFD1048576"] = 1
    wb.save(os.path.join(OUT, "..", "fuzz", "excel", "far-cells.xlsx"))


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    xlsx_customers()
    xlsx_sales()
    xls_customers()
    ods_customers()
    xlsx_far_cells()
    print("wrote", sorted(os.listdir(OUT)))
