"""The public surface of dockyard.network is what we meant it to be."""

from __future__ import annotations

import importlib

import pytest

PUBLIC = {
    "dockyard.network": ["HostNetwork", "Nft"],
    "dockyard.network.host": ["HostNetwork"],
    "dockyard.network.nft": ["DEFAULT_LIBRARY", "Nft"],
    "dockyard.network.netns": ["CLONE_NEWNET", "socket_in_netns"],
    "dockyard.network.counters": ["interface_counters", "parse_net_dev"],
    "dockyard.network.links": ["LOOPBACK_IFINDEX", "HostLinks", "netlink_errors"],
    "dockyard.network.rtnl": ["Rtnl", "configure_eth0", "create_veth"],
    "dockyard.network.names": [
        "IFNAMSIZ",
        "ContainerInterface",
        "check_bridge_name",
        "check_container_id",
        "check_table",
        "check_veth_prefix",
        "container_interface",
        "gateway_address",
        "mac_for",
        "random_mac",
        "veth_name",
    ],
    "dockyard.network.ports": [
        "ANY_IP",
        "EPHEMERAL_HIGH",
        "EPHEMERAL_LOW",
        "PROTOCOLS",
        "Binding",
        "PortAllocator",
        "bindings_from_ports",
        "check_mapping",
        "ports_dict",
    ],
    "dockyard.network.dnswire": [
        "AA",
        "CD",
        "CLASS_IN",
        "EDNS_PAYLOAD",
        "HEADER_SIZE",
        "MAX_MESSAGE",
        "MIN_UDP_PAYLOAD",
        "QR",
        "RA",
        "RD",
        "TC",
        "Edns",
        "MalformedMessage",
        "Query",
        "Rcode",
        "Type",
        "a_record",
        "answer",
        "encode_name",
        "error",
        "is_answer_to",
        "opcode",
        "parse_query",
        "peek_header",
        "ptr_address",
        "ptr_record",
        "rcode",
        "relay_truncated",
        "with_id",
    ],
    "dockyard.network.dns": [
        "DOCKER_TTL",
        "MAX_UPSTREAMS",
        "DnsServer",
        "Lookup",
        "Outcome",
        "Resolver",
        "StaticResolver",
        "Upstream",
        "host_upstreams",
    ],
    "dockyard.network.rules": [
        "BRIDGE_SETS",
        "PUBLISH_MAPS",
        "SCHEMA",
        "Element",
        "Scalar",
        "bridge_elements",
        "parse_elements",
        "publish_elements",
        "render_add",
        "render_delete",
        "ruleset",
    ],
}


@pytest.mark.parametrize("module", sorted(PUBLIC))
def test_public_surface(module: str) -> None:
    mod = importlib.import_module(module)
    assert sorted(mod.__all__) == sorted(PUBLIC[module])
    for name in mod.__all__:
        assert hasattr(mod, name), name


def test_host_network_methods() -> None:
    from dockyard.network import HostNetwork

    public = {name for name in vars(HostNetwork) if not name.startswith("_")}
    assert public == {
        "table",
        "veth_prefix",
        "attached",
        "start",
        "ensure_bridge",
        "attach",
        "detach",
        "restore",
        "cleanup",
        "unpublish",
        "teardown",
        "close",
    }


def test_dns_server_methods() -> None:
    from dockyard.network.dns import DnsServer

    public = {name for name in vars(DnsServer) if not name.startswith("_")}
    assert public == {"upstreams", "start", "stop", "respond"}


def test_network_imports_only_core_stdlib_and_pyroute2() -> None:
    import ast
    import pathlib
    import sys

    import dockyard.network

    root = pathlib.Path(dockyard.network.__file__).parent
    for path in root.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                allowed = (
                    top in sys.stdlib_module_names
                    or top == "pyroute2"
                    or name.startswith(("dockyard.core", "dockyard.network"))
                )
                assert allowed, f"{path.name} imports {name}"
