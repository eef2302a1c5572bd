"""Process entry points: each composes the layers below it into one daemon.

``python -m dockyard.daemon.controller`` and ``python -m dockyard.daemon.agent``; the
``dockyard up`` command starts them. Importing :mod:`dockyard.wire` first selects
aiohttp's pure-Python HTTP parser, which connection hijacking needs.
"""

import dockyard.wire  # noqa: F401  (must run before anything imports aiohttp)
