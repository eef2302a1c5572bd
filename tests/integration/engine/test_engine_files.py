"""docker cp, export and diff through docker-py and the docker CLI, on a real cloud.

A host canary file (outside every container) must come out of every test with the same
content and mtime; hostile archives must be refused with 400 and leave the container's
filesystem exactly as it was (``docker diff`` unchanged).
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import io
import json
import os
import socket
import subprocess
import tarfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from dockyard.core.identity import TOKEN_HEADER
from dockyard.testing.cloud import DockerCli, TestCloud

GO_DIR = 1 << 31
GO_SYMLINK = 1 << 27


@pytest.fixture
def canary(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "host-canary"
    path.write_text("host canary: never to be read or written through a container\n")
    os.utime(path, (1_000_000_000, 1_000_000_000))
    before = (path.read_bytes(), os.stat(path).st_mtime_ns)
    yield path
    assert (path.read_bytes(), os.stat(path).st_mtime_ns) == before


def run_detached(client: docker.DockerClient, cleanup: list[str], script: str, **kw: Any) -> Any:
    container = client.containers.run("busybox", ["sh", "-c", script], detach=True, **kw)
    cleanup.append(container.id)
    return container


def created(client: docker.DockerClient, cleanup: list[str], script: str, **kw: Any) -> Any:
    container = client.containers.create("busybox", ["sh", "-c", script], **kw)
    cleanup.append(container.id)
    return container


def wait_for(predicate: Any, what: str, deadline: float = 30.0) -> None:
    """Poll until ``predicate()`` (a bound on waiting, not a timing assertion)."""
    end = time.monotonic() + deadline
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


def ready(container: Any, path: str = "/ready") -> None:
    def exists() -> bool:
        try:
            container.get_archive(path)
        except docker.errors.NotFound:
            return False
        return True

    wait_for(exists, f"{path} in {container.short_id}")


def tar_of(*entries: tuple[tarfile.TarInfo, bytes | None]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def entry(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", **attrs: Any) -> tuple:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    info.mtime = 1_600_000_000
    if kind == tarfile.REGTYPE:
        info.size = len(data)
    for key, value in attrs.items():
        setattr(info, key, value)
    return info, data if kind == tarfile.REGTYPE else None


def untar(chunks: Iterator[bytes]) -> tarfile.TarFile:
    return tarfile.open(fileobj=io.BytesIO(b"".join(chunks)))


def archive_children(cloud: TestCloud) -> list[int]:
    """Pids of this cloud's archive child processes still alive."""
    marker = str(cloud.root).encode()
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(OSError):
                cmdline = (proc / "cmdline").read_bytes()
                if b"dockyard.runtime.archive_child" in cmdline and marker in cmdline:
                    found.append(int(proc.name))
    return found


def mounts_under(root: Path) -> list[str]:
    lines = Path("/proc/self/mountinfo").read_text().splitlines()
    return sorted(line.split()[4] for line in lines if line.split()[4].startswith(str(root)))


def raw_request(cloud: TestCloud, head: str, body: bytes = b"") -> socket.socket:
    """Send ``head`` (a request line and headers) as the cloud's first tenant, and ``body``."""
    line, _, rest = head.partition("\r\n")
    head = f"{line}\r\n{TOKEN_HEADER}: {cloud.token}\r\n{rest}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(str(cloud.layout.docker_socket))
    sock.sendall(head.encode() + body)
    return sock


# docker-py ---------------------------------------------------------------------------


def test_put_then_get_archive_with_docker_stat(
    client: docker.DockerClient, cleanup: list[str]
) -> None:
    container = run_detached(client, cleanup, "touch /ready; sleep 300")
    ready(container)
    data = tar_of(
        entry("dir", tarfile.DIRTYPE, mode=0o750),
        entry("dir/hello.txt", data=b"hello\n", uid=1000, gid=1000),
        entry("dir/link", tarfile.SYMTYPE, linkname="hello.txt"),
    )
    assert container.put_archive("/tmp", data) is True

    stream, found = container.get_archive("/tmp/dir/hello.txt")
    assert found["name"] == "hello.txt" and found["size"] == 6 and found["mode"] == 0o644
    assert found["linkTarget"] == "" and found["mtime"].startswith("2020-09-13T12:26:40")
    tar = untar(stream)
    (member,) = tar.getmembers()
    assert (member.name, member.uid, member.gid) == ("hello.txt", 0, 0)  # the container's root
    assert tar.extractfile(member).read() == b"hello\n"  # type: ignore[union-attr]

    stream, found = container.get_archive("/tmp/dir")
    assert found["mode"] == GO_DIR | 0o750
    assert sorted(untar(stream).getnames()) == ["dir", "dir/hello.txt", "dir/link"]
    stream, _ = container.get_archive("/tmp/dir/.")
    assert sorted(untar(stream).getnames()) == [".", "./hello.txt", "./link"]

    _, found = container.get_archive("/tmp/dir/link")
    assert found["mode"] == GO_SYMLINK | 0o777 and found["linkTarget"] == "/tmp/dir/hello.txt"

    # copyUIDGID keeps the archive's ids (inside the tenant's range).
    data = tar_of(entry("owned", data=b"x", uid=1000, gid=2000))
    response = client.api.request(
        "PUT",
        client.api._url("/containers/{0}/archive", container.id),
        params={"path": "/tmp", "copyUIDGID": "1"},
        data=data,
    )
    assert response.status_code == 200
    member = untar(container.get_archive("/tmp/owned")[0]).getmembers()[0]
    assert (member.uid, member.gid) == (1000, 2000)


def test_files_copied_into_a_created_container_are_seen_by_it(
    client: docker.DockerClient, cleanup: list[str], cloud: TestCloud
) -> None:
    script = "stat -c '%u:%g %a' /srv/app.conf; cat /srv/app.conf; cat /data/in-volume"
    container = created(client, cleanup, script, volumes=[f"vol-{uuid.uuid4().hex[:8]}:/data"])
    container.put_archive(
        "/", tar_of(entry("srv", tarfile.DIRTYPE), entry("srv/app.conf", data=b"k=v\n", mode=0o600))
    )
    container.put_archive("/data", tar_of(entry("in-volume", data=b"volume!\n")))
    container.start()
    assert container.wait(timeout=30)["StatusCode"] == 0
    assert container.logs().decode() == "0:0 600\nk=v\nvolume!\n"
    # On the host the file belongs to the tenant's base uid (the container's root), in the
    # container's upper dir.
    upper = cloud.layout.containers_dir / container.id / "fs" / "upper"
    assert os.stat(upper / "srv" / "app.conf").st_uid == os.stat(upper).st_uid
    assert os.stat(upper).st_uid >= cloud.uid_range_start


def test_copy_into_an_exited_container_and_start_it_again(
    client: docker.DockerClient, cleanup: list[str]
) -> None:
    container = run_detached(client, cleanup, "cat /tmp/note 2>/dev/null || echo none")
    assert container.wait(timeout=30)["StatusCode"] == 0
    container.put_archive("/tmp", tar_of(entry("note", data=b"from cp\n")))
    container.start()
    container.wait(timeout=30)
    assert container.logs().decode() == "none\nfrom cp\n"


def test_a_paused_container_can_be_copied_from_and_to(
    client: docker.DockerClient, cleanup: list[str]
) -> None:
    container = run_detached(client, cleanup, "echo paused > /state; touch /ready; sleep 300")
    ready(container)
    container.pause()
    try:
        assert container.put_archive("/tmp", tar_of(entry("while-paused", data=b"p"))) is True
        stream, _ = container.get_archive("/state")
        assert untar(stream).extractfile("state").read() == b"paused\n"  # type: ignore[union-attr]
    finally:
        container.unpause()


def test_symlinks_in_the_container_pointing_out_never_reach_the_host(
    client: docker.DockerClient, cleanup: list[str], canary: Path
) -> None:
    container = run_detached(
        client,
        cleanup,
        "ln -s / /escape; ln -s ../../.. /up; mkdir -p /d; ln -s ../../../../.. /d/x;"
        f" ln -s {canary} /direct; touch /ready; sleep 300",
    )
    ready(container)
    secret = canary.read_bytes()
    for path in (f"/escape{canary}", f"/up{canary}", f"/d/x{canary}", "/direct", "/direct/"):
        try:
            stream, _ = container.get_archive(path)
        except docker.errors.NotFound as exc:
            assert f"Could not find the file {path} in container" in str(exc)
            continue
        # /direct itself is the symlink, archived as a link, never as the host's file.
        member = untar(stream).getmembers()[0]
        assert member.issym() and member.linkname == str(canary)
    stream, found = container.get_archive("/escape/")
    assert found["name"] == "escape"
    body = b"".join(stream)
    assert secret not in body
    assert "escape/bin/busybox" in untar(iter([body])).getnames()


def hostile_archives(canary: Path) -> dict[str, bytes]:
    target = str(canary).lstrip("/")
    return {
        "symlink to / then a file through it": tar_of(
            entry("escape", tarfile.SYMTYPE, linkname="/"), entry(f"escape/{target}", data=b"PWNED")
        ),
        "dot-dot names": tar_of(entry(f"../../../../../../../../{target}", data=b"PWNED")),
        "absolute names": tar_of(entry(f"/{target}", data=b"PWNED")),
        "hard link to the host canary": tar_of(entry("h", tarfile.LNKTYPE, linkname=str(canary))),
        "hard link to /etc/passwd": tar_of(entry("h", tarfile.LNKTYPE, linkname="/etc/passwd")),
        "character device": tar_of(entry("kmem", tarfile.CHRTYPE, devmajor=1, devminor=2)),
        "block device": tar_of(entry("sda", tarfile.BLKTYPE, devmajor=8, devminor=0)),
        "setuid binary": tar_of(entry("sh-suid", data=b"\x7fELF", mode=0o4755)),
        "good file then a device": tar_of(
            entry("innocent", data=b"x"), entry("null", tarfile.CHRTYPE, devmajor=1, devminor=3)
        ),
        "gzip of a device": gzip.compress(
            tar_of(entry("zero", tarfile.CHRTYPE, devmajor=1, devminor=5))
        ),
        "truncated": tar_of(entry("big", data=b"x" * 50_000))[:4000],
    }


def test_hostile_archives_are_refused_and_leave_nothing(
    client: docker.DockerClient, cleanup: list[str], canary: Path
) -> None:
    container = run_detached(client, cleanup, "touch /ready; sleep 300")
    ready(container)
    before = container.diff()
    for name, data in hostile_archives(canary).items():
        for path in ("/", "/tmp"):
            with pytest.raises(docker.errors.APIError) as info:
                container.put_archive(path, data)
            assert info.value.status_code == 400, name
            assert info.value.explanation, name
        assert container.diff() == before, name
    with pytest.raises(docker.errors.APIError) as info:
        container.put_archive("/", tar_of(entry("dev2", tarfile.BLKTYPE, devmajor=8, devminor=0)))
    assert "device nodes are not allowed" in info.value.explanation


def test_put_errors_are_docker_errors_and_leave_nothing(
    client: docker.DockerClient, cleanup: list[str], api: docker.APIClient
) -> None:
    container = run_detached(
        client, cleanup, "touch /ready; sleep 300", name=f"cp-{uuid.uuid4().hex[:8]}"
    )
    ready(container)
    before = container.diff()
    data = tar_of(entry("f", data=b"x"))
    with pytest.raises(docker.errors.NotFound) as missing:
        container.put_archive("/nope", data)
    assert missing.value.explanation == f"Could not find the file /nope in container {container.id}"
    with pytest.raises(docker.errors.APIError) as not_dir:
        container.put_archive("/etc/passwd", data)
    assert not_dir.value.status_code == 400
    assert not_dir.value.explanation == "extraction point is not a directory"
    url = api._url("/containers/{0}/archive", container.name)
    response = api.request("PUT", url, params={"path": ""}, data=data)
    assert response.status_code == 400 and "path cannot be empty" in response.json()["message"]
    with pytest.raises(docker.errors.NotFound):
        container.get_archive("/etc/passwd/deeper")
    response = api.request("HEAD", url, params={"path": "/nope"})
    assert response.status_code == 404 and "X-Docker-Container-Path-Stat" not in response.headers
    response = api.request("HEAD", url, params={"path": "/etc/"})
    assert response.status_code == 200 and "X-Docker-Container-Path-Stat" in response.headers
    assert container.diff() == before


def test_unknown_containers_are_404_everywhere(api: docker.APIClient) -> None:
    for method, path in (
        ("HEAD", "/containers/{0}/archive"),
        ("GET", "/containers/{0}/archive"),
        ("PUT", "/containers/{0}/archive"),
        ("GET", "/containers/{0}/export"),
        ("GET", "/containers/{0}/changes"),
    ):
        url = api._url(path, "no-such-container")
        response = api.request(method, url, params={"path": "/"})
        assert response.status_code == 404, (method, path)
        if method != "HEAD":
            assert response.json() == {"message": "No such container: no-such-container"}


def test_read_only_rootfs_and_volume(client: docker.DockerClient, cleanup: list[str]) -> None:
    volume = f"ro-{uuid.uuid4().hex[:8]}"
    container = created(
        client, cleanup, "true", read_only=True, volumes=[f"{volume}:/ro:ro", f"{volume}-rw:/rw"]
    )
    data = tar_of(entry("f", data=b"x"))
    for path, message in (
        ("/tmp", "container rootfs is marked read-only"),
        ("/ro", "mounted volume is marked read-only"),
    ):
        with pytest.raises(docker.errors.APIError) as info:
            container.put_archive(path, data)
        assert info.value.status_code == 403 and info.value.explanation == message
    assert container.put_archive("/rw", data) is True


def test_export_and_diff(client: docker.DockerClient, cleanup: list[str]) -> None:
    container = run_detached(
        client,
        cleanup,
        "echo hi > /tmp/x; rm /etc/passwd; mkdir -p /new/d; echo v > /data/inside; touch /ready",
        volumes=[f"vol-{uuid.uuid4().hex[:8]}:/data"],
    )
    container.wait(timeout=30)
    changes = {(c["Path"], c["Kind"]) for c in container.diff()}
    assert changes == {
        ("/data", 1),  # the volume's mount point, made in the container
        ("/etc", 0),
        ("/etc/passwd", 2),
        ("/new", 1),
        ("/new/d", 1),
        ("/tmp", 0),
        ("/tmp/x", 1),
        ("/ready", 1),
    }
    tar = untar(container.export())
    names = set(tar.getnames())
    assert {"tmp/x", "new/d", "bin/busybox", "data"} <= names
    assert "etc/passwd" not in names and "data/inside" not in names  # volumes left out
    assert tar.extractfile("tmp/x").read() == b"hi\n"  # type: ignore[union-attr]
    fresh = created(client, cleanup, "true")
    assert fresh.diff() is None  # Docker's null for no changes


# the docker CLI ----------------------------------------------------------------------


def test_docker_cp_both_ways(
    cli: DockerCli, client: docker.DockerClient, cleanup: list[str], tmp_path: Path
) -> None:
    name = f"cp-{uuid.uuid4().hex[:8]}"
    cleanup.append(name)
    script = "cat /opt/a /opt/sub/b /opt/dir/a /opt/file"
    cli.run("create", "--name", name, "busybox", "sh", "-c", script)
    local = tmp_path / "dir"
    (local / "sub").mkdir(parents=True)
    (local / "a").write_text("a\n")
    (local / "sub" / "b").write_text("b\n")
    (tmp_path / "file").write_text("f\n")
    # Into a stopped container. /opt does not exist: it becomes a copy of dir (Docker's
    # rule); the second copy lands inside the now existing /opt.
    cli.run("cp", str(local), f"{name}:/opt/")
    cli.run("cp", str(local), f"{name}:/opt")
    cli.run("cp", str(tmp_path / "file"), f"{name}:/opt/file")
    assert cli.run("start", "-a", name).stdout == "a\nb\na\nf\n"

    out = tmp_path / "out"
    out.mkdir()
    cli.run("cp", f"{name}:/opt/dir", str(out / "copy"))
    assert (out / "copy" / "sub" / "b").read_text() == "b\n"
    cli.run("cp", f"{name}:/opt/dir/.", str(out))
    assert (out / "a").read_text() == "a\n" and (out / "sub" / "b").is_file()
    cli.run("cp", f"{name}:/opt/file", str(out / "renamed"))
    assert (out / "renamed").read_text() == "f\n"
    result = cli.run("cp", f"{name}:/opt/nope", str(out), check=False)
    assert result.returncode != 0 and "/opt/nope" in result.stderr
    stream = subprocess.run(
        ["docker", "cp", f"{name}:/opt/file", "-"],
        env=cli.cloud.env(),
        capture_output=True,
        check=True,
    ).stdout
    assert untar(iter([stream])).getnames() == ["file"]
    diff = cli.run("diff", name).stdout.splitlines()
    assert "A /opt/dir/sub/b" in diff and "A /opt/file" in diff


def test_docker_cp_of_a_hostile_tar_from_stdin_fails(
    cli: DockerCli, cleanup: list[str], canary: Path
) -> None:
    name = f"cp-{uuid.uuid4().hex[:8]}"
    cleanup.append(name)
    cli.run("create", "--name", name, "busybox", "true")
    evil = hostile_archives(canary)["symlink to / then a file through it"]
    result = subprocess.run(
        ["docker", "cp", "-", f"{name}:/tmp"],
        input=evil,
        env=cli.cloud.env(),
        capture_output=True,
        check=False,
    )
    assert result.returncode != 0
    assert b"symlink made by the archive" in result.stderr


# clients that go away ----------------------------------------------------------------


def test_a_client_killed_mid_download_leaves_everything_healthy(
    client: docker.DockerClient, cleanup: list[str], cloud: TestCloud, api: docker.APIClient
) -> None:
    container = run_detached(
        client,
        cleanup,
        "dd if=/dev/zero of=/big bs=1M count=64 2>/dev/null; touch /ready; sleep 300",
    )
    ready(container)
    mounts_before = mounts_under(cloud.root)
    sock = raw_request(
        cloud,
        f"GET /v1.41/containers/{container.id}/archive?path=/big HTTP/1.1\r\nHost: docker\r\n\r\n",
    )
    received = sock.recv(65536)
    assert b" 200 " in received.split(b"\r\n", 1)[0]
    header = next(
        line
        for line in received.split(b"\r\n")
        if line.lower().startswith(b"x-docker-container-path-stat")
    )
    assert json.loads(base64.b64decode(header.split(b":", 1)[1].strip()))["size"] == 64 << 20
    sock.close()  # gone after the first bytes of 64 MiB
    wait_for(lambda: not archive_children(cloud), "the archive child to be gone")
    assert api.ping()
    stream, found = container.get_archive("/ready")
    assert found["size"] == 0 and untar(stream).getnames() == ["ready"]
    assert mounts_under(cloud.root) == mounts_before


def test_a_client_killed_mid_upload_writes_nothing(
    client: docker.DockerClient, cleanup: list[str], cloud: TestCloud, api: docker.APIClient
) -> None:
    container = run_detached(client, cleanup, "touch /ready; sleep 300")
    ready(container)
    before = container.diff()
    data = tar_of(entry("partial-upload", data=b"z" * (4 << 20)))
    sock = raw_request(
        cloud,
        f"PUT /v1.41/containers/{container.id}/archive?path=/tmp HTTP/1.1\r\nHost: docker\r\n"
        f"Content-Type: application/x-tar\r\nContent-Length: {len(data)}\r\n\r\n",
        data[: 1 << 20],
    )
    time.sleep(0.2)  # let the first megabyte travel; correctness does not depend on it
    sock.close()
    wait_for(lambda: not archive_children(cloud), "the archive child to be gone")
    assert api.ping()
    with pytest.raises(docker.errors.NotFound):
        container.get_archive("/tmp/partial-upload")
    assert container.diff() == before
    assert container.put_archive("/tmp", tar_of(entry("after", data=b"ok"))) is True


def test_removing_a_container_aborts_a_stalled_download(
    client: docker.DockerClient, cleanup: list[str], cloud: TestCloud, api: docker.APIClient
) -> None:
    container = run_detached(
        client,
        cleanup,
        "dd if=/dev/zero of=/big bs=1M count=64 2>/dev/null; touch /ready; sleep 300",
    )
    ready(container)
    sock = raw_request(
        cloud,
        f"GET /v1.41/containers/{container.id}/archive?path=/big HTTP/1.1\r\nHost: docker\r\n\r\n",
    )
    try:
        sock.recv(4096)  # started, then never read again: the pipes fill up and stall
        wait_for(lambda: bool(archive_children(cloud)), "the archive child")
        container.remove(force=True)
        wait_for(lambda: not archive_children(cloud), "the archive child to be aborted")
        dirs = (cloud.layout.containers_dir / container.id, cloud.layout.bundles_dir / container.id)
        wait_for(lambda: not any(d.exists() for d in dirs), "the bundle to be removed")
    finally:
        sock.close()
    assert api.ping()
