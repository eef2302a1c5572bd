"""Seeding a new volume with the image's content (agent.containers.seed_volume): the copy
never writes through a name the tenant made in the volume while it ran."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from dockyard.agent.containers import seed_volume


@pytest.fixture
def image_dir(tmp_path: Path) -> Path:
    source = tmp_path / "image" / "data"
    (source / "d").mkdir(parents=True)
    (source / "f").write_text("image f\n")
    (source / "d" / "g").write_text("image g\n")
    os.symlink("f", source / "link")
    source.chmod(0o750)
    return source


@pytest.fixture
def volume(tmp_path: Path) -> Path:
    data = tmp_path / "volumes" / "tenant" / "vol" / "_data"
    data.mkdir(parents=True)
    return data


def seed(source: Path, data: Path) -> None:
    fd = os.open(source, os.O_PATH | os.O_DIRECTORY)
    try:
        asyncio.run(seed_volume(fd, data))
    finally:
        os.close(fd)


def test_an_empty_volume_gets_the_image_content(image_dir: Path, volume: Path) -> None:
    seed(image_dir, volume)
    assert (volume / "f").read_text() == "image f\n"
    assert (volume / "d" / "g").read_text() == "image g\n"
    assert os.readlink(volume / "link") == "f"
    assert (volume.stat().st_mode & 0o777) == 0o750
    assert sorted(p.name for p in volume.parent.iterdir()) == ["_data"], "no staging left"


def test_links_the_tenant_made_meanwhile_are_never_written_through(
    image_dir: Path, volume: Path, tmp_path: Path
) -> None:
    host = tmp_path / "host"
    (host / "etc").mkdir(parents=True)
    victim = host / "etc" / "passwd"
    victim.write_text("root:x:0:0\n")
    os.symlink(victim, volume / "f")  # what a racing container could make
    os.symlink(host / "etc", volume / "d")
    seed(image_dir, volume)
    assert victim.read_text() == "root:x:0:0\n"
    assert sorted(p.name for p in (host / "etc").iterdir()) == ["passwd"]
    assert not (volume / "f").is_symlink(), "the name was replaced, not followed"
    assert (volume / "f").read_text() == "image f\n"
    assert os.readlink(volume / "d") == str(host / "etc"), "a directory cannot replace it"
