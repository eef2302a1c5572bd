"""Where a container's volumes and tmpfs mounts come from (controller.mounts)."""

from __future__ import annotations

import pytest

from dockyard.controller import mounts
from dockyard.controller.mounts import plan_mounts
from dockyard.core.errors import InvalidArgument, PermissionDenied
from dockyard.core.ids import is_full_id
from dockyard.core.models import ContainerConfig, HostConfig, MountRequest
from dockyard.core.protocol import MountSpec

NO_IMAGE_VOLUMES = ContainerConfig(image="app")


def plan(
    *,
    binds: tuple[str, ...] = (),
    mounts_: tuple[MountRequest, ...] = (),
    tmpfs: dict[str, str] | None = None,
    volumes: tuple[str, ...] = (),
) -> tuple[dict[str, MountSpec], list[str]]:
    specs, anonymous = plan_mounts(
        ContainerConfig(image="app", volumes=volumes),
        HostConfig(binds=binds, mounts=mounts_, tmpfs=tmpfs or {}),
    )
    by_target = {m.target: m for m in specs}
    assert len(by_target) == len(specs)
    return by_target, anonymous


def test_public_surface() -> None:
    assert mounts.__all__ == ["plan_mounts"]


def test_nothing_to_mount() -> None:
    assert plan_mounts(NO_IMAGE_VOLUMES, HostConfig()) == ([], [])


def test_named_volume_binds() -> None:
    got, anonymous = plan(binds=("data:/data", "logs:/var/log:ro", "cache:/cache:nocopy"))
    assert got["/data"] == MountSpec(type="volume", source="data", target="/data")
    assert got["/var/log"] == MountSpec(
        type="volume", source="logs", target="/var/log", read_only=True
    )
    assert got["/cache"].copy_up is False
    assert anonymous == []


@pytest.mark.parametrize("mode", ["rw", "z", "Z", "ro,z", "rw,nocopy", "private", "rprivate"])
def test_accepted_bind_modes(mode: str) -> None:
    got, _ = plan(binds=(f"data:/data:{mode}",))
    assert got["/data"].read_only == ("ro" in mode.split(","))
    assert got["/data"].copy_up == ("nocopy" not in mode)


@pytest.mark.parametrize("mode", ["xx", "ro,rw", "rw,bogus", "sharedx"])
def test_invalid_bind_modes(mode: str) -> None:
    with pytest.raises(InvalidArgument, match="invalid mode"):
        plan(binds=(f"data:/data:{mode}",))


def test_too_many_fields() -> None:
    with pytest.raises(InvalidArgument, match="invalid volume specification"):
        plan(binds=("a:/b:ro:extra",))


def test_bare_path_is_an_anonymous_volume() -> None:
    got, anonymous = plan(binds=("/scratch",))
    spec = got["/scratch"]
    assert spec.type == "volume"
    assert is_full_id(spec.source)
    assert anonymous == [spec.source]


@pytest.mark.parametrize(
    "source", ["/etc", "/", "./here", "../up", "~/home", "/var/run/docker.sock"]
)
def test_host_path_binds_are_refused(source: str) -> None:
    with pytest.raises(PermissionDenied) as info:
        plan(binds=(f"{source}:/mnt",))
    assert f"bind mount of host path {source!r} is not allowed on Dockyard" in info.value.message
    assert "use a named volume" in info.value.message


@pytest.mark.parametrize("mode", ["shared", "rshared", "slave", "rslave", "ro,rshared"])
def test_shared_or_slave_propagation_is_refused(mode: str) -> None:
    propagation = mode.rsplit(",", maxsplit=1)[-1]
    with pytest.raises(PermissionDenied) as info:
        plan(binds=(f"data:/data:{mode}",))
    assert info.value.message == (
        f"mount propagation {propagation!r} is not allowed on Dockyard: mounts never "
        "propagate between a container and the host"
    )
    with pytest.raises(PermissionDenied, match=f"mount propagation {propagation!r}"):
        plan(
            mounts_=(MountRequest(type="volume", source="d", target="/d", propagation=propagation),)
        )


def test_private_propagation_in_mounts_is_fine() -> None:
    for propagation in ("", "private", "rprivate"):
        plan(
            mounts_=(MountRequest(type="volume", source="d", target="/d", propagation=propagation),)
        )
    with pytest.raises(InvalidArgument, match="invalid mount propagation"):
        plan(mounts_=(MountRequest(type="volume", source="d", target="/d", propagation="x"),))


@pytest.mark.parametrize(
    ("options", "what"),
    [
        ({"type": "none", "o": "bind", "device": "/etc"}, "volume option type=none"),
        ({"o": "bind", "device": "/etc"}, "volume option o=bind"),
        ({"device": "/dev/sda"}, "volume option device=/dev/sda"),
        ({"type": "nfs", "o": "addr=10.0.0.1", "device": ":/export"}, "volume option type=nfs"),
    ],
)
def test_volume_options_that_mount_host_things_are_refused(
    options: dict[str, str], what: str
) -> None:
    """``--mount type=volume,volume-opt=...``: the host would mount what the tenant names."""
    mount = MountRequest(
        type="volume", source="d", target="/d", volume_driver="local", volume_options=options
    )
    with pytest.raises(PermissionDenied) as info:
        plan(mounts_=(mount,))
    assert info.value.message.startswith(f"{what} is not allowed on Dockyard: a volume is ")


def test_other_volume_drivers_and_options_are_invalid() -> None:
    with pytest.raises(InvalidArgument, match="volume driver 'nfs' is not supported"):
        plan(mounts_=(MountRequest(type="volume", source="d", target="/d", volume_driver="nfs"),))
    odd = MountRequest(type="volume", source="d", target="/d", volume_options={"size": "1g"})
    with pytest.raises(InvalidArgument, match="takes no options"):
        plan(mounts_=(odd,))


def test_bind_mounts_in_mounts_are_refused() -> None:
    with pytest.raises(PermissionDenied, match="bind mount of host path '/etc'"):
        plan(mounts_=(MountRequest(type="bind", source="/etc", target="/mnt"),))


@pytest.mark.parametrize("bind", ["bad name:/data", "_x:/data", "a/b:/data"])
def test_invalid_volume_names(bind: str) -> None:
    with pytest.raises(InvalidArgument, match="Invalid volume name"):
        plan(binds=(bind,))


@pytest.mark.parametrize("bind", ["data:relative", "data:", "relative"])
def test_mount_points_must_be_absolute(bind: str) -> None:
    with pytest.raises(InvalidArgument, match="must be absolute"):
        plan(binds=(bind,))


@pytest.mark.parametrize("bind", ["data:/", "/", "data:/./", "data:/a/.."])
def test_destination_root_is_refused(bind: str) -> None:
    with pytest.raises(InvalidArgument, match="destination can't be '/'"):
        plan(binds=(bind,))


def test_mount_points_are_normalised() -> None:
    got, _ = plan(binds=("data:/data/./sub/",))
    assert list(got) == ["/data/sub"]


def test_mounts_volume_and_tmpfs() -> None:
    got, anonymous = plan(
        mounts_=(
            MountRequest(type="volume", source="data", target="/data", read_only=True),
            MountRequest(type="volume", source="", target="/anon", volume_nocopy=True),
            MountRequest(type="tmpfs", target="/run", options=("size=1048576", "mode=1777")),
        )
    )
    assert got["/data"] == MountSpec(type="volume", source="data", target="/data", read_only=True)
    assert got["/anon"].copy_up is False
    assert anonymous == [got["/anon"].source]
    assert is_full_id(got["/anon"].source)
    assert got["/run"] == MountSpec(
        type="tmpfs", target="/run", options=("size=1048576", "mode=1777")
    )


def test_unsupported_mount_type() -> None:
    with pytest.raises(InvalidArgument, match="'npipe' is not supported"):
        plan(mounts_=(MountRequest(type="npipe", target="/x"),))


def test_invalid_volume_name_in_mounts() -> None:
    with pytest.raises(InvalidArgument, match="Invalid volume name"):
        plan(mounts_=(MountRequest(type="volume", source="../x", target="/x"),))


def test_tmpfs_map() -> None:
    got, anonymous = plan(tmpfs={"/run": "size=64m,mode=1777", "/tmp": ""})
    assert got["/run"] == MountSpec(type="tmpfs", target="/run", options=("size=64m", "mode=1777"))
    assert got["/tmp"] == MountSpec(type="tmpfs", target="/tmp")
    assert anonymous == []


def test_image_volumes_become_anonymous_volumes_unless_mounted() -> None:
    got, anonymous = plan(
        binds=("data:/data/",), tmpfs={"/tmp": ""}, volumes=("/data", "/cache", "/tmp")
    )
    assert got["/data"].source == "data"
    assert got["/tmp"].type == "tmpfs"
    assert got["/cache"].type == "volume"
    assert got["/cache"].copy_up is True
    assert anonymous == [got["/cache"].source]


def test_every_anonymous_volume_gets_its_own_name() -> None:
    got, anonymous = plan(binds=("/a", "/b"), volumes=("/c",))
    assert len(set(anonymous)) == 3
    assert {m.source for m in got.values()} == set(anonymous)


@pytest.mark.parametrize(
    ("binds", "mounts_", "tmpfs"),
    [
        (("a:/data", "b:/data"), (), {}),
        (("a:/data",), (MountRequest(type="tmpfs", target="/data"),), {}),
        (("a:/data",), (), {"/data/": ""}),
        ((), (MountRequest(type="volume", target="/x"),), {"/x": ""}),
    ],
)
def test_duplicate_mount_points(
    binds: tuple[str, ...], mounts_: tuple[MountRequest, ...], tmpfs: dict[str, str]
) -> None:
    with pytest.raises(InvalidArgument, match=r"^Duplicate mount point: /"):
        plan(binds=binds, mounts_=mounts_, tmpfs=tmpfs)
