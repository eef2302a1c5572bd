"""The machinery of the distribution conformance checks: results, the recorder that turns
an unmet expectation into a failed check, the requests every workflow makes, and test
content that is unique to each run."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from dockyard.testing._distribution_http import AuthError, Response, Session

__all__ = [
    "ANNOTATION",
    "ARTIFACT_A",
    "ARTIFACT_B",
    "ARTIFACT_INDEX",
    "EMPTY_JSON",
    "ERROR_CODES",
    "NONEXISTENT_MANIFEST",
    "OCI_CONFIG",
    "OCI_EMPTY",
    "OCI_INDEX",
    "OCI_LAYER",
    "OCI_MANIFEST",
    "OCTET",
    "CheckResult",
    "Failed",
    "Recorder",
    "Skip",
    "descriptor",
    "digest",
    "dummy_digest",
    "expect",
    "expect_2xx",
    "expect_digest_header",
    "expect_status",
    "image_config",
    "index",
    "layer_tar",
    "manifest",
    "prefix",
    "teardown_delete",
]

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
EMPTY_JSON = b"{}"
OCTET = {"Content-Type": "application/octet-stream"}
ERROR_CODES = frozenset(
    {
        "BLOB_UNKNOWN",
        "BLOB_UPLOAD_INVALID",
        "BLOB_UPLOAD_UNKNOWN",
        "DIGEST_INVALID",
        "MANIFEST_BLOB_UNKNOWN",
        "MANIFEST_INVALID",
        "MANIFEST_UNKNOWN",
        "NAME_INVALID",
        "NAME_UNKNOWN",
        "SIZE_INVALID",
        "UNAUTHORIZED",
        "DENIED",
        "UNSUPPORTED",
        "TOOMANYREQUESTS",
    }
)
# The Go suite's reference for a manifest that does not exist: not even a valid tag.
NONEXISTENT_MANIFEST = ".INVALID_MANIFEST_NAME"
ARTIFACT_A = "application/vnd.dockyard.conformance.a"
ARTIFACT_B = "application/vnd.dockyard.conformance.b"
ARTIFACT_INDEX = "application/vnd.dockyard.conformance.index"
ANNOTATION = "org.opencontainers.conformance.test"


@dataclass
class CheckResult:
    """One check: its workflow (pull, push, discovery, management), its name (the
    conformance suite's ``<context>: <spec>``; ``[dockyard]`` marks checks of ours that
    the Go suite does not make), whether it passed, and why not."""

    workflow: str
    name: str
    passed: bool
    detail: str = ""


class Failed(Exception):
    """An expectation was not met; the message is the check's detail."""


class Skip(Exception):
    """The check does not apply (an earlier answer took the other branch): record nothing,
    as the Go suite's ``RunOnlyIf`` does."""


@dataclass
class Recorder:
    """Runs the checks of one workflow against ``repo`` and collects their results."""

    session: Session
    repo: str
    workflow: str
    results: list[CheckResult] = field(default_factory=list)

    @contextlib.contextmanager
    def check(self, name: str) -> Iterator[None]:
        """``with recorder.check(name): ...`` records a pass, or a failure with the detail
        of the Failed (or transport, token or malformed-body error) that ended the block."""
        try:
            yield
        except Skip:
            return
        except Failed as exc:
            self.results.append(CheckResult(self.workflow, name, passed=False, detail=str(exc)))
            return
        except (OSError, AuthError) as exc:
            detail = f"{type(exc).__name__}: {exc}"
            self.results.append(CheckResult(self.workflow, name, passed=False, detail=detail))
            return
        except (ValueError, AttributeError, TypeError) as exc:
            # A body that is not the JSON the spec prescribes (a proxy's HTML error page,
            # a list where an object belongs) fails the check instead of ending the run.
            detail = f"malformed answer: {type(exc).__name__}: {exc}"
            self.results.append(CheckResult(self.workflow, name, passed=False, detail=detail))
            return
        self.results.append(CheckResult(self.workflow, name, passed=True))

    def passed(self, name: str) -> bool:
        return any(r.name == name and r.passed for r in self.results)

    # -- requests -------------------------------------------------------------------------

    def get(self, target: str, **kwargs: Any) -> Response:
        return self.session.request("GET", target, **kwargs)

    def head(self, target: str, **kwargs: Any) -> Response:
        return self.session.request("HEAD", target, **kwargs)

    def delete(self, target: str) -> Response:
        return self.session.request("DELETE", target)

    def blob_url(self, blob_digest: str, repo: str | None = None) -> str:
        return f"/v2/{repo or self.repo}/blobs/{blob_digest}"

    def manifest_url(self, reference: str, repo: str | None = None) -> str:
        return f"/v2/{repo or self.repo}/manifests/{reference}"

    def start_upload(self, repo: str | None = None, **kwargs: Any) -> Response:
        """POST to the uploads endpoint (``query``, ``headers`` and ``body`` as given)."""
        return self.session.request("POST", f"/v2/{repo or self.repo}/blobs/uploads/", **kwargs)

    def upload(self, data: bytes, repo: str | None = None) -> Response:
        """POST then a monolithic PUT of ``data``: the answer to the PUT (the POST's if it
        was not 202)."""
        started = self.start_upload(repo)
        if started.status != 202 or not started.location:
            return started
        return self.session.request(
            "PUT",
            started.location,
            query=[("digest", digest(data))],
            headers=OCTET,
            body=data,
        )

    def put_manifest(self, reference: str, body: bytes, media_type: str = OCI_MANIFEST) -> Response:
        return self.session.request(
            "PUT", self.manifest_url(reference), headers={"Content-Type": media_type}, body=body
        )


def expect_status(response: Response, *codes: int) -> None:
    if response.status not in codes:
        wanted = " or ".join(str(code) for code in codes)
        raise Failed(f"{response.describe()}, expected {wanted}")


def expect_2xx(response: Response) -> None:
    if not 200 <= response.status < 300:
        raise Failed(f"{response.describe()}, expected 2xx")


def expect(condition: bool, detail: str) -> None:
    if not condition:
        raise Failed(detail)


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def descriptor(media_type: str, data: bytes, **extra: Any) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": digest(data), "size": len(data), **extra}


def layer_tar(name: str) -> bytes:
    """A one-file uncompressed layer whose file holds random bytes."""
    payload = os.urandom(512)
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        tar.addfile(info, io.BytesIO(payload))
    return out.getvalue()


def image_config(layer: bytes) -> bytes:
    """An image config for ``layer``, unique per call (a random ``author``)."""
    return _json(
        {
            "architecture": "amd64",
            "os": "linux",
            "author": f"dockyard conformance {os.urandom(8).hex()}",
            "rootfs": {"type": "layers", "diff_ids": [digest(layer)]},
        }
    )


def manifest(config: dict[str, Any], layers: list[dict[str, Any]], **extra: Any) -> bytes:
    """An OCI image manifest (``extra`` adds ``artifactType``, ``subject``,
    ``annotations``)."""
    return _json(
        {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": layers} | extra
    )


def index(manifests: list[dict[str, Any]], **extra: Any) -> bytes:
    return _json({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests} | extra)


def _json(value: Any) -> bytes:
    return json.dumps(value, indent="\t").encode()


def prefix() -> str:
    """A random tag prefix, so that runs in one repository never share tags."""
    return "t" + os.urandom(4).hex()


def dummy_digest() -> str:
    """The digest of nothing the registry has."""
    return digest(os.urandom(32))


def expect_digest_header(response: Response, expected: str) -> None:
    """The Go suite checks ``Docker-Content-Digest`` only when it is present."""
    found = response.header("Docker-Content-Digest")
    expect(not found or found == expected, f"Docker-Content-Digest {found}, expected {expected}")


def teardown_delete(rec: Recorder, name: str, urls: list[str], *, allow_404: bool) -> None:
    """A check that deletes ``urls``: each must answer 2xx or 405 (deletes disabled), or
    404 if ``allow_404`` (a blob some other delete already took)."""
    with rec.check(name):
        for url in urls:
            answer = rec.delete(url)
            if not (200 <= answer.status < 300 or answer.status == 405):
                expect(allow_404 and answer.status == 404, f"{answer.describe()}")
