"""Database sources (PostgreSQL, MariaDB, SQLite) through config dicts passed to ``ws.ingest``, against the real
servers of ``scripts/db-servers.sh`` (``SEGKIT_TEST_PG_URL`` / ``SEGKIT_TEST_MYSQL_URL``)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import urllib.parse
import uuid

import pytest

import segkit

HOW = 'start them with `eval "$(scripts/db-servers.sh start)"` or run scripts/test-all.sh'


def server(var: str) -> urllib.parse.SplitResult:
    url = os.environ.get(var)
    if not url:
        pytest.fail(f"{var} is not set: these tests need real PostgreSQL and MariaDB servers; {HOW}")
    return urllib.parse.urlsplit(url)


def without_password(u: urllib.parse.SplitResult) -> str:
    return u._replace(netloc=f"{u.username}@{u.hostname}:{u.port}").geturl()


def psql(sql: str) -> None:
    subprocess.run(["psql", "-v", "ON_ERROR_STOP=1", "-q", os.environ["SEGKIT_TEST_PG_URL"], "-c", sql], check=True)


def mariadb(sql: str) -> None:
    u = server("SEGKIT_TEST_MYSQL_URL")
    subprocess.run(
        ["mariadb", "--no-defaults", "-h", u.hostname, "-P", str(u.port), "-u", u.username, f"-p{u.password}",
         u.path.lstrip("/"), "-e", sql],
        check=True,
    )


CUSTOMER = {"id": "int64", "name": "string", "score": "float64", "active": "bool", "signed_up": "timestamp"}


def define(ws: segkit.Workspace) -> None:
    ws.define_entity("customer", key="id", attributes=CUSTOMER)
    ws.define_segment(
        "active_high",
        entity="customer",
        rule={"and": [{"attribute": "active", "op": "eq", "value": True},
                      {"attribute": "score", "op": "gt", "value": 50}]},
    )


def check_ingested(ws: segkit.Workspace, report) -> None:
    assert (report.rows_written, report.rows_quarantined) == (10, 0)
    ws.evaluate("active_high")
    assert ws.count("active_high") == 3
    rows = ws.sql("select id, name, signed_up from customer order by id").to_pylist()
    assert rows[0]["name"] == "user 1" and rows[-1]["id"] == 10
    assert str(rows[0]["signed_up"]).startswith("2024-01-02")


def test_postgres_table_and_query_through_config_dicts(ws, monkeypatch):
    u = server("SEGKIT_TEST_PG_URL")
    t = f"py_pg_{uuid.uuid4().hex[:8]}"
    psql(
        f"CREATE TABLE {t} (id int8 PRIMARY KEY, name text, score numeric(6, 1), active bool, signed_up timestamptz);"
        f"INSERT INTO {t} SELECT i, 'user ' || i, i * 10, i % 2 = 0, '2024-01-01+00'::timestamptz + i * interval '1 day'"
        " FROM generate_series(1, 10) AS i;"
    )
    define(ws)
    monkeypatch.setenv("SEGKIT_PY_PGPASS", u.password)
    config = {"type": "postgres", "url": without_password(u), "password": "env:SEGKIT_PY_PGPASS", "table": t,
              "batch_size": 3, "casts": {"score": "float64"}}
    report = ws.ingest("customer", config)
    assert report.source.startswith("postgres:postgres://segkit@127.0.0.1") and u.password not in report.source
    check_ingested(ws, report)
    query = {"type": "postgres", "url": without_password(u), "password": "env:SEGKIT_PY_PGPASS",
             "query": f"select id, 'renamed' as name from {t} where id <= 2"}
    assert ws.ingest("customer", query).rows_written == 2
    assert ws.sql("select count(*) as n from customer where name = 'renamed'").to_pylist() == [{"n": 2}]


def test_postgres_errors_are_ingest_errors_without_the_password(ws):
    u = server("SEGKIT_TEST_PG_URL")
    define(ws)
    wrong = u._replace(netloc=f"{u.username}:Wrong-Py-Secret-1@{u.hostname}:{u.port}").geturl()
    with pytest.raises(segkit.IngestError, match="password authentication failed") as e:
        ws.ingest("customer", {"type": "postgres", "url": wrong, "table": "whatever"})
    assert "Wrong-Py-Secret-1" not in str(e.value)
    with pytest.raises(segkit.IngestError, match='relation "no_such_table" does not exist'):
        ws.ingest("customer", {"type": "postgres", "url": os.environ["SEGKIT_TEST_PG_URL"], "table": "no_such_table"})
    numeric = {"type": "postgres", "url": os.environ["SEGKIT_TEST_PG_URL"], "query": "select 1::int8 as id, 2.5::numeric as score"}
    with pytest.raises(segkit.IngestError, match=r"column `score` has type numeric without precision"):
        ws.ingest("customer", numeric)
    with pytest.raises(segkit.DefinitionError, match="source.password"):
        ws.ingest("customer", {"type": "postgres", "url": without_password(u), "password": "hunter2", "table": "t"})
    assert ws.ingest_history("customer") == []


def test_mariadb_table_through_a_config_dict(ws, monkeypatch):
    u = server("SEGKIT_TEST_MYSQL_URL")
    t = f"py_my_{uuid.uuid4().hex[:8]}"
    mariadb(
        f"CREATE TABLE {t} (id BIGINT PRIMARY KEY, name VARCHAR(20), score DOUBLE, active BOOLEAN, signed_up DATETIME(6));"
        f"INSERT INTO {t} SELECT seq, CONCAT('user ', seq), seq * 10, seq % 2 = 0, TIMESTAMPADD(DAY, seq, '2024-01-01')"
        " FROM seq_1_to_10"
    )
    define(ws)
    monkeypatch.setenv("SEGKIT_PY_MYPASS", u.password)
    report = ws.ingest("customer", {"type": "mariadb", "url": without_password(u), "password": "env:SEGKIT_PY_MYPASS",
                                    "table": t, "batch_size": 4})
    check_ingested(ws, report)
    wrong = u._replace(netloc=f"{u.username}:Wrong-Py-Secret-2@{u.hostname}:{u.port}").geturl()
    with pytest.raises(segkit.IngestError, match="Access denied") as e:
        ws.ingest("customer", {"type": "mysql", "url": wrong, "table": t})
    assert "Wrong-Py-Secret-2" not in str(e.value)


def test_sqlite_file_through_a_config_dict(ws, tmp_path):
    path = tmp_path / "shop.db"
    with sqlite3.connect(path) as c:
        c.execute("CREATE TABLE customer (id INTEGER PRIMARY KEY, name TEXT, score REAL, active BOOLEAN, signed_up TIMESTAMP)")
        c.executemany(
            "INSERT INTO customer VALUES (?, ?, ?, ?, ?)",
            [(i, f"user {i}", i * 10.0, i % 2 == 0, f"2024-01-{i + 1:02d} 00:00:00") for i in range(1, 11)],
        )
    define(ws)
    check_ingested(ws, ws.ingest("customer", {"type": "sqlite", "path": str(path), "table": "customer"}))
    with pytest.raises(segkit.IngestError, match="does not exist"):
        ws.ingest("customer", {"type": "sqlite", "path": str(tmp_path / "nope.db"), "table": "customer"})
