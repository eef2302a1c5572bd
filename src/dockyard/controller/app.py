"""Controller: the services of one controller process, wired together.

Life cycle: construct, ``await start(agents)`` (register agents, reconcile with each, then
follow their events), serve requests, ``await close()``. Stateless over its store: a
controller killed at any point and started again converges from the store and the agents.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from dockyard.controller.audit import AuditLog
from dockyard.controller.certs import CertificateService
from dockyard.controller.commit import CommitService
from dockyard.controller.config import ControllerConfig
from dockyard.controller.containers import ContainerService
from dockyard.controller.events import EventLog
from dockyard.controller.execs import ExecService
from dockyard.controller.files import ContainerFileService
from dockyard.controller.hosts import HostRegistry
from dockyard.controller.identity import IdentityService
from dockyard.controller.images import ImageService
from dockyard.controller.namespaces import NamespaceService
from dockyard.controller.networks import NetworkService
from dockyard.controller.public_ips import PublicIpService
from dockyard.controller.quotas import QuotaService
from dockyard.controller.registry import NO_REALM, RegistryProcess
from dockyard.controller.registry_auth import RegistryAuthorizer, RegistryTokens
from dockyard.controller.registry_service import RegistryService
from dockyard.controller.security_groups import SecurityGroupService
from dockyard.controller.sync import AgentFollower
from dockyard.controller.volumes import VolumeService
from dockyard.core.errors import DockyardError, NotFound
from dockyard.core.reference import parse_reference
from dockyard.core.registry import REGISTRY_SERVICE
from dockyard.core.tenancy import DEFAULT_TENANT_NAME, Tenant
from dockyard.images.content import ContentStore
from dockyard.store.base import Store

__all__ = ["Controller"]

log = logging.getLogger("dockyard.controller")
_SYNC_TIMEOUT = 30.0


class Controller:
    def __init__(self, config: ControllerConfig, store: Store) -> None:
        layout = config.layout
        self.config = config
        self.store = store
        self.hosts = HostRegistry(store)
        self.events = EventLog(store, keep=config.events_keep, max_age=config.events_max_age)
        self.audit = AuditLog(store, keep=config.audit_keep, max_age=config.audit_max_age)
        content = ContentStore(layout.blobs_dir)
        self.quotas = QuotaService(
            store=store,
            plans=config.plans,
            default_plan=config.default_plan,
            content=content,
            hosts=self.hosts,
        )
        self.images = ImageService(
            store=store,
            content=content,
            spool_dir=layout.controller_dir / "tmp",
            events=self.events,
            quotas=self.quotas,
        )
        self.networks = NetworkService(
            store=store,
            events=self.events,
            bridge_subnet=config.bridge_subnet,
            default_subnet=config.default_subnet,
        )
        self.volumes = VolumeService(
            store=store,
            agent_for=self.hosts.client,
            default_host=self.hosts.default_host,
            events=self.events,
            quotas=self.quotas,
        )
        self.containers = ContainerService(
            store=store,
            config=config,
            hosts=self.hosts,
            images=self.images,
            networks=self.networks,
            volumes=self.volumes,
            events=self.events,
            quotas=self.quotas,
        )
        self.security_groups = SecurityGroupService(
            store=store,
            networks=self.networks,
            containers=self.containers,
            agent_for=self.hosts.client,
        )
        self.public_ips = PublicIpService(
            store=store,
            quotas=self.quotas,
            networks=self.networks,
            agent_for=self.hosts.client,
            container_lock=self.containers.lock,
        )
        self.execs = ExecService(
            store=store, hosts=self.hosts, containers=self.containers, events=self.events
        )
        self.files = ContainerFileService(containers=self.containers, hosts=self.hosts)
        self.commits = CommitService(
            containers=self.containers, images=self.images, hosts=self.hosts, events=self.events
        )
        self.identity = IdentityService(store)
        self.certs = CertificateService(
            store,
            tls_dir=layout.tls_dir,
            ca_name=f"Dockyard CA ({layout.instance})",
            max_ttl=config.client_cert_max_ttl,
        )
        self.identity.on_forget(self.certs.forget)
        self.namespaces = NamespaceService(
            store, reserved=config.reserved_namespaces, limit=config.namespace_limit
        )
        # The registry (ADR 0021): its process, the tokens it trusts, who gets what.
        self.registry_tokens = RegistryTokens(layout.registry_token_dir, service=REGISTRY_SERVICE)
        self.registry_auth = RegistryAuthorizer(self.namespaces)
        endpoint = config.registry_endpoint
        self.registry = RegistryProcess(
            layout,
            self.registry_tokens,
            realm=f"http://{endpoint}/token" if endpoint else NO_REALM,
            binary=config.registry_binary,
        )
        self.registry_service = RegistryService(
            images=self.images,
            namespaces=self.namespaces,
            tokens=self.registry_tokens,
            authorizer=self.registry_auth,
            socket_path=layout.registry_socket,
            storage_dir=layout.registry_storage,
            config_path=layout.registry_config,
            address=endpoint,
            binary=config.registry_binary,
            available=lambda: self.registry.available,
        )
        self._followers: list[AgentFollower] = []
        self._default_tenant: Tenant | None = None

    def default_tenant(self) -> Tenant:
        """The one tenant of the embedded cloud until tenancy arrives (tenants never change
        once made, so it is read once)."""
        if self._default_tenant is None:
            self._default_tenant = self.store.ensure_tenant(DEFAULT_TENANT_NAME)
        return self._default_tenant

    async def start(self, agents: list[str]) -> None:
        self.default_tenant()
        self.public_ips.ensure_pools(self.config.public_pools)
        self.events.start()
        self.audit.start()
        self.security_groups.start()
        for address in agents:
            for attempt in range(100):
                try:
                    handle = await self.hosts.register(address)
                    break
                except DockyardError:
                    if attempt == 99:
                        raise
                    await asyncio.sleep(0.1)
            follower = AgentFollower(handle, self.containers, self.execs)
            follower.start()
            self._followers.append(follower)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(*(f.synced.wait() for f in self._followers)), _SYNC_TIMEOUT
            )

    def owned_by(self, tenant: Tenant) -> str:
        """What the tenant still owns, in words ("" if nothing): a tenant is removed empty."""
        counts = (
            (len(self.store.list_containers(tenant=tenant.id)), "container"),
            (len(self.store.list_volumes(tenant=tenant.id)), "volume"),
            (len(self.store.list_images(tenant=tenant.id)), "image"),
            (self.public_ips.count(tenant.id), "public IP"),
        )
        return ", ".join(f"{n} {what}{'s' if n != 1 else ''}" for n, what in counts if n)

    async def seed_busybox(self) -> None:
        """Give the default tenant ``busybox:latest`` if it has none (the embedded cloud)."""
        tenant = self.default_tenant()
        try:
            self.images.resolve(tenant=tenant.id, ref=parse_reference("busybox").tagged())
        except NotFound:
            image = await self.images.seed_busybox(tenant=tenant.id, tags=("busybox:latest",))
            log.info("seeded busybox:latest as %s", image.id[:19])

    async def close(self) -> None:
        await self.registry.stop()
        for follower in self._followers:
            await follower.close()
        await self.containers.close()
        await self.security_groups.close()
        await self.events.close()
        await self.audit.close()
        await self.hosts.close()
        self.store.close()
