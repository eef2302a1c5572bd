"""SqlStore: the Store protocol on SQLAlchemy Core, SQLite by default.

Records are kept as JSON documents (``dockyard.core.serde``) beside the columns that
lookups and uniqueness need. SQLite runs in WAL mode with ``synchronous=NORMAL``: a crash
of the process loses nothing committed; a power cut may lose the last transactions, which
the reconcilers repair from the agents' reports.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import json
import socket
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from dockyard.core.audit import AuditQuery, AuditRecord
from dockyard.core.certs import ClientCert
from dockyard.core.clock import now_ns
from dockyard.core.errors import (
    AlreadyExists,
    Conflict,
    Internal,
    InvalidArgument,
    NotFound,
    Unavailable,
)
from dockyard.core.events import Event
from dockyard.core.identity import Token, User
from dockyard.core.ids import new_id
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
from dockyard.core.quotas import TenantQuota, validate_overrides
from dockyard.core.serde import from_data, to_data
from dockyard.core.tenancy import UID_RANGE_SIZE, Tenant
from dockyard.store.base import ALL_TENANTS

__all__ = ["SqlStore"]

T = TypeVar("T")
_SYSTEM = ""  # tenant of the system-wide bridge of stores older than ADR 0016

metadata = sa.MetaData()

tenants = sa.Table(
    "tenants",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(64), nullable=False, unique=True),
    sa.Column("uid_base", sa.BigInteger, nullable=False, unique=True),
    sa.Column("uid_size", sa.BigInteger, nullable=False),
    sa.Column("created", sa.BigInteger, nullable=False),
    sa.Column("plan", sa.String(64), nullable=False, server_default=""),
    sa.Column("quota", sa.Text, nullable=False, server_default="{}"),
)

uid_ranges = sa.Table(
    "uid_ranges",
    metadata,
    # Every uid range ever handed out, kept after its tenant is gone: a range is never
    # given to a second tenant (files the first left anywhere stay out of its reach).
    sa.Column("uid_base", sa.BigInteger, primary_key=True),
    sa.Column("tenant", sa.String(64), nullable=False),
)

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("tenant", sa.String(64), nullable=False),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("doc", sa.Text, nullable=False),
    sa.UniqueConstraint("tenant", "name", name="uq_user_name"),
)

tokens = sa.Table(
    "tokens",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("tenant", sa.String(64), nullable=False, index=True),
    sa.Column("user", sa.String(64), nullable=False, index=True),
    sa.Column("doc", sa.Text, nullable=False),
)

certs = sa.Table(
    "certs",
    metadata,
    sa.Column("serial", sa.String(40), primary_key=True),
    sa.Column("tenant", sa.String(64), nullable=False, index=True),
    sa.Column("user", sa.String(64), nullable=False, index=True),
    sa.Column("doc", sa.Text, nullable=False),
)

namespaces = sa.Table(
    "namespaces",
    metadata,
    # Every registry namespace ever claimed, kept after its tenant is gone (``retired``):
    # a name is never given to a second tenant (``acme/app`` must not change hands).
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("tenant", sa.String(64), nullable=False, index=True),
    sa.Column("created", sa.BigInteger, nullable=False),
    sa.Column("created_by", sa.String(64), nullable=False),
    sa.Column("retired", sa.BigInteger, nullable=False, server_default="0"),
)

hosts = sa.Table(
    "hosts",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("doc", sa.Text, nullable=False),
)

containers = sa.Table(
    "containers",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("tenant", sa.String(64), nullable=False),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("host", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False, server_default="created"),
    sa.Column("memory", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("doc", sa.Text, nullable=False),
    sa.UniqueConstraint("tenant", "name", name="uq_container_name"),
)

execs = sa.Table(
    "execs",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("tenant", sa.String(64), nullable=False),
    sa.Column("container_id", sa.String(64), nullable=False, index=True),
    sa.Column("created", sa.BigInteger, nullable=False),
    sa.Column("command", sa.Text, nullable=False, server_default=""),
)

images = sa.Table(
    "images",
    metadata,
    sa.Column("tenant", sa.String(64), primary_key=True),
    sa.Column("id", sa.String(80), primary_key=True),
    sa.Column("doc", sa.Text, nullable=False),
)

image_tags = sa.Table(
    "image_tags",
    metadata,
    sa.Column("tenant", sa.String(64), primary_key=True),
    sa.Column("tag", sa.String(512), primary_key=True),
    sa.Column("image_id", sa.String(80), nullable=False),
)

image_layers = sa.Table(
    "image_layers",
    metadata,
    sa.Column("tenant", sa.String(64), primary_key=True),
    sa.Column("image_id", sa.String(80), primary_key=True),
    sa.Column("diff_id", sa.String(80), primary_key=True, index=True),
)

volumes = sa.Table(
    "volumes",
    metadata,
    sa.Column("tenant", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("doc", sa.Text, nullable=False),
)

networks = sa.Table(
    "networks",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("tenant", sa.String(64), nullable=False),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("doc", sa.Text, nullable=False),
    sa.UniqueConstraint("tenant", "name", name="uq_network_name"),
)

addresses = sa.Table(
    "addresses",
    metadata,
    sa.Column("network", sa.String(64), primary_key=True),
    sa.Column("address", sa.String(64), primary_key=True),
    sa.Column("owner", sa.String(64), nullable=False, index=True),
)

security_groups = sa.Table(
    "security_groups",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("tenant", sa.String(64), nullable=False),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("doc", sa.Text, nullable=False),
    sa.UniqueConstraint("tenant", "name", name="uq_security_group_name"),
)

# Public IPs: ranges carry their first and last address as numbers, and each held address
# its number, so overlaps, a range's holders and the free addresses are index range scans.
ip_pools = sa.Table(
    "ip_pools",
    metadata,
    sa.Column("cidr", sa.String(64), primary_key=True),
    sa.Column("first", sa.BigInteger, nullable=False, unique=True),
    sa.Column("last", sa.BigInteger, nullable=False),
    sa.Column("created", sa.BigInteger, nullable=False),
)

public_ips = sa.Table(
    "public_ips",
    metadata,
    sa.Column("address", sa.String(64), primary_key=True),
    sa.Column("number", sa.BigInteger, nullable=False, unique=True),
    sa.Column("tenant", sa.String(64), nullable=False, index=True),
    sa.Column("container", sa.String(64), nullable=False, server_default=""),
    sa.Column("created", sa.BigInteger, nullable=False),
    # One public IP per container, enforced where two writers could race.
    sa.Index(
        "uq_public_ips_container",
        "container",
        unique=True,
        sqlite_where=sa.text("container != ''"),
        postgresql_where=sa.text("container != ''"),
    ),
)

# seq is the rowid on SQLite (INTEGER PRIMARY KEY), so the log needs no extra key index.
events = sa.Table(
    "events",
    metadata,
    sa.Column(
        "seq",
        sa.BigInteger().with_variant(sa.Integer, "sqlite"),
        primary_key=True,
        autoincrement=False,
    ),
    sa.Column("tenant", sa.String(64), nullable=False),
    sa.Column("time", sa.BigInteger, nullable=False),
    sa.Column("type", sa.String(16), nullable=False),
    sa.Column("action", sa.String(512), nullable=False),
    sa.Column("actor", sa.String(512), nullable=False),
    sa.Column("attributes", sa.Text, nullable=False),
    sa.Index("ix_events_tenant_time", "tenant", "time"),
    sa.Index("ix_events_tenant_seq", "tenant", "seq"),
)

# The audit log: seq is given by the database (AUTOINCREMENT on SQLite, so a number is never
# given twice even after the newest records were pruned: a reader's ``before`` stays valid).
audit = sa.Table(
    "audit",
    metadata,
    sa.Column(
        "seq",
        sa.BigInteger().with_variant(sa.Integer, "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    sa.Column("tenant", sa.String(64), nullable=False),
    sa.Column("time", sa.BigInteger, nullable=False),
    sa.Column("user_id", sa.String(64), nullable=False),
    sa.Column("user_name", sa.String(64), nullable=False),
    sa.Column("token", sa.String(64), nullable=False),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("method", sa.String(16), nullable=False),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("target", sa.Text, nullable=False),
    sa.Column("created", sa.Text, nullable=False),
    sa.Column("status", sa.Integer, nullable=False),
    sa.Column("error", sa.Text, nullable=False),
    sa.Column("request_id", sa.String(64), nullable=False),
    sa.Column("cert", sa.String(128), nullable=False, server_default=""),
    sa.Index("ix_audit_tenant_time", "tenant", "time"),
    sa.Index("ix_audit_tenant_seq", "tenant", "seq"),
    sqlite_autoincrement=True,
)


# Statements of the hot paths (a ``docker create`` + ``start`` runs each about once), built
# once with bind parameters: building a statement and computing its cache key cost more
# than running it (an UPDATE of a container: 0.50 ms built per call, 0.14 ms prebuilt).
# They are plain SQLAlchemy Core, so they compile for any dialect.
_p = sa.bindparam

_ADD_CONTAINER = containers.insert()
_PUT_CONTAINER = (
    containers.update()
    .where(containers.c.id == _p("k_id"), containers.c.tenant == _p("k_tenant"))
    .values(
        name=_p("v_name"),
        host=_p("v_host"),
        status=_p("v_status"),
        memory=_p("v_memory"),
        doc=_p("v_doc"),
    )
)
_CONTAINER_TOTALS = sa.select(sa.func.sum(containers.c.memory), sa.func.count()).where(
    containers.c.tenant == _p("tenant")
)
_RESERVATIONS = (
    sa.select(containers.c.host, sa.func.sum(containers.c.memory), sa.func.count())
    # Not IN (...): its list is expanded into the SQL on every execution.
    .where(sa.or_(*(containers.c.status == s for s in ("running", "paused", "restarting"))))
    .group_by(containers.c.host)
)
_TENANT_QUOTA = sa.select(tenants.c.plan, tenants.c.quota).where(tenants.c.id == _p("tenant"))
_PUBLIC_IP_OF = sa.select(public_ips.c.address).where(
    public_ips.c.tenant == _p("tenant"), public_ips.c.container == _p("container")
)
_NETWORK_EXISTS = sa.select(networks.c.id).where(networks.c.id == _p("network"))
_NETWORK_ADDRESSES = sa.select(addresses.c.address).where(addresses.c.network == _p("network"))
_ADD_ADDRESS = addresses.insert()
_RELEASE_ADDRESSES = addresses.delete().where(addresses.c.owner == _p("owner"))
_DELETE_CONTAINER = containers.delete().where(
    containers.c.id == _p("container"), containers.c.tenant == _p("tenant")
)
_DELETE_EXECS = execs.delete().where(execs.c.container_id == _p("container"))
_UNBIND_PUBLIC_IPS = (
    public_ips.update()
    .where(public_ips.c.tenant == _p("b_tenant"), public_ips.c.container == _p("b_container"))
    .values(container="")
)
_ADD_EVENTS = events.insert()
_ADD_AUDIT = audit.insert()


@functools.cache
def _doc_by_ref_query(table: sa.Table) -> sa.Select[tuple[str]]:
    """The statement of :meth:`SqlStore._doc_by_ref`'s exact lookup, built once a table."""
    return sa.select(table.c.doc).where(
        table.c.tenant == _p("tenant"), sa.or_(table.c.id == _p("ref"), table.c.name == _p("ref"))
    )


_TENANT_GROUPS = sa.select(security_groups.c.doc).where(security_groups.c.tenant == _p("tenant"))


class _Groups:
    """A tenant's security groups, found by ref as :meth:`SqlStore.get_security_group`
    finds them: by id, else by name, else by a unique id prefix."""

    def __init__(self, groups: Iterable[SecurityGroup]) -> None:
        self._by_id: dict[str, SecurityGroup] = {}
        self._by_name: dict[str, SecurityGroup] = {}
        for group in groups:
            self._by_id[group.id] = group
            self._by_name[group.name] = group

    def find(self, ref: str) -> SecurityGroup | None:
        found = self._by_id.get(ref) or self._by_name.get(ref)
        if found is None and ref and _is_hex(ref):
            prefixed = [g for i, g in self._by_id.items() if i.startswith(ref)]
            found = prefixed[0] if len(prefixed) == 1 else None
        return found


def _dump(record: Any) -> str:
    return json.dumps(to_data(record), separators=(",", ":"))


def _load(cls: type[T], doc: str) -> T:
    return from_data(cls, json.loads(doc))


class SqlStore:
    """Store on a SQLAlchemy engine. ``uid_range_start`` is the first host uid handed to
    tenants; each new tenant takes the next :data:`UID_RANGE_SIZE` block."""

    def __init__(self, url: str, *, uid_range_start: int) -> None:
        sqlite = url.startswith("sqlite")
        self._engine = sa.create_engine(
            url, connect_args={"check_same_thread": False} if sqlite else {}
        )
        self._uid_range_start = uid_range_start
        if sqlite:
            event.listen(self._engine, "connect", _sqlite_pragmas)
        metadata.create_all(self._engine)
        _add_missing_columns(self._engine)
        _record_uid_ranges(self._engine)
        _drop_system_networks(self._engine)
        # One connection for the process, each call one transaction on it: checking a
        # connection out of the pool per call cost more than the query (0.64 -> 0.28 ms
        # per write). The lock serialises the few calls made from worker threads.
        self._conn = self._engine.connect()
        self._lock = threading.Lock()
        # Records every container create reads and that rarely change: each tenant's
        # security groups (all of them, as read at once) and quota settings. This store is
        # their only writer (one controller process holds it, ADR 0004); a write forgets
        # the tenant's entry under the lock, in its transaction, and a read fills it under
        # the lock too, so no read can put back what a write replaced.
        self._groups: dict[str, _Groups] = {}
        self._quotas: dict[str, TenantQuota] = {}

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sa.Connection]:
        with self._lock, self._conn.begin():
            yield self._conn

    @contextlib.contextmanager
    def _reader(self) -> Iterator[sa.Connection]:
        """A pooled connection of its own, for long reads from a worker thread: it takes
        none of our locks, and SQLite in WAL mode lets it read while the main connection
        writes."""
        with self._engine.connect() as conn, conn.begin():
            yield conn

    def _doc_by_ref(self, table: sa.Table, *, tenant: str, ref: str, what: str) -> str:
        """The document of the tenant's row of ``table`` (columns id, tenant, name, doc)
        whose id or name is ``ref``, else whose id alone starts with it; NotFound when
        there is none or the prefix is not unique."""
        with self._tx() as conn:
            row = conn.execute(_doc_by_ref_query(table), {"tenant": tenant, "ref": ref}).first()
            if row is None and ref and _is_hex(ref):
                rows = conn.execute(
                    sa.select(table.c.doc)
                    .where(table.c.tenant == tenant, table.c.id.startswith(ref, autoescape=True))
                    .limit(2)
                ).all()
                row = rows[0] if len(rows) == 1 else None
        if row is None:
            raise NotFound(f"{what} {ref} not found")
        return str(row.doc)

    @classmethod
    def sqlite(cls, path: Path, *, uid_range_start: int) -> SqlStore:
        path.parent.mkdir(parents=True, exist_ok=True)
        return cls(f"sqlite:///{path}", uid_range_start=uid_range_start)

    @property
    def engine(self) -> Engine:
        return self._engine

    def close(self) -> None:
        self._conn.close()
        self._engine.dispose()

    # tenants ---------------------------------------------------------------------------

    def ensure_tenant(self, name: str) -> Tenant:
        for _ in range(16):
            try:
                return self._ensure_tenant_once(name)
            except IntegrityError:
                continue  # a concurrent caller created it or took the uid range: look again
        raise Unavailable(f"could not create tenant {name}")

    def _ensure_tenant_once(self, name: str) -> Tenant:
        with self._tx() as conn:
            row = conn.execute(sa.select(tenants).where(tenants.c.name == name)).first()
            if row is None:
                tops = (
                    conn.execute(sa.select(sa.func.max(table.c.uid_base))).scalar()
                    for table in (tenants, uid_ranges)
                )
                top = max((int(t) for t in tops if t is not None), default=None)
                base = self._uid_range_start if top is None else top + UID_RANGE_SIZE
                tenant_id = new_id()
                conn.execute(
                    tenants.insert().values(
                        id=tenant_id,
                        name=name,
                        uid_base=base,
                        uid_size=UID_RANGE_SIZE,
                        created=now_ns(),
                    )
                )
                conn.execute(uid_ranges.insert().values(uid_base=base, tenant=tenant_id))
                row = conn.execute(sa.select(tenants).where(tenants.c.name == name)).one()
        return _tenant(row)

    def get_tenant(self, tenant_id: str) -> Tenant:
        with self._tx() as conn:
            row = conn.execute(sa.select(tenants).where(tenants.c.id == tenant_id)).first()
        if row is None:
            raise NotFound(f"no such tenant: {tenant_id}")
        return _tenant(row)

    def tenant_by_name(self, name: str) -> Tenant:
        with self._tx() as conn:
            row = conn.execute(sa.select(tenants).where(tenants.c.name == name)).first()
        if row is None:
            raise NotFound(f"no such tenant: {name}")
        return _tenant(row)

    def list_tenants(self) -> list[Tenant]:
        with self._tx() as conn:
            return [_tenant(r) for r in conn.execute(sa.select(tenants).order_by(tenants.c.name))]

    def delete_tenant(self, tenant_id: str) -> None:
        with self._tx() as conn:
            conn.execute(tokens.delete().where(tokens.c.tenant == tenant_id))
            conn.execute(certs.delete().where(certs.c.tenant == tenant_id))
            conn.execute(users.delete().where(users.c.tenant == tenant_id))
            conn.execute(
                namespaces.update()
                .where(namespaces.c.tenant == tenant_id, namespaces.c.retired == 0)
                .values(retired=now_ns())
            )
            self._forget_tenant_records(tenant_id)
            conn.execute(security_groups.delete().where(security_groups.c.tenant == tenant_id))
            conn.execute(tenants.delete().where(tenants.c.id == tenant_id))

    def _forget_tenant_records(self, tenant_id: str) -> None:
        """Drop the cached records of the tenant (called under the lock, in the write)."""
        self._groups.pop(tenant_id, None)
        self._quotas.pop(tenant_id, None)

    # plans and quotas ----------------------------------------------------------------------

    def get_tenant_quota(self, tenant_id: str) -> TenantQuota:
        cached = self._quotas.get(tenant_id)
        if cached is None:
            with self._tx() as conn:
                row = conn.execute(_TENANT_QUOTA, {"tenant": tenant_id}).first()
                if row is None:
                    raise NotFound(f"no such tenant: {tenant_id}")
                cached = TenantQuota(
                    tenant=tenant_id,
                    plan=row.plan,
                    overrides=validate_overrides(json.loads(row.quota)),
                )
                self._quotas[tenant_id] = cached
        return replace(cached, overrides=dict(cached.overrides))

    def put_tenant_quota(self, quota: TenantQuota) -> None:
        overrides = json.dumps(validate_overrides(quota.overrides), sort_keys=True)
        with self._tx() as conn:
            self._quotas.pop(quota.tenant, None)
            result = conn.execute(
                tenants.update()
                .where(tenants.c.id == quota.tenant)
                .values(plan=quota.plan, quota=overrides)
            )
        if result.rowcount == 0:
            raise NotFound(f"no such tenant: {quota.tenant}")

    # users and tokens --------------------------------------------------------------------

    def add_user(self, user: User) -> None:
        with self._tx() as conn:
            try:
                conn.execute(
                    users.insert().values(
                        id=user.id, tenant=user.tenant, name=user.name, doc=_dump(user)
                    )
                )
            except IntegrityError as exc:
                raise AlreadyExists(f"user {user.name} already exists") from exc

    def get_user(self, *, tenant: str, ref: str) -> User:
        query = sa.select(users.c.doc).where(
            users.c.tenant == tenant, sa.or_(users.c.id == ref, users.c.name == ref)
        )
        with self._tx() as conn:
            doc = conn.execute(query).scalar()
        if doc is None:
            raise NotFound(f"no such user: {ref}")
        return _load(User, doc)

    def list_users(self, *, tenant: str) -> list[User]:
        query = sa.select(users.c.doc).where(users.c.tenant == tenant).order_by(users.c.name)
        with self._tx() as conn:
            return [_load(User, doc) for doc in conn.execute(query).scalars()]

    def delete_user(self, *, tenant: str, user_id: str) -> None:
        with self._tx() as conn:
            conn.execute(tokens.delete().where(tokens.c.tenant == tenant, tokens.c.user == user_id))
            conn.execute(certs.delete().where(certs.c.tenant == tenant, certs.c.user == user_id))
            conn.execute(users.delete().where(users.c.tenant == tenant, users.c.id == user_id))

    def add_token(self, token: Token) -> None:
        with self._tx() as conn:
            conn.execute(
                tokens.insert().values(
                    id=token.id, tenant=token.tenant, user=token.user, doc=_dump(token)
                )
            )

    def get_token(self, token_id: str) -> Token:
        with self._tx() as conn:
            doc = conn.execute(sa.select(tokens.c.doc).where(tokens.c.id == token_id)).scalar()
        if doc is None:
            raise NotFound(f"no such token: {token_id}")
        return _load(Token, doc)

    def list_tokens(self, *, tenant: str, user: str | None = None) -> list[Token]:
        query = sa.select(tokens.c.doc).where(tokens.c.tenant == tenant)
        if user is not None:
            query = query.where(tokens.c.user == user)
        with self._tx() as conn:
            found = [_load(Token, doc) for doc in conn.execute(query).scalars()]
        return sorted(found, key=lambda t: (t.created, t.id))

    def revoke_token(self, *, tenant: str, token_id: str, when: int) -> Token:
        where = (tokens.c.id == token_id, tokens.c.tenant == tenant)
        with self._tx() as conn:
            doc = conn.execute(sa.select(tokens.c.doc).where(*where)).scalar()
            if doc is None:
                raise NotFound(f"no such token: {token_id}")
            token = _load(Token, doc)
            if not token.revoked:
                token = replace(token, revoked=when)
                conn.execute(tokens.update().where(*where).values(doc=_dump(token)))
        return token

    # client certificates -----------------------------------------------------------------

    def add_cert(self, cert: ClientCert) -> None:
        with self._tx() as conn:
            try:
                conn.execute(
                    certs.insert().values(
                        serial=cert.serial, tenant=cert.tenant, user=cert.user, doc=_dump(cert)
                    )
                )
            except IntegrityError as exc:
                raise AlreadyExists(f"certificate {cert.serial} already recorded") from exc

    def get_cert(self, serial: str) -> ClientCert:
        with self._tx() as conn:
            doc = conn.execute(sa.select(certs.c.doc).where(certs.c.serial == serial)).scalar()
        if doc is None:
            raise NotFound(f"no such certificate: {serial}")
        return _load(ClientCert, doc)

    def list_certs(self, *, tenant: str, user: str | None = None) -> list[ClientCert]:
        query = sa.select(certs.c.doc).where(certs.c.tenant == tenant)
        if user is not None:
            query = query.where(certs.c.user == user)
        with self._tx() as conn:
            found = [_load(ClientCert, doc) for doc in conn.execute(query).scalars()]
        return sorted(found, key=lambda c: (c.created, c.serial))

    def revoke_cert(self, *, tenant: str, serial: str, when: int) -> ClientCert:
        where = (certs.c.serial == serial, certs.c.tenant == tenant)
        with self._tx() as conn:
            doc = conn.execute(sa.select(certs.c.doc).where(*where)).scalar()
            if doc is None:
                raise NotFound(f"no such certificate: {serial}")
            cert = _load(ClientCert, doc)
            if not cert.revoked:
                cert = replace(cert, revoked=when)
                conn.execute(certs.update().where(*where).values(doc=_dump(cert)))
        return cert

    # registry namespaces -------------------------------------------------------------------

    def add_namespace(self, namespace: Namespace) -> None:
        try:
            with self._tx() as conn:
                conn.execute(
                    namespaces.insert().values(
                        name=namespace.name,
                        tenant=namespace.tenant,
                        created=namespace.created,
                        created_by=namespace.created_by,
                        retired=namespace.retired,
                    )
                )
        except IntegrityError as exc:
            raise AlreadyExists(f"namespace {namespace.name} is already taken") from exc

    def list_namespaces(self, *, tenant: str) -> list[Namespace]:
        query = sa.select(namespaces).order_by(namespaces.c.name)
        if tenant != ALL_TENANTS:
            query = query.where(namespaces.c.tenant == tenant, namespaces.c.retired == 0)
        with self._tx() as conn:
            rows = conn.execute(query).all()
        return [
            Namespace(
                name=r.name,
                tenant=r.tenant,
                created=int(r.created),
                created_by=r.created_by,
                retired=int(r.retired),
            )
            for r in rows
        ]

    def namespace_owner(self, name: str) -> str | None:
        query = sa.select(namespaces.c.tenant).where(
            namespaces.c.name == name, namespaces.c.retired == 0
        )
        with self._tx() as conn:
            owner = conn.execute(query).scalar()
        return None if owner is None else str(owner)

    # hosts -----------------------------------------------------------------------------

    def put_host(self, host: Host) -> None:
        with self._tx() as conn:
            conn.execute(hosts.delete().where(hosts.c.id == host.id))
            conn.execute(hosts.insert().values(id=host.id, doc=_dump(host)))

    def list_hosts(self) -> list[Host]:
        with self._tx() as conn:
            return [_load(Host, r.doc) for r in conn.execute(sa.select(hosts))]

    # containers ------------------------------------------------------------------------

    def add_container(self, container: Container) -> None:
        try:
            row = {
                "id": container.id,
                "tenant": container.tenant,
                "name": container.name,
                "host": container.host,
                "status": container.state.status.value,
                "memory": container.memory,
                "doc": _dump(container),
            }
            with self._tx() as conn:
                conn.execute(_ADD_CONTAINER, row)
        except IntegrityError as exc:
            raise AlreadyExists(
                f'Conflict. The container name "/{container.name}" is already in use.'
            ) from exc

    def get_container(self, *, tenant: str, ref: str) -> Container:
        name = ref[1:] if ref.startswith("/") else ref
        scope = sa.true() if tenant == ALL_TENANTS else containers.c.tenant == tenant
        with self._tx() as conn:
            row = conn.execute(
                sa.select(containers.c.doc).where(
                    scope, sa.or_(containers.c.id == ref, containers.c.name == name)
                )
            ).first()
            if row is None and ref and _is_hex(ref):
                rows = conn.execute(
                    sa.select(containers.c.doc)
                    .where(scope, containers.c.id.startswith(ref, autoescape=True))
                    .limit(2)
                ).all()
                if len(rows) > 1:
                    raise InvalidArgument(f"multiple containers found with provided prefix: {ref}")
                row = rows[0] if rows else None
        if row is None:
            raise NotFound(f"No such container: {ref}")
        return _load(Container, row.doc)

    def list_containers(self, *, tenant: str, host: str | None = None) -> list[Container]:
        query = sa.select(containers.c.doc)
        if tenant != ALL_TENANTS:
            query = query.where(containers.c.tenant == tenant)
        if host is not None:
            query = query.where(containers.c.host == host)
        with self._tx() as conn:
            return [_load(Container, r.doc) for r in conn.execute(query)]

    def put_container(self, container: Container) -> None:
        values = {
            "k_id": container.id,
            "k_tenant": container.tenant,
            "v_name": container.name,
            "v_host": container.host,
            "v_status": container.state.status.value,
            "v_memory": container.memory,
            "v_doc": _dump(container),
        }
        with self._tx() as conn:
            result = conn.execute(_PUT_CONTAINER, values)
        if result.rowcount == 0:
            raise NotFound(f"No such container: {container.id}")

    def rename_container(self, *, tenant: str, container_id: str, name: str) -> None:
        with self._tx() as conn:
            row = conn.execute(
                sa.select(containers.c.doc).where(
                    containers.c.id == container_id, containers.c.tenant == tenant
                )
            ).first()
            if row is None:
                raise NotFound(f"No such container: {container_id}")
            record = _load(Container, row.doc)
            record.name = name
            try:
                conn.execute(
                    containers.update()
                    .where(containers.c.id == container_id)
                    .values(name=name, doc=_dump(record))
                )
            except IntegrityError as exc:
                raise AlreadyExists(
                    f'Conflict. The container name "/{name}" is already in use.'
                ) from exc

    def container_totals(self, *, tenant: str) -> tuple[int, int]:
        with self._tx() as conn:
            memory, count = conn.execute(_CONTAINER_TOTALS, {"tenant": tenant}).one()
        return int(memory or 0), int(count)

    def reservations(self) -> dict[str, tuple[int, int]]:
        with self._tx() as conn:
            return {row[0]: (int(row[1] or 0), int(row[2])) for row in conn.execute(_RESERVATIONS)}

    def delete_container(self, *, tenant: str, container_id: str) -> None:
        with self._tx() as conn:
            deleted = conn.execute(_DELETE_CONTAINER, {"container": container_id, "tenant": tenant})
            if deleted.rowcount:
                conn.execute(_RELEASE_ADDRESSES, {"owner": container_id})
                conn.execute(_DELETE_EXECS, {"container": container_id})
                conn.execute(_UNBIND_PUBLIC_IPS, {"b_tenant": tenant, "b_container": container_id})

    # execs -----------------------------------------------------------------------------

    def add_exec(self, instance: ExecInstance) -> None:
        with self._tx() as conn:
            try:
                conn.execute(
                    execs.insert().values(
                        id=instance.id,
                        tenant=instance.tenant,
                        container_id=instance.container_id,
                        created=instance.created,
                        command=instance.command,
                    )
                )
            except IntegrityError as exc:
                raise AlreadyExists(f"exec {instance.id} already exists") from exc

    def get_exec(self, *, tenant: str, exec_id: str) -> ExecInstance:
        query = sa.select(execs).where(execs.c.id == exec_id, execs.c.tenant == tenant)
        with self._tx() as conn:
            row = conn.execute(query).first()
        if row is None:
            raise NotFound(f"No such exec instance: {exec_id}")
        return ExecInstance(
            id=row.id,
            tenant=row.tenant,
            container_id=row.container_id,
            created=int(row.created),
            command=row.command,
        )

    def delete_exec(self, *, tenant: str, exec_id: str) -> None:
        with self._tx() as conn:
            conn.execute(execs.delete().where(execs.c.id == exec_id, execs.c.tenant == tenant))

    # images ----------------------------------------------------------------------------

    def put_image(self, image: Image) -> None:
        with self._tx() as conn:
            conn.execute(
                images.delete().where(images.c.tenant == image.tenant, images.c.id == image.id)
            )
            conn.execute(
                image_layers.delete().where(
                    image_layers.c.tenant == image.tenant, image_layers.c.image_id == image.id
                )
            )
            # A tag names one image: moving it here takes it from any other image.
            for tag in image.repo_tags:
                previous = conn.execute(
                    sa.select(image_tags.c.image_id).where(
                        image_tags.c.tenant == image.tenant, image_tags.c.tag == tag
                    )
                ).scalar()
                if previous is not None and previous != image.id:
                    _drop_tag(conn, tenant=image.tenant, image_id=previous, tag=tag)
            conn.execute(
                image_tags.delete().where(
                    image_tags.c.tenant == image.tenant, image_tags.c.image_id == image.id
                )
            )
            conn.execute(images.insert().values(tenant=image.tenant, id=image.id, doc=_dump(image)))
            if image.repo_tags:
                conn.execute(
                    image_tags.insert(),
                    [
                        {"tenant": image.tenant, "tag": t, "image_id": image.id}
                        for t in image.repo_tags
                    ],
                )
            if image.layers:
                conn.execute(
                    image_layers.insert(),
                    [
                        {"tenant": image.tenant, "image_id": image.id, "diff_id": d}
                        for d in dict.fromkeys(image.layers)
                    ],
                )

    def get_image(self, *, tenant: str, image_id: str) -> Image:
        with self._tx() as conn:
            row = conn.execute(
                sa.select(images.c.doc).where(images.c.tenant == tenant, images.c.id == image_id)
            ).first()
        if row is None:
            raise NotFound(f"No such image: {image_id}")
        return _load(Image, row.doc)

    def find_images(self, *, tenant: str, id_prefix: str) -> list[Image]:
        with self._tx() as conn:
            rows = conn.execute(
                sa.select(images.c.doc).where(
                    images.c.tenant == tenant, images.c.id.startswith(id_prefix, autoescape=True)
                )
            ).all()
        return [_load(Image, r.doc) for r in rows]

    def image_by_tag(self, *, tenant: str, tag: str) -> Image:
        with self._tx() as conn:
            row = conn.execute(
                sa.select(images.c.doc)
                .join(
                    image_tags,
                    sa.and_(
                        image_tags.c.tenant == images.c.tenant, image_tags.c.image_id == images.c.id
                    ),
                )
                .where(image_tags.c.tenant == tenant, image_tags.c.tag == tag)
            ).first()
        if row is None:
            raise NotFound(f"No such image: {tag}")
        return _load(Image, row.doc)

    def list_images(self, *, tenant: str) -> list[Image]:
        with self._tx() as conn:
            rows = conn.execute(sa.select(images.c.doc).where(images.c.tenant == tenant)).all()
        return [_load(Image, r.doc) for r in rows]

    def delete_image(self, *, tenant: str, image_id: str) -> None:
        with self._tx() as conn:
            for table in (image_tags, image_layers):
                conn.execute(
                    table.delete().where(table.c.tenant == tenant, table.c.image_id == image_id)
                )
            conn.execute(images.delete().where(images.c.tenant == tenant, images.c.id == image_id))

    def layer_referenced(self, diff_id: str) -> bool:
        with self._tx() as conn:
            row = conn.execute(
                sa.select(image_layers.c.diff_id).where(image_layers.c.diff_id == diff_id).limit(1)
            ).first()
        return row is not None

    # volumes ---------------------------------------------------------------------------

    def add_volume(self, volume: Volume) -> None:
        try:
            with self._tx() as conn:
                conn.execute(
                    volumes.insert().values(
                        tenant=volume.tenant, name=volume.name, doc=_dump(volume)
                    )
                )
        except IntegrityError as exc:
            raise AlreadyExists(f"volume {volume.name} already exists") from exc

    def get_volume(self, *, tenant: str, name: str) -> Volume:
        with self._tx() as conn:
            row = conn.execute(
                sa.select(volumes.c.doc).where(volumes.c.tenant == tenant, volumes.c.name == name)
            ).first()
        if row is None:
            raise NotFound(f"get {name}: no such volume")
        return _load(Volume, row.doc)

    def list_volumes(self, *, tenant: str) -> list[Volume]:
        query = sa.select(volumes.c.doc)
        if tenant != ALL_TENANTS:
            query = query.where(volumes.c.tenant == tenant)
        with self._tx() as conn:
            return [_load(Volume, r.doc) for r in conn.execute(query)]

    def delete_volume(self, *, tenant: str, name: str) -> None:
        with self._tx() as conn:
            conn.execute(volumes.delete().where(volumes.c.tenant == tenant, volumes.c.name == name))

    # networks --------------------------------------------------------------------------

    def add_network(self, network: Network) -> None:
        try:
            with self._tx() as conn:
                conn.execute(
                    networks.insert().values(
                        id=network.id,
                        tenant=network.tenant,
                        name=network.name,
                        doc=_dump(network),
                    )
                )
        except IntegrityError as exc:
            raise AlreadyExists(f"network with name {network.name} already exists") from exc

    def get_network(self, *, tenant: str, ref: str) -> Network:
        return _load(Network, self._doc_by_ref(networks, tenant=tenant, ref=ref, what="network"))

    def list_networks(self, *, tenant: str) -> list[Network]:
        query = sa.select(networks.c.doc).order_by(networks.c.name)
        if tenant != ALL_TENANTS:
            query = query.where(networks.c.tenant == tenant)
        with self._tx() as conn:
            return [_load(Network, r.doc) for r in conn.execute(query)]

    def delete_network(self, *, tenant: str, network_id: str) -> None:
        mine = sa.and_(networks.c.tenant == tenant, networks.c.id == network_id)
        with self._tx() as conn:
            if conn.execute(sa.select(networks.c.id).where(mine)).first() is None:
                raise NotFound(f"network {network_id} not found")
            users = conn.execute(
                sa.select(addresses.c.owner).where(addresses.c.network == network_id).limit(1)
            ).first()
            if users is not None:
                raise Conflict(f"network {network_id} has active endpoints")
            conn.execute(networks.delete().where(mine))

    def network_users(self, *, network_id: str) -> dict[str, str]:
        with self._tx() as conn:
            rows = conn.execute(
                sa.select(addresses.c.owner, addresses.c.address).where(
                    addresses.c.network == network_id
                )
            ).all()
        return {r.owner: r.address for r in rows}

    def allocate_address(self, *, network: Network, owner: str, address: str = "") -> str:
        subnet = _ip_network(network.subnet)
        pool = _ip_network(network.ip_range) if network.ip_range else subnet
        gateway = ipaddress.ip_address(network.gateway)
        # One transaction (the store's writes are serialised): read what is taken, insert.
        with self._tx() as conn:
            if not conn.execute(_NETWORK_EXISTS, {"network": network.id}).first():
                raise NotFound(f"network {network.name} not found")
            # Held addresses as text, each written below by str() of an address object.
            taken = {row[0] for row in conn.execute(_NETWORK_ADDRESSES, {"network": network.id})}
            if address:
                wanted = ipaddress.ip_address(address)
                if str(wanted) in taken or wanted == gateway:
                    raise Conflict(f"Address already in use: {address}")
                chosen = str(wanted)
            else:
                # The lowest free host address of the pool within the subnet, in numbers:
                # an address object per held address cost more than the rest of the call.
                used = {_address_number(a) for a in taken}
                used.update(
                    int(a) for a in (subnet.network_address, subnet.broadcast_address, gateway)
                )
                low = max(int(pool.network_address), int(subnet.network_address))
                high = min(int(pool.broadcast_address), int(subnet.broadcast_address))
                found = next((n for n in range(low, high + 1) if n not in used), None)
                if found is None:
                    raise Unavailable(f"no available IPv4 addresses on network {network.name}")
                chosen = str(type(subnet.network_address)(found))
            conn.execute(_ADD_ADDRESS, {"network": network.id, "address": chosen, "owner": owner})
        return chosen

    def release_address(self, *, network_id: str, owner: str) -> None:
        with self._tx() as conn:
            conn.execute(
                addresses.delete().where(
                    addresses.c.network == network_id, addresses.c.owner == owner
                )
            )

    def release_addresses(self, *, owner: str) -> None:
        with self._tx() as conn:
            conn.execute(_RELEASE_ADDRESSES, {"owner": owner})

    # security groups -------------------------------------------------------------------

    def add_security_group(self, group: SecurityGroup) -> None:
        try:
            with self._tx() as conn:
                self._groups.pop(group.tenant, None)
                conn.execute(
                    security_groups.insert().values(
                        id=group.id, tenant=group.tenant, name=group.name, doc=_dump(group)
                    )
                )
        except IntegrityError as exc:
            raise AlreadyExists(f"security group {group.name} already exists") from exc

    def get_security_group(self, *, tenant: str, ref: str) -> SecurityGroup:
        groups = self._groups.get(tenant)
        if groups is None:
            with self._tx() as conn:
                groups = _Groups(
                    _load(SecurityGroup, doc)
                    for doc in conn.execute(_TENANT_GROUPS, {"tenant": tenant}).scalars()
                )
                self._groups[tenant] = groups
        found = groups.find(ref)
        if found is None:
            raise NotFound(f"security group {ref} not found")
        return replace(found, labels=dict(found.labels))

    def list_security_groups(self, *, tenant: str) -> list[SecurityGroup]:
        query = (
            sa.select(security_groups.c.doc)
            .where(security_groups.c.tenant == tenant)
            .order_by(security_groups.c.name)
        )
        with self._tx() as conn:
            return [_load(SecurityGroup, r.doc) for r in conn.execute(query)]

    def put_security_group(self, group: SecurityGroup) -> None:
        mine = sa.and_(security_groups.c.tenant == group.tenant, security_groups.c.id == group.id)
        try:
            with self._tx() as conn:
                self._groups.pop(group.tenant, None)
                result = conn.execute(
                    security_groups.update().where(mine).values(name=group.name, doc=_dump(group))
                )
        except IntegrityError as exc:
            raise AlreadyExists(f"security group {group.name} already exists") from exc
        if result.rowcount == 0:
            raise NotFound(f"security group {group.id} not found")

    def delete_security_group(self, *, tenant: str, group_id: str) -> None:
        mine = sa.and_(security_groups.c.tenant == tenant, security_groups.c.id == group_id)
        with self._tx() as conn:
            if conn.execute(sa.select(security_groups.c.id).where(mine)).first() is None:
                raise NotFound(f"security group {group_id} not found")
            if _group_users(conn, tenant=tenant, group_id=group_id):
                raise Conflict(f"security group {group_id} has containers in it")
            if _group_referrers(conn, tenant=tenant, group_id=group_id):
                raise Conflict(f"security group {group_id} is the source of another group's rule")
            self._groups.pop(tenant, None)
            conn.execute(security_groups.delete().where(mine))

    def security_group_users(self, *, tenant: str, group_id: str) -> list[str]:
        with self._tx() as conn:
            return _group_users(conn, tenant=tenant, group_id=group_id)

    # public IPs ------------------------------------------------------------------------

    def add_ip_pool(self, pool: IpPool) -> None:
        network = ipaddress.IPv4Network(pool.cidr)
        first, last = int(network.network_address), int(network.broadcast_address)
        with self._tx() as conn:
            row = conn.execute(
                sa.select(ip_pools.c.cidr).where(ip_pools.c.first <= last, ip_pools.c.last >= first)
            ).first()
            if row is not None:
                if row.cidr == str(network):
                    raise AlreadyExists(f"public IP pool {network} already exists")
                raise Conflict(f"public IP pool {network} overlaps pool {row.cidr}")
            conn.execute(
                ip_pools.insert().values(
                    cidr=str(network), first=first, last=last, created=pool.created
                )
            )

    def list_ip_pools(self) -> list[IpPool]:
        query = sa.select(ip_pools.c.cidr, ip_pools.c.created).order_by(ip_pools.c.first)
        with self._tx() as conn:
            return [IpPool(cidr=r.cidr, created=int(r.created)) for r in conn.execute(query)]

    def delete_ip_pool(self, cidr: str) -> None:
        with self._tx() as conn:
            pool = conn.execute(sa.select(ip_pools).where(ip_pools.c.cidr == cidr)).first()
            if pool is None:
                raise NotFound(f"no such public IP pool: {cidr}")
            held = conn.execute(
                sa.select(sa.func.count()).where(public_ips.c.number.between(pool.first, pool.last))
            ).scalar()
            if held:
                raise Conflict(
                    f"public IP pool {cidr} has {held} address{'es' if held != 1 else ''} "
                    "held by tenants: they must be released first"
                )
            conn.execute(ip_pools.delete().where(ip_pools.c.cidr == cidr))

    def allocate_public_ip(self, *, tenant: str, created: int) -> PublicIp:
        for _ in range(16):
            try:
                return self._allocate_public_ip_once(tenant=tenant, created=created)
            except IntegrityError:
                continue  # another writer took that address meanwhile: look again
        raise Unavailable("could not allocate a public IP: too much contention")

    def _allocate_public_ip_once(self, *, tenant: str, created: int) -> PublicIp:
        with self._tx() as conn:
            for pool in conn.execute(sa.select(ip_pools).order_by(ip_pools.c.first)).all():
                number = _lowest_free(conn, int(pool.first), int(pool.last))
                if number is None:
                    continue
                record = PublicIp(
                    address=str(ipaddress.IPv4Address(number)), tenant=tenant, created=created
                )
                conn.execute(
                    public_ips.insert().values(
                        address=record.address, number=number, tenant=tenant, created=created
                    )
                )
                return record
        raise Unavailable("no public IP is free: every pool is used up")

    def list_public_ips(self, *, tenant: str) -> list[PublicIp]:
        query = sa.select(public_ips).order_by(public_ips.c.number)
        if tenant != ALL_TENANTS:
            query = query.where(public_ips.c.tenant == tenant)
        with self._tx() as conn:
            return [_public_ip(r) for r in conn.execute(query)]

    def get_public_ip(self, *, tenant: str, address: str) -> PublicIp:
        with self._tx() as conn:
            return _held(conn, tenant, address)

    def public_ip_of(self, *, tenant: str, container_id: str) -> str:
        with self._tx() as conn:
            address = conn.execute(
                _PUBLIC_IP_OF, {"tenant": tenant, "container": container_id}
            ).scalar()
        return str(address) if address else ""

    def bind_public_ip(self, *, tenant: str, address: str, container_id: str) -> PublicIp:
        with self._tx() as conn:
            before = _held(conn, tenant, address)
            exists = conn.execute(
                sa.select(containers.c.id).where(
                    containers.c.id == container_id, containers.c.tenant == tenant
                )
            ).first()
            if exists is None:
                raise NotFound(f"No such container: {container_id}")
            other = conn.execute(
                sa.select(public_ips.c.address).where(
                    public_ips.c.container == container_id, public_ips.c.address != address
                )
            ).scalar()
            if other:
                raise Conflict(f"container {container_id} already has public IP {other}")
            conn.execute(
                public_ips.update()
                .where(public_ips.c.address == address)
                .values(container=container_id)
            )
        return before

    def unbind_public_ip(self, *, tenant: str, address: str) -> PublicIp:
        with self._tx() as conn:
            before = _held(conn, tenant, address)
            conn.execute(
                public_ips.update().where(public_ips.c.address == address).values(container="")
            )
        return before

    def release_public_ip(self, *, tenant: str, address: str) -> PublicIp:
        with self._tx() as conn:
            before = _held(conn, tenant, address)
            conn.execute(public_ips.delete().where(public_ips.c.address == address))
        return before

    # events ----------------------------------------------------------------------------

    def append_events(self, batch: Sequence[Event]) -> None:
        if not batch:
            return
        with self._tx() as conn:
            conn.execute(
                _ADD_EVENTS,
                [
                    {
                        "seq": e.seq,
                        "tenant": e.tenant,
                        "time": e.time,
                        "type": e.type,
                        "action": e.action,
                        "actor": e.actor_id,
                        "attributes": json.dumps(e.attributes, separators=(",", ":")),
                    }
                    for e in batch
                ],
            )

    def list_events(
        self, *, tenant: str, since: int = 0, until: int = 0, after: int = 0, limit: int = 1000
    ) -> list[Event]:
        query = sa.select(events).where(events.c.seq > after)
        if tenant != ALL_TENANTS:
            query = query.where(events.c.tenant == tenant)
        if since:
            query = query.where(events.c.time >= since)
        if until:
            query = query.where(events.c.time <= until)
        with self._tx() as conn:
            rows = conn.execute(query.order_by(events.c.seq).limit(limit)).all()
        return [
            Event(
                seq=int(r.seq),
                tenant=r.tenant,
                time=int(r.time),
                type=r.type,
                action=r.action,
                actor_id=r.actor,
                attributes=json.loads(r.attributes),
            )
            for r in rows
        ]

    def last_event_seq(self) -> int:
        with self._tx() as conn:
            return int(conn.execute(sa.select(sa.func.max(events.c.seq))).scalar() or 0)

    def prune_events(self, *, tenant: str, keep: int, before: int) -> int:
        mine = events.c.tenant == tenant
        with self._tx() as conn:
            # The seq of the newest event beyond ``keep``: it and everything older go.
            cut = conn.execute(
                sa.select(events.c.seq)
                .where(mine)
                .order_by(events.c.seq.desc())
                .offset(max(keep, 0))
                .limit(1)
            ).scalar()
            deleted = 0
            if cut is not None:
                deleted += conn.execute(events.delete().where(mine, events.c.seq <= cut)).rowcount
            deleted += conn.execute(events.delete().where(mine, events.c.time < before)).rowcount
            return int(deleted)

    # audit log ----------------------------------------------------------------------------

    def append_audit(self, records: Sequence[AuditRecord]) -> None:
        if not records:
            return
        with self._tx() as conn:
            conn.execute(
                _ADD_AUDIT,
                [
                    {
                        "tenant": r.tenant,
                        "time": r.time,
                        "user_id": r.user_id,
                        "user_name": r.user,
                        "token": r.token,
                        "source": r.source,
                        "action": r.action,
                        "method": r.method,
                        "path": r.path,
                        "target": r.target,
                        "created": r.created,
                        "status": r.status,
                        "error": r.error,
                        "request_id": r.request_id,
                        "cert": r.cert,
                    }
                    for r in records
                ],
            )

    def list_audit(self, *, tenant: str, query: AuditQuery) -> list[AuditRecord]:
        c = audit.c
        select = sa.select(audit).where(c.tenant == tenant)
        if query.since:
            select = select.where(c.time >= query.since)
        if query.until:
            select = select.where(c.time <= query.until)
        if query.before:
            select = select.where(c.seq < query.before)
        if query.user:
            select = select.where(sa.or_(c.user_name == query.user, c.user_id == query.user))
        if query.action:
            select = select.where(_starts(c.action, query.action))
        if query.target:
            select = select.where(
                sa.or_(_starts(c.target, query.target), _starts(c.created, query.target))
            )
        result = query.result.lower()
        if result == "ok":
            select = select.where(c.status > 0, c.status < 400)
        elif result == "error":
            select = select.where(sa.or_(c.status <= 0, c.status >= 400))
        elif result:
            select = select.where(c.status == int(result))
        with self._reader() as conn:
            rows = conn.execute(select.order_by(c.seq.desc()).limit(query.limit)).all()
        return [
            AuditRecord(
                seq=int(r.seq),
                tenant=r.tenant,
                time=int(r.time),
                user_id=r.user_id,
                user=r.user_name,
                token=r.token,
                source=r.source,
                action=r.action,
                method=r.method,
                path=r.path,
                target=r.target,
                created=r.created,
                status=int(r.status),
                error=r.error,
                request_id=r.request_id,
                cert=r.cert,
            )
            for r in rows
        ]

    def prune_audit(self, *, tenant: str, keep: int, before: int) -> int:
        mine = audit.c.tenant == tenant
        with self._tx() as conn:
            cut = conn.execute(
                sa.select(audit.c.seq)
                .where(mine)
                .order_by(audit.c.seq.desc())
                .offset(max(keep, 0))
                .limit(1)
            ).scalar()
            deleted = 0
            if cut is not None:
                deleted += conn.execute(audit.delete().where(mine, audit.c.seq <= cut)).rowcount
            deleted += conn.execute(audit.delete().where(mine, audit.c.time < before)).rowcount
            return int(deleted)

    def audit_tenants(self) -> list[str]:
        # DISTINCT would read every record's index entry; this skips from one tenant to the
        # next through the (tenant, time) index: one lookup per tenant.
        with self._tx() as conn:
            rows = conn.execute(_AUDIT_TENANTS).all()
        return sorted(r.tenant for r in rows if r.tenant is not None)


_AUDIT_TENANTS = sa.text(
    "WITH RECURSIVE t(tenant) AS ("
    " SELECT MIN(tenant) FROM audit"
    " UNION ALL"
    " SELECT (SELECT MIN(tenant) FROM audit WHERE tenant > t.tenant) FROM t"
    " WHERE t.tenant IS NOT NULL"
    ") SELECT tenant FROM t"
)


def _starts(column: Any, prefix: str) -> Any:
    """``column`` begins with ``prefix``, exactly (LIKE would treat ``_`` and ``%`` as
    wildcards and ignore case on SQLite)."""
    return sa.func.substr(column, 1, len(prefix)) == prefix


def _group_users(conn: sa.Connection, *, tenant: str, group_id: str) -> list[str]:
    """Ids of the tenant's containers in the group. Membership lives in the container
    records (a group is rarely removed or changed, a container often written), so this
    reads the records whose text holds the id (ids are 64 random hex digits: few others do)
    and keeps those whose list names it."""
    rows = conn.execute(
        sa.select(containers.c.id, containers.c.doc).where(
            containers.c.tenant == tenant, containers.c.doc.contains(group_id, autoescape=True)
        )
    )
    return sorted(r.id for r in rows if group_id in json.loads(r.doc).get("security_groups", ()))


def _group_referrers(conn: sa.Connection, *, tenant: str, group_id: str) -> list[str]:
    """Ids of the tenant's other groups with a rule whose source is the group."""
    rows = conn.execute(
        sa.select(security_groups.c.id, security_groups.c.doc).where(
            security_groups.c.tenant == tenant,
            security_groups.c.id != group_id,
            security_groups.c.doc.contains(group_id, autoescape=True),
        )
    )
    return sorted(
        r.id
        for r in rows
        if any(rule.get("source_group") == group_id for rule in json.loads(r.doc)["rules"])
    )


def _drop_tag(conn: sa.Connection, *, tenant: str, image_id: str, tag: str) -> None:
    row = conn.execute(
        sa.select(images.c.doc).where(images.c.tenant == tenant, images.c.id == image_id)
    ).first()
    conn.execute(image_tags.delete().where(image_tags.c.tenant == tenant, image_tags.c.tag == tag))
    if row is not None:
        record = _load(Image, row.doc)
        record.repo_tags = tuple(t for t in record.repo_tags if t != tag)
        conn.execute(
            images.update()
            .where(images.c.tenant == tenant, images.c.id == image_id)
            .values(doc=_dump(record))
        )


def _public_ip(row: Any) -> PublicIp:
    return PublicIp(
        address=row.address, tenant=row.tenant, created=int(row.created), container=row.container
    )


def _held(conn: sa.Connection, tenant: str, address: str) -> PublicIp:
    """The tenant's public IP ``address``; NotFound for another tenant's, as for none."""
    row = conn.execute(
        sa.select(public_ips).where(public_ips.c.address == address, public_ips.c.tenant == tenant)
    ).first()
    if row is None:
        raise NotFound(f"no such public IP: {address}")
    return _public_ip(row)


def _lowest_free(conn: sa.Connection, first: int, last: int) -> int | None:
    """The lowest address number of a range ``first..last`` that nobody holds (skipping
    the network and broadcast addresses of ranges larger than a /31), else None. Reads the
    held numbers in order and stops at the first gap."""
    low, high = (first, last) if last - first < 2 else (first + 1, last - 1)
    held = conn.execute(
        sa.select(public_ips.c.number)
        .where(public_ips.c.number.between(low, high))
        .order_by(public_ips.c.number)
    )
    candidate = low
    try:
        for number in held.scalars():
            if number != candidate:
                break
            candidate += 1
    finally:
        held.close()
    return candidate if candidate <= high else None


def _tenant(row: Any) -> Tenant:
    return Tenant(id=row.id, name=row.name, uid_base=int(row.uid_base), uid_size=int(row.uid_size))


@functools.lru_cache(maxsize=256)
def _ip_network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(text)


def _address_number(text: str) -> int:
    """The number of an address as ``str()`` of an address object writes it."""
    family = socket.AF_INET6 if ":" in text else socket.AF_INET
    return int.from_bytes(socket.inet_pton(family, text), "big")


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def _record_uid_ranges(engine: Engine) -> None:
    """Stores made before ``uid_ranges`` existed: note their tenants' ranges as taken."""
    taken = sa.select(uid_ranges.c.uid_base)
    missing = sa.select(tenants.c.uid_base, tenants.c.id).where(tenants.c.uid_base.not_in(taken))
    with engine.begin() as conn:
        conn.execute(uid_ranges.insert().from_select(["uid_base", "tenant"], missing))


def _drop_system_networks(engine: Engine) -> None:
    """Stores made before tenant networks (ADR 0016) held one system-wide ``bridge``
    (tenant ""): every tenant now has its own, so the old row and its addresses go."""
    system = sa.select(networks.c.id).where(networks.c.tenant == _SYSTEM)
    with engine.begin() as conn:
        conn.execute(addresses.delete().where(addresses.c.network.in_(system)))
        conn.execute(networks.delete().where(networks.c.tenant == _SYSTEM))


def _add_missing_columns(engine: Engine) -> None:
    """Bring tables made by an older Dockyard up to date (columns are only ever added,
    each with a server default). Stands in for Alembic until the first release; see ADR 0004.
    """
    inspector = sa.inspect(engine)
    with engine.begin() as conn:
        for table in metadata.sorted_tables:
            present = {c["name"] for c in inspector.get_columns(table.name)}
            for column in table.columns:
                if column.name in present:
                    continue
                default = column.server_default
                if not isinstance(default, sa.DefaultClause):
                    raise Internal(f"column {table.name}.{column.name} needs a server default")
                kind = column.type.compile(engine.dialect)
                conn.execute(
                    sa.text(
                        f'ALTER TABLE {table.name} ADD COLUMN "{column.name}" {kind} '
                        f"NOT NULL DEFAULT '{default.arg}'"
                    )
                )
