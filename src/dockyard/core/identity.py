"""Who calls: users of a tenant, their API tokens and roles.

A token is ``dyk_<id>_<secret>``: ``id`` (16 hex digits) names the stored record, the
secret (43 url-safe characters, 256 bits from the OS's CSPRNG) is only ever stored as its
SHA-256. A slow password hash buys nothing for secrets of that strength; a constant-time
comparison keeps the check from leaking. Tokens carry scopes: ``read`` (GET and HEAD),
``write`` (everything else a member may do) and ``admin`` (the tenant's users, tokens and
audit log); they expire and can be revoked.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from dockyard.core.errors import InvalidArgument
from dockyard.core.tenancy import Tenant

__all__ = [
    "ALL_SCOPES",
    "DEFAULT_SCOPES",
    "TOKEN_HEADER",
    "USER_NAME_PATTERN",
    "IssuedToken",
    "Principal",
    "Role",
    "Token",
    "User",
    "issue_token",
    "parse_token",
    "scopes_for",
    "token_matches",
    "validate_scopes",
    "validate_user_name",
]

TOKEN_HEADER = "X-Dockyard-Token"  # noqa: S105  (a header's name, not a secret)
ALL_SCOPES = ("read", "write", "admin")
DEFAULT_SCOPES = ("read", "write")
USER_NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
_TOKEN = re.compile(r"^dyk_(?P<id>[0-9a-f]{16})_(?P<secret>[A-Za-z0-9_-]{43})$")


class Role(enum.Enum):
    MEMBER = "member"
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class User:
    id: str
    tenant: str
    name: str
    role: Role
    created: int


@dataclass(frozen=True, slots=True)
class Token:
    """A stored token: ``secret_hash`` is the SHA-256 (hex) of its secret. ``expires`` and
    ``revoked`` are ns since the epoch, 0 meaning never / not revoked."""

    id: str
    tenant: str
    user: str
    secret_hash: str
    scopes: tuple[str, ...]
    created: int
    expires: int = 0
    revoked: int = 0
    description: str = ""

    def usable(self, now: int) -> bool:
        return not self.revoked and (not self.expires or now < self.expires)


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A new token: its record, and the one copy of its text the caller ever sees."""

    token: Token
    text: str


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller: a user of a tenant, acting with ``scopes``."""

    tenant: Tenant
    user: User
    scopes: tuple[str, ...]
    token_id: str = ""
    """The token behind the call: the one it sent, or the one its client certificate was
    obtained with (a certificate lives no longer than that token)."""
    cert_serial: str = ""  # the client certificate that authenticated the call, if one did

    def may(self, scope: str) -> bool:
        return scope in self.scopes


def issue_token(
    *,
    tenant: str,
    user: str,
    scopes: tuple[str, ...],
    created: int,
    expires: int = 0,
    description: str = "",
) -> IssuedToken:
    token_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    record = Token(
        id=token_id,
        tenant=tenant,
        user=user,
        secret_hash=_digest(secret),
        scopes=validate_scopes(scopes),
        created=created,
        expires=expires,
        description=description,
    )
    return IssuedToken(token=record, text=f"dyk_{token_id}_{secret}")


def parse_token(text: str) -> tuple[str, str]:
    """``(id, secret)`` of a token's text; InvalidArgument if it is not one."""
    match = _TOKEN.match(text.strip())
    if match is None:
        raise InvalidArgument("malformed token")
    return match["id"], match["secret"]


def token_matches(token: Token, secret: str) -> bool:
    return hmac.compare_digest(token.secret_hash, _digest(secret))


def scopes_for(role: Role) -> tuple[str, ...]:
    """The scopes a user of ``role`` may hold."""
    return ALL_SCOPES if role == Role.ADMIN else DEFAULT_SCOPES


def validate_scopes(scopes: tuple[str, ...]) -> tuple[str, ...]:
    unknown = [s for s in scopes if s not in ALL_SCOPES]
    if unknown or not scopes:
        raise InvalidArgument(
            f"invalid token scopes {list(scopes)}: choose from {', '.join(ALL_SCOPES)}"
        )
    return tuple(s for s in ALL_SCOPES if s in scopes)


def validate_user_name(name: str) -> str:
    if not USER_NAME_PATTERN.match(name):
        raise InvalidArgument(
            f"invalid user name {name!r}: 1 to 63 of [a-z0-9_.-], starting with a letter or digit"
        )
    return name


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
