"""Image references in Docker's grammar, stored in Docker's familiar form."""

from __future__ import annotations

import pytest

from dockyard.core import reference
from dockyard.core.errors import InvalidArgument
from dockyard.core.reference import DEFAULT_TAG, Reference, is_digest, parse_reference

DIGEST = "sha256:" + "0123456789abcdef" * 4


def test_public_surface() -> None:
    assert set(reference.__all__) == {"DEFAULT_TAG", "Reference", "is_digest", "parse_reference"}
    assert DEFAULT_TAG == "latest"


@pytest.mark.parametrize(
    ("text", "repository", "tag", "domain", "path"),
    [
        ("busybox", "busybox", "latest", "docker.io", "library/busybox"),
        ("busybox:1.36", "busybox", "1.36", "docker.io", "library/busybox"),
        ("me/app", "me/app", "latest", "docker.io", "me/app"),
        ("me/app:1.0-rc_2", "me/app", "1.0-rc_2", "docker.io", "me/app"),
        ("docker.io/library/busybox", "busybox", "latest", "docker.io", "library/busybox"),
        ("docker.io/busybox:1", "busybox", "1", "docker.io", "library/busybox"),
        ("index.docker.io/library/busybox", "busybox", "latest", "docker.io", "library/busybox"),
        ("docker.io/me/app:2", "me/app", "2", "docker.io", "me/app"),
        ("docker.io/library/a/b", "library/a/b", "latest", "docker.io", "library/a/b"),
        ("a/b/c/d", "a/b/c/d", "latest", "docker.io", "a/b/c/d"),
        ("localhost/app", "localhost/app", "latest", "localhost", "app"),
        ("localhost:5000/ns/app:v1", "localhost:5000/ns/app", "v1", "localhost:5000", "ns/app"),
        (
            "registry.example.com/app",
            "registry.example.com/app",
            "latest",
            "registry.example.com",
            "app",
        ),
        (
            "registry.example.com:5000/team/app:Stable",
            "registry.example.com:5000/team/app",
            "Stable",
            "registry.example.com:5000",
            "team/app",
        ),
        ("[::1]:5000/app:1", "[::1]:5000/app", "1", "[::1]:5000", "app"),
        ("a__b-c---d/e_f.g", "a__b-c---d/e_f.g", "latest", "docker.io", "a__b-c---d/e_f.g"),
    ],
)
def test_familiar_form(text: str, repository: str, tag: str, domain: str, path: str) -> None:
    ref = parse_reference(text)
    assert ref == Reference(repository=repository, tag=tag)
    assert ref.domain == domain
    assert ref.path == path
    assert str(ref) == f"{repository}:{tag}"


def test_library_prefix_is_dropped_like_docker_does() -> None:
    # `docker pull library/busybox` and `docker pull busybox` name the same repository;
    # Docker's familiar form of both is "busybox".
    assert parse_reference("library/busybox") == parse_reference("busybox")
    assert parse_reference("library/busybox:1").tagged() == "busybox:1"


def test_digests() -> None:
    ref = parse_reference(f"busybox@{DIGEST}")
    assert ref == Reference(repository="busybox", tag="", digest=DIGEST)
    assert str(ref) == f"busybox@{DIGEST}"
    assert ref.tagged() == "busybox:latest"
    both = parse_reference(f"localhost:5000/app:1@{DIGEST}")
    assert (both.repository, both.tag, both.digest) == ("localhost:5000/app", "1", DIGEST)
    assert str(both) == f"localhost:5000/app:1@{DIGEST}"


def test_without_default_tag() -> None:
    assert parse_reference("busybox", default_tag=False) == Reference("busybox")
    assert parse_reference("busybox:1", default_tag=False).tag == "1"
    assert parse_reference("busybox", default_tag=False).tagged() == "busybox:latest"


@pytest.mark.parametrize(
    "text",
    [
        "busybox:",
        ":tag",
        "/busybox",
        "busybox/",
        "a//b",
        "-a",
        "a-",
        "a..b",
        "busy box",
        "busybox:tag!",
        "busybox:-tag",
        "busybox:" + "t" * 129,
        "a" * 256,
        "busybox@sha256:abc",
        "busybox@md5",
        "busybox@",
        "localhost:port/app",
        "exa_mple.com/app",
    ],
)
def test_invalid_formats(text: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        parse_reference(text)
    assert info.value.message == f"invalid reference format: {text}"


def test_empty_reference() -> None:
    with pytest.raises(InvalidArgument, match=r"^invalid reference format$"):
        parse_reference("")


def test_longest_allowed_tag_and_name() -> None:
    assert parse_reference("busybox:" + "t" * 128).tag == "t" * 128
    assert parse_reference("a" * 255).repository == "a" * 255


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        # Docker reports the normalized remote name, with the library/ prefix it adds.
        ("Busybox", "library/Busybox"),
        ("busyBox:1", "library/busyBox"),
        ("me/App", "me/App"),
        ("registry.example.com/Team/app", "Team/app"),
    ],
)
def test_uppercase_is_rejected_with_dockers_message(text: str, shown: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        parse_reference(text)
    assert info.value.message == (
        f"invalid reference format: repository name ({shown}) must be lowercase"
    )


def test_uppercase_is_fine_in_tags_and_registry_hosts() -> None:
    assert parse_reference("busybox:Latest").tag == "Latest"
    assert parse_reference("Registry.Example.com/app").domain == "Registry.Example.com"


def test_is_digest() -> None:
    assert is_digest(DIGEST)
    assert is_digest("sha512:" + "a" * 128)
    assert not is_digest("sha256:abc")
    assert not is_digest("0123456789abcdef" * 4)
    assert not is_digest("")
