"""HTTP plumbing shared by the Docker API server and the agent server.

Docker's stream framing, connection hijacking, query values and the HTTP status of each
error kind are protocol mechanics, not domain logic: they live here, below both servers,
importing only ``dockyard.core`` and aiohttp.
"""

import os as _os
import sys as _sys

# aiohttp's C parser does not treat ``Upgrade: tcp`` as an upgrade and swallows the bytes a
# client sends right after the request head, which Docker clients do on attach. The pure
# Python parser handles it, so every Dockyard server runs with it (see wire.hijack).
if "aiohttp" not in _sys.modules:
    _os.environ.setdefault("AIOHTTP_NO_EXTENSIONS", "1")


def python_parser_active() -> bool:
    """Whether aiohttp parses requests with its pure Python parser (needed for hijack)."""
    from aiohttp import http_parser

    return http_parser.HttpRequestParser is http_parser.HttpRequestParserPy
