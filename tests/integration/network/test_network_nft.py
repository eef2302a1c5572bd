"""The libnftables binding against the real kernel (dockyard.network.nft)."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator

import pytest

from dockyard.core.errors import Unavailable
from dockyard.network.nft import Nft


@pytest.fixture
def nft() -> Iterator[Nft]:
    with Nft() as ctx:
        yield ctx


@pytest.fixture
def table(nft: Nft) -> Iterator[str]:
    name = "dyt" + secrets.token_hex(3)
    nft.cmd(f"add table inet {name}")
    yield name
    nft.cmd(f"add table inet {name}\ndelete table inet {name}")


def test_cmd_returns_text_output(nft: Nft, table: str) -> None:
    nft.cmd(f"add set inet {table} s {{ type ipv4_addr; }}")
    nft.cmd(f"add element inet {table} s {{ 10.240.0.1 }}")
    out = nft.cmd(f"list set inet {table} s")
    assert "10.240.0.1" in out
    assert out.lstrip().startswith("table inet")


def test_json_cmd_round_trip(nft: Nft, table: str) -> None:
    add_set = {"set": {"family": "inet", "table": table, "name": "s", "type": "inet_service"}}
    assert nft.json_cmd({"nftables": [{"add": add_set}]}) == {}
    elem = {"family": "inet", "table": table, "name": "s", "elem": [80, 443]}
    nft.json_cmd({"nftables": [{"add": {"element": elem}}]})
    listing = nft.json_cmd(
        {"nftables": [{"list": {"set": {"family": "inet", "table": table, "name": "s"}}}]}
    )
    sets = [item["set"] for item in listing["nftables"] if "set" in item]
    assert sorted(sets[0]["elem"]) == [80, 443]
    # The JSON flag is per call: text output is back to text afterwards.
    assert "elements = { 80, 443 }" in nft.cmd(f"list set inet {table} s")


def test_errors_carry_nft_text(nft: Nft) -> None:
    missing = "dyt" + secrets.token_hex(3)
    with pytest.raises(Unavailable, match="No such file or directory") as info:
        nft.cmd(f"list table inet {missing}")
    assert missing in info.value.message
    with pytest.raises(Unavailable, match="syntax error"):
        nft.cmd("this is not nft")
    with pytest.raises(Unavailable):
        nft.json_cmd({"nftables": [{"list": {"table": {"family": "inet", "name": missing}}}]})


def test_batch_is_atomic(nft: Nft, table: str) -> None:
    with pytest.raises(Unavailable):
        nft.cmd(
            f"add set inet {table} a {{ type ipv4_addr; }}\n"
            f"add element inet {table} nope {{ 1.2.3.4 }}"
        )
    with pytest.raises(Unavailable):
        nft.cmd(f"list set inet {table} a")


def test_threads_share_one_context(nft: Nft, table: str) -> None:
    nft.cmd(f"add set inet {table} s {{ type inet_service; }}")
    errors: list[BaseException] = []

    def worker(base: int) -> None:
        try:
            for port in range(base, base + 50):
                nft.cmd(f"add element inet {table} s {{ {port} }}")
                assert "table inet" in nft.cmd(f"list set inet {table} s")
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(1000 * i,)) for i in range(1, 5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    elem = nft.json_cmd(
        {"nftables": [{"list": {"set": {"family": "inet", "table": table, "name": "s"}}}]}
    )
    assert len(next(i["set"] for i in elem["nftables"] if "set" in i)["elem"]) == 200


def test_closed_context_is_unavailable() -> None:
    ctx = Nft()
    ctx.close()
    ctx.close()
    with pytest.raises(Unavailable, match="closed"):
        ctx.cmd("list tables")


def test_missing_library_is_unavailable() -> None:
    with pytest.raises(Unavailable, match="cannot load libnftables"):
        Nft(library="/nonexistent/libnftables.so.1")
