"""A real Redis Cluster on loopback ports, for tests and benchmarks: `redis-server` nodes joined by `redis-cli`.

`start_cluster(folder, masters=3, replicas_per_master=1)` starts the nodes in
cluster mode, joins them with `redis-cli --cluster create` and waits until
every slot is served and every replica has synced. The cluster's URL is
`redis+cluster://127.0.0.1:<port of the first node>`.
"""

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import redis

from feature_platform.errors import FeaturePlatformError
from feature_platform.online.redis_server import RedisProcess, start_server

# Short, so a test sees a replica take over within seconds of a master's death.
NODE_TIMEOUT_MS = 1000
READY_TIMEOUT_S = 30.0
BUS_PORT_OFFSET = 10000


def _cluster_ports(count: int) -> list[int]:
    """`count` free ports whose cluster bus ports (port + 10000) are free too."""
    ports: list[int] = []
    held = []
    try:
        while len(ports) < count:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
            held.append(sock)
            if port + BUS_PORT_OFFSET > 65535 or not _free(port + BUS_PORT_OFFSET):
                continue
            ports.append(port)
    finally:
        for sock in held:
            sock.close()
    return ports


def _free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


@dataclass
class LocalCluster:
    """The nodes of a local cluster (masters first as created) and how to reach them."""

    nodes: list[RedisProcess]
    password: str | None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis+cluster://{auth}127.0.0.1:{self.nodes[0].port}"

    def client(self, node: RedisProcess) -> redis.Redis:
        return redis.Redis(port=node.port, password=self.password, socket_timeout=2.0)

    def role(self, node: RedisProcess) -> str:
        """`master` or `slave` as the node itself reports it now."""
        with self.client(node) as client:
            return client.info("replication")["role"]

    def masters(self) -> list[RedisProcess]:
        """Nodes that are running and act as masters now."""
        return [n for n in self.nodes if n.process.poll() is None and self.role(n) == "master"]

    def flushall(self) -> None:
        for node in self.masters():
            with self.client(node) as client:
                client.flushall()

    def wait_until_healthy(self, timeout: float = READY_TIMEOUT_S) -> None:
        """Wait until every running node says `cluster_state:ok` and every running replica is in sync."""
        deadline = time.monotonic() + timeout
        while True:
            if all(self._healthy(node) for node in self.nodes if node.process.poll() is None):
                return
            if time.monotonic() > deadline:
                raise FeaturePlatformError(f"local Redis Cluster not healthy within {timeout} s")
            time.sleep(0.1)

    def _healthy(self, node: RedisProcess) -> bool:
        try:
            with self.client(node) as client:
                if client.cluster("info").get("cluster_state") != "ok":
                    return False
                replication = client.info("replication")
                return replication["role"] == "master" or replication.get("master_link_status") == "up"
        except redis.RedisError:
            return False

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


def start_cluster(
    directory: str | Path,
    *,
    masters: int = 3,
    replicas_per_master: int = 0,
    password: str | None = None,
    binary: str | None = None,
) -> LocalCluster:
    """Start `masters * (1 + replicas_per_master)` cluster-mode nodes under `directory` and join them."""
    cli = shutil.which("redis-cli")
    if cli is None:
        raise FeaturePlatformError("no redis-cli on PATH: it joins the local cluster's nodes (apt-get install redis-tools)")
    folder = Path(directory)
    config = [
        "cluster-enabled yes",
        "cluster-config-file nodes.conf",
        f"cluster-node-timeout {NODE_TIMEOUT_MS}",
        *([f"masterauth {password}"] if password else []),
    ]
    nodes: list[RedisProcess] = []
    try:
        for port in _cluster_ports(masters * (1 + replicas_per_master)):
            node_dir = folder / f"node-{port}"
            nodes.append(
                start_server(node_dir, port=port, password=password, persistent=False, extra_config=tuple(config), binary=binary)
            )
        command = [cli, "--cluster", "create", *(f"127.0.0.1:{n.port}" for n in nodes)]
        command += ["--cluster-replicas", str(replicas_per_master), "--cluster-yes"]
        command += ["-a", password, "--no-auth-warning"] if password else []
        joined = subprocess.run(command, capture_output=True, text=True, timeout=60)
        if joined.returncode != 0:
            raise FeaturePlatformError(f"redis-cli --cluster create failed: {joined.stdout[-2000:]}{joined.stderr[-2000:]}")
        cluster = LocalCluster(nodes, password)
        cluster.wait_until_healthy()
        return cluster
    except BaseException:
        for node in nodes:
            node.stop()
        raise
