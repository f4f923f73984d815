"""A real 3-master Redis Cluster on loopback, started once per session and torn down after it.

Three `redis-server --cluster-enabled yes` on free ports, joined by `redis-cli --cluster create`
(no replicas): the smallest cluster whose keys and shard channels really live on different
nodes, so a script that touched two slots, or a count of subscribers taken on the wrong node,
fails here as it would in production. Skipped where redis-server or redis-cli is missing.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis
import redis.asyncio.cluster
import redis.cluster

MASTERS = 3


class Cluster:
    def __init__(self, ports: list[int], processes: list[subprocess.Popen[bytes]]) -> None:
        self.ports = ports
        self.processes = processes

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.ports[0]}/0"


def _start(directory: Path) -> Cluster:
    server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if server is None or cli is None:
        pytest.skip("redis-server and redis-cli are needed for the cluster tests")
    # Each node needs a second port for the cluster bus; by default port + 10000, which may not
    # exist or be free, so both are picked (and held together, so none repeats).
    ports, bus_ports = (free := _free_ports(2 * MASTERS))[:MASTERS], free[MASTERS:]
    processes = []
    for port, bus_port in zip(ports, bus_ports, strict=True):
        node = directory / str(port)
        node.mkdir()
        config = ["--cluster-config-file", str(node / "nodes.conf"), "--dir", str(node)]
        command = [server, "--port", str(port), "--cluster-port", str(bus_port)]
        command += ["--bind", "127.0.0.1", "--cluster-enabled", "yes", *config]
        command += ["--save", "", "--appendonly", "no"]
        processes.append(
            subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        )
    cluster = Cluster(ports, processes)
    try:
        for port in ports:
            _wait(lambda port=port: redis.Redis("127.0.0.1", port).ping())
        subprocess.run(
            [cli, "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports),
             "--cluster-replicas", "0", "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=60,
        )  # fmt: skip
        for port in ports:
            _wait(lambda port=port: _info(port)["cluster_state"] == "ok")
    except BaseException:
        _stop(cluster)
        raise
    return cluster


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _info(port: int) -> dict[str, str]:
    with redis.Redis("127.0.0.1", port, decode_responses=True) as client:
        return dict(client.cluster("info"))


def _wait(ready: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if ready():  # type: ignore[operator]
                return
        except redis.RedisError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("the test cluster did not come up")
        time.sleep(0.05)


def _stop(cluster: Cluster) -> None:
    for process in cluster.processes:
        process.kill()
        process.wait(10)


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[Cluster]:
    """The session's cluster (its own ports and directory, gone afterwards)."""
    directory = Path(tempfile.mkdtemp(prefix="redis-cluster-test-"))
    cluster = _start(directory)
    try:
        yield cluster
    finally:
        _stop(cluster)
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def cluster_client(redis_cluster: Cluster) -> Iterator[redis.cluster.RedisCluster]:
    client = redis.cluster.RedisCluster.from_url(redis_cluster.url)
    yield client
    client.close()


@pytest.fixture
async def async_cluster_client(
    redis_cluster: Cluster,
) -> AsyncIterator[redis.asyncio.cluster.RedisCluster]:
    client = redis.asyncio.cluster.RedisCluster.from_url(redis_cluster.url)
    yield client
    await client.aclose()
