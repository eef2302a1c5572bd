"""Placement: feed a view of the hosts, assert the plan."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dockyard.core.errors import FailedPrecondition, Unavailable
from dockyard.scheduler import placement
from dockyard.scheduler.placement import HostView, PlacementRequest, Plan, place

GIB = 1 << 30


def host(
    id: str, *, total: int = 8 * GIB, reserved: int = 0, containers: int = 0, ready: bool = True
) -> HostView:
    return HostView(
        id=id, mem_total=total, mem_reserved=reserved, containers=containers, ready=ready
    )


def test_public_surface() -> None:
    assert set(placement.__all__) == {"HostView", "PlacementRequest", "Plan", "place"}


def test_most_free_memory_wins() -> None:
    hosts = [host("a", reserved=6 * GIB), host("b", reserved=1 * GIB), host("c", reserved=3 * GIB)]
    assert place(hosts, PlacementRequest(memory=GIB)) == Plan(host="b")


def test_free_memory_not_total_memory_counts() -> None:
    hosts = [host("big", total=64 * GIB, reserved=63 * GIB), host("small", total=4 * GIB)]
    assert place(hosts, PlacementRequest(memory=GIB)).host == "small"


def test_ties_go_to_fewer_containers_then_lowest_id() -> None:
    assert (
        place([host("a", containers=5), host("b", containers=2)], PlacementRequest(1)).host == "b"
    )
    assert place([host("z"), host("m"), host("q")], PlacementRequest(1)).host == "m"


def test_hosts_without_room_are_skipped() -> None:
    hosts = [host("full", total=2 * GIB, reserved=GIB + 1), host("roomy", total=GIB)]
    assert place(hosts, PlacementRequest(memory=GIB)).host == "roomy"


def test_exact_fit_is_enough() -> None:
    assert place([host("a", total=2 * GIB, reserved=GIB)], PlacementRequest(memory=GIB)).host == "a"


def test_not_ready_hosts_are_never_chosen() -> None:
    hosts = [host("down", ready=False), host("up", reserved=7 * GIB)]
    assert place(hosts, PlacementRequest(memory=GIB)).host == "up"


@pytest.mark.parametrize("hosts", [[], [host("down", ready=False)]])
def test_no_host_is_unavailable(hosts: list[HostView]) -> None:
    with pytest.raises(Unavailable, match="no agent is available"):
        place(hosts, PlacementRequest(memory=GIB))


def test_no_host_with_room_is_unavailable() -> None:
    with pytest.raises(Unavailable, match=str(16 * GIB)):
        place([host("a"), host("b")], PlacementRequest(memory=16 * GIB))


def test_pinned_host_is_used_even_if_others_have_more_room() -> None:
    hosts = [host("a", reserved=7 * GIB), host("b")]
    assert place(hosts, PlacementRequest(memory=GIB, pinned_host="a")).host == "a"


@pytest.mark.parametrize(
    "hosts", [[host("a")], [host("a"), host("gone", ready=False)]], ids=["missing", "not-ready"]
)
def test_pinned_host_missing_is_failed_precondition(hosts: list[HostView]) -> None:
    with pytest.raises(FailedPrecondition):
        place(hosts, PlacementRequest(memory=GIB, pinned_host="gone"))


def test_pinned_host_without_room_is_unavailable() -> None:
    hosts = [host("a", reserved=8 * GIB), host("b")]
    with pytest.raises(Unavailable):
        place(hosts, PlacementRequest(memory=GIB, pinned_host="a"))


def test_input_order_does_not_matter() -> None:
    hosts = [host("a", containers=1), host("b"), host("c", reserved=GIB)]
    expected = place(hosts, PlacementRequest(memory=GIB))
    assert place(list(reversed(hosts)), PlacementRequest(memory=GIB)) == expected


_hosts = st.lists(
    st.builds(
        HostView,
        id=st.text("abcdef", min_size=1, max_size=3),
        mem_total=st.integers(0, 16),
        mem_reserved=st.integers(0, 16),
        containers=st.integers(0, 5),
        ready=st.booleans(),
    ),
    max_size=8,
    unique_by=lambda h: h.id,
)


@settings(max_examples=50)
@given(_hosts, st.integers(0, 16))
def test_plan_is_a_ready_feasible_host_with_the_most_free_memory(
    hosts: list[HostView], memory: int
) -> None:
    try:
        plan = place(hosts, PlacementRequest(memory=memory))
    except Unavailable:
        assert not [h for h in hosts if h.ready and h.mem_total - h.mem_reserved >= memory]
        return
    chosen = next(h for h in hosts if h.id == plan.host)
    assert chosen.ready
    free = chosen.mem_total - chosen.mem_reserved
    assert free >= memory
    assert all(free >= h.mem_total - h.mem_reserved for h in hosts if h.ready)
