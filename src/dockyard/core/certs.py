"""Client certificates: the record of every one Dockyard's certificate authority issued.

The TLS listener accepts only certificates its CA signed; the record says whose each one
is. A certificate is named by its serial (lowercase hex, at most 40 digits: RFC 5280's
20 octets) and pinned by the SHA-256 of its DER bytes. It carries the scopes of the
credential that obtained it, and the id of the token behind that credential: a
certificate lives no longer than that token (it expires no later and is refused once the
token is revoked or gone).

This module is data only; making and checking certificates is ``dockyard.controller.pki``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from dockyard.core.errors import InvalidArgument

__all__ = [
    "CLIENT_CERT_MAX_TTL",
    "ClientCert",
    "parse_serial",
]

CLIENT_CERT_MAX_TTL = 30 * 24 * 3600
"""The longest lifetime of a client certificate, in seconds (the controller's default)."""

_SERIAL = re.compile(r"^[0-9a-f]{1,40}$")


@dataclass(frozen=True, slots=True)
class ClientCert:
    """An issued client certificate. ``created``, ``expires`` and ``revoked`` are ns since
    the epoch (``revoked`` 0: not revoked); ``token`` is the id of the token it descends
    from; ``fingerprint`` the SHA-256 (hex) of its DER encoding."""

    serial: str
    tenant: str
    user: str
    fingerprint: str
    scopes: tuple[str, ...]
    token: str
    created: int
    expires: int
    revoked: int = 0

    def usable(self, now: int) -> bool:
        return not self.revoked and now < self.expires


def parse_serial(text: str) -> str:
    """A serial in the one spelling records use (lowercase hex without leading zeros or
    colons, as ``openssl x509 -serial`` and ``docker`` print it in either case);
    InvalidArgument if it is not one."""
    cleaned = text.strip().lower().replace(":", "")
    if not _SERIAL.match(cleaned):
        raise InvalidArgument(f"invalid certificate serial {text!r}: up to 40 hex digits")
    return cleaned.lstrip("0") or "0"
