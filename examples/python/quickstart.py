"""The quickstart in Python: ingest the sample customers, define segments, evaluate, update, evaluate again.

    pip install ./bindings/python --config-settings=build-args="--profile dev"   # once
    python examples/python/quickstart.py
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import segkit

DATA = Path(__file__).resolve().parent.parent / "data"
path = Path(sys.argv[1] if len(sys.argv) > 1 else "quickstart-workspace-py")
shutil.rmtree(path, ignore_errors=True)

ws = segkit.Workspace.open(path)
ws.set_clock("2026-06-30T12:00:00Z")
ws.define_entity(
    "customer",
    key="customer_id",
    attributes={
        "customer_id": "int64",
        "email": {"type": "string", "pii": True},
        "country": "string",
        "plan": "string",
        "ltv": "float64",
        "signed_up": "date",
        "last_seen": "timestamp",
        "tags": "list<string>",
    },
)
report = ws.ingest("customer", DATA / "customers.csv")
print(f"{report.rows_written} written, {report.rows_quarantined} quarantined")
for q in report.quarantine_sample:
    print(f"  row {q.row}: {q.reason}")

ws.define_segment("vip_cn", entity="customer", rule={"and": [
    {"attribute": "country", "op": "eq", "value": "CN"},
    {"attribute": "tags", "op": "has_any", "value": ["vip"]},
]})
ws.define_segment("high_value", entity="customer", rule={"combinator": "or", "rules": [
    {"field": "ltv", "operator": ">", "value": "1000"},
    {"field": "plan", "operator": "=", "value": "enterprise"},
]})

for step in ("first", "after update"):
    if step == "after update":
        ws.ingest("customer", DATA / "customers_update.csv")
    for name in ("vip_cn", "high_value"):
        run = ws.evaluate(name)
        entered = [r["customer_id"] for r in run.entered.to_pylist()]
        exited = [r["customer_id"] for r in run.exited.to_pylist()]
        print(f"{step:>12} {name:<10} {run.count} members; entered {entered}; exited {exited}")
print(ws.preview("high_value", 2).to_pylist())
