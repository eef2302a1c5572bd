"""The controller's client of the agent protocol (docs/agent-protocol.md).

One :class:`AgentClient` per agent. JSON calls return core protocol dataclasses; errors
come back as their kinds (:func:`dockyard.core.errors.from_wire`); streams are handed to
the caller to copy.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from typing import Any, TypeVar
from urllib.parse import urlencode

import aiohttp

from dockyard.core.errors import Unavailable, from_wire
from dockyard.core.protocol import (
    AgentEvent,
    AgentInfo,
    ContainerListing,
    ContainerSize,
    ContainerStats,
    ContainerStatus,
    CreateRequest,
    EndpointSpec,
    ExecRequest,
    ExecStatus,
    FileChange,
    NetworkSpec,
    PathStat,
    Resources,
    StopRequest,
    TenantUsage,
    TopResult,
    VolumeRequest,
)
from dockyard.core.serde import from_data, to_data

__all__ = ["AgentClient", "AgentStream", "RawStream", "Resync"]

T = TypeVar("T")


class Resync(Exception):
    """The agent's event log cannot resume from where we were; list everything again."""

    def __init__(self, boot_id: str, seq: int) -> None:
        super().__init__(boot_id, seq)
        self.boot_id = boot_id
        self.seq = seq


class RawStream:
    """A hijacked connection to the agent (attach)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    def close(self) -> None:
        self.writer.close()


class AgentStream:
    """A streamed agent response (a tar), copied without decoding; :meth:`close` it."""

    def __init__(self, response: aiohttp.ClientResponse, address: str) -> None:
        self._response = response
        self._address = address

    @property
    def headers(self) -> Mapping[str, str]:
        return self._response.headers

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body chunk by chunk; Unavailable if it breaks off before its end."""
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except (aiohttp.ClientError, OSError) as exc:
            raise Unavailable(f"agent {self._address} stream broke off: {exc}") from exc

    def close(self) -> None:
        self._response.close()


class AgentClient:
    """Talks to one agent at ``address`` (``unix:///path`` or ``http://host:port``)."""

    def __init__(self, address: str) -> None:
        self.address = address
        self._session: aiohttp.ClientSession | None = None

    def _base(self) -> str:
        return "http://agent" if self.address.startswith("unix://") else self.address

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            if self.address.startswith("unix://"):
                connector: aiohttp.BaseConnector = aiohttp.UnixConnector(
                    path=self.address.removeprefix("unix://"), limit=0
                )
            else:
                connector = aiohttp.TCPConnector(limit=0)
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=aiohttp.ClientTimeout(total=None, connect=10)
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def _call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: dict[str, str] | None = None,
    ) -> Any:
        data = None if body is None else json.dumps(to_data(body))
        try:
            async with self.session().request(
                method,
                self._base() + path,
                data=data,
                params=params,
                headers={"Content-Type": "application/json"} if data is not None else None,
            ) as response:
                payload = await response.read()
        except (aiohttp.ClientError, OSError) as exc:
            raise Unavailable(f"agent {self.address} is unreachable: {exc}") from exc
        try:
            decoded = json.loads(payload) if payload else None
        except ValueError as exc:
            raise Unavailable(f"agent sent invalid JSON for {path}") from exc
        if response.status >= 300:
            error = decoded.get("error") if isinstance(decoded, dict) else None
            raise from_wire(error or {"kind": "unavailable", "message": payload.decode()})
        return decoded

    async def _typed(self, cls: type[T], method: str, path: str, **kwargs: Any) -> T:
        return from_data(cls, await self._call(method, path, **kwargs))

    # calls ---------------------------------------------------------------------------

    async def info(self) -> AgentInfo:
        return await self._typed(AgentInfo, "GET", "/v1/info")

    async def list_containers(self) -> ContainerListing:
        return await self._typed(ContainerListing, "GET", "/v1/containers")

    async def create(self, request: CreateRequest) -> ContainerStatus:
        return await self._typed(ContainerStatus, "POST", "/v1/containers", body=request)

    async def status(self, container_id: str) -> ContainerStatus:
        return await self._typed(ContainerStatus, "GET", f"/v1/containers/{container_id}")

    async def start(self, container_id: str) -> ContainerStatus:
        return await self._typed(ContainerStatus, "POST", f"/v1/containers/{container_id}/start")

    async def stop(self, container_id: str, request: StopRequest) -> ContainerStatus:
        return await self._typed(
            ContainerStatus, "POST", f"/v1/containers/{container_id}/stop", body=request
        )

    async def kill(self, container_id: str, signal: str) -> None:
        await self._call("POST", f"/v1/containers/{container_id}/kill", params={"signal": signal})

    async def pause(self, container_id: str) -> ContainerStatus:
        return await self._typed(ContainerStatus, "POST", f"/v1/containers/{container_id}/pause")

    async def unpause(self, container_id: str) -> ContainerStatus:
        return await self._typed(ContainerStatus, "POST", f"/v1/containers/{container_id}/unpause")

    async def update(self, container_id: str, resources: Resources) -> ContainerStatus:
        return await self._typed(
            ContainerStatus, "POST", f"/v1/containers/{container_id}/update", body=resources
        )

    async def connect(self, container_id: str, endpoint: EndpointSpec) -> None:
        """Add an endpoint: plumbed at once if the container runs, else at its next start."""
        await self._call("POST", f"/v1/containers/{container_id}/endpoints", body=endpoint)

    async def disconnect(self, container_id: str, endpoint_id: str) -> None:
        """Remove an endpoint (its interface goes at once if the container runs)."""
        await self._call("DELETE", f"/v1/containers/{container_id}/endpoints/{endpoint_id}")

    async def update_network(self, container_id: str, spec: NetworkSpec) -> None:
        """Replace the container's whole network spec: the agent applies what differs in
        security groups, their rules and the public IP (at once if the container runs or is
        paused) and keeps the spec for the container's next starts. Endpoints come and go
        through :meth:`connect` and :meth:`disconnect`, not through this."""
        await self._call("PUT", f"/v1/containers/{container_id}/network", body=spec)

    async def delete(self, container_id: str, *, force: bool) -> None:
        await self._call(
            "DELETE", f"/v1/containers/{container_id}", params={"force": "1" if force else "0"}
        )

    async def size(self, container_id: str) -> ContainerSize:
        return await self._typed(ContainerSize, "GET", f"/v1/containers/{container_id}/size")

    async def top(self, container_id: str, ps_args: str) -> TopResult:
        return await self._typed(
            TopResult, "GET", f"/v1/containers/{container_id}/top", params={"ps_args": ps_args}
        )

    async def resize(self, container_id: str, *, height: int, width: int) -> None:
        await self._call(
            "POST",
            f"/v1/containers/{container_id}/resize",
            params={"h": str(height), "w": str(width)},
        )

    async def exec_create(self, container_id: str, request: ExecRequest) -> ExecStatus:
        return await self._typed(
            ExecStatus, "POST", f"/v1/containers/{container_id}/execs", body=request
        )

    async def exec_inspect(self, container_id: str, exec_id: str) -> ExecStatus:
        return await self._typed(
            ExecStatus, "GET", f"/v1/containers/{container_id}/execs/{exec_id}"
        )

    async def exec_start_detached(self, container_id: str, exec_id: str) -> None:
        await self._call(
            "POST", f"/v1/containers/{container_id}/execs/{exec_id}/start", params={"detach": "1"}
        )

    async def exec_resize(
        self, container_id: str, exec_id: str, *, height: int, width: int
    ) -> None:
        await self._call(
            "POST",
            f"/v1/containers/{container_id}/execs/{exec_id}/resize",
            params={"h": str(height), "w": str(width)},
        )

    async def stats(self, container_id: str) -> ContainerStats:
        return await self._typed(ContainerStats, "GET", f"/v1/containers/{container_id}/stats")

    async def create_volume(self, request: VolumeRequest) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("POST", "/v1/volumes", body=request)
        return result

    async def volume_usage(self, tenant: str, name: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("GET", f"/v1/volumes/{tenant}/{name}")
        return result

    async def remove_volume(self, tenant: str, name: str) -> None:
        await self._call("DELETE", f"/v1/volumes/{tenant}/{name}")

    async def tenant_usage(self, tenant: str) -> TenantUsage:
        return await self._typed(TenantUsage, "GET", f"/v1/tenants/{tenant}/usage")

    # streams -------------------------------------------------------------------------

    async def logs(self, container_id: str, params: dict[str, str]) -> AsyncGenerator[bytes, None]:
        """The agent's log stream for the container, in Docker's framing, chunk by chunk;
        the first chunk is b"" as soon as the agent has accepted the request."""
        try:
            async with self.session().get(
                f"{self._base()}/v1/containers/{container_id}/logs", params=params
            ) as response:
                if response.status >= 300:
                    payload = await response.read()
                    raise from_wire(json.loads(payload).get("error"))
                yield b""
                async for chunk in response.content.iter_any():
                    yield chunk
        except (aiohttp.ClientError, OSError) as exc:
            raise Unavailable(f"agent {self.address} is unreachable: {exc}") from exc

    async def _open_stream(
        self, path: str, params: dict[str, str] | None = None
    ) -> aiohttp.ClientResponse:
        """A GET whose body the caller streams; its error raised as its kind if it fails."""
        try:
            response = await self.session().get(self._base() + path, params=params)
        except (aiohttp.ClientError, OSError) as exc:
            raise Unavailable(f"agent {self.address} is unreachable: {exc}") from exc
        if response.status >= 300:
            try:
                payload = await response.read()
            except (aiohttp.ClientError, OSError) as exc:
                raise Unavailable(f"agent {self.address} is unreachable: {exc}") from exc
            finally:
                response.release()
            raise _error_of(payload)
        return response

    async def archive_stat(self, container_id: str, path: str) -> PathStat:
        return await self._typed(
            PathStat, "GET", f"/v1/containers/{container_id}/archive/stat", params={"path": path}
        )

    async def archive(self, container_id: str, path: str) -> tuple[PathStat, AgentStream]:
        """The stat of ``path`` and a tar of it; close the stream when done."""
        response = await self._open_stream(f"/v1/containers/{container_id}/archive", {"path": path})
        try:
            header = response.headers.get("X-Dockyard-Path-Stat", "")
            found = from_data(PathStat, json.loads(base64.b64decode(header)))
        except ValueError as exc:
            response.close()
            raise Unavailable(f"agent {self.address} sent no valid path stat") from exc
        return found, AgentStream(response, self.address)

    async def extract(
        self,
        container_id: str,
        path: str,
        body: AsyncIterator[bytes],
        *,
        copy_uid_gid: bool,
        no_overwrite_dir_non_dir: bool,
    ) -> None:
        """Stream the tar ``body`` to the agent, to be extracted into ``path``."""
        params = {
            "path": path,
            "copy_uid_gid": "1" if copy_uid_gid else "0",
            "no_overwrite_dir_non_dir": "1" if no_overwrite_dir_non_dir else "0",
        }
        try:
            async with self.session().put(
                f"{self._base()}/v1/containers/{container_id}/archive", params=params, data=body
            ) as response:
                payload = await response.read()
        except (aiohttp.ClientError, OSError) as exc:
            raise Unavailable(f"agent {self.address} is unreachable: {exc}") from exc
        if response.status >= 300:
            raise _error_of(payload)

    async def export(self, container_id: str) -> AgentStream:
        """A tar of the container's root filesystem; close the stream when done."""
        response = await self._open_stream(f"/v1/containers/{container_id}/export")
        return AgentStream(response, self.address)

    async def layer(self, container_id: str) -> AgentStream:
        """The container's writable layer as a layer tar (``docker commit``); close the
        stream when done. A stream that breaks off raises Unavailable from its chunks."""
        response = await self._open_stream(f"/v1/containers/{container_id}/layer")
        return AgentStream(response, self.address)

    async def changes(self, container_id: str) -> list[FileChange]:
        data = await self._call("GET", f"/v1/containers/{container_id}/changes")
        return from_data(list[FileChange], (data or {}).get("changes") or [])

    async def attach(self, container_id: str, params: dict[str, str]) -> RawStream:
        """Open a hijacked attach stream on the agent."""
        return await self._hijack(f"/v1/containers/{container_id}/attach", params)

    async def exec_start(self, container_id: str, exec_id: str) -> RawStream:
        """Start an exec attached: a hijacked stream carrying its stdio."""
        return await self._hijack(f"/v1/containers/{container_id}/execs/{exec_id}/start", {})

    async def _hijack(self, path: str, params: dict[str, str]) -> RawStream:
        query = urlencode(params)
        try:
            if self.address.startswith("unix://"):
                reader, writer = await asyncio.open_unix_connection(
                    self.address.removeprefix("unix://")
                )
            else:
                host, _, port = self.address.removeprefix("http://").partition(":")
                reader, writer = await asyncio.open_connection(host, int(port or 80))
            writer.write(
                f"POST {path}?{query} HTTP/1.1\r\n"
                "Host: agent\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
                "Content-Length: 0\r\n\r\n".encode()
            )
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
        except (OSError, asyncio.IncompleteReadError) as exc:
            raise Unavailable(f"agent {self.address} is unreachable: {exc}") from exc
        status = int(head.split(b" ", 2)[1])
        if status != 101:
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            payload = await reader.readexactly(length) if length else b"{}"
            writer.close()
            raise from_wire(json.loads(payload).get("error"))
        return RawStream(reader, writer)

    async def events(self, *, boot_id: str, after: int) -> AsyncIterator[AgentEvent]:
        """Follow the agent's events; raises Resync when it cannot resume."""
        try:
            async with self.session().get(
                f"{self._base()}/v1/events",
                params={"boot": boot_id, "after": str(after)},
                timeout=aiohttp.ClientTimeout(total=None, sock_read=None),
            ) as response:
                async for line in response.content:
                    if not line.strip():
                        continue
                    data = json.loads(line)
                    if "resync" in data:
                        raise Resync(str(data["boot_id"]), int(data["resync"]))
                    yield from_data(AgentEvent, data)
        except (aiohttp.ClientError, OSError) as exc:
            raise Unavailable(f"agent {self.address} event stream ended: {exc}") from exc


def _error_of(payload: bytes) -> Exception:
    """The error kind an agent answered with."""
    try:
        decoded = json.loads(payload)
    except ValueError:
        decoded = None
    error = decoded.get("error") if isinstance(decoded, dict) else None
    return from_wire(error or {"kind": "unavailable", "message": payload.decode(errors="replace")})
