"""Detach, cleanup, agent restarts (start + restore), teardown, and attach latency."""

from __future__ import annotations

import os
import socket
import statistics
import time
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from network_helpers import Net, Netns, links, nft_tables, query, run_cmd

from dockyard.core.errors import Conflict, FailedPrecondition
from dockyard.core.protocol import PortMapping
from dockyard.network import HostNetwork
from dockyard.network.names import veth_name

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
]

Run = Callable[[Coroutine[Any, Any, Any]], Any]
A, B, C = "a" * 64, "b" * 64, "c" * 64


def _table(host: HostNetwork) -> str:
    return run_cmd("nft", "list", "table", "inet", host.table).stdout


def _port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def test_detach_removes_everything_and_is_idempotent(
    host: HostNetwork, make_net: Callable[..., Net], make_netns: Callable[[], Netns], run: Run
) -> None:
    net = make_net()
    ns = make_netns()
    ports = run(host.attach(container_id=A, pid=ns.pid, spec=net.spec(PortMapping("tcp", 80))))
    port = ports["80/tcp"][0][1]
    assert A in _table(host)
    assert not _port_is_free(port)
    run(host.detach(container_id=A))
    assert A not in _table(host)
    assert _port_is_free(port)
    assert veth_name(host.veth_prefix, A) not in links()
    assert [link["ifname"] for link in ns.ip_json("link")] == ["lo"]
    run(host.detach(container_id=A))
    run(host.detach(container_id=B))  # never attached


def test_detach_after_the_container_died(
    host: HostNetwork, make_net: Callable[..., Net], make_netns: Callable[[], Netns], run: Run
) -> None:
    net = make_net()
    ns = make_netns()
    run(host.attach(container_id=A, pid=ns.pid, spec=net.spec(PortMapping("udp", 53))))
    ns.kill()  # the kernel removes the veth pair with the netns, asynchronously
    run(host.detach(container_id=A))
    assert A not in _table(host)
    assert veth_name(host.veth_prefix, A) not in links()


def test_cleanup_keeps_only_the_given_ids(
    host: HostNetwork, make_net: Callable[..., Net], make_netns: Callable[[], Netns], run: Run
) -> None:
    net = make_net()
    for cid in (A, B, C):
        run(
            host.attach(
                container_id=cid, pid=make_netns().pid, spec=net.spec(PortMapping("tcp", 80))
            )
        )
    run(host.cleanup(keep={B}))
    assert host.attached() == {B}
    table = _table(host)
    assert B in table
    assert A not in table
    assert C not in table
    present = links()
    assert veth_name(host.veth_prefix, B) in present
    assert veth_name(host.veth_prefix, A) not in present
    assert veth_name(host.veth_prefix, C) not in present


def test_restart_restore_and_cleanup_of_leftovers(
    host: HostNetwork,
    make_host: Callable[[], HostNetwork],
    make_net: Callable[..., Net],
    make_netns: Callable[[], Netns],
    run: Run,
) -> None:
    """A new agent process: start() keeps elements, restore() re-reserves, cleanup() finds
    what the old process left behind by name and owner comment."""
    old = host
    net = make_net()
    kept_ns, gone_ns = make_netns(), make_netns()
    kept_spec = net.spec(PortMapping("tcp", 80))
    kept_ports = run(old.attach(container_id=A, pid=kept_ns.pid, spec=kept_spec))
    gone_ports = run(
        old.attach(container_id=B, pid=gone_ns.pid, spec=net.spec(PortMapping("tcp", 80)))
    )
    kept_ns.serve("tcp", 80)
    port = kept_ports["80/tcp"][0][1]
    old.close()  # the agent exits: reservations go, kernel state stays
    assert _port_is_free(port)
    assert query("tcp", "127.0.0.1", port) == net.gateway

    new = make_host()  # start() again on the same table
    assert A in _table(new) and B in _table(new)
    assert query("tcp", "127.0.0.1", port) == net.gateway
    run(new.restore(container_id=A, pid=kept_ns.pid, spec=kept_spec, ports=kept_ports))
    run(new.restore(container_id=A, pid=kept_ns.pid, spec=kept_spec, ports=kept_ports))
    assert not _port_is_free(port)
    assert new.attached() == {A}
    run(new.cleanup(keep={A}))
    table = _table(new)
    assert A in table
    assert B not in table
    assert str(gone_ports["80/tcp"][0][1]) not in table
    assert veth_name(new.veth_prefix, B) not in links()
    assert veth_name(new.veth_prefix, A) in links()
    assert query("tcp", "127.0.0.1", port) == net.gateway
    run(new.detach(container_id=A))
    assert _port_is_free(port)


def test_restore_refusals(
    host: HostNetwork,
    make_host: Callable[[], HostNetwork],
    make_net: Callable[..., Net],
    make_netns: Callable[[], Netns],
    run: Run,
) -> None:
    old = host
    net = make_net()
    ns = make_netns()
    spec = net.spec(PortMapping("tcp", 80))
    ports = run(old.attach(container_id=A, pid=ns.pid, spec=spec))
    old.close()
    new = make_host()
    with socket.socket() as squatter:
        squatter.bind(("0.0.0.0", ports["80/tcp"][0][1]))
        with pytest.raises(Conflict):
            run(new.restore(container_id=A, pid=ns.pid, spec=spec, ports=ports))
    assert new.attached() == set()
    with pytest.raises(FailedPrecondition, match="veth"):
        run(new.restore(container_id=B, pid=ns.pid, spec=net.spec(), ports={}))
    pid = ns.pid
    ns.kill()
    with pytest.raises(FailedPrecondition):
        run(new.restore(container_id=A, pid=pid, spec=spec, ports=ports))


def test_teardown_leaves_nothing(
    host: HostNetwork, make_net: Callable[..., Net], make_netns: Callable[[], Netns], run: Run
) -> None:
    nets = [make_net(), make_net(internal=True)]
    for n, net in enumerate(nets):
        run(
            host.attach(
                container_id=f"{n}" * 64,
                pid=make_netns().pid,
                spec=net.spec(PortMapping("tcp", 80)),
            )
        )
    run(host.teardown())
    present = links()
    assert not [name for name in present if name.startswith((host.table, host.veth_prefix))]
    assert host.table not in nft_tables()
    assert host.attached() == set()
    run(host.teardown())  # idempotent


def test_attach_latency(
    host: HostNetwork,
    make_net: Callable[..., Net],
    make_netns: Callable[[], Netns],
    run: Run,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Measured, not asserted: the machine is shared and noisy."""
    net = make_net()
    namespaces = [make_netns() for _ in range(20)]
    plain, published, detach = [], [], []
    for n, ns in enumerate(namespaces):
        ports = (PortMapping("tcp", 80), PortMapping("udp", 53)) if n % 2 else ()
        start = time.perf_counter()
        run(host.attach(container_id=f"{n:02d}" * 32, pid=ns.pid, spec=net.spec(*ports)))
        (published if ports else plain).append((time.perf_counter() - start) * 1000)
    for ns in namespaces:
        ns.kill()  # as in production: the netns dies first, then the agent detaches
    time.sleep(0.5)
    for n in range(len(namespaces)):
        start = time.perf_counter()
        run(host.detach(container_id=f"{n:02d}" * 32))
        detach.append((time.perf_counter() - start) * 1000)

    def fmt(values: list[float]) -> str:
        median = statistics.median(values)
        return f"median {median:.2f} ms, min {min(values):.2f}, max {max(values):.2f}"

    with capsys.disabled():
        print()
        print(f"  attach, no ports       ({len(plain)}): {fmt(plain)}")
        print(f"  attach, tcp+udp ports  ({len(published)}): {fmt(published)}")
        print(f"  detach after exit      ({len(detach)}): {fmt(detach)}")
