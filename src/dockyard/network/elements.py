"""Reading and deleting our sets' and maps' elements through an nft context.

The context decides the namespace (its socket lives where it was made); the table
decides which of our tables (the root one, or ``dockyard`` in a router).
"""

from __future__ import annotations

from collections.abc import Sequence

from dockyard.core.errors import Unavailable
from dockyard.network.nft import Nft
from dockyard.network.rules import Element, parse_elements, render_delete

__all__ = ["delete_elements", "list_elements"]


def list_elements(nft: Nft, table: str) -> list[Element]:
    """The elements of our sets and maps in ``inet <table>``; [] when there is no table."""
    tables = nft.json_cmd({"nftables": [{"list": {"tables": None}}]})
    exists = any(
        item.get("table", {}).get("family") == "inet" and item["table"].get("name") == table
        for item in tables.get("nftables", [])
    )
    if not exists:
        return []
    listing = nft.json_cmd({"nftables": [{"list": {"table": {"family": "inet", "name": table}}}]})
    return parse_elements(listing)


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
