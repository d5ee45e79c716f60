"""Sources written in Python: the Source protocol, streaming pieces, errors, and the conformance checks."""

from __future__ import annotations

import polars as pl
import pyarrow as pa
import pytest

import segkit
from segkit.testing import check_source

SCHEMA = pa.schema([("user_id", pa.int64()), ("country", pa.string())])


class PagedApi:
    """Stands in for an HTTP API read page by page."""

    name = "api:users"

    def __init__(self, pages, fail_at=None):
        self.pages = pages
        self.fail_at = fail_at
        self.scans = 0

    def schema(self):
        return SCHEMA

    def scan(self):
        self.scans += 1
        for i, page in enumerate(self.pages):
            if i == self.fail_at:
                raise ValueError(f"page {i}: HTTP 503")
            yield page


PAGES = [
    pa.record_batch([pa.array([1, 2]), pa.array(["CN", "US"])], schema=SCHEMA),
    [{"user_id": 6, "country": "JP"}],  # a page of records, as an API returns them
    pl.DataFrame({"user_id": [3], "country": ["DE"]}),  # any Arrow exporter is a page
    pa.table({"user_id": [4, 5], "country": ["CN", None]}),
]


@pytest.fixture
def ws_user(ws):
    ws.define_entity("user", key="user_id", attributes={"user_id": "int64", "country": "string"})
    return ws


def test_a_python_source_streams_its_pages_into_an_ingest(ws_user):
    src = PagedApi(PAGES)
    assert isinstance(src, segkit.Source)
    r = ws_user.ingest("user", src)
    assert (r.source, r.rows_read, r.rows_written, r.rows_quarantined) == ("api:users", 6, 6, 0)
    rows = ws_user.sql("select user_id, country from user order by user_id").to_pylist()
    assert [x["country"] for x in rows] == ["CN", "US", "DE", "CN", None, "JP"]


def test_scan_may_return_one_arrow_object_and_name_is_optional(ws_user):
    class OneTable:
        def schema(self):
            return SCHEMA

        def scan(self):
            return pa.table({"user_id": [7], "country": ["FR"]})

    r = ws_user.ingest("user", OneTable())
    assert (r.source, r.rows_written) == ("python:test_scan_may_return_one_arrow_object_and_name_is_optional.<locals>.OneTable", 1)


def test_a_failing_source_commits_nothing_and_names_itself(ws_user):
    ws_user.ingest("user", PagedApi(PAGES[:1]))
    with pytest.raises(segkit.IngestError, match=r"api:users.*scan\(\) raised ValueError: page 1: HTTP 503"):
        ws_user.ingest("user", PagedApi(PAGES, fail_at=1))
    assert ws_user.sql("select count(*) as n from user").to_pylist() == [{"n": 2}]


def test_a_page_that_is_not_arrow_or_not_the_declared_shape_is_a_clear_error(ws_user):
    with pytest.raises(segkit.IngestError, match=r"scan\(\) yielded a dict, not a page .* or a list of dicts"):
        ws_user.ingest("user", PagedApi([{"user_id": 1}]))
    with pytest.raises(segkit.IngestError, match=r"row 2 of a page: `user_id` is 2.5, not an integer"):
        ws_user.ingest("user", PagedApi([[{"user_id": 1}, {"user_id": 2.5}]]))
    with pytest.raises(segkit.IngestError, match=r"scan\(\) yielded field `age`, which schema\(\) does not declare"):
        ws_user.ingest("user", PagedApi([pa.table({"user_id": [1], "country": ["CN"], "age": [3]})]))
    with pytest.raises(segkit.IngestError, match=r"without the declared field `country`"):
        ws_user.ingest("user", PagedApi([pa.table({"user_id": [1]})]))


def test_schema_errors_name_the_source(ws_user):
    class Broken(PagedApi):
        def schema(self):
            raise KeyError("no schema today")

    with pytest.raises(segkit.IngestError, match=r"api:users.*schema\(\) raised KeyError"):
        ws_user.ingest("user", Broken(PAGES))


def test_conformance_checks_pass_for_a_good_source_and_explain_a_bad_one():
    src = PagedApi(PAGES)
    assert segkit.testing.check_source is check_source
    check_source(src)
    assert src.scans >= 3, "the checks scan more than once"

    class LiesAboutItsSchema(PagedApi):
        def schema(self):
            return pa.schema([("user_id", pa.int64()), ("country", pa.int32())])

    # Pieces are converted to the declared types (polars' string views above), but never by turning a value
    # into null.
    with pytest.raises(segkit.IngestError, match=r"scan\(\) yielded `country` as Utf8, which does not convert to the declared Int32"):
        check_source(LiesAboutItsSchema(PAGES))

    class Flaky(PagedApi):
        def scan(self):
            self.scans += 1
            return iter(self.pages[: 1 + self.scans % 2])

    with pytest.raises(segkit.IngestError, match="conformance: two scans gave different row counts: 3 then 2"):
        check_source(Flaky(PAGES))
