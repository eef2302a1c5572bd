"""The push workflow (Go: ``02_push_test.go``): streamed, monolithic and chunked blob
uploads, cross-repository mounts, and manifest uploads (images, artifacts, indexes)."""

from __future__ import annotations

import os
import urllib.parse

from dockyard.testing._distribution_checks import (
    ANNOTATION,
    ARTIFACT_A,
    ARTIFACT_INDEX,
    EMPTY_JSON,
    NONEXISTENT_MANIFEST,
    OCI_CONFIG,
    OCI_EMPTY,
    OCI_INDEX,
    OCI_LAYER,
    OCI_MANIFEST,
    OCTET,
    Failed,
    Recorder,
    Skip,
    descriptor,
    digest,
    dummy_digest,
    expect,
    expect_2xx,
    expect_digest_header,
    expect_status,
    image_config,
    index,
    layer_tar,
    manifest,
    prefix,
    teardown_delete,
)
from dockyard.testing._distribution_http import Response

__all__ = ["push"]


def push(rec: Recorder, source: str) -> None:
    """Run the push checks; the cross-mount checks mount a blob from ``source``."""
    ref_blob = os.urandom(64)
    blob_a = os.urandom(1024)
    layer = layer_tar("push")
    config = image_config(layer)

    with rec.check("Setup: Upload empty JSON blob needed for further tests"):
        expect_2xx(rec.upload(EMPTY_JSON))
    with rec.check("Setup: Upload blob needed for further tests"):
        expect_2xx(rec.upload(ref_blob))
    _streamed(rec, blob_a)
    _monolithic(rec, config, layer)
    _upload_errors(rec)
    _chunked(rec)
    _final_chunk(rec)
    _mount(rec, source)
    pushed = _manifest_upload(rec, config, layer, ref_blob)

    teardown_delete(
        rec,
        "Teardown: Delete manifest created in tests",
        [rec.manifest_url(digest(body)) for body in pushed],
        allow_404=False,
    )
    teardown_delete(
        rec,
        "Teardown: Delete blobs created in tests",
        [rec.blob_url(digest(blob)) for blob in (config, layer, ref_blob, blob_a)],
        allow_404=True,
    )


def _streamed(rec: Recorder, blob: bytes) -> None:
    """One PATCH with no Content-Range, then a PUT with the digest and no body."""
    streamed: Response | None = None
    with rec.check(
        "Blob Upload Streamed: PATCH request with blob in body should yield 202 response"
    ):
        started = rec.start_upload()
        expect(bool(started.location), f"{started.describe()} without a Location")
        streamed = rec.session.request("PATCH", started.location, headers=OCTET, body=blob)
        expect_status(streamed, 202)
    with rec.check(
        "Blob Upload Streamed: PUT request to session URL with digest should yield 201 response"
    ):
        if streamed is None or streamed.status != 202:
            raise Failed("no upload session from the PATCH")
        answer = rec.session.request(
            "PUT", streamed.location, query=[("digest", digest(blob))], headers=OCTET
        )
        expect_status(answer, 201)
        expect(bool(answer.location), "no Location")


def _manifest_upload(rec: Recorder, config: bytes, layer: bytes, ref_blob: bytes) -> list[bytes]:
    """The manifest checks; returns the manifests pushed, in the order to delete them."""
    image = manifest(descriptor(OCI_CONFIG, config), [descriptor(OCI_LAYER, layer)])
    tags = prefix()
    pushed: list[bytes] = []
    with rec.check("Manifest Upload: GET nonexistent manifest should return 404"):
        expect_status(rec.get(rec.manifest_url(NONEXISTENT_MANIFEST)), 404)
    with rec.check("Manifest Upload: PUT should accept a manifest upload"):
        pushed.append(image)
        for i in range(4):
            answer = rec.put_manifest(f"{tags}-{i}", image)
            expect_status(answer, 201)
            expect(bool(answer.location), f"{answer.describe()} without a Location")
            expect_digest_header(answer, digest(image))
    with rec.check("Manifest Upload: Registry should accept a manifest upload with no layers"):
        empty_layers = manifest(descriptor(OCI_CONFIG, config), [])
        answer = rec.put_manifest(f"{tags}-emptylayer", empty_layers)
        expect_status(answer, 201)
        pushed.append(empty_layers)
    with rec.check(
        "Manifest Upload: GET request to manifest URL (digest) should yield 200 response"
    ):
        answer = rec.get(rec.manifest_url(digest(image)), headers={"Accept": OCI_MANIFEST})
        expect_status(answer, 200)
        expect(answer.body == image, "the manifest came back different")
    with rec.check(
        "Manifest Upload: PUT manifest referencing a missing blob should yield 400"
        " MANIFEST_BLOB_UNKNOWN [dockyard]"
    ):
        dangling = manifest(
            descriptor(OCI_CONFIG, config), [descriptor(OCI_LAYER, os.urandom(100))]
        )
        answer = rec.put_manifest(f"{tags}-dangling", dangling)
        expect_status(answer, 400)
        codes = answer.error_codes()
        expect(bool({"MANIFEST_BLOB_UNKNOWN", "BLOB_UNKNOWN"} & set(codes)), answer.describe())

    artifacts = _artifact_manifests(ref_blob)
    for title, body in artifacts:
        with rec.check(f"Manifest Upload: Registry should accept a manifest upload with {title}"):
            expect_2xx(rec.put_manifest(digest(body), body))
            pushed.append(body)
    first = index([descriptor(OCI_MANIFEST, image)], artifactType=ARTIFACT_INDEX)
    with rec.check("Manifest Upload: Registry should accept a manifest upload with image index"):
        expect_2xx(rec.put_manifest(digest(first), first, OCI_INDEX))
        pushed.insert(0, first)
    with rec.check(
        "Manifest Upload: Registry should accept a manifest upload with nested image index"
        " [OCI-Image v1.1]"
    ):
        nested = index([descriptor(OCI_INDEX, first)], artifactType=ARTIFACT_INDEX)
        expect_2xx(rec.put_manifest(digest(nested), nested, OCI_INDEX))
        pushed.insert(0, nested)
    with rec.check("Manifest Upload: Dangling subject [OCI-Image v1.1]"):
        subject = {"mediaType": OCI_MANIFEST, "digest": dummy_digest(), "size": 1234}
        body = manifest(
            descriptor(OCI_EMPTY, EMPTY_JSON),
            [descriptor(OCI_LAYER, ref_blob)],
            artifactType=ARTIFACT_A,
            subject=subject,
        )
        answer = rec.put_manifest(digest(body), body)
        expect_2xx(answer)
        pushed.append(body)
        expect(
            answer.header("OCI-Subject") == subject["digest"],
            f"OCI-Subject header {answer.header('OCI-Subject')!r}, expected {subject['digest']}",
        )

    return pushed


def _artifact_manifests(ref_blob: bytes) -> list[tuple[str, bytes]]:
    return [
        (
            "custom config/mediaType (as artifact type) [OCI-Image v1.1]",
            manifest(
                descriptor(ARTIFACT_A, ref_blob),
                [descriptor(OCI_EMPTY, EMPTY_JSON)],
                annotations={ANNOTATION: "config type"},
            ),
        ),
        (
            "custom artifactType [OCI-Image v1.1]",
            manifest(
                descriptor(OCI_EMPTY, EMPTY_JSON),
                [descriptor(OCI_LAYER, ref_blob)],
                artifactType=ARTIFACT_A,
                annotations={ANNOTATION: "artifact type"},
            ),
        ),
    ]


def _monolithic(rec: Recorder, config: bytes, layer: bytes) -> None:
    context = "Blob Upload Monolithic"
    with rec.check(f"{context}: GET nonexistent blob should result in 404 response"):
        expect_status(rec.get(rec.blob_url(dummy_digest())), 404)
    posted: Response | None = None
    with rec.check(f"{context}: POST request with digest and blob should yield a 201 or 202"):
        posted = rec.start_upload(query=[("digest", digest(config))], headers=OCTET, body=config)
        expect(bool(posted.location), f"{posted.describe()} without a Location")
        expect_status(posted, 201, 202)
    with rec.check(
        f"{context}: GET request to blob URL from prior request should yield 200 or 404 based"
        " on response code"
    ):
        if posted is None or posted.status not in (201, 202):
            raise Failed("the POST failed")
        expect_status(rec.get(rec.blob_url(digest(config))), 200 if posted.status == 201 else 404)
    session: Response | None = None
    with rec.check(f"{context}: POST request should yield a session ID"):
        session = rec.start_upload()
        expect_status(session, 202)
        expect(bool(session.location), "no Location")
    with rec.check(f"{context}: PUT upload of a blob should yield a 201 Response"):
        if session is None or session.status != 202:
            raise Failed("no upload session")
        answer = rec.session.request(
            "PUT", session.location, query=[("digest", digest(config))], headers=OCTET, body=config
        )
        expect(bool(answer.location), f"{answer.describe()} without a Location")
        expect_status(answer, 201)
        expect_digest_header(answer, digest(config))
    with rec.check(f"{context}: GET request to existing blob should yield 200 response"):
        answer = rec.get(rec.blob_url(digest(config)))
        expect_status(answer, 200)
        expect(answer.body == config, "the blob came back different")
    with rec.check(f"{context}: PUT upload of a layer blob should yield a 201 Response"):
        answer = rec.upload(layer)
        expect(bool(answer.location), f"{answer.describe()} without a Location")
        expect_status(answer, 201)
    with rec.check(f"{context}: GET request to existing layer should yield 200 response"):
        answer = rec.get(rec.blob_url(digest(layer)))
        expect_status(answer, 200)
        expect(answer.body == layer, "the layer came back different")


def _upload_errors(rec: Recorder) -> None:
    context = "Blob Upload Monolithic"
    with rec.check(
        f"{context}: PUT upload with a digest that does not match should yield 400"
        " DIGEST_INVALID [dockyard]"
    ):
        started = rec.start_upload()
        expect_status(started, 202)
        answer = rec.session.request(
            "PUT",
            started.location,
            query=[("digest", dummy_digest())],
            headers=OCTET,
            body=os.urandom(100),
        )
        expect_status(answer, 400)
        expect("DIGEST_INVALID" in answer.error_codes(), answer.describe())
    with rec.check(f"{context}: DELETE request to an upload session should cancel it [dockyard]"):
        started = rec.start_upload()
        expect_status(started, 202)
        # Clients use the latest Location: distribution's carries the upload's offset.
        patched = rec.session.request(
            "PATCH", started.location, headers=OCTET, body=os.urandom(100)
        )
        expect_status(patched, 202)
        expect_status(rec.session.request("DELETE", patched.location), 204)
        answer = rec.get(patched.location)
        expect_status(answer, 404)
        expect("BLOB_UPLOAD_UNKNOWN" in answer.error_codes(), answer.describe())


def _chunked(rec: Recorder) -> None:
    context = "Blob Upload Chunked"
    blob = os.urandom(2048)
    half = len(blob) // 2
    chunk1, chunk2 = blob[:half], blob[half:]
    range1, range2 = f"0-{half - 1}", f"{half}-{len(blob) - 1}"

    def patch(url: str, chunk: bytes, content_range: str) -> Response:
        headers = OCTET | {"Content-Range": content_range}
        return rec.session.request("PATCH", url, headers=headers, body=chunk)

    with rec.check(f"{context}: Out-of-order blob upload should return 416"):
        started = rec.start_upload()
        expect(bool(started.location), f"{started.describe()} without a Location")
        expect_status(patch(started.location, chunk2, range2), 416)

    first: Response | None = None
    last: Response | None = None
    with rec.check(f"{context}: PATCH request with first chunk should return 202"):
        first = rec.start_upload()
        expect(bool(first.location), f"{first.describe()} without a Location")
        answer = patch(first.location, chunk1, range1)
        expect_status(answer, 202)
        expect(answer.header("Range") == range1, f"Range {answer.header('Range')!r}")
        last = answer
    with rec.check(f"{context}: Retry previous blob chunk should return 416"):
        if first is None or not first.location:
            raise Failed("no upload session")
        expect_status(patch(first.location, chunk1, range1), 416)
    with rec.check(
        f"{context}: Get on stale blob upload should return 204 with a range and location"
    ):
        if first is None or not first.location:
            raise Failed("no upload session")
        answer = rec.get(first.location)
        expect_status(answer, 204)
        expect(bool(answer.location), "no Location")
        expect(answer.header("Range") == range1, f"Range {answer.header('Range')!r}")
        last = answer
    with rec.check(f"{context}: PATCH request with second chunk should return 202"):
        if last is None:
            raise Failed("no upload session")
        answer = patch(last.location, chunk2, range2)
        expect_status(answer, 202)
        whole = f"0-{len(blob) - 1}"
        expect(
            answer.header("Range") == whole, f"Range {answer.header('Range')!r}, expected {whole}"
        )
        expect(bool(answer.location), "no Location")
        last = answer
    with rec.check(f"{context}: PUT request with digest should return 201"):
        if last is None:
            raise Failed("no upload session")
        answer = rec.session.request(
            "PUT", last.location, query=[("digest", digest(blob))], headers=OCTET
        )
        expect_status(answer, 201)
        expect(bool(answer.location), "no Location")
    teardown_delete(
        rec,
        f"{context}: Teardown: Delete chunked blobs [dockyard]",
        [rec.blob_url(digest(blob))],
        allow_404=True,
    )


def _final_chunk(rec: Recorder) -> None:
    """The older suite's variant: the last chunk travels in the PUT."""
    context = "Blob Upload Chunked"
    blob = os.urandom(2048)
    half = len(blob) // 2
    chunk1, chunk2 = blob[:half], blob[half:]
    range1, range2 = f"0-{half - 1}", f"{half}-{len(blob) - 1}"
    with rec.check(f"{context}: PUT request with final chunk should return 201"):
        started = rec.start_upload()
        patched = rec.session.request(
            "PATCH", started.location, headers=OCTET | {"Content-Range": range1}, body=chunk1
        )
        expect_status(patched, 202)
        answer = rec.session.request(
            "PUT",
            patched.location,
            query=[("digest", digest(blob))],
            headers=OCTET | {"Content-Range": range2},
            body=chunk2,
        )
        expect_status(answer, 201)
        expect(rec.get(rec.blob_url(digest(blob))).body == blob, "the blob came back different")
    teardown_delete(
        rec,
        f"{context}: Teardown: Delete the blob uploaded in chunks [dockyard]",
        [rec.blob_url(digest(blob))],
        allow_404=True,
    )


def _mount(rec: Recorder, source: str) -> None:
    context = "Cross-Repository Blob Mount"
    blob = os.urandom(1024)
    with rec.check(f"{context}: Setup: Upload blob to the source repository [dockyard]"):
        expect_2xx(rec.upload(blob, repo=source))
    with rec.check(
        f"{context}: Cross-mounting of a blob without the from argument should yield session id"
    ):
        answer = rec.start_upload(query=[("mount", dummy_digest())])
        expect_status(answer, 202)
        expect(bool(answer.location), "no Location")
    mounted: Response | None = None
    with rec.check(
        f"{context}: POST request to mount another repository's blob should return 201 or 202"
    ):
        mounted = rec.start_upload(query=[("mount", digest(blob)), ("from", source)])
        expect_status(mounted, 201, 202)
    with rec.check(
        f"{context}: GET request to test digest within cross-mount namespace should return 200"
    ):
        if mounted is None or mounted.status != 201:
            raise Skip
        path = urllib.parse.urlsplit(mounted.location).path
        expect(path == rec.blob_url(digest(blob)), f"Location {mounted.location}")
        expect_status(rec.get(mounted.location), 200)
    with rec.check(f"{context}: Cross-mounting of nonexistent blob should yield session id"):
        if mounted is None or mounted.status != 202:
            raise Skip
        path = urllib.parse.urlsplit(mounted.location).path
        expect(path.startswith(f"/v2/{rec.repo}/blobs/uploads/"), f"Location {mounted.location}")
    teardown_delete(
        rec,
        f"{context}: Teardown: Delete mounted blobs [dockyard]",
        [rec.blob_url(digest(blob)), rec.blob_url(digest(blob), repo=source)],
        allow_404=True,
    )
