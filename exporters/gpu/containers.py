"""Attributes a GPU process to its container: PID -> /proc/<pid>/cgroup -> container id (-> name).

NVML reports host PIDs, so the exporter needs the host PID namespace (`pid: host` /
`hostPID: true`). The container's name comes from the Docker API when its socket is mounted;
without one the id alone is exported. Caches are bounded so a busy host cannot grow memory.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# A container id is the last 64-hex token of a cgroup path: docker-<id>.scope, /docker/<id>,
# cri-containerd-<id>.scope, crio-<id>.scope, libpod-<id>.scope, kubepods/.../<id>.
_CONTAINER_ID = re.compile(r"([0-9a-f]{64})")
_POD_UID = re.compile(r"pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12})")


def parse_cgroup(text: str) -> tuple[str, str]:
    """Return (container id, pod uid) from the contents of /proc/<pid>/cgroup; "" when absent."""
    container_id = pod_uid = ""
    for line in text.splitlines():
        path = line.split(":", 2)[-1]
        ids = _CONTAINER_ID.findall(path)
        if ids:
            container_id = ids[-1]
        pod = _POD_UID.search(path)
        if pod:
            pod_uid = pod.group(1).replace("_", "-")
        if container_id:
            break
    return container_id, pod_uid


class _BoundedCache(OrderedDict):
    def __init__(self, size: int, ttl: float):
        super().__init__()
        self.size, self.ttl = size, ttl

    def get_fresh(self, key: Any) -> Any:
        hit = self.get(key)
        if hit is None or time.monotonic() - hit[0] > self.ttl:
            return None
        return hit[1]

    def put(self, key: Any, value: Any) -> None:
        self[key] = (time.monotonic(), value)
        self.move_to_end(key)
        while len(self) > self.size:
            self.popitem(last=False)


class ContainerResolver:
    """PID -> (container_id, container_name, pod_uid), cached for `ttl` seconds."""

    def __init__(
        self,
        proc_root: str = "/proc",
        docker_socket: str | None = "/var/run/docker.sock",
        cache_size: int = 4096,
        ttl: float = 60.0,
    ):
        self.proc_root = Path(proc_root)
        self.docker_socket = docker_socket
        self._pids = _BoundedCache(cache_size, ttl)
        self._names = _BoundedCache(cache_size, ttl)
        self._docker: Any = None
        self._docker_retry_at = 0.0

    def resolve(self, pid: int) -> tuple[str, str, str]:
        cached = self._pids.get_fresh(pid)
        if cached is not None:
            return cached
        try:
            cgroup = (self.proc_root / str(pid) / "cgroup").read_text()
        except OSError:  # process gone, or no host PID namespace
            cgroup = ""
        container_id, pod_uid = parse_cgroup(cgroup)
        result = (container_id, self._name(container_id) if container_id else "", pod_uid)
        self._pids.put(pid, result)
        return result

    def _name(self, container_id: str) -> str:
        cached = self._names.get_fresh(container_id)
        if cached is not None:
            return cached
        client = self._client()
        name = ""
        if client is not None:
            try:
                name = client.containers.get(container_id).name
            except Exception as exc:  # not found, daemon gone, permission: the id alone will do
                log.debug("docker lookup of %s failed: %s", container_id[:12], exc)
        self._names.put(container_id, name)
        return name

    def _client(self) -> Any:
        if self._docker is not None or not self.docker_socket:
            return self._docker
        if not os.path.exists(self.docker_socket) or time.monotonic() < self._docker_retry_at:
            return None
        try:
            import docker

            self._docker = docker.DockerClient(base_url=f"unix://{self.docker_socket}", timeout=2)
        except Exception as exc:  # SDK missing or daemon unreachable: retry in a minute
            log.info("container names unavailable (%s); exporting container ids only", exc)
            self._docker_retry_at = time.monotonic() + 60
        return self._docker
