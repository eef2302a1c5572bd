"""Push and pull of a 100 MB image through Dockyard against the bare registry, in one run.

    PYTHONPATH=src .venv/bin/python bench/registry_bench.py [--runs 5] [--mb 100] [--layers 4]

Each round makes a new image of random content (``--layers`` layers, ``--mb`` MB in all,
plus its config), so no blob is ever already in a registry, and measures, interleaved
and with the order rotated each round:

- ``bare push`` / ``bare pull``: Dockyard's registry client (``images.registry_client``)
  against a bare ``docker-registry`` on 127.0.0.1 with no authentication, pushing from a
  content store and pulling into a fresh one: the yardstick.
- ``dockyard push`` / ``dockyard pull``: the whole Docker flow on a fresh test instance:
  docker-py's ``push`` of the tenant's image to ``$DOCKYARD_REGISTRY/<namespace>/bench``
  (the controller reads its content store, mints the tenant's tokens and pushes to its
  supervised registry, which checks them) and, after ``docker rmi`` (the blobs leave the
  controller's content store), docker-py's ``pull`` of it back, through the same JSON
  progress stream the docker CLI reads.

Reported: the median seconds and MB/s of each, and Dockyard's share of the bare
registry's throughput (target, issue 6: at least 0.8). The image is loaded into the
tenant with ``docker load`` before its round (not timed). Everything the run made (the
instance, the bare registry, temp dirs) is removed also on failure. Nothing is timed
inside tests.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import platform
import shutil
import statistics
import sys
import tarfile
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dockyard.client.native import NativeClient
from dockyard.images._model import HOST_ARCH, ImageRecord, canonical_json
from dockyard.images._save import save_archive
from dockyard.images.content import ContentStore
from dockyard.images.registry_client import RegistryClient
from dockyard.testing.bare_registry import BareRegistry
from dockyard.testing.cloud import TestCloud

_CHUNK = 1 << 20


def make_image(content: ContentStore, *, total_mb: int, layers: int, tag: str) -> ImageRecord:
    """An image of ``layers`` layers of random files, ``total_mb`` MB in all."""
    diff_ids, sizes = [], []
    per_layer = total_mb * 1_000_000 // layers
    for index in range(layers):
        with content.writer() as writer:
            with tarfile.open(fileobj=_Sink(writer), mode="w|") as tar:
                info = tarfile.TarInfo(f"data/layer{index}.bin")
                info.size = per_layer
                tar.addfile(info, _Random(per_layer))
            blob = writer.commit()
        diff_ids.append(blob.digest)
        sizes.append(blob.size)
    config = canonical_json(
        {
            "architecture": HOST_ARCH,
            "os": "linux",
            "created": "2026-01-01T00:00:00Z",
            "config": {"Cmd": ["true"], "Labels": {"bench": uuid.uuid4().hex}},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": [{"created": "2026-01-01T00:00:00Z"} for _ in diff_ids],
        }
    )
    config_blob = content.ingest([config])
    return ImageRecord(
        config_digest=config_blob.digest,
        config=config,
        diff_ids=tuple(diff_ids),
        layer_sizes=tuple(sizes),
        repo_tags=(tag,),
    )


class _Sink(io.RawIOBase):
    def __init__(self, writer: Any) -> None:
        self._writer = writer

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._writer.write(bytes(data))
        return len(data)


class _Random(io.RawIOBase):
    def __init__(self, size: int) -> None:
        self._left = size

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        n = self._left if size < 0 else min(size, self._left)
        self._left -= n
        return os.urandom(n)


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


@contextlib.contextmanager
def _cloud(work: Path) -> Iterator[TestCloud]:
    cloud = TestCloud.launch(work / "dockyard")
    try:
        yield cloud
    finally:
        cloud.purge()
        print(f"dockyard test instance {cloud.instance} purged", flush=True)


def _consume(stream: Any) -> None:
    for message in stream:
        if "error" in message:
            raise RuntimeError(message["error"])


def _round(
    client: Any,
    bare: BareRegistry,
    repo: str,
    work: Path,
    *,
    round_: int,
    args: argparse.Namespace,
    times: dict[str, list[float]],
) -> None:
    """One round: a new image, both pushes then both pulls, in rotated order."""
    content = ContentStore(work / "content")
    tag = f"r{round_}"
    record = make_image(content, total_mb=args.mb, layers=args.layers, tag=f"{repo}:{tag}")
    archive = work / "image.tar"
    with archive.open("wb") as out:
        save_archive(out, [record], content)
    with archive.open("rb") as data:
        client.images.load(data.read())
    archive.unlink()

    def bare_push() -> None:
        async def go() -> None:
            async with RegistryClient(bare.url) as registry:
                await registry.push("bench/image", tag, record, content)

        asyncio.run(go())

    def bare_pull() -> None:
        target = ContentStore(work / "pulled")

        async def go() -> None:
            async with RegistryClient(bare.url) as registry:
                await registry.pull("bench/image", tag, target)

        asyncio.run(go())

    def dockyard_push() -> None:
        _consume(client.api.push(repo, tag=tag, stream=True, decode=True))

    def dockyard_pull() -> None:
        _consume(client.api.pull(repo, tag=tag, stream=True, decode=True))

    pushes = [("bare push", bare_push), ("dockyard push", dockyard_push)]
    if round_ % 2:
        pushes.reverse()
    for name, step in pushes:
        started = time.perf_counter()
        step()
        times[name].append(time.perf_counter() - started)
    client.images.remove(f"{repo}:{tag}", force=True)  # its blobs leave the store
    pulls = [("bare pull", bare_pull), ("dockyard pull", dockyard_pull)]
    if round_ % 2:
        pulls.reverse()
    for name, step in pulls:
        started = time.perf_counter()
        step()
        times[name].append(time.perf_counter() - started)
    client.images.remove(f"{repo}:{tag}", force=True)
    shutil.rmtree(work, ignore_errors=True)
    print(
        f"round {round_ + 1}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in times.items()),
        flush=True,
    )


def run(args: argparse.Namespace) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {
        "bare push": [],
        "bare pull": [],
        "dockyard push": [],
        "dockyard pull": [],
    }
    with tempfile.TemporaryDirectory(prefix="dyregbench") as tmp:
        work = Path(tmp)
        with BareRegistry(work / "bare") as bare, _cloud(work) as cloud:
            operator = cloud.admin()
            tenant = operator.create_tenant(f"bench{uuid.uuid4().hex[:6]}", user="ann")
            token = tenant["token"]
            namespace = f"bench{uuid.uuid4().hex[:8]}"
            NativeClient(cloud.docker_host, token).claim_namespace(namespace)
            client = cloud.client(token, timeout=600)
            repo = f"{cloud.registry}/{namespace}/bench"
            for round_ in range(args.runs):
                _round(
                    client,
                    bare,
                    repo,
                    work / f"round{round_}",
                    round_=round_,
                    args=args,
                    times=times,
                )
            client.close()
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--mb", type=int, default=100, help="image size in MB (10^6 bytes)")
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--json", action="store_true", help="print the raw times as JSON")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("run as root (the test instance needs it)", file=sys.stderr)
        return 2
    times = run(args)
    print(f"\n{args.mb} MB in {args.layers} layers, {args.runs} runs, {platform.node()}")
    print(f"{'':16}{'median s':>10}{'MB/s':>10}")
    for name, values in times.items():
        median = _median(values)
        print(f"{name:16}{median:10.2f}{args.mb / median:10.0f}")
    for kind in ("push", "pull"):
        share = _median(times[f"bare {kind}"]) / _median(times[f"dockyard {kind}"])
        print(f"dockyard {kind} at {share:.2f} of the bare registry's throughput (target 0.8)")
    if args.json:
        print(json.dumps(times))
    return 0


if __name__ == "__main__":
    sys.exit(main())
