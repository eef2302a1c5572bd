"""A conformance suite for :class:`dockyard.store.Store` implementations.

Each ``check_*`` function takes a factory that returns a *fresh, empty* store and asserts
one group of the rules written down in :mod:`dockyard.store.base`: container lookup (full
id, name with or without ``/``, unique id prefix, ambiguity, tenant isolation), per-tenant
name uniqueness, renames, images and tags, layer references, volumes, networks (per tenant,
deletion while in use), address allocation (static, ranges, also from several threads),
security groups (per tenant, deletion while in use), public IPs and their pools
(allocation, also from several threads, binding, tenant isolation), tenant uid ranges, the
event log (ranges by time and seq, tenant scoping, retention), the audit log (numbering,
filters, tenant scoping, retention) and registry namespaces (unique across tenants, kept
retired after their tenant).

The suite needs no test framework: a broken rule raises AssertionError, or the
unexpected error the store raised (NotFound for a ref that should have matched). Run it
from a test module, one test per check::

    @pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
    def test_conforms(check: Check) -> None:
        check(lambda: MyStore(...))

Every check closes the stores it opened.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import ipaddress
import itertools
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from dockyard.core.audit import MAX_LIMIT as MAX_AUDIT_READ
from dockyard.core.audit import OPERATOR_LOG, AuditQuery, AuditRecord
from dockyard.core.certs import ClientCert
from dockyard.core.errors import (
    AlreadyExists,
    Conflict,
    DockyardError,
    InvalidArgument,
    NotFound,
    Unavailable,
)
from dockyard.core.events import Event
from dockyard.core.identity import Role, User, issue_token
from dockyard.core.models import (
    Container,
    ContainerConfig,
    ContainerState,
    Endpoint,
    ExecInstance,
    Healthcheck,
    Host,
    HostConfig,
    Image,
    IpPool,
    MountRequest,
    Network,
    PortBinding,
    PublicIp,
    RestartPolicy,
    SecurityGroup,
    SecurityGroupRule,
    Status,
    Volume,
)
from dockyard.core.namespaces import Namespace
from dockyard.core.protocol import MountSpec
from dockyard.core.quotas import UNLIMITED, TenantQuota
from dockyard.core.tenancy import UID_RANGE_SIZE
from dockyard.store.base import ALL_TENANTS, Store

__all__ = [
    "CHECKS",
    "Check",
    "StoreFactory",
    "check_addresses_are_never_handed_out_twice",
    "check_addresses_concurrently",
    "check_addresses_released_return_to_the_pool",
    "check_addresses_static_and_ranges",
    "check_ambiguous_prefix_is_invalid_argument",
    "check_audit_append_and_filters",
    "check_audit_of_other_tenants_are_invisible",
    "check_audit_read_from_another_thread",
    "check_audit_retention",
    "check_client_certs",
    "check_container_found_by_full_id",
    "check_container_found_by_name",
    "check_container_found_by_unique_prefix",
    "check_container_names_unique_per_tenant",
    "check_container_not_found",
    "check_container_totals_count_every_state",
    "check_containers_of_other_tenants_are_invisible",
    "check_delete_container",
    "check_event_retention",
    "check_events_append_and_range",
    "check_events_of_other_tenants_are_invisible",
    "check_exact_name_wins_over_prefix",
    "check_execs",
    "check_hosts",
    "check_image_tags_move_between_images",
    "check_images",
    "check_images_of_other_tenants_are_invisible",
    "check_layer_referenced",
    "check_list_and_put_containers",
    "check_namespaces_are_unique_across_tenants",
    "check_namespaces_of_a_deleted_tenant_are_retired",
    "check_network_delete",
    "check_networks",
    "check_other_tenants_objects_read_as_missing",
    "check_prefixes_are_unique_per_tenant",
    "check_public_ip_binding",
    "check_public_ip_pools",
    "check_public_ips_are_never_handed_out_twice",
    "check_public_ips_concurrently",
    "check_public_ips_of_other_tenants_are_invisible",
    "check_public_ips_released_return_to_the_pool",
    "check_rename_container",
    "check_security_group_delete",
    "check_security_groups",
    "check_security_groups_of_other_tenants_read_as_missing",
    "check_tenant_by_name_and_delete",
    "check_tenant_quotas",
    "check_tenants_get_disjoint_uid_ranges",
    "check_users_and_tokens",
    "check_volumes",
    "run_all",
]

StoreFactory = Callable[[], Store]
"""Returns a new, empty store each time it is called."""

Check = Callable[[StoreFactory], None]

TENANT_A = "tenant-a"
TENANT_B = "tenant-b"


# helpers ----------------------------------------------------------------------------------


@contextlib.contextmanager
def _opened(make_store: StoreFactory) -> Iterator[Store]:
    store = make_store()
    try:
        yield store
    finally:
        store.close()


def _raises(kind: type[DockyardError], action: Callable[[], object], what: str) -> DockyardError:
    """Run ``action``; it must raise exactly ``kind`` (not a sibling kind)."""
    try:
        result = action()
    except DockyardError as exc:
        assert type(exc) is kind, f"{what}: expected {kind.__name__}, got {exc!r}"
        return exc
    raise AssertionError(f"{what}: expected {kind.__name__}, returned {result!r}")


def _hex_id(prefix: str) -> str:
    assert all(c in "0123456789abcdef" for c in prefix)
    return (prefix + "0" * 64)[:64]


def _container(*, tenant: str, name: str, cid: str, host: str = "host-1") -> Container:
    return Container(
        id=cid,
        tenant=tenant,
        name=name,
        created=1_700_000_000_000_000_000,
        image="busybox:latest",
        image_id="sha256:" + "b" * 64,
        config=ContainerConfig(image="busybox:latest", cmd=("sleep", "60")),
        host_config=HostConfig(),
        host=host,
    )


def _rich_container(*, tenant: str, name: str, cid: str) -> Container:
    """A record with every kind of nested value, to check it survives storage whole."""
    return Container(
        id=cid,
        tenant=tenant,
        name=name,
        created=1_700_000_000_123_456_789,
        image="me/app:1",
        image_id="sha256:" + "c" * 64,
        config=ContainerConfig(
            image="me/app:1",
            hostname="web",
            env=("A=1", "B=two words"),
            cmd=("python", "-m", "http.server"),
            entrypoint=(),
            exposed_ports=("80/tcp", "53/udp"),
            healthcheck=Healthcheck(test=("CMD", "true"), interval=30_000_000_000, retries=3),
            volumes=("/data",),
            labels={"com.example.role": "web", "empty": ""},
            stop_timeout=5,
        ),
        host_config=HostConfig(
            binds=("data:/data:ro",),
            mounts=(
                MountRequest(type="tmpfs", target="/run", options=("size=1m",)),
                MountRequest(
                    type="volume",
                    target="/v",
                    source="v",
                    propagation="rprivate",
                    volume_driver="local",
                    volume_options={"k": "v"},
                ),
            ),
            tmpfs={"/tmp": "size=64m"},
            port_bindings={"80/tcp": (PortBinding(host_ip="127.0.0.1", host_port="8080"),)},
            restart_policy=RestartPolicy(name="on-failure", maximum_retry_count=3),
            memory=64 * 1024 * 1024,
            cap_drop=("NET_RAW",),
            log_options={"max-size": "1m"},
        ),
        host="host-2",
        state=ContainerState(status=Status.RUNNING, pid=4242, started_at=1_700_000_001_000_000_000),
        endpoints=[
            Endpoint(network_id=_hex_id("5a"), id=_hex_id("e5"), ip="10.88.0.2", aliases=("db",))
        ],
        ports={"80/tcp": (PortBinding(host_ip="127.0.0.1", host_port="8080"),)},
        restart_count=2,
        has_been_started=True,
        mounts=(
            MountSpec(type="volume", target="/data", source="data", read_only=True),
            MountSpec(type="tmpfs", target="/run", options=("size=1m",), copy_up=False),
        ),
        anonymous_volumes=("f" * 64,),
    )


def _image(*, tenant: str, hex_id: str, tags: tuple[str, ...] = (), layers: int = 2) -> Image:
    return Image(
        id=f"sha256:{_hex_id(hex_id)}",
        tenant=tenant,
        layers=tuple(f"sha256:{_hex_id(hex_id + 'd' + str(i))}" for i in range(layers)),
        size=1234,
        created=1_700_000_000_000_000_000,
        repo_tags=tags,
        repo_digests=tuple(f"{t.split(':')[0]}@sha256:{'e' * 64}" for t in tags[:1]),
    )


def _network(
    *, tenant: str, name: str, hex_id: str, subnet: str = "10.88.0.0/24", gateway: str = ""
) -> Network:
    net = ipaddress.ip_network(subnet)
    return Network(
        id=_hex_id(hex_id),
        tenant=tenant,
        name=name,
        driver="bridge",
        subnet=subnet,
        gateway=gateway or str(next(net.hosts())),
        bridge="dockyard0",
        created=1_700_000_000_000_000_000,
        labels={"purpose": "test"},
    )


def _group(
    *, tenant: str, name: str, hex_id: str, rules: tuple[SecurityGroupRule, ...] = ()
) -> SecurityGroup:
    return SecurityGroup(
        id=_hex_id(hex_id),
        tenant=tenant,
        name=name,
        created=1_700_000_000_000_000_000,
        description=f"the {name} tier",
        rules=rules,
        labels={"tier": name},
    )


def _volume(*, tenant: str, name: str) -> Volume:
    return Volume(
        name=name,
        tenant=tenant,
        created=1_700_000_000_000_000_000,
        host="host-1",
        mountpoint=f"/var/lib/dockyard/volumes/{name}",
        labels={"k": "v"},
        options={"size": "1g"},
    )


def _ids(records: list[Container]) -> set[str]:
    return {r.id for r in records}


# tenants and hosts -------------------------------------------------------------------------


def check_tenants_get_disjoint_uid_ranges(make_store: StoreFactory) -> None:
    """ensure_tenant is idempotent per name and gives each tenant its own uid range."""
    with _opened(make_store) as store:
        first = store.ensure_tenant("alpha")
        again = store.ensure_tenant("alpha")
        assert again == first, "ensure_tenant must return the existing tenant"
        tenants = [first, *(store.ensure_tenant(n) for n in ("beta", "gamma", "delta"))]
        assert len({t.id for t in tenants}) == 4, "tenant ids must differ"
        ranges = sorted((t.uid_base, t.uid_base + t.uid_size) for t in tenants)
        for start, end in ranges:
            assert start > 0, "a tenant range must never include host uid 0"
            assert end - start == UID_RANGE_SIZE
        for (_, end), (start, _) in itertools.pairwise(ranges):
            assert end <= start, f"uid ranges overlap: {ranges}"
        for tenant in tenants:
            assert store.get_tenant(tenant.id) == tenant
        assert {t.name for t in store.list_tenants()} == {"alpha", "beta", "gamma", "delta"}
        _raises(NotFound, lambda: store.get_tenant("no-such-tenant"), "get_tenant(unknown)")


def check_hosts(make_store: StoreFactory) -> None:
    """put_host inserts or replaces by id."""
    with _opened(make_store) as store:
        assert store.list_hosts() == []
        store.put_host(Host(id="h1", name="one", address="unix:///a.sock", created=1))
        store.put_host(Host(id="h2", name="two", address="unix:///b.sock", created=2))
        store.put_host(Host(id="h1", name="one", address="unix:///c.sock", created=1))
        hosts = sorted(store.list_hosts(), key=lambda h: h.id)
        assert [h.id for h in hosts] == ["h1", "h2"]
        assert hosts[0].address == "unix:///c.sock"


# containers: lookup ------------------------------------------------------------------------


def check_container_found_by_full_id(make_store: StoreFactory) -> None:
    """A stored container comes back whole, by its full id."""
    with _opened(make_store) as store:
        record = _rich_container(tenant=TENANT_A, name="web", cid=_hex_id("a1"))
        store.add_container(record)
        assert store.get_container(tenant=TENANT_A, ref=record.id) == record


def check_container_found_by_name(make_store: StoreFactory) -> None:
    """A name finds its container with or without Docker's leading slash."""
    with _opened(make_store) as store:
        web = _container(tenant=TENANT_A, name="web", cid=_hex_id("a1"))
        db = _container(tenant=TENANT_A, name="db", cid=_hex_id("b2"))
        store.add_container(web)
        store.add_container(db)
        assert store.get_container(tenant=TENANT_A, ref="web").id == web.id
        assert store.get_container(tenant=TENANT_A, ref="/web").id == web.id
        assert store.get_container(tenant=TENANT_A, ref="/db").id == db.id


def check_container_found_by_unique_prefix(make_store: StoreFactory) -> None:
    """A prefix of exactly one container's id finds it; the short 12-digit form too."""
    with _opened(make_store) as store:
        first = _container(tenant=TENANT_A, name="one", cid=_hex_id("abc123"))
        second = _container(tenant=TENANT_A, name="two", cid=_hex_id("abc456"))
        store.add_container(first)
        store.add_container(second)
        assert store.get_container(tenant=TENANT_A, ref="abc1").id == first.id
        assert store.get_container(tenant=TENANT_A, ref="abc4").id == second.id
        assert store.get_container(tenant=TENANT_A, ref=first.id[:12]).id == first.id


def check_ambiguous_prefix_is_invalid_argument(make_store: StoreFactory) -> None:
    """A prefix shared by two of the tenant's containers is InvalidArgument."""
    with _opened(make_store) as store:
        store.add_container(_container(tenant=TENANT_A, name="one", cid=_hex_id("abc123")))
        store.add_container(_container(tenant=TENANT_A, name="two", cid=_hex_id("abc456")))
        _raises(
            InvalidArgument,
            lambda: store.get_container(tenant=TENANT_A, ref="abc"),
            "get_container(ambiguous prefix)",
        )


def check_exact_name_wins_over_prefix(make_store: StoreFactory) -> None:
    """A name that is also another container's id prefix finds the named container."""
    with _opened(make_store) as store:
        named = _container(tenant=TENANT_A, name="abc", cid=_hex_id("ff"))
        prefixed = _container(tenant=TENANT_A, name="other", cid=_hex_id("abc9"))
        store.add_container(prefixed)
        store.add_container(named)
        assert store.get_container(tenant=TENANT_A, ref="abc").id == named.id
        assert store.get_container(tenant=TENANT_A, ref="abc9").id == prefixed.id


def check_container_not_found(make_store: StoreFactory) -> None:
    """Refs that match nothing are NotFound."""
    with _opened(make_store) as store:
        store.add_container(_container(tenant=TENANT_A, name="web", cid=_hex_id("a1")))
        for ref in ("nope", "/nope", "b", _hex_id("b"), "web2", "we"):
            _raises(
                NotFound,
                functools.partial(store.get_container, tenant=TENANT_A, ref=ref),
                f"get_container({ref!r})",
            )


def check_containers_of_other_tenants_are_invisible(make_store: StoreFactory) -> None:
    """Another tenant's container is NotFound by every kind of ref and every operation."""
    with _opened(make_store) as store:
        mine = _container(tenant=TENANT_A, name="web", cid=_hex_id("a1b2"))
        store.add_container(mine)
        for ref in (mine.id, mine.id[:12], "a1", "web", "/web"):
            _raises(
                NotFound,
                functools.partial(store.get_container, tenant=TENANT_B, ref=ref),
                f"get_container(other tenant, {ref!r})",
            )
        assert store.list_containers(tenant=TENANT_B) == []
        assert store.list_containers(tenant=TENANT_B, host=mine.host) == []
        stolen = dataclasses.replace(mine, tenant=TENANT_B, name="stolen")
        _raises(NotFound, lambda: store.put_container(stolen), "put_container(other tenant)")
        _raises(
            NotFound,
            lambda: store.rename_container(tenant=TENANT_B, container_id=mine.id, name="x"),
            "rename_container(other tenant)",
        )
        store.delete_container(tenant=TENANT_B, container_id=mine.id)
        assert store.get_container(tenant=TENANT_A, ref=mine.id) == mine, (
            "another tenant's delete or put must leave the container untouched"
        )
        # The system scope is for reconcilers: it sees every tenant's containers by id.
        assert store.get_container(tenant=ALL_TENANTS, ref=mine.id) == mine


def check_prefixes_are_unique_per_tenant(make_store: StoreFactory) -> None:
    """A prefix shared with another tenant's container or network still finds the caller's
    own one: ambiguity is counted in the caller's tenant only, or the error would tell the
    caller that another tenant's object exists."""
    with _opened(make_store) as store:
        mine = _container(tenant=TENANT_A, name="one", cid=_hex_id("abc123"))
        theirs = _container(tenant=TENANT_B, name="two", cid=_hex_id("abc456"))
        store.add_container(mine)
        store.add_container(theirs)
        assert store.get_container(tenant=TENANT_A, ref="abc").id == mine.id
        assert store.get_container(tenant=TENANT_B, ref="abc").id == theirs.id
        mine_net = _network(tenant=TENANT_A, name="n", hex_id="def1", subnet="10.90.0.0/24")
        theirs_net = _network(tenant=TENANT_B, name="n", hex_id="def2", subnet="10.91.0.0/24")
        store.add_network(mine_net)
        store.add_network(theirs_net)
        assert store.get_network(tenant=TENANT_A, ref="def").id == mine_net.id
        assert store.get_network(tenant=TENANT_B, ref="def").id == theirs_net.id


def check_other_tenants_objects_read_as_missing(make_store: StoreFactory) -> None:
    """Every lookup of another tenant's object fails exactly as for a missing one: the same
    kind (NotFound, never PermissionDenied) and the same message, the ref aside."""
    with _opened(make_store) as store:
        web = _container(tenant=TENANT_A, name="web", cid=_hex_id("a1"))
        store.add_container(web)
        store.put_image(_image(tenant=TENANT_A, hex_id="a2", tags=("secret:1",)))
        store.add_volume(_volume(tenant=TENANT_A, name="data"))
        store.add_network(_network(tenant=TENANT_A, name="backend", hex_id="a3"))
        store.add_exec(
            ExecInstance(id=_hex_id("a4"), tenant=TENANT_A, container_id=web.id, created=1)
        )
        user = User(id=_hex_id("a5"), tenant=TENANT_A, name="alice", role=Role.ADMIN, created=1)
        store.add_user(user)
        token = issue_token(tenant=TENANT_A, user=user.id, scopes=("read",), created=1).token
        store.add_token(token)
        lookups: list[tuple[str, Callable[[str], object], str, str]] = [
            (
                "container id",
                lambda r: store.get_container(tenant=TENANT_B, ref=r),
                web.id,
                _hex_id("b1"),
            ),
            (
                "container prefix",
                lambda r: store.get_container(tenant=TENANT_B, ref=r),
                web.id[:12],
                _hex_id("b1")[:12],
            ),
            (
                "container name",
                lambda r: store.get_container(tenant=TENANT_B, ref=r),
                "web",
                "nosuch",
            ),
            (
                "image id",
                lambda r: store.get_image(tenant=TENANT_B, image_id=r),
                f"sha256:{_hex_id('a2')}",
                f"sha256:{_hex_id('b2')}",
            ),
            (
                "image tag",
                lambda r: store.image_by_tag(tenant=TENANT_B, tag=r),
                "secret:1",
                "nosuch:1",
            ),
            ("volume", lambda r: store.get_volume(tenant=TENANT_B, name=r), "data", "nosuch"),
            (
                "network name",
                lambda r: store.get_network(tenant=TENANT_B, ref=r),
                "backend",
                "nosuch",
            ),
            (
                "network id",
                lambda r: store.get_network(tenant=TENANT_B, ref=r),
                _hex_id("a3"),
                _hex_id("b3"),
            ),
            (
                "exec",
                lambda r: store.get_exec(tenant=TENANT_B, exec_id=r),
                _hex_id("a4"),
                _hex_id("b4"),
            ),
            ("user", lambda r: store.get_user(tenant=TENANT_B, ref=r), "alice", "nosuch"),
            ("user id", lambda r: store.get_user(tenant=TENANT_B, ref=r), user.id, _hex_id("b5")),
            (
                "token",
                lambda r: store.revoke_token(tenant=TENANT_B, token_id=r, when=5),
                token.id,
                "0" * 16,
            ),
        ]
        for what, lookup, theirs, missing in lookups:
            got = _raises(NotFound, functools.partial(lookup, theirs), f"{what} of another tenant")
            want = _raises(NotFound, functools.partial(lookup, missing), f"missing {what}")
            assert got.message.replace(theirs, "<ref>") == want.message.replace(missing, "<ref>"), (
                f"{what}: {got.message!r} tells more than {want.message!r}"
            )
        store.delete_user(tenant=TENANT_B, user_id=user.id)
        assert store.get_user(tenant=TENANT_A, ref=user.id) == user, "B deleted A's user"
        assert store.get_token(token.id).revoked == 0, "B revoked A's token"


# containers: names, writes -----------------------------------------------------------------


def check_container_names_unique_per_tenant(make_store: StoreFactory) -> None:
    """A taken name is AlreadyExists within a tenant and free in every other tenant."""
    with _opened(make_store) as store:
        store.add_container(_container(tenant=TENANT_A, name="web", cid=_hex_id("a1")))
        _raises(
            AlreadyExists,
            lambda: store.add_container(_container(tenant=TENANT_A, name="web", cid=_hex_id("a2"))),
            "add_container(taken name)",
        )
        _raises(NotFound, lambda: store.get_container(tenant=TENANT_A, ref=_hex_id("a2")), "a2")
        theirs = _container(tenant=TENANT_B, name="web", cid=_hex_id("b1"))
        store.add_container(theirs)
        assert store.get_container(tenant=TENANT_B, ref="web").id == theirs.id
        assert store.get_container(tenant=TENANT_A, ref="web").id == _hex_id("a1")


def check_rename_container(make_store: StoreFactory) -> None:
    """Renames move the name; a name taken in the tenant is AlreadyExists and changes
    nothing; a name used only by another tenant is free."""
    with _opened(make_store) as store:
        web = _container(tenant=TENANT_A, name="web", cid=_hex_id("a1"))
        db = _container(tenant=TENANT_A, name="db", cid=_hex_id("a2"))
        store.add_container(web)
        store.add_container(db)
        store.add_container(_container(tenant=TENANT_B, name="front", cid=_hex_id("b1")))

        store.rename_container(tenant=TENANT_A, container_id=web.id, name="front")
        renamed = store.get_container(tenant=TENANT_A, ref="front")
        assert renamed.id == web.id
        assert renamed.name == "front", "the stored record must carry the new name"
        _raises(NotFound, lambda: store.get_container(tenant=TENANT_A, ref="web"), "old name")

        _raises(
            AlreadyExists,
            lambda: store.rename_container(tenant=TENANT_A, container_id=web.id, name="db"),
            "rename_container(taken name)",
        )
        assert store.get_container(tenant=TENANT_A, ref="front").id == web.id
        assert store.get_container(tenant=TENANT_A, ref="db").id == db.id

        _raises(
            NotFound,
            lambda: store.rename_container(tenant=TENANT_A, container_id=_hex_id("dead"), name="x"),
            "rename_container(unknown id)",
        )
        # The old name is free again.
        store.add_container(_container(tenant=TENANT_A, name="web", cid=_hex_id("a3")))


def check_list_and_put_containers(make_store: StoreFactory) -> None:
    """list_containers filters by tenant and host; put_container replaces the record."""
    with _opened(make_store) as store:
        one = _container(tenant=TENANT_A, name="one", cid=_hex_id("a1"), host="h1")
        two = _container(tenant=TENANT_A, name="two", cid=_hex_id("a2"), host="h2")
        three = _container(tenant=TENANT_B, name="three", cid=_hex_id("b1"), host="h1")
        for record in (one, two, three):
            store.add_container(record)
        assert _ids(store.list_containers(tenant=TENANT_A)) == {one.id, two.id}
        assert _ids(store.list_containers(tenant=TENANT_A, host="h1")) == {one.id}
        assert _ids(store.list_containers(tenant=TENANT_A, host="h3")) == set()
        assert _ids(store.list_containers(tenant=ALL_TENANTS)) == {one.id, two.id, three.id}
        assert _ids(store.list_containers(tenant=ALL_TENANTS, host="h1")) == {one.id, three.id}

        changed = dataclasses.replace(
            one,
            host="h2",
            state=ContainerState(status=Status.EXITED, exit_code=3, finished_at=5),
            restart_count=1,
            phase="removing",
        )
        store.put_container(changed)
        assert store.get_container(tenant=TENANT_A, ref=one.id) == changed
        assert _ids(store.list_containers(tenant=TENANT_A, host="h2")) == {one.id, two.id}


def check_delete_container(make_store: StoreFactory) -> None:
    """A deleted container is gone, its name and network address are free, and
    put_container is NotFound."""
    with _opened(make_store) as store:
        net = _network(tenant=TENANT_A, name="bridge", hex_id="5b", subnet="10.79.0.0/30")
        store.add_network(net)
        web = _container(tenant=TENANT_A, name="web", cid=_hex_id("a1"))
        store.add_container(web)
        address = store.allocate_address(network=net, owner=web.id)
        _raises(Unavailable, lambda: store.allocate_address(network=net, owner="x"), "full")
        store.delete_container(tenant=TENANT_A, container_id=web.id)
        assert store.allocate_address(network=net, owner="next") == address
        _raises(NotFound, lambda: store.get_container(tenant=TENANT_A, ref=web.id), "deleted")
        _raises(NotFound, lambda: store.get_container(tenant=TENANT_A, ref="web"), "deleted")
        _raises(NotFound, lambda: store.put_container(web), "put_container(deleted)")
        assert store.list_containers(tenant=TENANT_A) == []
        store.add_container(_container(tenant=TENANT_A, name="web", cid=_hex_id("a2")))


# images ------------------------------------------------------------------------------------


def check_images(make_store: StoreFactory) -> None:
    """Images by id, id prefix and tag; put replaces; delete removes the tags too."""
    with _opened(make_store) as store:
        app = _image(tenant=TENANT_A, hex_id="a1", tags=("me/app:1", "me/app:latest"))
        base = _image(tenant=TENANT_A, hex_id="a2", tags=("busybox:latest",))
        store.put_image(app)
        store.put_image(base)
        assert store.get_image(tenant=TENANT_A, image_id=app.id) == app
        assert store.image_by_tag(tenant=TENANT_A, tag="me/app:latest") == app
        assert store.image_by_tag(tenant=TENANT_A, tag="busybox:latest") == base
        assert {i.id for i in store.find_images(tenant=TENANT_A, id_prefix="sha256:a")} == {
            app.id,
            base.id,
        }
        assert [i.id for i in store.find_images(tenant=TENANT_A, id_prefix="sha256:a1")] == [app.id]
        assert store.find_images(tenant=TENANT_A, id_prefix="sha256:f") == []
        assert {i.id for i in store.list_images(tenant=TENANT_A)} == {app.id, base.id}
        _raises(NotFound, lambda: store.image_by_tag(tenant=TENANT_A, tag="me/app:2"), "tag")
        _raises(
            NotFound,
            lambda: store.get_image(tenant=TENANT_A, image_id=f"sha256:{_hex_id('ee')}"),
            "get_image(unknown)",
        )

        retagged = dataclasses.replace(app, repo_tags=("me/app:2",), comment="again")
        store.put_image(retagged)
        assert store.get_image(tenant=TENANT_A, image_id=app.id) == retagged
        assert store.image_by_tag(tenant=TENANT_A, tag="me/app:2") == retagged
        _raises(
            NotFound,
            lambda: store.image_by_tag(tenant=TENANT_A, tag="me/app:1"),
            "a tag the replaced record no longer has",
        )

        store.delete_image(tenant=TENANT_A, image_id=app.id)
        _raises(NotFound, lambda: store.get_image(tenant=TENANT_A, image_id=app.id), "deleted")
        _raises(
            NotFound, lambda: store.image_by_tag(tenant=TENANT_A, tag="me/app:2"), "deleted tag"
        )
        assert [i.id for i in store.list_images(tenant=TENANT_A)] == [base.id]


def check_image_tags_move_between_images(make_store: StoreFactory) -> None:
    """Tagging another image with a tag takes the tag from its previous image."""
    with _opened(make_store) as store:
        old = _image(tenant=TENANT_A, hex_id="a1", tags=("app:latest", "app:1"))
        store.put_image(old)
        new = _image(tenant=TENANT_A, hex_id="a2", tags=("app:latest", "app:2"))
        store.put_image(new)
        assert store.image_by_tag(tenant=TENANT_A, tag="app:latest").id == new.id
        assert store.image_by_tag(tenant=TENANT_A, tag="app:1").id == old.id
        assert store.get_image(tenant=TENANT_A, image_id=old.id).repo_tags == ("app:1",)
        assert store.get_image(tenant=TENANT_A, image_id=new.id).repo_tags == (
            "app:latest",
            "app:2",
        )
        # Another tenant's tag of the same name is untouched.
        theirs = _image(tenant=TENANT_B, hex_id="b1", tags=("app:latest",))
        store.put_image(theirs)
        assert store.image_by_tag(tenant=TENANT_A, tag="app:latest").id == new.id
        assert store.image_by_tag(tenant=TENANT_B, tag="app:latest").id == theirs.id


def check_images_of_other_tenants_are_invisible(make_store: StoreFactory) -> None:
    """Images are per tenant: invisible elsewhere, and the same id held by two tenants is
    two independent records."""
    with _opened(make_store) as store:
        mine = _image(tenant=TENANT_A, hex_id="a1", tags=("secret:1",))
        store.put_image(mine)
        _raises(NotFound, lambda: store.get_image(tenant=TENANT_B, image_id=mine.id), "get_image")
        _raises(NotFound, lambda: store.image_by_tag(tenant=TENANT_B, tag="secret:1"), "tag")
        assert store.find_images(tenant=TENANT_B, id_prefix="sha256:") == []
        assert store.list_images(tenant=TENANT_B) == []

        shared = dataclasses.replace(mine, tenant=TENANT_B, repo_tags=("copy:1",))
        store.put_image(shared)
        assert store.get_image(tenant=TENANT_A, image_id=mine.id) == mine
        assert store.get_image(tenant=TENANT_B, image_id=mine.id) == shared
        store.delete_image(tenant=TENANT_B, image_id=mine.id)
        assert store.get_image(tenant=TENANT_A, image_id=mine.id) == mine
        assert store.image_by_tag(tenant=TENANT_A, tag="secret:1") == mine


def check_layer_referenced(make_store: StoreFactory) -> None:
    """A layer is referenced while any tenant's image lists it."""
    with _opened(make_store) as store:
        first = _image(tenant=TENANT_A, hex_id="a1", layers=2)
        layer = first.layers[0]
        assert not store.layer_referenced(layer)
        store.put_image(first)
        second = dataclasses.replace(first, tenant=TENANT_B)
        store.put_image(second)
        assert store.layer_referenced(layer)
        assert store.layer_referenced(first.layers[1])
        store.delete_image(tenant=TENANT_A, image_id=first.id)
        assert store.layer_referenced(layer), "tenant B's image still uses the layer"
        store.put_image(dataclasses.replace(second, layers=second.layers[1:]))
        assert not store.layer_referenced(layer), "a replaced record drops its old layers"
        assert store.layer_referenced(first.layers[1])
        store.delete_image(tenant=TENANT_B, image_id=second.id)
        assert not store.layer_referenced(first.layers[1])


# volumes -----------------------------------------------------------------------------------


def check_volumes(make_store: StoreFactory) -> None:
    """Volume names are unique per tenant, reusable across tenants, invisible elsewhere."""
    with _opened(make_store) as store:
        data = _volume(tenant=TENANT_A, name="data")
        store.add_volume(data)
        assert store.get_volume(tenant=TENANT_A, name="data") == data
        _raises(
            AlreadyExists,
            lambda: store.add_volume(_volume(tenant=TENANT_A, name="data")),
            "add_volume(taken name)",
        )
        _raises(NotFound, lambda: store.get_volume(tenant=TENANT_B, name="data"), "other tenant")
        assert store.list_volumes(tenant=TENANT_B) == []

        theirs = dataclasses.replace(data, tenant=TENANT_B, mountpoint="/elsewhere")
        store.add_volume(theirs)
        assert store.get_volume(tenant=TENANT_B, name="data") == theirs
        store.add_volume(_volume(tenant=TENANT_A, name="logs"))
        assert {v.name for v in store.list_volumes(tenant=TENANT_A)} == {"data", "logs"}

        store.delete_volume(tenant=TENANT_B, name="data")
        assert store.get_volume(tenant=TENANT_A, name="data") == data
        _raises(NotFound, lambda: store.get_volume(tenant=TENANT_B, name="data"), "deleted")
        store.delete_volume(tenant=TENANT_A, name="data")
        _raises(NotFound, lambda: store.get_volume(tenant=TENANT_A, name="data"), "deleted")
        assert [v.name for v in store.list_volumes(tenant=TENANT_A)] == ["logs"]


# networks and addresses --------------------------------------------------------------------


def check_networks(make_store: StoreFactory) -> None:
    """A tenant sees its own networks only, listed by name; names are unique per tenant;
    two tenants may hold the same name and the same subnet."""
    with _opened(make_store) as store:
        mine = _network(tenant=TENANT_A, name="backend", hex_id="a1", subnet="10.90.0.0/24")
        front = _network(tenant=TENANT_A, name="axe", hex_id="a3", subnet="10.93.0.0/24")
        store.add_network(mine)
        store.add_network(front)
        for ref in ("backend", mine.id, mine.id[:12]):
            assert store.get_network(tenant=TENANT_A, ref=ref) == mine, ref
        for ref in ("backend", mine.id, mine.id[:12]):
            _raises(
                NotFound,
                functools.partial(store.get_network, tenant=TENANT_B, ref=ref),
                f"get_network(other tenant, {ref!r})",
            )
        _raises(NotFound, lambda: store.get_network(tenant=TENANT_A, ref="nope"), "unknown")
        assert [n.id for n in store.list_networks(tenant=TENANT_A)] == [front.id, mine.id]
        assert store.list_networks(tenant=TENANT_B) == []

        _raises(
            AlreadyExists,
            lambda: store.add_network(
                _network(tenant=TENANT_A, name="backend", hex_id="a2", subnet="10.91.0.0/24")
            ),
            "add_network(taken name)",
        )
        theirs = _network(tenant=TENANT_B, name="backend", hex_id="b1", subnet="10.90.0.0/24")
        store.add_network(theirs)
        assert store.get_network(tenant=TENANT_B, ref="backend") == theirs
        assert store.get_network(tenant=TENANT_A, ref="backend") == mine


def check_network_delete(make_store: StoreFactory) -> None:
    """A network holding an address is not deleted (Conflict); another tenant cannot
    delete it (NotFound); once its addresses are released it goes, and allocating on a
    deleted network is NotFound."""
    with _opened(make_store) as store:
        net = _network(tenant=TENANT_A, name="backend", hex_id="a1", subnet="10.90.0.0/24")
        store.add_network(net)
        address = store.allocate_address(network=net, owner="c1")
        assert store.network_users(network_id=net.id) == {"c1": address}
        _raises(
            Conflict,
            lambda: store.delete_network(tenant=TENANT_A, network_id=net.id),
            "delete_network(in use)",
        )
        _raises(
            NotFound,
            lambda: store.delete_network(tenant=TENANT_B, network_id=net.id),
            "delete_network(other tenant)",
        )
        store.release_address(network_id=net.id, owner="c1")
        assert store.network_users(network_id=net.id) == {}
        store.delete_network(tenant=TENANT_A, network_id=net.id)
        _raises(NotFound, lambda: store.get_network(tenant=TENANT_A, ref="backend"), "deleted")
        _raises(
            NotFound,
            lambda: store.allocate_address(network=net, owner="c2"),
            "allocate_address(deleted network)",
        )


def check_addresses_static_and_ranges(make_store: StoreFactory) -> None:
    """A requested address is given once (then Conflict), never the gateway; dynamic
    addresses come from ip_range only; release_address frees one network's address."""
    with _opened(make_store) as store:
        net = _network(tenant=TENANT_A, name="n", hex_id="a1", subnet="10.90.0.0/24")
        net.ip_range = "10.90.0.128/30"
        store.add_network(net)
        assert store.allocate_address(network=net, owner="s", address="10.90.0.9") == "10.90.0.9"
        _raises(
            Conflict,
            lambda: store.allocate_address(network=net, owner="t", address="10.90.0.9"),
            "allocate_address(taken static)",
        )
        _raises(
            Conflict,
            lambda: store.allocate_address(network=net, owner="t", address=net.gateway),
            "allocate_address(gateway)",
        )
        got = [store.allocate_address(network=net, owner=f"d{i}") for i in range(4)]
        assert got == [f"10.90.0.{i}" for i in range(128, 132)], got
        _raises(Unavailable, lambda: store.allocate_address(network=net, owner="x"), "range full")
        other = _network(tenant=TENANT_A, name="o", hex_id="a2", subnet="10.91.0.0/24")
        store.add_network(other)
        kept = store.allocate_address(network=other, owner="d0")
        store.release_address(network_id=net.id, owner="d0")
        assert store.allocate_address(network=net, owner="y") == "10.90.0.128"
        assert store.network_users(network_id=other.id) == {"d0": kept}


def check_addresses_are_never_handed_out_twice(make_store: StoreFactory) -> None:
    """Allocation takes the lowest free host address, skips the gateway, is per network,
    and raises Unavailable when the subnet is exhausted."""
    with _opened(make_store) as store:
        small = _network(tenant=TENANT_A, name="small", hex_id="5a", subnet="10.77.0.0/29")
        store.add_network(small)
        got = [store.allocate_address(network=small, owner=f"c{i}") for i in range(5)]
        # /29: hosts .1-.6, .1 is the gateway.
        assert got == [f"10.77.0.{i}" for i in range(2, 7)]
        _raises(
            Unavailable,
            lambda: store.allocate_address(network=small, owner="one-too-many"),
            "allocate_address(exhausted)",
        )
        other = _network(tenant=TENANT_A, name="other", hex_id="a4", subnet="10.77.0.0/29")
        store.add_network(other)
        assert store.allocate_address(network=other, owner="x") == "10.77.0.2", (
            "each network has its own pool"
        )
        odd_gateway = _network(
            tenant=TENANT_A, name="odd", hex_id="a2", subnet="10.78.0.0/29", gateway="10.78.0.2"
        )
        store.add_network(odd_gateway)
        assert store.allocate_address(network=odd_gateway, owner="y") == "10.78.0.1"
        assert store.allocate_address(network=odd_gateway, owner="y") == "10.78.0.3"


def check_addresses_released_return_to_the_pool(make_store: StoreFactory) -> None:
    """release_addresses frees every address of the owner, and only those."""
    with _opened(make_store) as store:
        net = _network(tenant=TENANT_A, name="bridge", hex_id="5a", subnet="10.77.0.0/29")
        store.add_network(net)
        first = store.allocate_address(network=net, owner="c1")
        second = store.allocate_address(network=net, owner="c2")
        third = store.allocate_address(network=net, owner="c1")
        store.release_addresses(owner="c1")
        again = {store.allocate_address(network=net, owner="c3") for _ in range(2)}
        assert again == {first, third}
        store.release_addresses(owner="unknown")
        taken = {first, second, third}
        for _ in range(2):
            address = store.allocate_address(network=net, owner="c4")
            assert address not in taken
            taken.add(address)
        _raises(Unavailable, lambda: store.allocate_address(network=net, owner="c5"), "exhausted")


def check_addresses_concurrently(make_store: StoreFactory) -> None:
    """Many threads allocating at once never get the same address and never fail while
    addresses are free."""
    threads, per_thread = 24, 4
    with _opened(make_store) as store:
        net = _network(tenant=TENANT_A, name="bridge", hex_id="5a", subnet="10.66.0.0/24")
        store.add_network(net)
        start = threading.Barrier(threads)

        def work(worker: int) -> list[str]:
            start.wait()
            return [
                store.allocate_address(network=net, owner=f"w{worker}-{i}")
                for i in range(per_thread)
            ]

        with ThreadPoolExecutor(max_workers=threads) as pool:
            results = list(pool.map(work, range(threads)))
        every = [address for result in results for address in result]
        assert len(every) == threads * per_thread
        duplicates = sorted({a for a in every if every.count(a) > 1})
        assert not duplicates, f"addresses handed out twice: {duplicates}"
        subnet = ipaddress.ip_network(net.subnet)
        assert all(ipaddress.ip_address(a) in subnet for a in every)
        assert net.gateway not in every


# public IPs --------------------------------------------------------------------------------


def _addresses(records: list[PublicIp]) -> list[str]:
    return [r.address for r in records]


def check_public_ip_pools(make_store: StoreFactory) -> None:
    """Pools are listed in address order; the same range twice is AlreadyExists, an
    overlapping one Conflict; a range with a held address is not deleted (Conflict) until
    the address is released; an unknown range is NotFound."""
    with _opened(make_store) as store:
        assert store.list_ip_pools() == []
        store.add_ip_pool(IpPool(cidr="198.18.1.0/24", created=2))
        store.add_ip_pool(IpPool(cidr="198.18.0.8/29", created=1))
        assert store.list_ip_pools() == [
            IpPool(cidr="198.18.0.8/29", created=1),
            IpPool(cidr="198.18.1.0/24", created=2),
        ]
        _raises(
            AlreadyExists,
            lambda: store.add_ip_pool(IpPool(cidr="198.18.1.0/24", created=3)),
            "add_ip_pool(same range)",
        )
        for overlapping in ("198.18.1.128/25", "198.18.0.0/16", "198.18.0.15/32"):
            _raises(
                Conflict,
                functools.partial(store.add_ip_pool, IpPool(cidr=overlapping, created=3)),
                f"add_ip_pool({overlapping}, overlapping)",
            )
        held = store.allocate_public_ip(tenant=TENANT_A, created=5)
        assert held.address == "198.18.0.9"
        _raises(Conflict, lambda: store.delete_ip_pool("198.18.0.8/29"), "delete(held)")
        _raises(NotFound, lambda: store.delete_ip_pool("198.18.9.0/24"), "delete(unknown)")
        store.delete_ip_pool("198.18.1.0/24")
        store.release_public_ip(tenant=TENANT_A, address=held.address)
        store.delete_ip_pool("198.18.0.8/29")
        assert store.list_ip_pools() == []


def check_public_ips_are_never_handed_out_twice(make_store: StoreFactory) -> None:
    """Allocation gives the lowest free address of the pools in address order, skips the
    network and broadcast addresses of ranges larger than a /31 (not of a /31 or /32), and
    is Unavailable with no pool or when every pool is full."""
    with _opened(make_store) as store:
        _raises(
            Unavailable,
            lambda: store.allocate_public_ip(tenant=TENANT_A, created=1),
            "allocate_public_ip(no pool)",
        )
        store.add_ip_pool(IpPool(cidr="198.18.5.7/32", created=1))
        store.add_ip_pool(IpPool(cidr="198.18.4.0/31", created=1))
        store.add_ip_pool(IpPool(cidr="198.18.3.0/30", created=1))
        got = [store.allocate_public_ip(tenant=TENANT_A, created=7) for _ in range(5)]
        assert _addresses(got) == [
            "198.18.3.1",
            "198.18.3.2",
            "198.18.4.0",
            "198.18.4.1",
            "198.18.5.7",
        ], _addresses(got)
        assert all(r.tenant == TENANT_A and not r.container and r.created == 7 for r in got)
        _raises(
            Unavailable,
            lambda: store.allocate_public_ip(tenant=TENANT_B, created=1),
            "allocate_public_ip(every pool full)",
        )
        assert _addresses(store.list_public_ips(tenant=TENANT_A)) == _addresses(got)


def check_public_ips_released_return_to_the_pool(make_store: StoreFactory) -> None:
    """A released address (bound or not) is free again, lowest first, also for another
    tenant; releasing it again is NotFound."""
    with _opened(make_store) as store:
        store.add_ip_pool(IpPool(cidr="198.18.7.0/29", created=1))
        web = _container(tenant=TENANT_A, name="web", cid=_hex_id("a1"))
        store.add_container(web)
        first, second, third = (
            store.allocate_public_ip(tenant=TENANT_A, created=1) for _ in range(3)
        )
        store.bind_public_ip(tenant=TENANT_A, address=second.address, container_id=web.id)
        released = store.release_public_ip(tenant=TENANT_A, address=second.address)
        assert released.container == web.id, "release returns the record as it was"
        assert store.public_ip_of(tenant=TENANT_A, container_id=web.id) == ""
        store.release_public_ip(tenant=TENANT_A, address=first.address)
        _raises(
            NotFound,
            lambda: store.release_public_ip(tenant=TENANT_A, address=first.address),
            "release_public_ip(released)",
        )
        again = store.allocate_public_ip(tenant=TENANT_B, created=2)
        assert again.address == first.address, again
        assert store.allocate_public_ip(tenant=TENANT_A, created=2).address == second.address
        assert _addresses(store.list_public_ips(tenant=TENANT_A)) == [
            second.address,
            third.address,
        ]


def check_public_ips_of_other_tenants_are_invisible(make_store: StoreFactory) -> None:
    """Another tenant's address is NotFound for get, bind, unbind and release, as is
    binding to another tenant's container; lists show the tenant's own, ALL_TENANTS
    every one."""
    with _opened(make_store) as store:
        store.add_ip_pool(IpPool(cidr="198.18.8.0/29", created=1))
        mine = store.allocate_public_ip(tenant=TENANT_A, created=1)
        theirs = store.allocate_public_ip(tenant=TENANT_B, created=1)
        web_a = _container(tenant=TENANT_A, name="web", cid=_hex_id("a1"))
        web_b = _container(tenant=TENANT_B, name="web", cid=_hex_id("b1"))
        store.add_container(web_a)
        store.add_container(web_b)
        address = mine.address
        attempts: dict[str, Callable[[], object]] = {
            "get_public_ip": lambda: store.get_public_ip(tenant=TENANT_B, address=address),
            "bind_public_ip": lambda: store.bind_public_ip(
                tenant=TENANT_B, address=address, container_id=web_b.id
            ),
            "unbind_public_ip": lambda: store.unbind_public_ip(tenant=TENANT_B, address=address),
            "release_public_ip": lambda: store.release_public_ip(tenant=TENANT_B, address=address),
            "bind to another tenant's container": lambda: store.bind_public_ip(
                tenant=TENANT_A, address=address, container_id=web_b.id
            ),
        }
        for what, attempt in attempts.items():
            _raises(NotFound, attempt, what)
        assert store.get_public_ip(tenant=TENANT_A, address=address) == mine, "B changed A's IP"
        assert _addresses(store.list_public_ips(tenant=TENANT_A)) == [address]
        assert _addresses(store.list_public_ips(tenant=TENANT_B)) == [theirs.address]
        assert _addresses(store.list_public_ips(tenant=ALL_TENANTS)) == [address, theirs.address]
        assert store.public_ip_of(tenant=TENANT_B, container_id=web_a.id) == ""


def check_public_ip_binding(make_store: StoreFactory) -> None:
    """An address binds to one container of its tenant (an unknown one is NotFound); a
    container has at most one (Conflict); binding a bound address moves it, returning the
    record as it was; unbinding is idempotent; removing the container unbinds the address,
    which the tenant keeps."""
    with _opened(make_store) as store:
        store.add_ip_pool(IpPool(cidr="198.18.9.0/29", created=1))
        web = _container(tenant=TENANT_A, name="web", cid=_hex_id("a1"))
        db = _container(tenant=TENANT_A, name="db", cid=_hex_id("a2"))
        store.add_container(web)
        store.add_container(db)
        one = store.allocate_public_ip(tenant=TENANT_A, created=1)
        two = store.allocate_public_ip(tenant=TENANT_A, created=1)
        before = store.bind_public_ip(tenant=TENANT_A, address=one.address, container_id=web.id)
        assert before == one
        assert store.get_public_ip(tenant=TENANT_A, address=one.address).container == web.id
        assert store.public_ip_of(tenant=TENANT_A, container_id=web.id) == one.address
        _raises(
            NotFound,
            lambda: store.bind_public_ip(
                tenant=TENANT_A, address=two.address, container_id=_hex_id("ff")
            ),
            "bind_public_ip(unknown container)",
        )
        _raises(
            Conflict,
            lambda: store.bind_public_ip(tenant=TENANT_A, address=two.address, container_id=web.id),
            "bind_public_ip(container already bound)",
        )
        again = store.bind_public_ip(tenant=TENANT_A, address=one.address, container_id=web.id)
        assert again.container == web.id, "binding to the same container again is allowed"
        moved = store.bind_public_ip(tenant=TENANT_A, address=one.address, container_id=db.id)
        assert moved.container == web.id, "the record as it was names the old container"
        assert store.public_ip_of(tenant=TENANT_A, container_id=web.id) == ""
        assert store.public_ip_of(tenant=TENANT_A, container_id=db.id) == one.address
        store.bind_public_ip(tenant=TENANT_A, address=two.address, container_id=web.id)
        unbound = store.unbind_public_ip(tenant=TENANT_A, address=two.address)
        assert unbound.container == web.id
        assert store.unbind_public_ip(tenant=TENANT_A, address=two.address).container == ""
        store.delete_container(tenant=TENANT_A, container_id=db.id)
        kept = store.get_public_ip(tenant=TENANT_A, address=one.address)
        assert kept == replace(one, container=""), "the tenant keeps a removed container's IP"
        _raises(
            NotFound,
            lambda: store.bind_public_ip(tenant=TENANT_A, address=one.address, container_id=db.id),
            "bind_public_ip(removed container)",
        )


def check_public_ips_concurrently(make_store: StoreFactory) -> None:
    """Many threads allocating at once never get the same address and never fail while
    addresses are free; the pool then is exactly used up."""
    threads, per_thread = 16, 4
    with _opened(make_store) as store:
        store.add_ip_pool(IpPool(cidr="198.18.10.0/26", created=1))  # 62 usable addresses
        start = threading.Barrier(threads)

        def work(worker: int) -> list[str]:
            start.wait()
            got = []
            for _ in range(per_thread):
                with contextlib.suppress(Unavailable):
                    got.append(
                        store.allocate_public_ip(tenant=f"tenant-{worker}", created=1).address
                    )
            return got

        with ThreadPoolExecutor(max_workers=threads) as pool:
            results = list(pool.map(work, range(threads)))
        every = [address for result in results for address in result]
        duplicates = sorted({a for a in every if every.count(a) > 1})
        assert not duplicates, f"public IPs handed out twice: {duplicates}"
        assert len(every) == 62, f"{len(every)} of 62 free addresses handed out"
        subnet = ipaddress.ip_network("198.18.10.0/26")
        edges = {subnet.network_address, subnet.broadcast_address}
        assert all(ipaddress.ip_address(a) in subnet for a in every)
        assert not {ipaddress.ip_address(a) for a in every} & edges


def check_execs(make_store: StoreFactory) -> None:
    """Execs are found by full id within their tenant only, and go with their container."""
    with _opened(make_store) as store:
        web = _container(tenant=TENANT_A, name="web", cid=_hex_id("a1"))
        store.add_container(web)
        first = ExecInstance(
            id=_hex_id("e1"), tenant=TENANT_A, container_id=web.id, created=1, command="sh -c x"
        )
        second = ExecInstance(id=_hex_id("e2"), tenant=TENANT_A, container_id=web.id, created=2)
        store.add_exec(first)
        store.add_exec(second)
        assert store.get_exec(tenant=TENANT_A, exec_id=first.id) == first
        _raises(NotFound, lambda: store.get_exec(tenant=TENANT_B, exec_id=first.id), "B's view")
        _raises(NotFound, lambda: store.get_exec(tenant=TENANT_A, exec_id=first.id[:12]), "prefix")
        _raises(AlreadyExists, lambda: store.add_exec(first), "add_exec(same id)")

        store.delete_exec(tenant=TENANT_B, exec_id=first.id)
        assert store.get_exec(tenant=TENANT_A, exec_id=first.id) == first, "B deleted A's exec"
        store.delete_exec(tenant=TENANT_A, exec_id=first.id)
        _raises(NotFound, lambda: store.get_exec(tenant=TENANT_A, exec_id=first.id), "deleted")

        store.delete_container(tenant=TENANT_A, container_id=web.id)
        _raises(
            NotFound,
            lambda: store.get_exec(tenant=TENANT_A, exec_id=second.id),
            "exec of a deleted container",
        )


# security groups ---------------------------------------------------------------------------


def check_security_groups(make_store: StoreFactory) -> None:
    """A tenant's groups come back whole by id, name or unique id prefix (an ambiguous
    prefix finds none), listed by name; names are unique per tenant only; a put replaces
    the record (its rules) and is NotFound for a group that is gone."""
    with _opened(make_store) as store:
        rule = SecurityGroupRule(
            id=_hex_id("f1"), protocol="tcp", port_min=80, port_max=90, source="10.0.0.0/8"
        )
        web = _group(tenant=TENANT_A, name="web", hex_id="ab1", rules=(rule,))
        db = _group(tenant=TENANT_A, name="db", hex_id="ab2")
        store.add_security_group(web)
        store.add_security_group(db)
        for ref in (web.id, "web", web.id[:12], "ab1"):
            assert store.get_security_group(tenant=TENANT_A, ref=ref) == web, ref
        _raises(NotFound, lambda: store.get_security_group(tenant=TENANT_A, ref="ab"), "ambiguous")
        _raises(NotFound, lambda: store.get_security_group(tenant=TENANT_A, ref="nope"), "unknown")
        assert [g.name for g in store.list_security_groups(tenant=TENANT_A)] == ["db", "web"]
        assert store.list_security_groups(tenant=TENANT_B) == []
        _raises(
            AlreadyExists,
            lambda: store.add_security_group(_group(tenant=TENANT_A, name="web", hex_id="ab3")),
            "add_security_group(taken name)",
        )
        theirs = _group(tenant=TENANT_B, name="web", hex_id="b1")
        store.add_security_group(theirs)
        assert store.get_security_group(tenant=TENANT_B, ref="web") == theirs
        assert store.get_security_group(tenant=TENANT_A, ref="web") == web
        by_group = SecurityGroupRule(id=_hex_id("f2"), protocol="all", source_group=db.id)
        changed = replace(web, rules=(rule, by_group))
        store.put_security_group(changed)
        assert store.get_security_group(tenant=TENANT_A, ref="web") == changed
        _raises(
            NotFound,
            lambda: store.put_security_group(replace(web, tenant=TENANT_B)),
            "put_security_group(another tenant's id)",
        )
        assert store.get_security_group(tenant=TENANT_A, ref=web.id) == changed
        store.delete_security_group(tenant=TENANT_A, group_id=changed.id)
        _raises(NotFound, lambda: store.put_security_group(changed), "put_security_group(deleted)")


def check_security_groups_of_other_tenants_read_as_missing(make_store: StoreFactory) -> None:
    """Another tenant's group is NotFound by name, id and prefix, with the message a missing
    one gets; it cannot be deleted, and a prefix it shares with the caller's group does not
    make that one ambiguous."""
    with _opened(make_store) as store:
        mine = _group(tenant=TENANT_A, name="web", hex_id="cd1")
        theirs = _group(tenant=TENANT_B, name="db", hex_id="cd2")
        store.add_security_group(mine)
        store.add_security_group(theirs)
        assert store.get_security_group(tenant=TENANT_A, ref="cd").id == mine.id
        assert store.get_security_group(tenant=TENANT_B, ref="cd").id == theirs.id
        for ref, missing in ((mine.name, "nosuch"), (mine.id, _hex_id("ee")), ("cd1", "ee1")):
            got = _raises(
                NotFound,
                functools.partial(store.get_security_group, tenant=TENANT_B, ref=ref),
                f"get_security_group(another tenant's {ref!r})",
            )
            want = _raises(
                NotFound,
                functools.partial(store.get_security_group, tenant=TENANT_B, ref=missing),
                f"get_security_group({missing!r})",
            )
            assert got.message.replace(ref, "<ref>") == want.message.replace(missing, "<ref>")
        _raises(
            NotFound,
            lambda: store.delete_security_group(tenant=TENANT_B, group_id=mine.id),
            "delete_security_group(another tenant's)",
        )
        assert store.get_security_group(tenant=TENANT_A, ref=mine.id) == mine
        assert store.security_group_users(tenant=TENANT_B, group_id=mine.id) == []


def check_security_group_delete(make_store: StoreFactory) -> None:
    """A group is not deleted while a container of the tenant is in it (whatever its
    state or phase) or another group's rule names it as its source (Conflict); a rule of
    its own naming it does not hold it; users are the containers whose record names it;
    deleting a tenant deletes its groups."""
    with _opened(make_store) as store:
        tenant = store.ensure_tenant("acme")
        web = _group(tenant=tenant.id, name="web", hex_id="a1")
        self_rule = SecurityGroupRule(
            id=_hex_id("f3"), protocol="tcp", port_min=1, port_max=65535, source_group=web.id
        )
        web = replace(web, rules=(self_rule,))
        db = _group(tenant=tenant.id, name="db", hex_id="a2")
        store.add_security_group(web)
        store.add_security_group(db)
        first = _container(tenant=tenant.id, name="one", cid=_hex_id("c1"))
        first.security_groups = [web.id, db.id]
        second = _container(tenant=tenant.id, name="two", cid=_hex_id("c2"))
        second.security_groups = [web.id]
        second.phase = "creating"
        # Another record that merely mentions the id elsewhere is not a member.
        mention = _container(tenant=tenant.id, name="three", cid=_hex_id("c3"))
        mention.config.labels = {"note": db.id}
        for record in (first, second, mention):
            store.add_container(record)
        assert store.security_group_users(tenant=tenant.id, group_id=web.id) == sorted(
            [first.id, second.id]
        )
        assert store.security_group_users(tenant=tenant.id, group_id=db.id) == [first.id]
        for group in (web, db):
            _raises(
                Conflict,
                functools.partial(store.delete_security_group, tenant=tenant.id, group_id=group.id),
                f"delete_security_group({group.name} in use)",
            )
        first.security_groups = [web.id]
        store.put_container(first)
        assert store.security_group_users(tenant=tenant.id, group_id=db.id) == []
        from_db = SecurityGroupRule(id=_hex_id("f4"), protocol="icmp", source_group=db.id)
        store.put_security_group(replace(web, rules=(self_rule, from_db)))
        _raises(
            Conflict,
            lambda: store.delete_security_group(tenant=tenant.id, group_id=db.id),
            "delete_security_group(source of another group's rule)",
        )
        store.put_security_group(web)
        store.delete_security_group(tenant=tenant.id, group_id=db.id)
        _raises(NotFound, lambda: store.get_security_group(tenant=tenant.id, ref="db"), "deleted")
        _raises(
            NotFound,
            lambda: store.delete_security_group(tenant=tenant.id, group_id=db.id),
            "delete_security_group(deleted)",
        )
        for record in (first, second):
            store.delete_container(tenant=tenant.id, container_id=record.id)
        assert store.security_group_users(tenant=tenant.id, group_id=web.id) == []
        other = store.ensure_tenant("globex")
        kept = _group(tenant=other.id, name="web", hex_id="b1")
        store.add_security_group(kept)
        store.delete_tenant(tenant.id)
        assert store.list_security_groups(tenant=tenant.id) == []
        assert store.list_security_groups(tenant=other.id) == [kept]


# events ------------------------------------------------------------------------------------


def _event(seq: int, *, tenant: str = TENANT_A, time: int = 0, action: str = "start") -> Event:
    return Event(
        seq=seq,
        tenant=tenant,
        time=time or 1_700_000_000_000_000_000 + seq * 1_000,
        type="container",
        action=action,
        actor_id=_hex_id("c" + str(seq % 10)),
        attributes={"name": f"c{seq}", "image": "busybox", "com.example/ünïcode": "ja ✓"},
    )


def check_events_append_and_range(make_store: StoreFactory) -> None:
    """Events come back whole, in seq order; since and until are inclusive bounds on time,
    ``after`` skips by seq, ``limit`` caps the page; last_event_seq is the highest seq."""
    with _opened(make_store) as store:
        assert store.last_event_seq() == 0
        assert store.list_events(tenant=TENANT_A) == []
        store.append_events([])
        first = [_event(n) for n in (1, 2, 3)]
        store.append_events(first)
        later = [_event(n) for n in (4, 5, 6)] + [
            Event(
                seq=7,
                tenant=TENANT_A,
                time=_event(6).time,  # same ns as seq 6: seq still orders them
                type="image",
                action="tag",
                actor_id="sha256:" + "e" * 64,
                attributes={},
            )
        ]
        store.append_events(later)
        every = first + later
        assert store.list_events(tenant=TENANT_A) == every
        assert store.last_event_seq() == 7
        t = {e.seq: e.time for e in every}
        assert store.list_events(tenant=TENANT_A, since=t[3]) == every[2:]
        assert store.list_events(tenant=TENANT_A, until=t[3]) == every[:3]
        assert store.list_events(tenant=TENANT_A, since=t[2], until=t[4]) == every[1:4]
        assert store.list_events(tenant=TENANT_A, since=t[6]) == every[5:]
        assert store.list_events(tenant=TENANT_A, since=t[7] + 1) == []
        assert store.list_events(tenant=TENANT_A, after=5) == every[5:]
        assert store.list_events(tenant=TENANT_A, after=2, limit=2) == every[2:4]
        assert store.list_events(tenant=TENANT_A, since=t[2], after=3, limit=1) == every[3:4]


def check_events_of_other_tenants_are_invisible(make_store: StoreFactory) -> None:
    """A tenant reads only its own events; the system scope reads all of them."""
    with _opened(make_store) as store:
        store.append_events(
            [_event(1), _event(2, tenant=TENANT_B), _event(3), _event(4, tenant=TENANT_B)]
        )
        assert [e.seq for e in store.list_events(tenant=TENANT_A)] == [1, 3]
        assert [e.seq for e in store.list_events(tenant=TENANT_B)] == [2, 4]
        assert {e.tenant for e in store.list_events(tenant=TENANT_B)} == {TENANT_B}
        assert store.list_events(tenant="nobody") == []
        assert [e.seq for e in store.list_events(tenant=ALL_TENANTS)] == [1, 2, 3, 4]
        assert store.last_event_seq() == 4


def check_event_retention(make_store: StoreFactory) -> None:
    """prune_events keeps a tenant's newest ``keep`` events, drops those older than
    ``before``, says how many went, and never touches another tenant's."""
    with _opened(make_store) as store:
        store.append_events([_event(n) for n in range(1, 11)])
        store.append_events([_event(n, tenant=TENANT_B) for n in range(11, 15)])
        assert store.prune_events(tenant=TENANT_A, keep=20, before=0) == 0
        assert store.prune_events(tenant=TENANT_A, keep=6, before=0) == 4
        assert [e.seq for e in store.list_events(tenant=TENANT_A)] == list(range(5, 11))
        assert store.prune_events(tenant=TENANT_A, keep=6, before=_event(7).time) == 2
        assert [e.seq for e in store.list_events(tenant=TENANT_A)] == list(range(7, 11))
        assert store.prune_events(tenant=TENANT_A, keep=0, before=0) == 4
        assert store.list_events(tenant=TENANT_A) == []
        assert [e.seq for e in store.list_events(tenant=TENANT_B)] == [11, 12, 13, 14]
        assert store.last_event_seq() == 14
        store.append_events([_event(15)])
        assert [e.seq for e in store.list_events(tenant=TENANT_A)] == [15]


def check_users_and_tokens(make_store: StoreFactory) -> None:
    """Users are unique by name per tenant and found by id or name in their tenant only;
    tokens are found by id for authentication, listed and revoked per tenant, and go with
    their user."""
    with _opened(make_store) as store:
        alice = User(id=_hex_id("a1"), tenant=TENANT_A, name="alice", role=Role.ADMIN, created=1)
        bob = User(id=_hex_id("a2"), tenant=TENANT_A, name="bob", role=Role.MEMBER, created=2)
        other = User(id=_hex_id("a3"), tenant=TENANT_B, name="alice", role=Role.MEMBER, created=3)
        for user in (alice, bob, other):
            store.add_user(user)
        _raises(AlreadyExists, lambda: store.add_user(replace(bob, id=_hex_id("a4"))), "name")
        assert store.get_user(tenant=TENANT_A, ref="alice") == alice
        assert store.get_user(tenant=TENANT_A, ref=bob.id) == bob
        _raises(NotFound, lambda: store.get_user(tenant=TENANT_B, ref=bob.id), "B sees A's user")
        assert [u.name for u in store.list_users(tenant=TENANT_A)] == ["alice", "bob"]

        issued = [
            issue_token(tenant=TENANT_A, user=alice.id, scopes=("read",), created=10),
            issue_token(tenant=TENANT_A, user=bob.id, scopes=("read", "write"), created=11),
            issue_token(tenant=TENANT_B, user=other.id, scopes=("read",), created=12),
        ]
        for item in issued:
            store.add_token(item.token)
        first = issued[0].token
        assert store.get_token(first.id) == first
        assert [t.id for t in store.list_tokens(tenant=TENANT_A)] == [
            issued[0].token.id,
            issued[1].token.id,
        ]
        assert [t.id for t in store.list_tokens(tenant=TENANT_A, user=bob.id)] == [
            issued[1].token.id
        ]
        _raises(
            NotFound,
            lambda: store.revoke_token(tenant=TENANT_B, token_id=first.id, when=20),
            "B revokes A's token",
        )
        assert store.get_token(first.id).revoked == 0
        assert store.revoke_token(tenant=TENANT_A, token_id=first.id, when=20).revoked == 20
        assert store.revoke_token(tenant=TENANT_A, token_id=first.id, when=30).revoked == 20
        assert store.get_token(first.id).revoked == 20

        store.delete_user(tenant=TENANT_A, user_id=bob.id)
        _raises(NotFound, lambda: store.get_user(tenant=TENANT_A, ref="bob"), "deleted user")
        _raises(NotFound, lambda: store.get_token(issued[1].token.id), "deleted user's token")
        assert store.get_token(issued[2].token.id) == issued[2].token


def _cert(*, serial: str, tenant: str, user: str, created: int) -> ClientCert:
    return ClientCert(
        serial=serial,
        tenant=tenant,
        user=user,
        fingerprint=_hex_id(serial),
        scopes=("read", "write"),
        token=_hex_id("e")[:16],
        created=created,
        expires=created + 1000,
    )


def check_client_certs(make_store: StoreFactory) -> None:
    """Client certificates are found by serial for authentication, recorded once, listed
    and revoked per tenant, and go with their user and their tenant."""
    with _opened(make_store) as store:
        a = store.ensure_tenant("acme")
        b = store.ensure_tenant("globex")
        alice = User(id=_hex_id("a1"), tenant=a.id, name="alice", role=Role.ADMIN, created=1)
        bob = User(id=_hex_id("a2"), tenant=a.id, name="bob", role=Role.MEMBER, created=2)
        other = User(id=_hex_id("a3"), tenant=b.id, name="alice", role=Role.MEMBER, created=3)
        for user in (alice, bob, other):
            store.add_user(user)
        mine = _cert(serial="1f", tenant=a.id, user=alice.id, created=10)
        bobs = _cert(serial="2f", tenant=a.id, user=bob.id, created=11)
        theirs = _cert(serial="3f", tenant=b.id, user=other.id, created=12)
        for cert in (bobs, mine, theirs):
            store.add_cert(cert)
        _raises(AlreadyExists, lambda: store.add_cert(replace(mine, user=bob.id)), "serial")
        assert store.get_cert("1f") == mine
        _raises(NotFound, lambda: store.get_cert("4f"), "unknown serial")
        assert store.list_certs(tenant=a.id) == [mine, bobs]
        assert store.list_certs(tenant=a.id, user=bob.id) == [bobs]
        assert store.list_certs(tenant=b.id) == [theirs]
        _raises(
            NotFound,
            lambda: store.revoke_cert(tenant=b.id, serial="1f", when=20),
            "B revokes A's certificate",
        )
        assert store.get_cert("1f").revoked == 0
        assert store.revoke_cert(tenant=a.id, serial="1f", when=20).revoked == 20
        assert store.revoke_cert(tenant=a.id, serial="1f", when=30).revoked == 20
        assert store.get_cert("1f") == replace(mine, revoked=20)

        store.delete_user(tenant=a.id, user_id=bob.id)
        _raises(NotFound, lambda: store.get_cert("2f"), "deleted user's certificate")
        assert store.get_cert("1f").revoked == 20
        store.delete_tenant(a.id)
        _raises(NotFound, lambda: store.get_cert("1f"), "deleted tenant's certificate")
        assert store.get_cert("3f") == theirs


def check_tenant_by_name_and_delete(make_store: StoreFactory) -> None:
    """Tenants are found by name; deleting one removes its users and tokens, no other's;
    a deleted tenant's uid range is never handed out again."""
    with _opened(make_store) as store:
        a = store.ensure_tenant("acme")
        b = store.ensure_tenant("globex")
        assert store.tenant_by_name("acme") == a
        _raises(NotFound, lambda: store.tenant_by_name("initech"), "unknown tenant")
        user_a = User(id=_hex_id("a1"), tenant=a.id, name="root", role=Role.ADMIN, created=1)
        user_b = User(id=_hex_id("a2"), tenant=b.id, name="root", role=Role.ADMIN, created=1)
        store.add_user(user_a)
        store.add_user(user_b)
        token_a = issue_token(tenant=a.id, user=user_a.id, scopes=("read",), created=1).token
        token_b = issue_token(tenant=b.id, user=user_b.id, scopes=("read",), created=1).token
        store.add_token(token_a)
        store.add_token(token_b)
        store.delete_tenant(a.id)
        _raises(NotFound, lambda: store.tenant_by_name("acme"), "deleted tenant")
        _raises(NotFound, lambda: store.get_token(token_a.id), "deleted tenant's token")
        assert store.list_users(tenant=a.id) == []
        assert store.get_token(token_b.id) == token_b
        assert [t.name for t in store.list_tenants()] == ["globex"]
        again = store.ensure_tenant("acme")
        assert again.id != a.id
        assert again.uid_base not in (a.uid_base, b.uid_base)
        # Not even the newest tenant's range comes back once it is gone.
        store.delete_tenant(again.id)
        later = store.ensure_tenant("initech")
        assert later.uid_base not in (a.uid_base, b.uid_base, again.uid_base)


# registry namespaces -------------------------------------------------------------------------


def check_namespaces_are_unique_across_tenants(make_store: StoreFactory) -> None:
    """A namespace is recorded once in the whole store: a second claim of its name, by its
    owner or by another tenant, is AlreadyExists and changes nothing; each tenant lists
    only its own, by name; the owner of a name is found without a tenant scope."""
    with _opened(make_store) as store:
        a = store.ensure_tenant("acme")
        b = store.ensure_tenant("globex")
        mine = [
            Namespace(name="acme_web", tenant=a.id, created=10, created_by=_hex_id("a1")),
            Namespace(name="acme", tenant=a.id, created=11, created_by=_hex_id("a1")),
        ]
        theirs = Namespace(name="globex", tenant=b.id, created=12, created_by="@operator")
        for namespace in (*mine, theirs):
            store.add_namespace(namespace)
        for taken in (
            replace(mine[1], tenant=b.id, created=20),
            replace(mine[1], created=21, created_by=_hex_id("a2")),
            replace(theirs, tenant=a.id),
        ):
            _raises(AlreadyExists, functools.partial(store.add_namespace, taken), taken.name)
        assert store.list_namespaces(tenant=a.id) == sorted(mine, key=lambda n: n.name)
        assert store.list_namespaces(tenant=b.id) == [theirs]
        assert store.list_namespaces(tenant=TENANT_A) == []
        assert store.namespace_owner("acme") == a.id
        assert store.namespace_owner("globex") == b.id
        assert store.namespace_owner("initech") is None
        assert store.namespace_owner("ACME") is None, "names are compared exactly"
        assert store.list_namespaces(tenant=ALL_TENANTS) == sorted(
            [*mine, theirs], key=lambda n: n.name
        )


def check_namespaces_of_a_deleted_tenant_are_retired(make_store: StoreFactory) -> None:
    """Deleting a tenant retires its namespaces: no tenant owns them any more, the tenant
    lists none, the operator's view still shows them (with the old tenant's id and when
    they were retired), and their names are never recorded again, for anyone; other
    tenants' namespaces are untouched."""
    with _opened(make_store) as store:
        a = store.ensure_tenant("acme")
        b = store.ensure_tenant("globex")
        store.add_namespace(Namespace(name="acme", tenant=a.id, created=10, created_by="u"))
        kept = Namespace(name="globex", tenant=b.id, created=11, created_by="u")
        store.add_namespace(kept)
        store.delete_tenant(a.id)
        assert store.namespace_owner("acme") is None
        assert store.list_namespaces(tenant=a.id) == []
        everything = {n.name: n for n in store.list_namespaces(tenant=ALL_TENANTS)}
        assert set(everything) == {"acme", "globex"}
        assert everything["acme"].tenant == a.id
        assert everything["acme"].retired > 0
        assert everything["globex"] == kept
        again = store.ensure_tenant("acme")
        for tenant in (again.id, b.id, a.id):
            reclaim = Namespace(name="acme", tenant=tenant, created=20, created_by="u")
            _raises(
                AlreadyExists,
                functools.partial(store.add_namespace, reclaim),
                "a retired name claimed again",
            )
        assert store.namespace_owner("acme") is None
        assert store.list_namespaces(tenant=again.id) == []
        assert store.namespace_owner("globex") == b.id


# audit log ---------------------------------------------------------------------------------


def _audit(
    n: int,
    *,
    tenant: str = TENANT_A,
    user: str = "alice",
    action: str = "container_start",
    target: str = "",
    created: str = "",
    status: int = 204,
    error: str = "",
) -> AuditRecord:
    return AuditRecord(
        tenant=tenant,
        time=1_700_000_000_000_000_000 + n * 1_000,
        user_id=_hex_id("a" + str(len(user) % 10)),
        user=user,
        token=f"{n:016x}",
        source="uid:0" if n % 2 else "ip:10.0.0.7",
        action=action,
        method="POST",
        path=f"/v1.41/containers/{target or 'create'}/start",
        target=target,
        created=created,
        status=status,
        error=error,
        request_id=f"req-{n}",
        cert=f"{n:032x}" if n % 3 == 0 else "",
    )


def _audit_log_a() -> list[AuditRecord]:
    """Tenant A's log, oldest first: a mix of users, actions, targets and results."""
    return [
        _audit(1, action="container_create", target="web", created=_hex_id("c1"), status=201),
        _audit(2, target="web"),
        _audit(
            3,
            user="bob",
            action="container_create",
            target="web",
            status=409,
            error='Conflict. The container name "/web" is already in use',
        ),
        _audit(
            4,
            user="bob",
            action="container_create",
            status=403,
            error="--privileged is not allowed: containers never get host-level privileges",
        ),
        _audit(5, action="volume_create", target="data", created="data", status=201),
        _audit(6, action="container_stop", target="c1", status=304),
        _audit(7, user="bob", action="image_tag", target="busybox", created="app:v_1", status=201),
        _audit(8, action="container_delete", target=_hex_id("c1")[:12], status=204),
        _audit(
            9,
            action="exec_start",
            target="e" * 64,
            status=0,
            error="no answer: the call was interrupted",
        ),
        _audit(10, action="container_kill", target="Web", status=404, error="No such container"),
    ]


def _same(got: list[AuditRecord], want: list[AuditRecord], what: str) -> None:
    assert [(r.request_id, r.seq) for r in got] == [(r.request_id, r.seq) for r in want], (
        f"{what}: got {[r.request_id for r in got]}, want {[r.request_id for r in want]}"
    )


def check_audit_append_and_filters(make_store: StoreFactory) -> None:
    """Audit records come back whole, numbered in the order appended, newest first; every
    filter selects exactly what AuditQuery.matches says (time bounds inclusive, ``before``
    by seq, user by name or id, action and target as exact, case-sensitive prefixes, target
    also of what a create made, result ok / error / a status), ``limit`` caps the page."""
    with _opened(make_store) as store:
        assert store.list_audit(tenant=TENANT_A, query=AuditQuery()) == []
        store.append_audit([])
        log = _audit_log_a()
        store.append_audit(log[:4])
        store.append_audit(log[4:])
        stored = store.list_audit(tenant=TENANT_A, query=AuditQuery())
        assert [r.request_id for r in stored] == [r.request_id for r in reversed(log)]
        seqs = [r.seq for r in stored]
        assert seqs == sorted(seqs, reverse=True) and len(set(seqs)) == len(seqs)
        assert all(s > 0 for s in seqs)
        by_request = {r.request_id: r for r in stored}
        for record in log:
            assert by_request[record.request_id] == replace(
                record, seq=by_request[record.request_id].seq
            ), f"record {record.request_id} changed in the store"
        newest_first = stored
        t = {r.request_id: r.time for r in log}
        queries = [
            AuditQuery(since=t["req-3"]),
            AuditQuery(until=t["req-3"]),
            AuditQuery(since=t["req-2"], until=t["req-4"]),
            AuditQuery(since=t["req-10"] + 1),
            AuditQuery(before=seqs[2]),
            AuditQuery(before=seqs[2], limit=2),
            AuditQuery(limit=3),
            AuditQuery(user="bob"),
            AuditQuery(user=_hex_id("a5")),  # alice's id
            AuditQuery(user="bo"),  # not a prefix match
            AuditQuery(action="container_"),
            AuditQuery(action="container_create"),
            AuditQuery(action="container%"),  # LIKE's wildcards are plain characters
            AuditQuery(action="Container"),  # case counts
            AuditQuery(target="web"),
            AuditQuery(target="Web"),
            AuditQuery(target=_hex_id("c1")[:5]),  # the created id, and a target by prefix
            AuditQuery(target="app:v_"),
            AuditQuery(target="app:v%"),
            AuditQuery(result="ok"),
            AuditQuery(result="error"),
            AuditQuery(result="409"),
            AuditQuery(result="304"),
            AuditQuery(user="bob", action="container_create", result="error", limit=1),
        ]
        for query in queries:
            want = [r for r in newest_first if query.matches(r)][: query.limit]
            _same(store.list_audit(tenant=TENANT_A, query=query), want, repr(query))
        assert store.list_audit(tenant=TENANT_A, query=AuditQuery(user="bob", result="403"))[
            0
        ].error.startswith("--privileged")


def check_audit_of_other_tenants_are_invisible(make_store: StoreFactory) -> None:
    """A tenant reads only its own audit records, whatever the filters; the operator log
    (tenant ``OPERATOR_LOG``) is a log of its own; ``audit_tenants`` lists every log."""
    with _opened(make_store) as store:
        mine = _audit(1, target="web")
        theirs = [
            _audit(2, tenant=TENANT_B, target="web"),
            _audit(3, tenant=TENANT_B, user="alice", action="container_create", status=201),
        ]
        refused = _audit(4, tenant=OPERATOR_LOG, user="", action="container_list", status=401)
        store.append_audit([mine, *theirs, refused])
        for query in (
            AuditQuery(),
            AuditQuery(user="alice"),
            AuditQuery(target="web"),
            AuditQuery(result="ok"),
            AuditQuery(action="container"),
        ):
            got = store.list_audit(tenant=TENANT_A, query=query)
            assert {r.tenant for r in got} <= {TENANT_A}, f"{query}: A reads another's"
            assert [r.request_id for r in got] == ["req-1"], query
        got_b = store.list_audit(tenant=TENANT_B, query=AuditQuery())
        assert [r.request_id for r in got_b] == ["req-3", "req-2"]
        operator = store.list_audit(tenant=OPERATOR_LOG, query=AuditQuery())
        assert [r.request_id for r in operator] == ["req-4"]
        assert store.list_audit(tenant="nobody", query=AuditQuery()) == []
        assert store.list_audit(tenant=ALL_TENANTS, query=AuditQuery()) == []
        assert store.audit_tenants() == sorted([OPERATOR_LOG, TENANT_A, TENANT_B])


def check_audit_read_from_another_thread(make_store: StoreFactory) -> None:
    """list_audit works from a worker thread while the store is written from another, and
    each read sees whole batches, newest first."""
    with _opened(make_store) as store:
        store.append_audit([_audit(0)])
        done = threading.Event()

        def read_until_done() -> int:
            reads = 0
            while not done.is_set() or reads == 0:
                got = store.list_audit(tenant=TENANT_A, query=AuditQuery(limit=MAX_AUDIT_READ))
                seqs = [r.seq for r in got]
                assert seqs == sorted(seqs, reverse=True), "a read out of order"
                assert len(got) % 5 == 1, f"a read saw part of a batch: {len(got)} records"
                reads += 1
            return reads

        with ThreadPoolExecutor(max_workers=2) as pool:
            readers = [pool.submit(read_until_done) for _ in range(2)]
            try:
                for batch in range(40):
                    store.append_audit([_audit(batch * 5 + n + 1) for n in range(5)])
                    store.add_volume(_volume(tenant=TENANT_A, name=f"v{batch}"))
            finally:
                done.set()
            assert all(reader.result(timeout=60) > 0 for reader in readers)
        assert len(store.list_audit(tenant=TENANT_A, query=AuditQuery(limit=1000))) == 201


def check_audit_retention(make_store: StoreFactory) -> None:
    """prune_audit keeps a tenant's newest ``keep`` records, drops those older than
    ``before``, says how many went and never touches another tenant's; a record appended
    after pruning gets a seq higher than any given before (cursors stay valid)."""
    with _opened(make_store) as store:
        store.append_audit([_audit(n) for n in range(1, 11)])
        store.append_audit([_audit(n, tenant=TENANT_B) for n in range(11, 15)])
        everything = AuditQuery(limit=MAX_AUDIT_READ)

        def ids(tenant: str) -> list[str]:
            return [r.request_id for r in store.list_audit(tenant=tenant, query=everything)]

        highest = store.list_audit(tenant=TENANT_B, query=AuditQuery(limit=1))[0].seq
        assert store.prune_audit(tenant=TENANT_A, keep=20, before=0) == 0
        assert store.prune_audit(tenant=TENANT_A, keep=6, before=0) == 4
        assert ids(TENANT_A) == [f"req-{n}" for n in range(10, 4, -1)]
        assert store.prune_audit(tenant=TENANT_A, keep=6, before=_audit(7).time) == 2
        assert ids(TENANT_A) == [f"req-{n}" for n in range(10, 6, -1)]
        assert store.prune_audit(tenant=TENANT_B, keep=0, before=0) == 4
        assert ids(TENANT_B) == []
        assert len(ids(TENANT_A)) == 4
        assert store.audit_tenants() == [TENANT_A]
        store.append_audit([_audit(15, tenant=TENANT_B)])
        again = store.list_audit(tenant=TENANT_B, query=AuditQuery())
        assert [r.request_id for r in again] == ["req-15"]
        assert again[0].seq > highest, "a pruned seq was given again"


def check_tenant_quotas(make_store: StoreFactory) -> None:
    """A tenant starts on plan "" with no overrides; its plan and overrides are replaced
    whole, kept apart from other tenants', refused for unknown tenants (NotFound) and for
    unknown quotas or limits below -1 (InvalidArgument); they go with the tenant."""
    with _opened(make_store) as store:
        a = store.ensure_tenant("acme")
        b = store.ensure_tenant("globex")
        assert store.get_tenant_quota(a.id) == TenantQuota(tenant=a.id)
        chosen = TenantQuota(
            tenant=a.id, plan="pro", overrides={"memory": 3 << 30, "public_ips": UNLIMITED}
        )
        store.put_tenant_quota(chosen)
        assert store.get_tenant_quota(a.id) == chosen
        assert store.get_tenant_quota(b.id) == TenantQuota(tenant=b.id)
        assert store.tenant_by_name("acme") == a  # the tenant itself is unchanged
        store.put_tenant_quota(TenantQuota(tenant=a.id, plan="free"))
        assert store.get_tenant_quota(a.id) == TenantQuota(tenant=a.id, plan="free")
        _raises(NotFound, lambda: store.get_tenant_quota("no-such"), "quota of unknown tenant")
        _raises(
            NotFound,
            lambda: store.put_tenant_quota(TenantQuota(tenant="no-such", plan="free")),
            "setting the quota of an unknown tenant",
        )
        _raises(
            InvalidArgument,
            lambda: store.put_tenant_quota(TenantQuota(tenant=b.id, overrides={"cpus": 1})),
            "an unknown quota",
        )
        _raises(
            InvalidArgument,
            lambda: store.put_tenant_quota(TenantQuota(tenant=b.id, overrides={"volumes": -2})),
            "a limit below -1",
        )
        assert store.get_tenant_quota(b.id) == TenantQuota(tenant=b.id)
        store.delete_tenant(a.id)
        _raises(NotFound, lambda: store.get_tenant_quota(a.id), "quota of a deleted tenant")
        again = store.ensure_tenant("acme")
        assert store.get_tenant_quota(again.id) == TenantQuota(tenant=again.id)


def check_container_totals_count_every_state(make_store: StoreFactory) -> None:
    """container_totals sums the memory and counts the containers of one tenant in every
    state and phase (created, running, exited, dead, mid-create), none of another's."""
    with _opened(make_store) as store:
        assert store.container_totals(tenant=TENANT_A) == (0, 0)
        states = (Status.CREATED, Status.RUNNING, Status.EXITED, Status.DEAD, Status.PAUSED)
        for index, status in enumerate(states):
            record = _container(tenant=TENANT_A, name=f"c{index}", cid=_hex_id(f"c{index}"))
            record.memory = (index + 1) * 64 << 20
            record.state = ContainerState(status=status)
            store.add_container(record)
        creating = _container(tenant=TENANT_A, name="new", cid=_hex_id("d0"))
        creating.memory, creating.phase = 256 << 20, "creating"
        store.add_container(creating)
        other = _container(tenant=TENANT_B, name="c0", cid=_hex_id("e0"))
        other.memory = 1 << 30
        store.add_container(other)
        assert store.container_totals(tenant=TENANT_A) == ((1 + 2 + 3 + 4 + 5 + 4) * 64 << 20, 6)
        assert store.container_totals(tenant=TENANT_B) == (1 << 30, 1)
        store.delete_container(tenant=TENANT_A, container_id=creating.id)
        assert store.container_totals(tenant=TENANT_A) == ((1 + 2 + 3 + 4 + 5) * 64 << 20, 5)


CHECKS: tuple[Check, ...] = (
    check_tenants_get_disjoint_uid_ranges,
    check_hosts,
    check_container_found_by_full_id,
    check_container_found_by_name,
    check_container_found_by_unique_prefix,
    check_ambiguous_prefix_is_invalid_argument,
    check_exact_name_wins_over_prefix,
    check_container_not_found,
    check_containers_of_other_tenants_are_invisible,
    check_prefixes_are_unique_per_tenant,
    check_other_tenants_objects_read_as_missing,
    check_container_names_unique_per_tenant,
    check_rename_container,
    check_list_and_put_containers,
    check_delete_container,
    check_execs,
    check_users_and_tokens,
    check_tenant_by_name_and_delete,
    check_client_certs,
    check_namespaces_are_unique_across_tenants,
    check_namespaces_of_a_deleted_tenant_are_retired,
    check_tenant_quotas,
    check_container_totals_count_every_state,
    check_images,
    check_image_tags_move_between_images,
    check_images_of_other_tenants_are_invisible,
    check_layer_referenced,
    check_volumes,
    check_networks,
    check_network_delete,
    check_addresses_static_and_ranges,
    check_addresses_are_never_handed_out_twice,
    check_addresses_released_return_to_the_pool,
    check_addresses_concurrently,
    check_security_groups,
    check_security_groups_of_other_tenants_read_as_missing,
    check_security_group_delete,
    check_public_ip_pools,
    check_public_ips_are_never_handed_out_twice,
    check_public_ips_released_return_to_the_pool,
    check_public_ips_of_other_tenants_are_invisible,
    check_public_ip_binding,
    check_public_ips_concurrently,
    check_events_append_and_range,
    check_events_of_other_tenants_are_invisible,
    check_event_retention,
    check_audit_append_and_filters,
    check_audit_of_other_tenants_are_invisible,
    check_audit_read_from_another_thread,
    check_audit_retention,
)
"""Every check, in a stable order (for ``pytest.mark.parametrize``)."""


def run_all(make_store: StoreFactory) -> None:
    """Run every check; the first broken rule raises AssertionError."""
    for check in CHECKS:
        check(make_store)
