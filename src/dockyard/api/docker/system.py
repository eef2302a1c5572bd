"""Docker Engine API: ping, version, info and disk usage."""

from __future__ import annotations

import os
import platform
from typing import Any

from aiohttp import web

import dockyard
from dockyard.api.docker.container_json import container_summary, mounts_json
from dockyard.api.docker.context import ApiContext, tenant_of
from dockyard.api.docker.images import image_summary
from dockyard.api.docker.volumes import volume_json
from dockyard.api.errors import json_response
from dockyard.core.clock import format_rfc3339, now_ns
from dockyard.core.models import Status

__all__ = ["API_VERSION", "MAX_API_VERSION", "MIN_API_VERSION", "routes"]

API_VERSION = "1.41"
MIN_API_VERSION = "1.24"
MAX_API_VERSION = "1.44"  # request shapes up to here are accepted; 1.41 is advertised
routes = web.RouteTableDef()


def _ping_headers() -> dict[str, str]:
    return {
        "API-Version": API_VERSION,
        "Docker-Experimental": "false",
        "Ostype": "linux",
        "Builder-Version": "1",
        "Cache-Control": "no-cache, no-store, must-revalidate",
        "Pragma": "no-cache",
    }


@routes.get("/_ping")
async def system_ping(_request: web.Request) -> web.Response:
    return web.Response(text="OK", headers=_ping_headers(), content_type="text/plain")


@routes.head("/_ping")
async def system_ping_head(_request: web.Request) -> web.Response:
    return web.Response(headers=_ping_headers(), content_type="text/plain")


@routes.get("/version")
async def system_version(request: web.Request) -> web.Response:
    ctx = ApiContext.of(request)
    infos = [h.info for h in ctx.controller.hosts.handles() if h.info is not None]
    kernel = infos[0].kernel_version if infos else platform.release()
    version = dockyard.__version__
    details = {
        "ApiVersion": API_VERSION,
        "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": "",
        "GoVersion": f"python{platform.python_version()}",
        "Os": "linux",
        "Arch": "amd64",
        "KernelVersion": kernel,
        "BuildTime": "",
    }
    return json_response(
        {
            "Platform": {"Name": "Dockyard"},
            "Components": [{"Name": "Engine", "Version": version, "Details": details}],
            "Version": version,
            **details,
        }
    )


@routes.get("/info")
async def system_info(request: web.Request) -> web.Response:
    ctx = ApiContext.of(request)
    tenant = tenant_of(request)
    containers = ctx.controller.containers.list_containers(tenant=tenant.id)
    by_status = [c.state.status for c in containers]
    infos = [h.info for h in ctx.controller.hosts.handles() if h.info is not None]
    first = infos[0] if infos else None
    runtime_version = first.runtime_version if first else ""
    return json_response(
        {
            "ID": tenant.id[:36],  # read, never made: the tenant may be going away
            "Containers": len(containers),
            "ContainersRunning": by_status.count(Status.RUNNING),
            "ContainersPaused": by_status.count(Status.PAUSED),
            "ContainersStopped": len(containers)
            - by_status.count(Status.RUNNING)
            - by_status.count(Status.PAUSED),
            "Images": len(ctx.controller.images.list_images(tenant=tenant.id)),
            "Driver": "overlayfs",
            "DriverStatus": [["driver-type", "io.containerd.snapshotter.v1"]],
            "Plugins": {
                "Volume": ["local"],
                "Network": ["bridge", "null"],
                "Authorization": None,
                "Log": ["json-file", "local"],
            },
            "MemoryLimit": True,
            "SwapLimit": True,
            "KernelMemory": False,
            "KernelMemoryTCP": False,
            "CpuCfsPeriod": True,
            "CpuCfsQuota": True,
            "CPUShares": True,
            "CPUSet": True,
            "PidsLimit": True,
            "OomKillDisable": False,
            "IPv4Forwarding": True,
            "BridgeNfIptables": False,
            "BridgeNfIp6tables": False,
            "Debug": False,
            "NFd": len(os.listdir("/proc/self/fd")),
            "NGoroutines": 0,
            "SystemTime": format_rfc3339(now_ns()),
            "LoggingDriver": "json-file",
            "CgroupDriver": first.cgroup_driver if first else "cgroupfs",
            "CgroupVersion": first.cgroup_version if first else "1",
            "NEventsListener": ctx.controller.events.subscribers(tenant.id),
            "KernelVersion": first.kernel_version if first else platform.release(),
            "OperatingSystem": first.operating_system if first else "Linux",
            "OSVersion": "",
            "OSType": "linux",
            "Architecture": first.architecture if first else platform.machine(),
            "IndexServerAddress": "",
            "RegistryConfig": {
                "AllowNondistributableArtifactsCIDRs": [],
                "AllowNondistributableArtifactsHostnames": [],
                "InsecureRegistryCIDRs": [],
                "IndexConfigs": {},
                "Mirrors": [],
            },
            "NCPU": sum(i.ncpu for i in infos),
            "MemTotal": sum(i.mem_total for i in infos),
            "GenericResources": None,
            "DockerRootDir": "",
            "HttpProxy": "",
            "HttpsProxy": "",
            "NoProxy": "",
            "Name": first.hostname if first else platform.node(),
            "Labels": [],
            "ExperimentalBuild": False,
            "ServerVersion": dockyard.__version__,
            "Runtimes": {"crun": {"path": "/usr/bin/crun"}},
            "DefaultRuntime": "crun",
            "Swarm": {
                "NodeID": "",
                "NodeAddr": "",
                "LocalNodeState": "inactive",
                "ControlAvailable": False,
                "Error": "",
                "RemoteManagers": None,
            },
            "LiveRestoreEnabled": True,
            "Isolation": "",
            "InitBinary": "docker-init",
            "ContainerdCommit": {"ID": "", "Expected": ""},
            "RuncCommit": {"ID": runtime_version, "Expected": runtime_version},
            "InitCommit": {"ID": "", "Expected": ""},
            "SecurityOptions": [
                "name=seccomp,profile=dockyard-default",
                "name=userns",
                "name=no-new-privileges",
            ],
            "Warnings": [
                f"WARNING: host {h.host.name} ({h.host.id[:12]}) is not connected"
                for h in ctx.controller.hosts.handles()
                if not h.ready
            ],
        }
    )


@routes.get("/system/df")
async def system_data_usage(request: web.Request) -> web.Response:
    ctx = ApiContext.of(request)
    tenant = tenant_of(request).id
    containers = ctx.controller.containers.list_containers(tenant=tenant)
    images = ctx.controller.images.list_images(tenant=tenant)
    uses: dict[str, int] = {}
    for c in containers:
        uses[c.image_id] = uses.get(c.image_id, 0) + 1
    layer_sizes: dict[str, int] = {}
    layer_users: dict[str, int] = {}
    content = ctx.controller.images.content
    for image in images:
        for diff_id in dict.fromkeys(image.layers):
            layer_users[diff_id] = layer_users.get(diff_id, 0) + 1
            if diff_id not in layer_sizes:
                layer_sizes[diff_id] = content.size(diff_id) if content.has(diff_id) else 0
    image_entries: list[dict[str, Any]] = []
    for image in images:
        entry = image_summary(image, ctx.controller.images.config(image), uses.get(image.id, 0))
        entry["SharedSize"] = sum(
            layer_sizes[d] for d in dict.fromkeys(image.layers) if layer_users[d] > 1
        )
        image_entries.append(entry)
    container_entries = []
    for c in containers:
        size = await ctx.controller.containers.size(c)
        container_entries.append(
            container_summary(
                c, networks=(), mounts=mounts_json(c, {}), size=(size.size_rw, size.size_root_fs)
            )
        )
    volume_entries = []
    for volume in ctx.controller.volumes.list_volumes(tenant=tenant):
        refs = len(ctx.controller.containers.volume_users(tenant=tenant, name=volume.name))
        volume_entries.append(
            volume_json(volume, size=await ctx.controller.volumes.usage(volume), refs=refs)
        )
    return json_response(
        {
            "LayersSize": sum(layer_sizes.values()),
            "Images": image_entries,
            "Containers": container_entries,
            "Volumes": volume_entries,
            "BuildCache": [],
        }
    )
