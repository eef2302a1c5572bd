"""Reading and deleting our sets' and maps' elements through an nft context.

The context decides the namespace (its socket lives where it was made); the table
decides which of our tables (the root one, or ``dockyard`` in a router: its ``inet``
table and its anti-spoofing ``bridge`` table, whose sets' names are distinct).
"""

from __future__ import annotations

from collections.abc import Sequence

from dockyard.core.errors import Unavailable
from dockyard.network.nft import Nft
from dockyard.network.rules import Element, parse_elements, render_delete

__all__ = ["delete_elements", "list_elements"]

_FAMILIES = ["inet", "bridge"]


def list_elements(nft: Nft, table: str) -> list[Element]:
    """The elements of our sets and maps in the tables named ``table`` (``inet``, and
    ``bridge`` in a router); [] when there is none."""
    tables = nft.json_cmd({"nftables": [{"list": {"tables": None}}]})
    families = [
        item["table"].get("family")
        for item in tables.get("nftables", [])
        if item.get("table", {}).get("family") in _FAMILIES and item["table"].get("name") == table
    ]
    found: list[Element] = []
    for family in sorted(families, key=_FAMILIES.index):
        listing = nft.json_cmd(
            {"nftables": [{"list": {"table": {"family": family, "name": table}}}]}
        )
        found.extend(parse_elements(listing))
    return found


def delete_elements(nft: Nft, table: str, elements: Sequence[Element]) -> None:
    """Delete ``elements`` from ``inet <table>``, tolerating those already gone."""
    if not elements:
        return
    try:
        nft.cmd(render_delete(table, elements))
    except Unavailable:
        # One missing element fails the whole batch: delete those still there.
        present = {(e.set_name, e.key) for e in list_elements(nft, table)}
        remaining = [e for e in elements if (e.set_name, e.key) in present]
        if remaining:
            nft.cmd(render_delete(table, remaining))
