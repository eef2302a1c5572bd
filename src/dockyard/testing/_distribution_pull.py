"""The pull workflow (Go: ``01_pull_test.go``, ``01_base_api_route_test.go``): the base
route, blobs and manifests by digest and tag, 404s for what does not exist, the 400 body."""

from __future__ import annotations

from dockyard.testing._distribution_checks import (
    ERROR_CODES,
    NONEXISTENT_MANIFEST,
    OCI_CONFIG,
    OCI_LAYER,
    OCI_MANIFEST,
    Recorder,
    descriptor,
    digest,
    dummy_digest,
    expect,
    expect_2xx,
    expect_digest_header,
    expect_status,
    image_config,
    layer_tar,
    manifest,
    prefix,
    teardown_delete,
)

__all__ = ["pull"]


def pull(rec: Recorder) -> None:
    """Run the pull checks."""
    layer = layer_tar("pull")
    configs = [image_config(layer), image_config(layer)]
    manifests = [
        manifest(descriptor(OCI_CONFIG, config), [descriptor(OCI_LAYER, layer)])
        for config in configs
    ]
    tag = f"{prefix()}-pull"
    missing = dummy_digest()

    with rec.check("Base API route: GET request to /v2/ should yield 200 response"):
        expect_status(rec.get("/v2/"), 200)
    for i, config in enumerate(configs):
        with rec.check(f"Setup: Populate registry with test blob (config[{i}])"):
            expect_2xx(rec.upload(config))
    with rec.check("Setup: Populate registry with test layer"):
        expect_2xx(rec.upload(layer))
    with rec.check("Setup: Populate registry with test manifest (manifest[0] by tag)"):
        expect_2xx(rec.put_manifest(tag, manifests[0]))
    with rec.check("Setup: Populate registry with test manifest (manifest[1] by digest)"):
        expect_2xx(rec.put_manifest(digest(manifests[1]), manifests[1]))

    _blobs(rec, configs[0], layer, missing)
    _manifests(rec, manifests, tag, missing)

    with rec.check("Error codes: 400 response body should contain OCI-conforming JSON message"):
        answer = rec.get(rec.manifest_url("sha256:totallywrong"))
        expect_status(answer, 400, 404)
        if answer.status == 400:
            codes = answer.error_codes()
            expect(bool(codes) and codes[0] in ERROR_CODES, answer.describe())

    teardown_delete(
        rec,
        "Teardown: Delete manifests created in setup",
        [rec.manifest_url(digest(body)) for body in manifests],
        allow_404=False,
    )
    teardown_delete(
        rec,
        "Teardown: Delete blobs created in setup",
        [rec.blob_url(digest(blob)) for blob in (*configs, layer)],
        allow_404=True,
    )


def _blobs(rec: Recorder, config: bytes, layer: bytes, missing: str) -> None:
    with rec.check("Pull blobs: HEAD request to nonexistent blob should result in 404 response"):
        expect_status(rec.head(rec.blob_url(missing)), 404)
    with rec.check("Pull blobs: HEAD request to existing blob should yield 200"):
        answer = rec.head(rec.blob_url(digest(config)))
        expect_status(answer, 200)
        expect_digest_header(answer, digest(config))
        length = answer.header("Content-Length")
        expect(length in ("", str(len(config))), f"Content-Length {length}")
    with rec.check("Pull blobs: GET nonexistent blob should result in 404 response"):
        expect_status(rec.get(rec.blob_url(missing)), 404)
    with rec.check("Pull blobs: GET nonexistent blob answers BLOB_UNKNOWN [dockyard]"):
        answer = rec.get(rec.blob_url(missing))
        expect("BLOB_UNKNOWN" in answer.error_codes(), answer.describe())
    with rec.check("Pull blobs: GET request to existing blob URL should yield 200"):
        answer = rec.get(rec.blob_url(digest(config)))
        expect_status(answer, 200)
        expect(answer.body == config, "the blob came back different")
    with rec.check("Pull blobs: GET request with a Range header should yield 206 [dockyard]"):
        answer = rec.get(rec.blob_url(digest(layer)), headers={"Range": "bytes=10-19"})
        expect_status(answer, 206)
        expect(answer.body == layer[10:20], "the range came back different")


def _manifests(rec: Recorder, manifests: list[bytes], tag: str, missing: str) -> None:
    accept = {"Accept": OCI_MANIFEST}
    with rec.check("Pull manifests: HEAD request to nonexistent manifest should return 404"):
        expect_status(rec.head(rec.manifest_url(NONEXISTENT_MANIFEST)), 404)
    for i, body in enumerate(manifests):
        with rec.check(
            f"Pull manifests: HEAD request to manifest[{i}] path (digest) should yield 200 response"
        ):
            answer = rec.head(rec.manifest_url(digest(body)), headers=accept)
            expect_status(answer, 200)
            expect_digest_header(answer, digest(body))
    with rec.check("Pull manifests: HEAD request to manifest path (tag) should yield 200 response"):
        answer = rec.head(rec.manifest_url(tag), headers=accept)
        expect_status(answer, 200)
        expect_digest_header(answer, digest(manifests[0]))
    with rec.check("Pull manifests: GET nonexistent manifest should return 404"):
        expect_status(rec.get(rec.manifest_url(NONEXISTENT_MANIFEST)), 404)
    with rec.check("Pull manifests: GET unknown tag should return 404 MANIFEST_UNKNOWN [dockyard]"):
        answer = rec.get(rec.manifest_url(f"{tag}-missing"), headers=accept)
        expect_status(answer, 404)
        expect("MANIFEST_UNKNOWN" in answer.error_codes(), answer.describe())
    with rec.check("Pull manifests: GET unknown digest should return 404 [dockyard]"):
        expect_status(rec.get(rec.manifest_url(missing), headers=accept), 404)
    for i, body in enumerate(manifests):
        with rec.check(
            f"Pull manifests: GET request to manifest[{i}] path (digest) should yield 200 response"
        ):
            answer = rec.get(rec.manifest_url(digest(body)), headers=accept)
            expect_status(answer, 200)
            expect(answer.body == body, "the manifest came back different")
            expect(
                answer.header("Content-Type") == OCI_MANIFEST,
                f"Content-Type {answer.header('Content-Type')}",
            )
    with rec.check("Pull manifests: GET request to manifest path (tag) should yield 200 response"):
        answer = rec.get(rec.manifest_url(tag), headers=accept)
        expect_status(answer, 200)
        expect(answer.body == manifests[0], "the manifest came back different")
        expect_digest_header(answer, digest(manifests[0]))
