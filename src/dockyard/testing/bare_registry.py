"""A bare CNCF distribution registry (Debian ``docker-registry``) for tests and benchmarks.

No authentication, filesystem storage under ``root``, deletes enabled, listening on a free
port of 127.0.0.1. It is the yardstick the registry conformance checks and the push/pull
benchmark compare Dockyard's registry against, and a plain registry for client tests.
"""

from __future__ import annotations

import contextlib
import http.client
import shutil
import subprocess
import time
from pathlib import Path
from types import TracebackType

from dockyard.testing.cloud import free_port

__all__ = ["BareRegistry"]

_CONFIG = """\
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {storage}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
  secret: dockyard-bare-test-registry
"""


class BareRegistry:
    """``with BareRegistry(tmp_path) as reg:`` starts one; ``reg.address`` is
    ``127.0.0.1:<port>`` and ``reg.url`` ``http://127.0.0.1:<port>``. Leaving the block (or
    :meth:`stop`) kills the process; the storage under ``root`` stays for inspection."""

    def __init__(self, root: Path, *, binary: str = "docker-registry") -> None:
        self.root = root
        self.binary = binary
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    @property
    def storage(self) -> Path:
        return self.root / "storage"

    def start(self, *, timeout: float = 20.0) -> None:
        if shutil.which(self.binary) is None:
            raise RuntimeError(f"{self.binary} not found (apt-get install docker-registry)")
        self.root.mkdir(parents=True, exist_ok=True)
        self.storage.mkdir(exist_ok=True)
        self.port = free_port()
        config = self.root / "config.yml"
        config.write_text(_CONFIG.format(storage=self.storage, port=self.port))
        log = (self.root / "registry.log").open("ab")
        try:
            self._proc = subprocess.Popen(
                [self.binary, "serve", str(config)], stdout=log, stderr=log, start_new_session=True
            )
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"{self.binary} exited: see {self.root / 'registry.log'}")
            if self._ready():
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.binary} did not answer on {self.address} in {timeout}s")

    def _ready(self) -> bool:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
        try:
            conn.request("GET", "/v2/")
            return conn.getresponse().status == 200
        except OSError:
            return False
        finally:
            conn.close()

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait(timeout=10)

    def __enter__(self) -> BareRegistry:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
