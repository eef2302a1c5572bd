"""Tenants, users and tokens: creating them, and telling who a caller is.

Every API call but ``/_ping`` authenticates (see ``dockyard.api.auth``); this service
answers "whose token is this" from the store. A verified token is remembered for a couple
of seconds so that a burst of calls (a ``docker run`` makes five) costs one lookup;
revoking a token here forgets it at once, and other controllers within that time.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from dockyard.core.clock import now_ns
from dockyard.core.errors import (
    AlreadyExists,
    Conflict,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unauthenticated,
)
from dockyard.core.identity import (
    IssuedToken,
    Principal,
    Role,
    Token,
    User,
    issue_token,
    parse_token,
    scopes_for,
    token_matches,
    validate_scopes,
    validate_user_name,
)
from dockyard.core.ids import new_id
from dockyard.core.tenancy import Tenant
from dockyard.store.base import Store

__all__ = ["IdentityService", "NewTenant", "validate_tenant_name"]

_TENANT_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
_CACHE_SECONDS = 2.0


def validate_tenant_name(name: str) -> str:
    if not _TENANT_NAME.match(name):
        raise InvalidArgument(
            f"invalid tenant name {name!r}: 2 to 63 of [a-z0-9-], starting with a letter or digit"
        )
    return name


@dataclass(frozen=True, slots=True)
class NewTenant:
    tenant: Tenant
    user: User
    token: IssuedToken


class IdentityService:
    def __init__(self, store: Store, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._store = store
        self._clock = clock
        self._verified: dict[str, tuple[float, Principal]] = {}
        self._forget_hooks: list[Callable[[Callable[[Principal], bool]], None]] = []

    # tenants -------------------------------------------------------------------------------

    def create_tenant(self, name: str, *, user: str = "admin") -> NewTenant:
        """A new tenant with one admin user and a token for it. AlreadyExists if taken."""
        validate_tenant_name(name)
        validate_user_name(user)
        try:
            self._store.tenant_by_name(name)
        except NotFound:
            pass
        else:
            raise AlreadyExists(f"tenant {name} already exists")
        tenant = self._store.ensure_tenant(name)
        admin = self.add_user(tenant.id, user, role=Role.ADMIN)
        token = self.issue(tenant.id, admin.id, description="created with the tenant")
        return NewTenant(tenant=tenant, user=admin, token=token)

    def bootstrap(self, name: str, *, user: str) -> NewTenant:
        """The first tenant of an embedded cloud (made if missing) and a fresh token for its
        admin user (made if missing): what ``dockyard up`` logs the local user in with."""
        validate_tenant_name(name)
        tenant = self._store.ensure_tenant(name)
        try:
            admin = self._store.get_user(tenant=tenant.id, ref=user)
        except NotFound:
            admin = self.add_user(tenant.id, user, role=Role.ADMIN)
        token = self.issue(tenant.id, admin.id, description="dockyard up")
        return NewTenant(tenant=tenant, user=admin, token=token)

    def tenant(self, name: str) -> Tenant:
        return self._store.tenant_by_name(name)

    def list_tenants(self) -> list[Tenant]:
        return self._store.list_tenants()

    def delete_tenant(self, name: str, *, owns: Callable[[Tenant], str]) -> None:
        """Remove a tenant that owns nothing (``owns`` names what it still owns, if any:
        Conflict then)."""
        tenant = self._store.tenant_by_name(name)
        left = owns(tenant)
        if left:
            raise Conflict(f"tenant {name} still has {left}; remove them first")
        self._store.delete_tenant(tenant.id)
        self._forget(lambda p: p.tenant.id == tenant.id)

    # users -------------------------------------------------------------------------------

    def add_user(self, tenant: str, name: str, *, role: Role = Role.MEMBER) -> User:
        user = User(
            id=new_id(), tenant=tenant, name=validate_user_name(name), role=role, created=now_ns()
        )
        self._store.add_user(user)
        return user

    def user(self, tenant: str, ref: str) -> User:
        return self._store.get_user(tenant=tenant, ref=ref)

    def list_users(self, tenant: str) -> list[User]:
        return self._store.list_users(tenant=tenant)

    def remove_user(self, tenant: str, ref: str) -> None:
        user = self._store.get_user(tenant=tenant, ref=ref)
        self._store.delete_user(tenant=tenant, user_id=user.id)
        self._forget(lambda p: p.user.id == user.id)

    # tokens ------------------------------------------------------------------------------

    def issue(
        self,
        tenant: str,
        user_ref: str,
        *,
        scopes: tuple[str, ...] | None = None,
        ttl: int = 0,
        description: str = "",
    ) -> IssuedToken:
        """A token for the user; ``scopes`` within what its role allows (default: all of
        them), ``ttl`` in seconds (0: no expiry)."""
        user = self._store.get_user(tenant=tenant, ref=user_ref)
        allowed = scopes_for(user.role)
        wanted = validate_scopes(scopes) if scopes is not None else allowed
        beyond = [s for s in wanted if s not in allowed]
        if beyond:
            raise PermissionDenied(f"a {user.role.value} cannot hold the scope {beyond[0]!r}")
        if ttl < 0:
            raise InvalidArgument("a token's lifetime cannot be negative")
        created = now_ns()
        issued = issue_token(
            tenant=tenant,
            user=user.id,
            scopes=wanted,
            created=created,
            expires=created + ttl * 1_000_000_000 if ttl else 0,
            description=description,
        )
        self._store.add_token(issued.token)
        return issued

    def list_tokens(self, tenant: str, user_ref: str | None = None) -> list[Token]:
        user = None if user_ref is None else self._store.get_user(tenant=tenant, ref=user_ref)
        return self._store.list_tokens(tenant=tenant, user=None if user is None else user.id)

    def revoke(self, tenant: str, token_id: str) -> Token:
        token = self._store.revoke_token(tenant=tenant, token_id=token_id, when=now_ns())
        self._forget(lambda p: p.token_id == token_id)
        return token

    # authentication ----------------------------------------------------------------------

    def authenticate(self, text: str) -> Principal:
        """The caller a token's text names; Unauthenticated (saying why, never whose) if it
        is malformed, unknown, revoked or expired, or its user or tenant is gone."""
        now = self._clock()
        cached = self._verified.get(text)
        if cached is not None and now - cached[0] < _CACHE_SECONDS:
            return cached[1]
        try:
            token_id, secret = parse_token(text)
            token = self._store.get_token(token_id)
        except (InvalidArgument, NotFound):
            raise Unauthenticated("invalid token") from None
        if not token_matches(token, secret):
            raise Unauthenticated("invalid token")
        if token.revoked:
            raise Unauthenticated("token revoked")
        if not token.usable(now_ns()):
            raise Unauthenticated("token expired")
        try:
            tenant = self._store.get_tenant(token.tenant)
            user = self._store.get_user(tenant=token.tenant, ref=token.user)
        except NotFound:
            raise Unauthenticated("invalid token") from None
        principal = Principal(tenant=tenant, user=user, scopes=token.scopes, token_id=token.id)
        if len(self._verified) > 4096:
            self._verified.clear()
        self._verified[text] = (now, principal)
        return principal

    def on_forget(self, hook: Callable[[Callable[[Principal], bool]], None]) -> None:
        """Have ``hook(matches)`` called whenever principals are forgotten (a token
        revoked, a user or tenant removed), so other caches of principals (client
        certificates') drop theirs at once too."""
        self._forget_hooks.append(hook)

    def _forget(self, matches: Callable[[Principal], bool]) -> None:
        for key, (_, principal) in list(self._verified.items()):
            if matches(principal):
                del self._verified[key]
        for hook in self._forget_hooks:
            hook(matches)
