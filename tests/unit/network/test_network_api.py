"""The public surface of dockyard.network is what we meant it to be."""

from __future__ import annotations

import importlib

import pytest

PUBLIC = {
    "dockyard.network": ["DEFAULT_TRANSIT_SUBNET", "HostNetwork", "Nft"],
    "dockyard.network.host": [
        "DEFAULT_TRANSIT_SUBNET",
        "EndpointWatcher",
        "HostNetwork",
        "connected_endpoints",
        "remaining_endpoints",
    ],
    "dockyard.network.nft": ["DEFAULT_LIBRARY", "Nft"],
    "dockyard.network.netns": [
        "CLONE_NEWNET",
        "NETNS_RUN_DIR",
        "create_named_netns",
        "in_named_netns",
        "named_netns",
        "remove_named_netns",
        "socket_in_named_netns",
        "socket_in_netns",
        "write_sysctl",
    ],
    "dockyard.network.counters": ["interface_counters", "parse_net_dev"],
    "dockyard.network.elements": ["delete_elements", "list_elements"],
    "dockyard.network.rtnl": [
        "LOOPBACK_IFINDEX",
        "NLA_F_NESTED",
        "Address",
        "Link",
        "Message",
        "Netlink",
        "Route",
        "Rtnl",
        "add_address",
        "configure_interfaces",
        "default_route",
        "delete_link",
        "delete_route",
        "host_route",
        "link_up",
        "new_bridge",
        "new_veth",
        "pack_attr",
        "parse_attrs",
        "replace_default_route",
        "set_port",
    ],
    "dockyard.network.conntrack": ["NETLINK_NETFILTER", "Conntrack", "Entry"],
    "dockyard.network.ingress": [
        "ContainerIngress",
        "EndpointIngress",
        "IngressChange",
        "Profile",
        "PublicIngress",
        "RouterIngress",
        "check_ingress",
        "compile_profile",
        "container_ingress",
        "floating_elements",
        "group_key",
        "merge_spec",
        "profile_elements",
    ],
    "dockyard.network.router": [
        "Router",
        "create_router",
        "delete_links",
        "list_routers",
        "open_router",
        "remove_router",
    ],
    "dockyard.network.names": [
        "IFNAMSIZ",
        "ROUTER_TABLE",
        "UPLINK_INSIDE",
        "ContainerInterface",
        "check_bridge_name",
        "check_container_id",
        "check_interface_name",
        "check_table",
        "check_transit_subnet",
        "endpoint_interface",
        "endpoint_veth",
        "gateway_address",
        "mac_for",
        "random_mac",
        "router_netns",
        "router_prefix",
        "transit_pair",
        "uplink_name",
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
        "ENDPOINT_SETS",
        "FIP_MAPS",
        "FLOATING_SETS",
        "HOST_PUBLISH_MAPS",
        "INTERVAL_SETS",
        "MEMBER_SLOTS",
        "PROFILE_SETS",
        "PUBLISHED_MARK",
        "ROOT_SETS",
        "ROUTER_SETS",
        "SCHEMA",
        "Element",
        "Scalar",
        "bridge_elements",
        "host_publish_elements",
        "parse_elements",
        "render_add",
        "render_delete",
        "root_ruleset",
        "router_publish_elements",
        "router_ruleset",
        "source_elements",
        "uplink_elements",
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
        "instance",
        "transit_subnet",
        "attached",
        "watch",
        "endpoints",
        "router_name",
        "router_sockets",
        "start",
        "attach",
        "connect",
        "disconnect",
        "detach",
        "restore",
        "cleanup",
        "unpublish",
        "update",
        "teardown",
        "close",
    }


def test_dns_server_methods() -> None:
    from dockyard.network.dns import DnsServer

    public = {name for name in vars(DnsServer) if not name.startswith("_")}
    assert public == {"upstreams", "start", "stop", "close_now", "respond"}


def test_network_imports_only_core_and_stdlib() -> None:
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
                allowed = top in sys.stdlib_module_names or name.startswith(
                    ("dockyard.core", "dockyard.network")
                )
                assert allowed, f"{path.name} imports {name}"
