"""Docker's events filters and message shape (api.docker.events)."""

from __future__ import annotations

import json

import pytest

import dockyard.wire  # noqa: F401  (before aiohttp)
from dockyard.api.docker.events import EVENT_FILTERS, event_json, event_matcher
from dockyard.api.docker.filters import parse_filters
from dockyard.core.errors import InvalidArgument
from dockyard.core.events import Event

CID = "3f" + "a" * 62
IMAGE_ID = "sha256:" + "b" * 64
NET_ID = "9c" + "d" * 62

DIE = Event(
    seq=1,
    tenant="t",
    time=1_700_000_000_123_456_789,
    type="container",
    action="die",
    actor_id=CID,
    attributes={"name": "web", "image": "me/app:1", "exitCode": "3", "role": "db"},
)
TAG = Event(
    seq=2,
    tenant="t",
    time=1_700_000_001_000_000_000,
    type="image",
    action="tag",
    actor_id=IMAGE_ID,
    attributes={"name": "busybox:1.36", "maintainer": "me"},
)
VOLUME = Event(
    seq=3,
    tenant="t",
    time=1_700_000_002_000_000_000,
    type="volume",
    action="create",
    actor_id="data",
    attributes={"driver": "local"},
)
CONNECT = Event(
    seq=4,
    tenant="t",
    time=1_700_000_003_000_000_000,
    type="network",
    action="connect",
    actor_id=NET_ID,
    attributes={"container": CID, "name": "bridge", "type": "bridge"},
)
EXEC = Event(
    seq=5,
    tenant="t",
    time=1_700_000_004_000_000_000,
    type="container",
    action="exec_start: sh -c true",
    actor_id=CID,
    attributes={"name": "web", "image": "me/app:1", "execID": "e1"},
)
ALL = (DIE, TAG, VOLUME, CONNECT, EXEC)


def matching(filters: dict[str, list[str]]) -> list[int]:
    match = event_matcher(parse_filters(json.dumps(filters), EVENT_FILTERS))
    return [e.seq for e in ALL if match(e)]


def test_no_filter_matches_everything() -> None:
    assert matching({}) == [1, 2, 3, 4, 5]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"type": ["container"]}, [1, 5]),
        ({"type": ["image", "volume"]}, [2, 3]),
        ({"event": ["die"]}, [1]),
        ({"event": ["die", "tag"]}, [1, 2]),
        ({"event": ["exec"]}, []),  # exact unless the filter names a suffixed action
        ({"event": ["exec_start"]}, [5]),
        ({"event": ["exec_start: sh -c true"]}, [5]),
        ({"container": ["web"]}, [1, 5]),
        ({"container": [CID]}, [1, 5]),
        ({"container": ["3fa"]}, [1, 5]),  # an id prefix
        ({"container": ["we"]}, [1, 5]),  # names match as prefixes too, as in Docker
        ({"container": ["db"]}, []),
        ({"container": ["web"], "event": ["die"]}, [1]),
        ({"image": ["me/app:1"]}, [1, 5]),
        ({"image": ["me/app"]}, [1, 5]),  # without the tag
        ({"image": ["busybox"]}, [2]),
        ({"image": ["busybox:1.36"]}, [2]),
        ({"image": [IMAGE_ID]}, [2]),
        ({"image": ["busybox:2"]}, []),
        ({"volume": ["data"]}, [3]),
        ({"volume": ["da"]}, [3]),
        ({"network": ["bridge"]}, [4]),
        ({"network": [NET_ID[:12]]}, [4]),
        ({"label": ["role"]}, [1]),
        ({"label": ["role=db"]}, [1]),
        ({"label": ["role=web"]}, []),
        ({"label": ["role", "exitCode=3"]}, [1]),  # every label must match
        ({"label": ["role", "maintainer"]}, []),
        ({"scope": ["local"]}, [1, 2, 3, 4, 5]),
        ({"scope": ["swarm"]}, []),
        ({"daemon": ["x"]}, []),
        ({"type": ["container"], "image": ["busybox"]}, []),
    ],
)
def test_filters(filters: dict[str, list[str]], expected: list[int]) -> None:
    assert matching(filters) == expected


def test_unknown_filter_keys_are_refused() -> None:
    with pytest.raises(InvalidArgument, match="invalid filter 'colour'"):
        matching({"colour": ["red"]})


def test_container_message_has_the_legacy_fields() -> None:
    assert event_json(DIE) == {
        "status": "die",
        "id": CID,
        "from": "me/app:1",
        "Type": "container",
        "Action": "die",
        "Actor": {"ID": CID, "Attributes": dict(DIE.attributes)},
        "scope": "local",
        "time": 1_700_000_000,
        "timeNano": 1_700_000_000_123_456_789,
    }


def test_image_message_has_status_and_id_but_no_from() -> None:
    message = event_json(TAG)
    assert (message["status"], message["id"]) == ("tag", IMAGE_ID)
    assert "from" not in message


def test_other_messages_have_no_legacy_fields() -> None:
    message = event_json(VOLUME)
    assert set(message) == {"Type", "Action", "Actor", "scope", "time", "timeNano"}
    assert message["Actor"] == {"ID": "data", "Attributes": {"driver": "local"}}
