"""The content discovery workflow (Go: ``03_discovery_test.go``): listing tags with ``n``
and ``last``, and the referrers API (OCI distribution 1.1)."""

from __future__ import annotations

import os

from dockyard.testing._distribution_checks import (
    ANNOTATION,
    ARTIFACT_A,
    ARTIFACT_B,
    ARTIFACT_INDEX,
    EMPTY_JSON,
    OCI_CONFIG,
    OCI_EMPTY,
    OCI_INDEX,
    OCI_LAYER,
    OCI_MANIFEST,
    Failed,
    Recorder,
    descriptor,
    digest,
    dummy_digest,
    expect,
    expect_2xx,
    expect_status,
    image_config,
    index,
    layer_tar,
    manifest,
    prefix,
    teardown_delete,
)
from dockyard.testing._distribution_http import Response

__all__ = ["discovery"]


def discovery(rec: Recorder) -> None:
    """Run the discovery checks."""
    layer = layer_tar("discovery")
    config = image_config(layer)
    image = manifest(descriptor(OCI_CONFIG, config), [descriptor(OCI_LAYER, layer)])
    tags_prefix = prefix()
    ours = [f"{tags_prefix}-{i}" for i in range(4)]

    with rec.check("Setup: Populate registry with test blob"):
        expect_2xx(rec.upload(config))
    with rec.check("Setup: Populate registry with test layer"):
        expect_2xx(rec.upload(layer))
    with rec.check("Setup: Populate registry with test tags"):
        for tag in ours:
            expect_2xx(rec.put_manifest(tag, image))
    subject, dangling_subject, dangling = _references_setup(rec, layer)

    _list_tags(rec, ours)
    _list_referrers(rec, subject, dangling_subject, dangling)

    teardown_delete(
        rec,
        "Teardown: Delete created manifest & associated tags",
        [rec.manifest_url(digest(body)) for body in (*subject[1], dangling, subject[0], image)],
        allow_404=True,
    )
    teardown_delete(
        rec,
        "Teardown: Delete blobs created in setup",
        [rec.blob_url(digest(blob)) for blob in (config, layer)],
        allow_404=True,
    )


def _list_tags(rec: Recorder, ours: list[str]) -> None:
    tags: list[str] = []
    context = "Test content discovery endpoints (listing tags)"
    with rec.check(f"{context}: GET request to list tags should yield 200 response"):
        answer = rec.get(f"/v2/{rec.repo}/tags/list")
        expect_status(answer, 200)
        tags = list(answer.json().get("tags") or [])
        expect(answer.json().get("name") == rec.repo, f"name {answer.json().get('name')!r}")
        expect(set(ours) <= set(tags), f"tags {tags} lack some of {ours}")
    n = max(len(tags) // 2, 1)
    with rec.check(f"{context}: GET number of tags should be limitable by `n` query parameter"):
        answer = rec.get(f"/v2/{rec.repo}/tags/list", query=[("n", str(n))])
        expect_status(answer, 200)
        page = list(answer.json().get("tags") or [])
        expect(len(page) == n, f"{len(page)} tags for n={n}: {page}")
    with rec.check(f"{context}: GET start of tag is set by `last` query parameter"):
        last = sorted(tags)[n - 1] if tags else ours[0]
        answer = rec.get(f"/v2/{rec.repo}/tags/list", query=[("n", str(n)), ("last", last)])
        expect_status(answer, 200)
        page = list(answer.json().get("tags") or [])
        expected = [tag for tag in sorted(tags) if tag > last][:n]
        expect(page == expected, f"after {last!r} got {page}, expected {expected}")


def _list_referrers(
    rec: Recorder, subject: tuple[bytes, list[bytes]], dangling_subject: str, dangling: bytes
) -> None:
    context = "Test content discovery endpoints (listing references)"
    with rec.check(
        f"{context}: GET request to nonexistent blob should result in empty 200 response"
    ):
        answer = rec.get(f"/v2/{rec.repo}/referrers/{dummy_digest()}")
        _expect_referrers(answer, [])
    with rec.check(f"{context}: GET request to existing blob should yield 200"):
        answer = rec.get(f"/v2/{rec.repo}/referrers/{digest(subject[0])}")
        _expect_referrers(answer, subject[1])
    with rec.check(f"{context}: GET request to existing blob with filter should yield 200"):
        answer = rec.get(
            f"/v2/{rec.repo}/referrers/{digest(subject[0])}", query=[("artifactType", ARTIFACT_A)]
        )
        if answer.header("OCI-Filters-Applied"):
            expect(answer.header("OCI-Filters-Applied") == "artifactType", answer.describe())
            _expect_referrers(answer, [b for b in subject[1] if ARTIFACT_A.encode() in b])
        else:
            _expect_referrers(answer, subject[1])
    with rec.check(f"{context}: GET request to missing manifest should yield 200"):
        answer = rec.get(f"/v2/{rec.repo}/referrers/{dangling_subject}")
        _expect_referrers(answer, [dangling])


def _references_setup(rec: Recorder, layer: bytes) -> tuple[tuple[bytes, list[bytes]], str, bytes]:
    """Push a subject image and five manifests referring to it (two with a config artifact
    type, two with ``artifactType``, one index), and one referring to a missing manifest.
    Returns ((subject, its referrers), the missing digest, the dangling referrer)."""
    config = image_config(layer)
    subject = manifest(descriptor(OCI_CONFIG, config), [descriptor(OCI_LAYER, layer)])
    about = descriptor(OCI_MANIFEST, subject)
    blobs = [os.urandom(64), os.urandom(64)]
    referrers: list[tuple[bytes, str]] = []
    for i, (blob, artifact) in enumerate(zip(blobs, (ARTIFACT_A, ARTIFACT_B), strict=True)):
        annotations = {ANNOTATION: f"config artifact {i}"}
        body = manifest(
            descriptor(artifact, blob),
            [descriptor(OCI_EMPTY, EMPTY_JSON)],
            subject=about,
            annotations=annotations,
        )
        referrers.append((body, OCI_MANIFEST))
        body = manifest(
            descriptor(OCI_EMPTY, EMPTY_JSON),
            [descriptor(OCI_LAYER, blob)],
            artifactType=artifact,
            subject=about,
            annotations={ANNOTATION: f"layer artifact {i}"},
        )
        referrers.append((body, OCI_MANIFEST))
    body = index(
        [descriptor(OCI_MANIFEST, subject)],
        artifactType=ARTIFACT_INDEX,
        subject=about,
        annotations={ANNOTATION: "index"},
    )
    referrers.append((body, OCI_INDEX))
    missing = dummy_digest()
    dangling = manifest(
        descriptor(OCI_EMPTY, EMPTY_JSON),
        [descriptor(OCI_LAYER, blobs[0])],
        artifactType=ARTIFACT_A,
        subject={"mediaType": OCI_MANIFEST, "digest": missing, "size": 1234},
        annotations={ANNOTATION: "dangling"},
    )
    with rec.check("Setup: References setup"):
        problems: list[str] = []
        for blob in (EMPTY_JSON, config, *blobs):
            expect_2xx(rec.upload(blob))
        for body, media_type in referrers[:2]:  # two before the subject, as the Go suite
            problems += _put_referrer(rec, body, media_type, digest(subject))
        expect_2xx(rec.put_manifest(digest(subject), subject))
        for body, media_type in referrers[2:]:
            problems += _put_referrer(rec, body, media_type, digest(subject))
        problems += _put_referrer(rec, dangling, OCI_MANIFEST, missing)
        if problems:
            raise Failed("; ".join(problems))
    return (subject, [body for body, _ in referrers]), missing, dangling


def _put_referrer(rec: Recorder, body: bytes, media_type: str, subject: str) -> list[str]:
    answer = rec.put_manifest(digest(body), body, media_type)
    expect_2xx(answer)
    if answer.header("OCI-Subject") != subject:
        return [f"{answer.describe()} without OCI-Subject: {subject}"]
    return []


def _expect_referrers(answer: Response, expected: list[bytes]) -> None:
    expect_status(answer, 200)
    content_type = answer.header("Content-Type")
    expect(content_type == OCI_INDEX, f"Content-Type {content_type!r}")
    found = answer.json().get("manifests") or []
    want = {digest(body) for body in expected}
    got = [entry.get("digest") for entry in found]
    expect(sorted(got) == sorted(want), f"referrers {got}, expected {sorted(want)}")
    for entry in found:
        expect(
            len(entry.get("annotations") or {}) == 1,
            f"{entry.get('digest')} annotations {entry.get('annotations')}",
        )
