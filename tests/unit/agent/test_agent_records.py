"""The agent's durable per-container record (agent.records)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dockyard.agent.records import AgentRecord, load_record, save_record
from dockyard.core.errors import InvalidArgument
from dockyard.core.protocol import (
    ContainerStatus,
    CreateRequest,
    EndpointSpec,
    MountSpec,
    NetworkSpec,
    PortMapping,
    ProcessSpec,
    Resources,
)

CID = "f" * 64


def request() -> CreateRequest:
    return CreateRequest(
        id=CID,
        tenant="t1",
        name="web",
        uid_base=1_000_000_000,
        uid_size=65536,
        layers=("sha256:" + "1" * 64,),
        process=ProcessSpec(args=("sleep", "60"), env=("A=1",), user="app", tty=True),
        hostname="ffffffffffff",
        resources=Resources(memory=1 << 28, pids_limit=64),
        mounts=(MountSpec(type="volume", target="/data", source="data"),),
        capabilities=("CAP_CHOWN",),
        network=NetworkSpec(
            mode="tenant",
            router="t1",
            endpoints=(
                EndpointSpec(
                    endpoint_id="e1",
                    network_id="n1",
                    bridge="br-n1",
                    subnet="10.89.0.0/16",
                    gateway="10.89.0.1",
                    ip="10.89.0.2",
                ),
            ),
            ports=(PortMapping("tcp", 80),),
        ),
    )


def record() -> AgentRecord:
    return AgentRecord(
        request=request(),
        status="running",
        pid=4242,
        started_at=5,
        uid=1000,
        gid=1000,
        ports={"80/tcp": [("0.0.0.0", 32768), ("::", 32768)]},
    )


def test_save_then_load_gives_the_same_record(tmp_path: Path) -> None:
    path = tmp_path / "dockyard.json"
    save_record(path, record())
    loaded = load_record(path)
    assert loaded == record()
    assert loaded.id == CID
    assert loaded.ports["80/tcp"][0] == ("0.0.0.0", 32768)


def test_save_replaces_the_previous_record_and_leaves_no_temp_file(tmp_path: Path) -> None:
    path = tmp_path / "dockyard.json"
    save_record(path, record())
    changed = record()
    changed.status = "exited"
    changed.exit_code = 3
    save_record(path, changed)
    assert load_record(path) == changed
    assert [p.name for p in tmp_path.iterdir()] == ["dockyard.json"]


def test_missing_record(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        load_record(tmp_path / "nope.json")


@pytest.mark.parametrize(
    "text", ["", "{", "[]", "{}", '{"request": 1}', json.dumps({"request": {"id": "x"}})]
)
def test_corrupt_records_raise_what_recovery_catches(tmp_path: Path, text: str) -> None:
    path = tmp_path / "dockyard.json"
    path.write_text(text)
    with pytest.raises((OSError, ValueError, InvalidArgument)):
        load_record(path)


def test_status_message_reports_the_pid_only_while_running() -> None:
    running = record()
    assert running.status_message() == ContainerStatus(
        id=CID,
        status="running",
        pid=4242,
        started_at=5,
        ports={"80/tcp": [("0.0.0.0", 32768), ("::", 32768)]},
    )
    stopped = record()
    stopped.status = "exited"
    stopped.exit_code = 137
    stopped.oom_killed = True
    message = stopped.status_message()
    assert (message.pid, message.exit_code, message.oom_killed) == (0, 137, True)


def test_status_message_does_not_share_the_ports_lists() -> None:
    rec = record()
    rec.status_message().ports["80/tcp"].append(("1.2.3.4", 1))
    assert len(rec.ports["80/tcp"]) == 2
