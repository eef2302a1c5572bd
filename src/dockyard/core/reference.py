"""Image references: ``[registry/]path[:tag][@digest]``, in Docker's grammar.

Dockyard stores and prints references in Docker's *familiar* form: ``busybox:latest``
rather than ``docker.io/library/busybox:latest``, ``me/app:1`` rather than
``docker.io/me/app:1``; a reference to another registry keeps its host.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from dockyard.core.errors import InvalidArgument

__all__ = ["DEFAULT_TAG", "Reference", "is_digest", "parse_reference"]

DEFAULT_TAG = "latest"
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_NAME = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_DOMAIN = re.compile(
    r"^(?:localhost|(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)"
    r"(?:\.(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?))*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?$"
)
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-fA-F0-9]{32,}$")
_MAX_NAME = 255


def is_digest(text: str) -> bool:
    return bool(_DIGEST.match(text))


@dataclass(frozen=True, slots=True)
class Reference:
    """A parsed reference. ``repository`` is familiar (``busybox``, ``me/app``,
    ``registry:5000/ns/app``); ``tag`` is empty when only a digest was given."""

    repository: str
    tag: str = ""
    digest: str = ""

    @property
    def domain(self) -> str:
        first, sep, _ = self.repository.partition("/")
        if sep and ("." in first or ":" in first or first == "localhost"):
            return first
        return "docker.io"

    @property
    def path(self) -> str:
        """The repository without its registry host (``library/busybox`` for ``busybox``)."""
        if self.domain != "docker.io":
            return self.repository.split("/", 1)[1]
        return self.repository if "/" in self.repository else f"library/{self.repository}"

    def tagged(self) -> str:
        """``repository:tag``, with ``latest`` when no tag was given."""
        return f"{self.repository}:{self.tag or DEFAULT_TAG}"

    def __str__(self) -> str:
        text = self.repository
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def parse_reference(text: str, *, default_tag: bool = True) -> Reference:
    """Parse ``text``; without tag or digest, the tag is ``latest`` if ``default_tag``.

    Raises InvalidArgument with Docker's wording for malformed references.
    """
    if not text:
        raise InvalidArgument("invalid reference format")
    remainder, at, digest = text.partition("@")
    if at and not _DIGEST.match(digest):
        raise InvalidArgument(f"invalid reference format: {text}")
    tag = ""
    slash = remainder.rfind("/")
    colon = remainder.rfind(":")
    if colon > slash:
        remainder, tag = remainder[:colon], remainder[colon + 1 :]
        if not _TAG.match(tag):
            raise InvalidArgument(f"invalid reference format: {text}")
    domain, sep, path = remainder.partition("/")
    if sep and ("." in domain or ":" in domain or domain == "localhost"):
        if not _DOMAIN.match(domain):
            raise InvalidArgument(f"invalid reference format: {text}")
    else:
        domain, path = "", remainder
    if path != path.lower() and _NAME.match(path.lower()):
        named = path if domain or "/" in path else f"library/{path}"
        raise InvalidArgument(
            f"invalid reference format: repository name ({named}) must be lowercase"
        )
    if not _NAME.match(path) or len(remainder) > _MAX_NAME:
        raise InvalidArgument(f"invalid reference format: {text}")
    if domain in {"docker.io", "index.docker.io"}:
        domain = ""
    if not domain and path.count("/") == 1:
        path = path.removeprefix("library/")
    repository = f"{domain}/{path}" if domain else path
    if not tag and not digest and default_tag:
        tag = DEFAULT_TAG
    return Reference(repository=repository, tag=tag, digest=digest)
