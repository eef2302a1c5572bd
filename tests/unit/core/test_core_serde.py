"""Plain-data conversion of dataclass trees (dockyard.core.serde)."""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dockyard.core import serde
from dockyard.core.errors import InvalidArgument
from dockyard.core.models import (
    Container,
    ContainerConfig,
    ContainerState,
    Healthcheck,
    Host,
    HostConfig,
    Image,
    MountRequest,
    Network,
    PortBinding,
    RestartPolicy,
    Status,
    Volume,
)
from dockyard.core.protocol import (
    AgentEvent,
    AgentInfo,
    ContainerListing,
    ContainerSize,
    ContainerStatus,
    CreateRequest,
    EndpointSpec,
    MountSpec,
    NetworkSpec,
    PortMapping,
    ProcessSpec,
    Resources,
    StopRequest,
    TopResult,
    VolumeRequest,
)
from dockyard.core.serde import from_data, to_data


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclass
class Sample:
    """Every field shape serde supports."""

    name: str
    count: int = 0
    ratio: float = 0.0
    flag: bool = False
    colour: Colour = Colour.RED
    maybe: int | None = None
    words: list[str] = field(default_factory=list)
    many: tuple[int, ...] = ()
    pair: tuple[str, int] = ("", 0)
    table: dict[str, int] = field(default_factory=dict)
    nested: Healthcheck | None = None
    anything: Any = None


def _container() -> Container:
    return Container(
        id="a" * 64,
        tenant="t1",
        name="web",
        created=1_700_000_000_123_456_789,
        image="me/app:1",
        image_id="sha256:" + "b" * 64,
        config=ContainerConfig(
            image="me/app:1",
            env=("A=1",),
            cmd=("sh", "-c", "echo hi"),
            entrypoint=(),
            healthcheck=Healthcheck(test=("CMD", "true"), interval=5),
            labels={"a": "b"},
            stop_timeout=3,
            exposed_ports=("80/tcp",),
        ),
        host_config=HostConfig(
            mounts=(MountRequest(type="tmpfs", target="/run", options=("size=1m",)),),
            port_bindings={"80/tcp": (PortBinding("127.0.0.1", "8080"), PortBinding())},
            restart_policy=RestartPolicy("on-failure", 2),
            tmpfs={"/tmp": ""},
            sysctls={"net.core.somaxconn": "1024"},
        ),
        host="h1",
        state=ContainerState(status=Status.EXITED, exit_code=137, oom_killed=True),
        ports={"80/tcp": (PortBinding("0.0.0.0", "32768"),)},
        mounts=(MountSpec(type="volume", target="/data", source="data", copy_up=False),),
        anonymous_volumes=("c" * 64,),
    )


def _create_request() -> CreateRequest:
    return CreateRequest(
        id="a" * 64,
        tenant="t1",
        name="web",
        uid_base=1_000_000_000,
        uid_size=65536,
        layers=("sha256:" + "1" * 64, "sha256:" + "2" * 64),
        process=ProcessSpec(args=("sleep", "1"), env=("A=1",), cwd="/srv", user="1000:1000"),
        hostname="aaaaaaaaaaaa",
        resources=Resources(memory=1 << 28, pids_limit=100, cpuset_cpus="0-1"),
        mounts=(MountSpec(type="tmpfs", target="/run", options=("size=1m",)),),
        capabilities=("CAP_CHOWN", "CAP_KILL"),
        network=NetworkSpec(
            mode="tenant",
            router="t" * 64,
            endpoints=(
                EndpointSpec(
                    endpoint_id="e" * 64,
                    network_id="n" * 64,
                    bridge="br-nnnnnnnnnnnn",
                    subnet="10.89.0.0/16",
                    gateway="10.89.0.1",
                    ip="10.89.0.2",
                    names=("web", "aaaaaaaaaaaa"),
                ),
            ),
            ports=(PortMapping("tcp", 80, "", 0), PortMapping("udp", 53, "127.0.0.1", 5353)),
        ),
        dns=("1.1.1.1",),
        extra_hosts=("db:10.0.0.5",),
        log_max_size=1 << 20,
    )


RECORDS: list[Any] = [
    _container(),
    Image(
        id="sha256:" + "c" * 64,
        tenant="t1",
        layers=("sha256:" + "d" * 64,),
        size=5,
        created=7,
        repo_tags=("busybox:latest",),
        repo_digests=("busybox@sha256:" + "e" * 64,),
    ),
    Volume(name="data", tenant="t1", created=1, host="h1", labels={"x": "y"}, anonymous=True),
    Network(
        id="n" * 64,
        tenant="",
        name="bridge",
        driver="bridge",
        subnet="10.89.0.0/16",
        gateway="10.89.0.1",
        bridge="dockyard0",
        created=1,
        internal=True,
    ),
    Host(id="h1", name="host one", address="unix:///run/agent.sock", created=1),
    _create_request(),
    StopRequest(signal="SIGINT", timeout=-1),
    ContainerStatus(id="a" * 64, status="running", pid=42, ports={"80/tcp": [("0.0.0.0", 80)]}),
    AgentEvent(
        seq=3,
        boot_id="b" * 16,
        kind="exit",
        container=ContainerStatus(id="a" * 64, status="exited", exit_code=1),
        time=9,
    ),
    ContainerListing(
        boot_id="b" * 16, seq=3, containers=[ContainerStatus(id="x", status="created")]
    ),
    ContainerSize(size_rw=1, size_root_fs=2),
    TopResult(titles=["PID", "CMD"], processes=[["1", "sleep 1"]]),
    VolumeRequest(name="v", tenant="t", uid_base=5, options={"size": "1g"}),
    AgentInfo(
        id="h1",
        boot_id="b",
        hostname="box",
        kernel_version="6.1",
        operating_system="Debian",
        os_type="linux",
        architecture="x86_64",
        ncpu=4,
        mem_total=1 << 33,
        cgroup_driver="cgroupfs",
        cgroup_version="2",
        runtime="crun",
        runtime_version="1.8",
        storage_driver="overlayfs",
        root_dir="/var/lib/dockyard",
    ),
]


def test_public_surface() -> None:
    assert set(serde.__all__) == {"from_data", "to_data"}


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: type(r).__name__)
def test_records_and_messages_round_trip_through_json(record: Any) -> None:
    text = json.dumps(to_data(record))
    assert from_data(type(record), json.loads(text)) == record


def test_to_data_gives_json_values() -> None:
    data = to_data(_container())
    assert data["state"]["status"] == "exited"
    assert data["config"]["cmd"] == ["sh", "-c", "echo hi"]
    assert data["config"]["entrypoint"] == []
    assert data["config"]["on_build"] is None
    assert data["host_config"]["port_bindings"]["80/tcp"][0] == {
        "host_ip": "127.0.0.1",
        "host_port": "8080",
    }
    assert data["mounts"][0]["copy_up"] is False


def test_enums_are_written_as_their_values_and_read_back() -> None:
    assert to_data(Sample(name="x", colour=Colour.BLUE))["colour"] == "blue"
    assert from_data(Sample, {"name": "x", "colour": "blue"}).colour is Colour.BLUE
    with pytest.raises(InvalidArgument, match="'green' is not a valid Colour"):
        from_data(Sample, {"name": "x", "colour": "green"})
    assert from_data(ContainerState, {"status": "paused"}).status is Status.PAUSED


class Shade(enum.StrEnum):
    """An enum that is also a str: encoded by its value like any other."""

    DARK = "dark"


@dataclass
class Shaded:
    shade: Shade
    shades: list[Shade]
    by_name: dict[str, Shade]


def test_enums_deriving_from_plain_types_are_written_as_their_values() -> None:
    data = to_data(Shaded(shade=Shade.DARK, shades=[Shade.DARK], by_name={"a": Shade.DARK}))
    assert data == {"shade": "dark", "shades": ["dark"], "by_name": {"a": "dark"}}
    assert all(type(v) is str for v in (data["shade"], *data["shades"], data["by_name"]["a"]))


def test_unknown_keys_are_ignored() -> None:
    data = {**to_data(StopRequest()), "future_field": {"deep": [1, 2]}}
    assert from_data(StopRequest, data) == StopRequest()


def test_missing_keys_take_defaults() -> None:
    assert from_data(Sample, {"name": "x"}) == Sample(name="x")
    assert from_data(HostConfig, {}) == HostConfig()


def test_missing_required_field_is_invalid_argument() -> None:
    with pytest.raises(InvalidArgument, match="Sample"):
        from_data(Sample, {"count": 1})


@pytest.mark.parametrize(
    ("data", "where"),
    [
        ({"name": 5}, "Sample.name"),
        ({"name": "x", "count": "5"}, "Sample.count"),
        ({"name": "x", "count": True}, "Sample.count"),
        ({"name": "x", "count": 1.5}, "Sample.count"),
        ({"name": "x", "flag": 1}, "Sample.flag"),
        ({"name": "x", "ratio": "1.0"}, "Sample.ratio"),
        ({"name": "x", "ratio": False}, "Sample.ratio"),
        ({"name": "x", "words": "abc"}, "Sample.words"),
        ({"name": "x", "words": ["a", 1]}, "Sample.words[1]"),
        ({"name": "x", "many": {"a": 1}}, "Sample.many"),
        ({"name": "x", "table": [1]}, "Sample.table"),
        ({"name": "x", "table": {"a": "b"}}, "Sample.table.a"),
        ({"name": "x", "nested": []}, "Sample.nested"),
        ({"name": "x", "nested": {"retries": "3"}}, "Sample.nested.retries"),
        ({"name": "x", "maybe": "3"}, "Sample.maybe"),
    ],
)
def test_type_errors_raise_invalid_argument_naming_the_field(
    data: dict[str, Any], where: str
) -> None:
    with pytest.raises(InvalidArgument) as info:
        from_data(Sample, data)
    assert where in info.value.message


def test_top_level_must_be_an_object() -> None:
    for bad in (None, [], "x", 3):
        with pytest.raises(InvalidArgument):
            from_data(Sample, bad)


def test_int_is_accepted_for_float() -> None:
    value = from_data(Sample, {"name": "x", "ratio": 2})
    assert value.ratio == 2.0
    assert isinstance(value.ratio, float)


def test_optionals_accept_null_and_values() -> None:
    assert from_data(Sample, {"name": "x", "maybe": None}).maybe is None
    assert from_data(Sample, {"name": "x", "maybe": 7}).maybe == 7
    assert from_data(ContainerConfig, {"image": "i", "cmd": None}).cmd is None
    assert from_data(ContainerConfig, {"image": "i", "cmd": []}).cmd == ()


def test_fixed_tuples_have_exact_length() -> None:
    assert from_data(Sample, {"name": "x", "pair": ["a", 1]}).pair == ("a", 1)
    for bad in (["a"], ["a", 1, 2], [1, "a"]):
        with pytest.raises(InvalidArgument):
            from_data(Sample, {"name": "x", "pair": bad})


def test_sequences_rebuild_as_their_declared_type() -> None:
    value = from_data(Sample, {"name": "x", "words": ["a"], "many": [1, 2]})
    assert value.words == ["a"]
    assert value.many == (1, 2)
    status = from_data(
        ContainerStatus, {"id": "c", "status": "running", "ports": {"80/tcp": [["::", 80]]}}
    )
    assert status.ports == {"80/tcp": [("::", 80)]}


def test_any_passes_through() -> None:
    assert from_data(Sample, {"name": "x", "anything": {"k": [1]}}).anything == {"k": [1]}


def test_frozen_records_are_rebuilt_not_shared() -> None:
    data = to_data(_create_request())
    rebuilt = from_data(CreateRequest, data)
    data["process"]["args"].append("changed")
    assert rebuilt.process.args == ("sleep", "1")


_text = st.text(max_size=8)


@settings(max_examples=50)
@given(
    st.builds(
        ProcessSpec,
        args=st.tuples(_text, _text),
        env=st.lists(_text, max_size=3).map(tuple),
        cwd=_text,
        user=_text,
        tty=st.booleans(),
        group_add=st.lists(_text, max_size=2).map(tuple),
    ),
    st.builds(
        Resources,
        memory=st.integers(0, 1 << 40),
        memory_swap=st.integers(-1, 1 << 40),
        cpu_quota=st.integers(-1, 1 << 20),
        cpuset_cpus=_text,
    ),
    st.lists(
        st.builds(
            PortMapping,
            protocol=st.sampled_from(["tcp", "udp"]),
            container_port=st.integers(1, 65535),
            host_ip=_text,
            host_port=st.integers(0, 65535),
        ),
        max_size=3,
    ),
)
def test_round_trip_property(
    process: ProcessSpec, resources: Resources, ports: list[PortMapping]
) -> None:
    network = NetworkSpec(mode="tenant", ports=tuple(ports))
    for value in (process, resources, network):
        assert from_data(type(value), json.loads(json.dumps(to_data(value)))) == value
