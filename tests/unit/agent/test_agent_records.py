"""The agent's durable per-container record (agent.records)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dockyard.agent.records import AgentRecord, load_record, save_record, slots
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
from dockyard.core.serde import to_data

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
    saved = record()
    save_record(path, saved)
    loaded = load_record(path)
    assert loaded == saved
    assert loaded.seq == 1
    assert loaded.id == CID
    assert loaded.ports["80/tcp"][0] == ("0.0.0.0", 32768)


def test_saves_alternate_between_two_files_and_make_no_new_one(tmp_path: Path) -> None:
    path = tmp_path / "dockyard.json"
    current = record()
    save_record(path, current)
    save_record(path, current)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dockyard.1.json", "dockyard.json"]
    inodes = {p.name: p.stat().st_ino for p in tmp_path.iterdir()}
    for code in range(5):
        current.exit_code = code
        save_record(path, current)
        assert load_record(path).exit_code == code
    assert {p.name: p.stat().st_ino for p in tmp_path.iterdir()} == inodes


@pytest.mark.parametrize("torn", ["", '{"request": {"id"', "garbage"])
def test_a_save_torn_by_a_crash_leaves_the_record_before_it(tmp_path: Path, torn: str) -> None:
    path = tmp_path / "dockyard.json"
    before = record()
    save_record(path, before)
    save_record(path, before)  # seq 2, in dockyard.json
    after = record()
    after.seq = before.seq
    after.status = "exited"
    save_record(path, after)  # seq 3, in dockyard.1.json
    assert load_record(path).status == "exited"
    slots(path)[1].write_text(torn)  # the crash hit while seq 3 was being written
    loaded = load_record(path)
    assert (loaded.seq, loaded.status) == (2, "running")


def test_a_record_of_the_single_file_layout_is_read(tmp_path: Path) -> None:
    path = tmp_path / "dockyard.json"
    old = to_data(record())
    del old["seq"]
    path.write_text(json.dumps(old))
    assert load_record(path) == record()
    current = load_record(path)
    save_record(path, current)
    assert load_record(path).seq == 1


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
