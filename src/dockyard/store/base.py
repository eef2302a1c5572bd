"""The Store protocol: what the controller needs from persistence.

Lookup rules (shared by every implementation and checked by the conformance suite in
``dockyard.testing.store_conformance``):

- A container ``ref`` is a full id, a name (with or without Docker's leading ``/``), or a
  unique id prefix, searched only within the caller's tenant. An exact name wins over a
  prefix. Two matches raise InvalidArgument; none raises NotFound.
- Names are unique per tenant; adding a taken name raises AlreadyExists.
- Writes replace whole records; there is no partial update to get half right.
- Events are appended with the ``seq`` their writer gave them and read back in ``seq``
  order, per tenant; retention deletes the oldest first.
- Registry namespaces are unique across the cloud, every tenant's and retired ones
  included: a name once added is never added again, and is never renamed or removed
  (deleting its tenant retires it).
- Public IPs come from the operator's pools, each address held by at most one tenant and
  bound to at most one of its containers; another tenant's address reads as missing.
- Audit records get their ``seq`` from the store, in the order appended (never one given
  before, even after the newest were deleted), and are read back newest first, per tenant
  (:data:`dockyard.core.audit.OPERATOR_LOG` is a log of its own); retention deletes the
  oldest first.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, Protocol

from dockyard.core.audit import AuditQuery, AuditRecord
from dockyard.core.certs import ClientCert
from dockyard.core.events import Event
from dockyard.core.identity import Token, User
from dockyard.core.models import (
    Container,
    ExecInstance,
    Host,
    Image,
    IpPool,
    Network,
    PublicIp,
    SecurityGroup,
    Volume,
)
from dockyard.core.namespaces import Namespace
from dockyard.core.quotas import TenantQuota
from dockyard.core.tenancy import Tenant

__all__ = ["ALL_TENANTS", "Store"]

ALL_TENANTS: Final = "*"
"""System scope for reconcilers; never derived from a request. With it, look containers up
by full id only (names are unique per tenant, not across tenants)."""


class Store(Protocol):
    # tenants
    def ensure_tenant(self, name: str) -> Tenant:
        """Return the tenant called ``name``, creating it with the next free uid range."""

    def get_tenant(self, tenant_id: str) -> Tenant: ...

    def tenant_by_name(self, name: str) -> Tenant:
        """NotFound if no tenant has that name."""

    def list_tenants(self) -> list[Tenant]: ...

    def delete_tenant(self, tenant_id: str) -> None:
        """Remove the tenant with its users, tokens, client certificates and security
        groups (callers first make sure it owns nothing else); its registry namespaces are
        kept, retired."""

    # plans and quotas
    def get_tenant_quota(self, tenant_id: str) -> TenantQuota:
        """The tenant's plan and limit overrides: plan "" and none for a new tenant.
        NotFound if there is no such tenant."""

    def put_tenant_quota(self, quota: TenantQuota) -> None:
        """Replace the tenant's plan and overrides (whole); NotFound if no such tenant."""

    # users and tokens
    def add_user(self, user: User) -> None:
        """AlreadyExists if the tenant has a user of that name."""

    def get_user(self, *, tenant: str, ref: str) -> User:
        """The tenant's user by id or name; NotFound otherwise."""

    def list_users(self, *, tenant: str) -> list[User]: ...

    def delete_user(self, *, tenant: str, user_id: str) -> None:
        """Remove the user with its tokens and client certificates."""

    def add_token(self, token: Token) -> None: ...

    def get_token(self, token_id: str) -> Token:
        """System scope, for authentication: the token with this id; NotFound otherwise."""

    def list_tokens(self, *, tenant: str, user: str | None = None) -> list[Token]: ...

    def revoke_token(self, *, tenant: str, token_id: str, when: int) -> Token:
        """Mark the tenant's token revoked at ``when`` (once; later calls keep the first
        time); NotFound if the tenant has no such token."""

    # client certificates
    def add_cert(self, cert: ClientCert) -> None:
        """AlreadyExists if a certificate with that serial was recorded before."""

    def get_cert(self, serial: str) -> ClientCert:
        """System scope, for authentication: the certificate with this serial; NotFound
        otherwise."""

    def list_certs(self, *, tenant: str, user: str | None = None) -> list[ClientCert]:
        """The tenant's certificates (one user's with ``user``), oldest first."""

    def revoke_cert(self, *, tenant: str, serial: str, when: int) -> ClientCert:
        """Mark the tenant's certificate revoked at ``when`` (once; later calls keep the
        first time); NotFound if the tenant has no such certificate."""

    # registry namespaces
    def add_namespace(self, namespace: Namespace) -> None:
        """Record a claimed name; AlreadyExists if it was ever recorded (by any tenant,
        retired ones included)."""

    def list_namespaces(self, *, tenant: str) -> list[Namespace]:
        """The tenant's namespaces in use, by name. :data:`ALL_TENANTS`: every one ever
        recorded, retired ones included (the operator's view)."""

    def namespace_owner(self, name: str) -> str | None:
        """System scope, for the registry's token service: the id of the tenant that owns
        ``name``; None if no tenant does (never claimed, or retired)."""

    # hosts
    def put_host(self, host: Host) -> None: ...

    def list_hosts(self) -> list[Host]: ...

    # containers
    def add_container(self, container: Container) -> None: ...

    def get_container(self, *, tenant: str, ref: str) -> Container: ...

    def list_containers(self, *, tenant: str, host: str | None = None) -> list[Container]: ...

    def put_container(self, container: Container) -> None:
        """Replace the stored record with the same id (and tenant); NotFound if it is gone."""

    def rename_container(self, *, tenant: str, container_id: str, name: str) -> None: ...

    def container_totals(self, *, tenant: str) -> tuple[int, int]:
        """(memory, number) of the tenant's containers in every state and phase, a create
        under way included: what its memory and container quotas count. One aggregate
        query, not a load of every record."""

    def reservations(self) -> dict[str, tuple[int, int]]:
        """Per host: (memory reserved, number) of running, paused or restarting containers.

        System scope, for placement; costs one aggregate query, not a load of every record.
        """

    def delete_container(self, *, tenant: str, container_id: str) -> None:
        """Remove the container and its execs, return the network addresses it holds to
        their pools, and unbind the public IP bound to it (the tenant keeps the address):
        one transaction."""

    # execs
    def add_exec(self, instance: ExecInstance) -> None: ...

    def get_exec(self, *, tenant: str, exec_id: str) -> ExecInstance:
        """The tenant's exec with this full id (Docker takes no prefixes); NotFound else."""

    def delete_exec(self, *, tenant: str, exec_id: str) -> None: ...

    # images
    def put_image(self, image: Image) -> None:
        """Insert or replace the tenant's image with this id."""

    def get_image(self, *, tenant: str, image_id: str) -> Image: ...

    def find_images(self, *, tenant: str, id_prefix: str) -> list[Image]: ...

    def image_by_tag(self, *, tenant: str, tag: str) -> Image:
        """The image tagged ``tag`` (familiar ``repository:tag``); NotFound if none."""

    def list_images(self, *, tenant: str) -> list[Image]: ...

    def delete_image(self, *, tenant: str, image_id: str) -> None: ...

    def layer_referenced(self, diff_id: str) -> bool:
        """Whether any tenant's image still uses the layer (system scope)."""

    # volumes
    def add_volume(self, volume: Volume) -> None: ...

    def get_volume(self, *, tenant: str, name: str) -> Volume: ...

    def list_volumes(self, *, tenant: str) -> list[Volume]: ...

    def delete_volume(self, *, tenant: str, name: str) -> None: ...

    # networks and addresses
    def add_network(self, network: Network) -> None: ...

    def get_network(self, *, tenant: str, ref: str) -> Network:
        """The tenant's network by id, name or unique id prefix; NotFound otherwise."""

    def list_networks(self, *, tenant: str) -> list[Network]:
        """The tenant's networks by name (every tenant's for ``ALL_TENANTS``)."""

    def delete_network(self, *, tenant: str, network_id: str) -> None:
        """Delete the network unless an address of it is reserved (Conflict), atomically
        with respect to :meth:`allocate_address`. NotFound if the tenant has no such id."""

    def network_users(self, *, network_id: str) -> dict[str, str]:
        """Owner (container id) -> address for every address reserved on the network."""

    def allocate_address(self, *, network: Network, owner: str, address: str = "") -> str:
        """Reserve ``address``, or the lowest free host address of the network's
        ``ip_range`` (its subnet when empty), for ``owner``; never the gateway.

        Never hands one address out twice, even to concurrent callers. Raises Conflict
        when ``address`` is taken, Unavailable when the pool is exhausted, NotFound when
        the network is gone.
        """

    def release_address(self, *, network_id: str, owner: str) -> None:
        """Return ``owner``'s address on one network to the pool (idempotent)."""

    def release_addresses(self, *, owner: str) -> None:
        """Return every address ``owner`` holds (idempotent)."""

    # security groups
    def add_security_group(self, group: SecurityGroup) -> None:
        """AlreadyExists if the tenant has a group of that name."""

    def get_security_group(self, *, tenant: str, ref: str) -> SecurityGroup:
        """The tenant's group by id, name or unique id prefix; NotFound otherwise."""

    def list_security_groups(self, *, tenant: str) -> list[SecurityGroup]:
        """The tenant's groups by name."""

    def put_security_group(self, group: SecurityGroup) -> None:
        """Replace the tenant's group with the same id (its rules); NotFound if it is
        gone, AlreadyExists if its name is now another group's."""

    def delete_security_group(self, *, tenant: str, group_id: str) -> None:
        """Delete the group unless a container of the tenant is in it or a rule of another
        of its groups names it as the source (Conflict), atomically with respect to
        container and group writes. NotFound if the tenant has no such id."""

    def security_group_users(self, *, tenant: str, group_id: str) -> list[str]:
        """Ids of the tenant's containers (in any state or phase) in the group, sorted."""

    # public IPs and their pools
    def add_ip_pool(self, pool: IpPool) -> None:
        """Add a range of public addresses (system scope). AlreadyExists for a range
        already added, Conflict for one that overlaps another."""

    def list_ip_pools(self) -> list[IpPool]:
        """Every range, in address order (system scope)."""

    def delete_ip_pool(self, cidr: str) -> None:
        """Remove a range none of whose addresses is held (Conflict otherwise), atomically
        with respect to :meth:`allocate_public_ip`; NotFound if there is no such range."""

    def allocate_public_ip(self, *, tenant: str, created: int) -> PublicIp:
        """Give ``tenant`` the lowest free address of the pools (taken in address order;
        a range larger than a /31 never gives its network or broadcast address), unbound.

        Never hands one address out twice, even to concurrent callers; an address released
        is free again. Unavailable when every range is full or there is none.
        """

    def list_public_ips(self, *, tenant: str) -> list[PublicIp]:
        """The tenant's public IPs in address order (every tenant's for ``ALL_TENANTS``)."""

    def get_public_ip(self, *, tenant: str, address: str) -> PublicIp:
        """NotFound unless ``tenant`` holds ``address``."""

    def public_ip_of(self, *, tenant: str, container_id: str) -> str:
        """The address bound to the tenant's container, "" if none."""

    def bind_public_ip(self, *, tenant: str, address: str, container_id: str) -> PublicIp:
        """Bind the tenant's ``address`` to its container ``container_id``, taking it from
        the container it was bound to, if any; return the record as it was before.

        NotFound if the tenant does not hold the address or has no such container (checked
        atomically with :meth:`delete_container`); Conflict if the container is bound to
        another of the tenant's addresses.
        """

    def unbind_public_ip(self, *, tenant: str, address: str) -> PublicIp:
        """Unbind the tenant's ``address`` (idempotent); the record as it was before.
        NotFound unless the tenant holds it."""

    def release_public_ip(self, *, tenant: str, address: str) -> PublicIp:
        """Return the tenant's ``address`` to the pool, bound or not; the record as it
        was. NotFound unless the tenant holds it."""

    # events
    def append_events(self, events: Sequence[Event]) -> None:
        """Store ``events`` in one transaction; each ``seq`` is new."""

    def list_events(
        self, *, tenant: str, since: int = 0, until: int = 0, after: int = 0, limit: int = 1000
    ) -> list[Event]:
        """The tenant's events with ``time >= since``, ``time <= until`` (when ``until`` is
        not 0) and ``seq > after``, in ``seq`` order, at most ``limit`` of them.
        :data:`ALL_TENANTS` reads every tenant's (system consumers only)."""

    def last_event_seq(self) -> int:
        """The highest ``seq`` stored, 0 if none (system scope)."""

    def prune_events(self, *, tenant: str, keep: int, before: int) -> int:
        """Delete the tenant's events older than the newest ``keep`` and those with
        ``time < before``; return how many were deleted."""

    # audit log
    def append_audit(self, records: Sequence[AuditRecord]) -> None:
        """Store ``records`` in one transaction, numbering them (``seq``) in this order
        after every record stored before; the records' own ``seq`` is ignored."""

    def list_audit(self, *, tenant: str, query: AuditQuery) -> list[AuditRecord]:
        """The tenant's records that ``query`` matches (:meth:`AuditQuery.matches`),
        newest (highest ``seq``) first, at most ``query.limit``. Only that tenant's: there
        is no system scope for reading (the operator reads one tenant at a time).

        May be called from a worker thread while the event loop's thread uses the store (a
        filter that matches little reads a whole log), and must not hold it up meanwhile."""

    def prune_audit(self, *, tenant: str, keep: int, before: int) -> int:
        """Delete the tenant's records older than the newest ``keep`` and those with
        ``time < before``; return how many were deleted."""

    def audit_tenants(self) -> list[str]:
        """Every tenant (id) that has audit records, deleted tenants and the operator log
        included (system scope, for retention)."""

    def close(self) -> None: ...
