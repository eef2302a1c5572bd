"""The default seccomp profile and capabilities, enforced by crun on the real kernel.

Each test runs a throw-away container from a hand-made bundle: a busybox rootfs owned by the
container's root, ``config.json`` from ``crun spec`` with a user namespace (0 -> 1000000000,
65536 ids), Docker's default capabilities, no_new_privs and :func:`default_profile`. Needs
root, ``crun`` and Debian's ``busybox-static`` (``apt-get install -y crun busybox-static``).
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dockyard.core.capabilities import DEFAULT_CAPABILITIES, bitmask
from dockyard.runtime.seccomp import default_profile

BUSYBOX = Path("/bin/busybox")
CRUN = shutil.which("crun")
HOST_ID = 1_000_000_000
ID_COUNT = 65536
CGROUP_ROOT = Path("/sys/fs/cgroup")
CGROUP_PARENT = "dyseccomptest"

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    pytest.mark.skipif(
        CRUN is None or not BUSYBOX.is_file(),
        reason="needs crun and busybox-static (apt-get install -y crun busybox-static)",
    ),
]

Run = Callable[..., "subprocess.CompletedProcess[str]"]


@pytest.fixture(scope="module")
def hybrid_cgroups_ready() -> None:
    """crun refuses hybrid cgroups while cgroup2 still lists a controller (HOST-NOTES.md):
    bind hugetlb to its v1 hierarchy if nobody has yet. Idempotent."""
    controllers = CGROUP_ROOT / "unified" / "cgroup.controllers"
    if controllers.is_file() and "hugetlb" in controllers.read_text().split():
        target = CGROUP_ROOT / "hugetlb"
        target.mkdir(exist_ok=True)
        subprocess.run(
            ["mount", "-t", "cgroup", "-o", "hugetlb", "cgroup", str(target)], check=True
        )


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bundle directory holding ``rootfs``, shared by the module's containers.

    crun looks the root path up from inside the user namespace, where directories that
    host root owns with mode 0700 (pytest's base directory) are closed ("make `...`
    private: Permission denied"). So the bundle is 0755 and the rootfs is named relative
    to it.
    """
    bundle = tmp_path_factory.mktemp("seccomp-kernel")
    bundle.chmod(0o755)
    root = bundle / "rootfs"
    for name in ("bin", "proc", "dev", "sys", "tmp", "etc", "root"):
        (root / name).mkdir(parents=True)
    # A copy, not a link: the chown below must not touch the host's busybox.
    shutil.copy2(BUSYBOX, root / "bin" / "busybox")
    applets = subprocess.run(
        [str(BUSYBOX), "--list"], check=True, capture_output=True, text=True
    ).stdout.split()
    for applet in applets:
        if applet != "busybox":
            (root / "bin" / applet).symlink_to("busybox")
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (root / "etc" / "group").write_text("root:x:0:\n")
    # Owned by the container's root, as an image unpacked for this user namespace would be.
    for path in (root, *root.rglob("*")):
        os.lchown(path, HOST_ID, HOST_ID)
    return bundle


@pytest.fixture(scope="module")
def spec_template(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    where = tmp_path_factory.mktemp("crun-spec")
    subprocess.run(["crun", "spec"], cwd=where, check=True, capture_output=True)
    template: dict[str, Any] = json.loads((where / "config.json").read_text())
    return template


def _config(
    template: dict[str, Any], cid: str, args: tuple[str, ...], *, seccomp: bool
) -> dict[str, Any]:
    config = copy.deepcopy(template)
    caps = list(DEFAULT_CAPABILITIES)
    config["process"].update(
        terminal=False,
        args=list(args),
        noNewPrivileges=True,
        capabilities={
            "bounding": caps,
            "effective": caps,
            "permitted": caps,
            "inheritable": [],
            "ambient": [],
        },
    )
    # Shared by the module's tests, so read-only; each container writes to its own /tmp.
    config["root"] = {"path": "rootfs", "readonly": True}
    config["mounts"].append(
        {
            "destination": "/tmp",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "nodev", "mode=1777", "size=16m"],
        }
    )
    linux = config["linux"]
    linux["namespaces"].append({"type": "user"})
    linux["uidMappings"] = [{"containerID": 0, "hostID": HOST_ID, "size": ID_COUNT}]
    linux["gidMappings"] = [{"containerID": 0, "hostID": HOST_ID, "size": ID_COUNT}]
    linux["cgroupsPath"] = f"/{CGROUP_PARENT}/{cid}"
    if seccomp:
        linux["seccomp"] = default_profile()
    return config


def _remove_empty_cgroup_parents() -> None:
    for parent in CGROUP_ROOT.glob(f"*/{CGROUP_PARENT}"):
        # Still busy if another run of these tests has a container there; it will clean up.
        with contextlib.suppress(OSError):
            parent.rmdir()


@pytest.fixture
def run_container(
    hybrid_cgroups_ready: None,
    bundle: Path,
    spec_template: dict[str, Any],
    tmp_path: Path,
) -> Iterator[Run]:
    """``run(*args, seccomp=True)`` runs ``args`` in a new container and waits for it."""
    state = tmp_path / "crun-state"
    started: list[str] = []

    def run(*args: str, seccomp: bool = True) -> subprocess.CompletedProcess[str]:
        cid = f"dyseccomp-{uuid.uuid4().hex[:12]}"
        config = tmp_path / f"{cid}.json"
        config.write_text(json.dumps(_config(spec_template, cid, args, seccomp=seccomp)))
        started.append(cid)
        return subprocess.run(
            [
                "crun",
                f"--root={state}",
                "--cgroup-manager=cgroupfs",
                "run",
                f"--bundle={bundle}",
                f"--config={config}",
                cid,
            ],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    yield run
    for cid in started:
        subprocess.run(
            ["crun", f"--root={state}", "delete", "-f", cid], capture_output=True, check=False
        )
    _remove_empty_cgroup_parents()


def _status(text: str) -> dict[str, str]:
    fields = (line.split(":", 1) for line in text.splitlines() if ":" in line)
    return {key.strip(): value.strip() for key, value in fields}


def test_status_shows_filter_no_new_privs_and_dockers_capabilities(run_container: Run) -> None:
    result = run_container("cat", "/proc/self/status")
    assert result.returncode == 0, result.stderr
    status = _status(result.stdout)
    assert status["Seccomp"] == "2"  # SECCOMP_MODE_FILTER
    assert status["NoNewPrivs"] == "1"
    expected = bitmask(DEFAULT_CAPABILITIES)
    assert int(status["CapEff"], 16) == expected == 0xA80425FB
    assert int(status["CapPrm"], 16) == expected
    assert int(status["CapBnd"], 16) == expected
    assert int(status["CapInh"], 16) == 0
    assert int(status["CapAmb"], 16) == 0


def test_plain_shell_commands_work(run_container: Run) -> None:
    result = run_container("sh", "-c", "echo ok; ls /; cat /proc/self/status")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "ok"
    assert {"bin", "etc", "proc", "tmp"} <= set(lines)
    assert "Seccomp:\t2" in lines


def test_container_root_is_mapped(run_container: Run) -> None:
    result = run_container("cat", "/proc/self/uid_map")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["0", str(HOST_ID), str(ID_COUNT)]


@pytest.mark.parametrize(
    "args",
    [
        ("unshare", "-U", "true"),
        ("unshare", "-n", "true"),
        ("unshare", "-Un", "true"),
        ("unshare", "-Um", "true"),
        ("unshare", "-p", "-f", "true"),
    ],
    ids=" ".join,
)
def test_creating_namespaces_is_refused(run_container: Run, args: tuple[str, ...]) -> None:
    result = run_container(*args)
    assert result.returncode != 0
    assert "Operation not permitted" in result.stderr


def test_without_the_filter_the_same_unshare_works(run_container: Run) -> None:
    # Control for the test above: an unprivileged process may create a user namespace (and
    # a network namespace inside it), so only seccomp stands in the way.
    result = run_container("unshare", "-Un", "true", seccomp=False)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("script", "reason"),
    [
        ("dmesg", "syslog"),
        ("mount -t tmpfs none /tmp", "mount"),
        ("nsenter -t 1 -n true", "setns"),
        ("swapoff -a", "swapoff"),
    ],
    ids=lambda value: str(value).split()[0],
)
def test_host_level_calls_are_refused(run_container: Run, script: str, reason: str) -> None:
    result = run_container("sh", "-c", script)
    assert result.returncode != 0, f"{reason} was allowed: {result.stdout}"


# Everyday busybox use; each must succeed under the filter. A failure names the syscall
# family the profile is missing.
EVERYDAY = [
    "ls -la / /bin/busybox",
    "cp /bin/busybox /tmp/bb && cmp /bin/busybox /tmp/bb",
    "echo x > /tmp/a && mv /tmp/a /tmp/b && test -f /tmp/b && ! test -e /tmp/a",
    "mkdir -p /tmp/d/e && chmod 700 /tmp/d && test $(stat -c %a /tmp/d) = 700",
    "mkdir /tmp/o && chown 1:2 /tmp/o && test $(stat -c %u:%g /tmp/o) = 1:2",
    "cd /tmp && mkdir t && echo hi > t/f && tar cf t.tar t && rm -r t && tar xf t.tar"
    " && test $(cat t/f) = hi",
    "cd /tmp && echo data > z && gzip z && gunzip z.gz && test $(cat z) = data",
    "wget --help",
    "nc --help",
    "ps",
    "top -bn1",
    "date",
    "sleep 0",
    "usleep 1",
    "id",
    "uname -a",
    "hostname",
    "df /",
    "free",
    "nproc",
    "env",
    "sha256sum /bin/busybox",
    "find /bin -name sh",
    "seq 3 | xargs echo | grep -q '1 2 3'",
    "echo b a | tr ' ' '\\n' | sort | head -n1 | grep -q a",
    "echo a:b | awk -F: '{print $2}' | sed s/b/c/ | grep -q c",
    "yes | head -n 3 | wc -l | grep -q 3",
    "ln -s /bin/busybox /tmp/l && readlink /tmp/l",
    "touch /tmp/t && rm /tmp/t",
    "dd if=/dev/zero of=/tmp/z bs=1k count=4 && test $(stat -c %s /tmp/z) = 4096",
    "truncate -s 1M /tmp/s && fallocate -l 2M /tmp/f",
    "mkfifo /tmp/p && test -p /tmp/p",
    "mknod /tmp/q p && test -p /tmp/q",
    "a=$(echo hi) && test $a = hi",
    "sh -c 'exit 3'; test $? = 3",
    "kill -0 $$",
    "timeout 5 true",
    "renice -n 3 $$",
    "ionice -c 3 true",
    "taskset -p $$",
    "chroot / true",
    "linux32 uname -m | grep -q i686",
    "linux64 true",
    "ip link show lo",
    "ip addr",
    "netstat -an",
    "sync",
]


@pytest.mark.parametrize("script", EVERYDAY)
def test_everyday_busybox_applets_work(run_container: Run, script: str) -> None:
    result = run_container("sh", "-c", script)
    assert result.returncode == 0, f"rc={result.returncode} stderr={result.stderr}"
