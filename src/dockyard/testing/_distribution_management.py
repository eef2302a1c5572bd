"""The content management workflow (Go: ``04_management_test.go``): deleting a tag, a
manifest and blobs, and what the registry answers for them afterwards."""

from __future__ import annotations

from dockyard.testing._distribution_checks import (
    OCI_CONFIG,
    OCI_LAYER,
    OCI_MANIFEST,
    Recorder,
    Skip,
    descriptor,
    digest,
    expect,
    expect_2xx,
    expect_status,
    image_config,
    layer_tar,
    manifest,
    prefix,
)

__all__ = ["management"]


def management(rec: Recorder) -> None:
    """Run the management checks."""
    layer = layer_tar("management")
    config = image_config(layer)
    image = manifest(descriptor(OCI_CONFIG, config), [descriptor(OCI_LAYER, layer)])
    tag = f"{prefix()}-mgmt"
    tag_count = 0

    with rec.check("Setup: Populate registry with test config blob"):
        expect_2xx(rec.upload(config))
    with rec.check("Setup: Populate registry with test layer"):
        expect_2xx(rec.upload(layer))
    with rec.check("Setup: Populate registry with test tag"):
        expect_2xx(rec.put_manifest(tag, image))
    with rec.check("Setup: Check how many tags there are before anything gets deleted"):
        answer = rec.get(f"/v2/{rec.repo}/tags/list")
        expect_status(answer, 200)
        tag_count = len(answer.json().get("tags") or [])

    context = "Manifest delete"
    with rec.check(
        f"{context}: DELETE request to manifest tag should return 202, unless tag deletion is"
        " disallowed (400/405)"
    ):
        answer = rec.delete(rec.manifest_url(tag))
        expect_status(answer, 400, 202, 405)
        if answer.status == 400:
            codes = answer.error_codes()
            expect(codes[:1] == ["UNSUPPORTED"], answer.describe())
    deleted = False
    with rec.check(
        f"{context}: DELETE request to manifest (digest) should yield 202 response unless"
        " already deleted"
    ):
        answer = rec.delete(rec.manifest_url(digest(image)))
        expect_status(answer, 202, 404)
        deleted = True
    with rec.check(
        f"{context}: GET request to deleted manifest URL should yield 404 response, unless"
        " delete is disallowed"
    ):
        answer = rec.get(rec.manifest_url(digest(image)), headers={"Accept": OCI_MANIFEST})
        expect_status(answer, *((404,) if deleted else (404, 200)))
    with rec.check(f"{context}: GET request to tags list should reflect manifest deletion"):
        answer = rec.get(f"/v2/{rec.repo}/tags/list")
        expect_status(answer, 200)
        tags = list(answer.json().get("tags") or [])
        expect(tag not in tags, f"{tag} still listed")
        expect(len(tags) < tag_count, f"{len(tags)} tags, {tag_count} before")

    context = "Blob delete"
    allowed = True
    with rec.check(f"{context}: DELETE request to blob URL should yield 202 response"):
        for blob in (config, layer):
            answer = rec.delete(rec.blob_url(digest(blob)))
            expect_status(answer, 202, 404, 405)
            allowed = answer.status != 405
    with rec.check(f"{context}: GET request to deleted blob URL should yield 404 response"):
        if not allowed:
            raise Skip
        answer = rec.get(rec.blob_url(digest(config)))
        expect_status(answer, 404)
        expect("BLOB_UNKNOWN" in answer.error_codes(), answer.describe())
