"""OCI distribution-spec conformance checks, in Python.

A faithful offline rendering of the workflows of the distribution-spec conformance suite
(``opencontainers/distribution-spec/conformance``, Go: ``01_pull_test.go``,
``02_push_test.go``, ``03_discovery_test.go``, ``04_management_test.go``), for measuring
Dockyard's registry (through its front, with token auth) against the bare CNCF
distribution server it runs. Each ``g.Specify`` of the Go suite is one check named
``<context>: <spec>`` with the Go suite's wording, and expects what the Go suite expects;
checks of ours that it does not make (error codes the spec names, a wrong digest, a
manifest with a missing blob, cancelling an upload, ranged blob reads) carry
``[dockyard]``. A check the Go suite skips on the branch taken (``RunOnlyIf``) is not
reported. Where the Go suite's expectation is vacuous or loose, ours is what the spec
says: ``last`` must start the page after that tag (the Go check compares the earlier
page with itself), content read back must equal what was pushed, a manifest answered
202 to DELETE must then be 404, and a tag listing must name the repository and our tags.

Workflows and the endpoints they use (spec numbering):

- ``pull``: end-1 ``GET /v2/``, end-2 blobs and end-3 manifests (HEAD/GET by tag and
  digest, 404 for unknown ones), the 400 error body.
- ``push``: end-4a/4b ``POST`` uploads (with and without ``digest``), end-5 ``PATCH``
  streamed and chunked (``Content-Range``; out of order and retried chunks get 416),
  end-13 upload status, end-6 ``PUT``, end-11 cross-repository mount, end-7 manifests
  (image, no layers, artifacts, indexes, a dangling ``subject``).
- ``discovery``: end-8a/8b tag listing with ``n`` and ``last``, end-12 referrers.
- ``management``: end-9 manifest delete (tag, digest), end-10 blob delete, and 404 after.

Every run pushes its own content (random bytes; tags with a random prefix), so runs one
after another in a repository never see each other's content, and teardown deletes what
the run pushed except the shared empty JSON blob (``{}``). Concurrent runs should use
different repositories: the Go suite's tag-count check in ``management`` counts every tag.

The workflows live in ``_distribution_pull``, ``_distribution_push``,
``_distribution_discovery`` and ``_distribution_management``; the recorder and test
content in ``_distribution_checks``; the HTTP client in ``_distribution_http``.

Authentication: the checks answer a token challenge as Docker does, with
``credentials`` or anonymously (see :mod:`dockyard.testing._distribution_http`), asking for
``repository:<repo>:pull,push,delete`` (and the same on the cross-mount repository).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from dockyard.testing._distribution_checks import CheckResult, Recorder
from dockyard.testing._distribution_discovery import discovery
from dockyard.testing._distribution_http import Session
from dockyard.testing._distribution_management import management
from dockyard.testing._distribution_pull import pull
from dockyard.testing._distribution_push import push

__all__ = ["WORKFLOWS", "CheckResult", "compare", "run_conformance"]

WORKFLOWS = ("pull", "push", "discovery", "management")


def run_conformance(
    base_url: str,
    repo: str,
    *,
    credentials: tuple[str, str] | None = None,
    cross_mount_from: str | None = None,
    workflows: Sequence[str] = WORKFLOWS,
) -> list[CheckResult]:
    """Run the ``workflows`` (a subset of :data:`WORKFLOWS`, run in that order) against the
    registry at ``base_url`` (``http://host:port``) in repository ``repo`` and return every
    check's result, in order.

    ``cross_mount_from`` is the repository the cross-mount checks mount a blob from (the
    run first pushes that blob there); by default ``<repo>-mount-source``. Never raises for
    what the registry answers: refusals, transport errors and token failures are failed
    checks. Raises ValueError for an unknown workflow.
    """
    unknown = set(workflows) - set(WORKFLOWS)
    if unknown:
        raise ValueError(f"unknown workflows {sorted(unknown)}; known: {WORKFLOWS}")
    source = cross_mount_from or f"{repo}-mount-source"
    session = Session(
        base_url.rstrip("/"),
        credentials=credentials,
        scopes=[f"repository:{name}:pull,push,delete" for name in (repo, source)],
    )
    steps: dict[str, Callable[[Recorder], None]] = {
        "pull": pull,
        "push": lambda rec: push(rec, source),
        "discovery": discovery,
        "management": management,
    }
    results: list[CheckResult] = []
    for workflow in WORKFLOWS:
        if workflow in workflows:
            recorder = Recorder(session, repo, workflow)
            steps[workflow](recorder)
            results += recorder.results
    return results


def compare(bare: list[CheckResult], ours: list[CheckResult]) -> list[str]:
    """The checks (``<workflow>: <name>``) that pass in ``bare`` but fail in ``ours`` or
    are missing from it, in ``bare``'s order."""
    passed = {(r.workflow, r.name) for r in ours if r.passed}
    return [
        f"{r.workflow}: {r.name}" for r in bare if r.passed and (r.workflow, r.name) not in passed
    ]
