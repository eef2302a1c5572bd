"""Suite-wide setup. dockyard.wire goes first: it selects aiohttp's pure-Python parser,
which the hijacked attach streams need, and must run before anything imports aiohttp."""

import dockyard.wire  # noqa: F401
