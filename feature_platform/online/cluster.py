"""The online store on a Redis Cluster: slot-aware writes and reads through redis-py's `RedisCluster`.

A cluster refuses a command whose keys span hash slots, so keys carry the
entity as a hash tag (`fp:<project>:<group>:v<n>:{<entity>}`): every group of
one entity key lives in one slot. Writes group keys by slot and run the
non-regressing script once per slot (atomic per key, as on one node), many
slots per pipeline, one pipeline per node; reads are one MGET per slot, also
pipelined per node. `RedisCluster` follows MOVED/ASK and re-reads the slot map
after a failover.
"""

from collections.abc import Callable, Iterable, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.backoff import ExponentialWithJitterBackoff
from redis.cluster import RedisCluster
from redis.crc import key_slot
from redis.exceptions import RedisClusterException
from redis.retry import Retry

CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
# Script calls per pipeline: bounds the memory of one round and keeps responses coming.
COMMANDS_PER_PIPELINE = 512


def is_cluster_url(url: str) -> bool:
    """True for `redis+cluster://` and `rediss+cluster://` URLs."""
    return urlsplit(url).scheme in CLUSTER_SCHEMES


def connect_cluster(url: str, options: dict[str, Any]) -> RedisCluster:
    """A `RedisCluster` client from a `redis+cluster://host:port` URL (any node; the others are discovered)."""
    parts = urlsplit(url)
    plain = urlunsplit((CLUSTER_SCHEMES[parts.scheme], *parts[1:]))
    options = {key: value for key, value in options.items() if key != "retry"}
    # A few retries on connection errors and CLUSTERDOWN, each re-reading the slot map, so a moved slot costs one call.
    options["retry"] = Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), 3)
    return RedisCluster.from_url(plain, **options)


def add_by_slot(slots: dict[int, tuple[list[bytes], list[Any]]], keys: Sequence[bytes], args: Sequence[Any], stride: int) -> None:
    """Add keys and their script arguments (`stride` per key) to `slots`, grouped by hash slot."""
    for i, key in enumerate(keys):
        slot = key_slot(key)
        entry = slots.get(slot)
        if entry is None:
            entry = slots[slot] = ([], [])
        entry[0].append(key)
        entry[1].extend(args[i * stride : (i + 1) * stride])


def script_calls(
    slots: dict[int, tuple[list[bytes], list[Any]]],
    stride: int,
    batch: int,
    index_keys: Callable[[int], list[bytes]],
    options: Sequence[Any],
) -> Iterable[tuple[int, list[Any]]]:
    """Per call, its slot and the script arguments after the SHA: the slot's lineage indexes, then at most
    `batch` keys of the slot, the stride, the options and each key's arguments (a slot without keys: one call
    that only trims its indexes)."""
    for slot, (keys, args) in slots.items():
        indexes = index_keys(slot)
        if not keys:
            yield slot, [len(indexes), *indexes, stride, *options]
        for start in range(0, len(keys), batch):
            chunk = keys[start : start + batch]
            head = [len(chunk) + len(indexes), *indexes, *chunk, stride, *options]
            yield slot, [*head, *args[start * stride : (start + len(chunk)) * stride]]


def run_script_calls(client: RedisCluster, script: str, calls: Iterable[tuple[int, list[Any]]]) -> list[int]:
    """Run the write script for each call, pipelined per node; the sums of the counts the calls return.

    A node that does not know the script (a replica just promoted) gets it
    loaded and the calls it refused sent again.
    """
    sha = client.script_load(script)
    counts = [0, 0, 0]
    pending: list[tuple[int, list[Any]]] = []
    for call in calls:
        pending.append(call)
        if len(pending) == COMMANDS_PER_PIPELINE:
            counts = _add(counts, _pipelined(client, script, sha, pending))
            pending = []
    if pending:
        counts = _add(counts, _pipelined(client, script, sha, pending))
    return counts


def _add(counts: list[int], replies: Iterable[Any]) -> list[int]:
    for reply in replies:
        counts = [c + int(r) for c, r in zip(counts, reply)]
    return counts


def _pipelined(client: RedisCluster, script: str, sha: str, calls: list[tuple[int, list[Any]]]) -> list[Any]:
    """The replies of the calls (in any order)."""
    try:
        return send_by_node(client, [(slot, ("EVALSHA", sha, *args)) for slot, args in calls])
    except NotSent:
        pass  # redis-py's pipeline follows the redirect, reloads the script or waits out the failover
    results = _pipeline(client, sha, calls).execute(raise_on_error=False)
    refused = [call for call, result in zip(calls, results) if isinstance(result, redis.exceptions.NoScriptError)]
    for result in results:
        if isinstance(result, Exception) and not isinstance(result, redis.exceptions.NoScriptError):
            raise result
    done = [r for r in results if not isinstance(r, Exception)]
    if refused:
        client.script_load(script)
        done += _pipeline(client, sha, refused).execute()
    return done


def _pipeline(client: RedisCluster, sha: str, calls: list[tuple[int, list[Any]]]) -> Any:
    """A cluster pipeline of EVALSHA calls, each aimed at its slot's master.

    Naming the node spares redis-py a COMMAND GETKEYS round trip per script
    call; after a MOVED it retries the call by its keys.
    """
    pipe = client.pipeline()
    for slot, args in calls:
        pipe.execute_command("EVALSHA", sha, *args, target_nodes=[client.nodes_manager.get_node_from_slot(slot)])
    return pipe


class NotSent(Exception):
    """The fast path met a redirect, an error or a dead node; the caller goes through redis-py's pipeline."""


def mget(client: RedisCluster, keys: Sequence[bytes]) -> list[bytes | None]:
    """The values of `keys`: one MGET per slot, one pipeline per node, all nodes' pipelines sent before reading."""
    slots: dict[int, list[int]] = {}
    for position, key in enumerate(keys):
        slot = key_slot(key)
        positions = slots.get(slot)
        if positions is None:
            positions = slots[slot] = []
        positions.append(position)
    try:
        replies = send_by_node(client, [(slot, ("MGET", *(keys[p] for p in positions))) for slot, positions in slots.items()])
    except NotSent:
        return client.mget_nonatomic(keys)
    values: list[bytes | None] = [None] * len(keys)
    for positions, reply in zip(slots.values(), replies):
        for position, value in zip(positions, reply):
            values[position] = value
    return values


def send_by_node(client: RedisCluster, commands: Sequence[tuple[int, Sequence[Any]]]) -> list[Any]:
    """Send each `(slot, command)` to its slot's master as the cached slot map says; the replies in order.

    One packed write per node, every node's before any read, so a request
    costs one round trip however many nodes it touches. Anything but a plain
    reply (MOVED, ASK, NOSCRIPT, a broken connection) raises `NotSent`, and
    the connections it used are closed, since replies may be left unread.
    """
    by_node: dict[str, tuple[Any, list[int]]] = {}
    node_of = client.nodes_manager.get_node_from_slot
    try:
        for index, (slot, _) in enumerate(commands):
            node = node_of(slot)
            entry = by_node.get(node.name)
            if entry is None:
                entry = by_node[node.name] = (node, [])
            entry[1].append(index)
    except (redis.RedisError, RedisClusterException) as exc:
        raise NotSent() from exc
    if any(node.redis_connection is None for node, _ in by_node.values()):
        raise NotSent()  # a node the client has not connected to yet: redis-py's own path connects it
    replies: list[Any] = [None] * len(commands)
    used = []
    try:
        for node, indices in by_node.values():
            pool = node.redis_connection.connection_pool
            connection = pool.get_connection()
            used.append((pool, connection, indices))
            connection.send_packed_command(connection.pack_commands([commands[i][1] for i in indices]))
        for _, connection, indices in used:
            for i in indices:
                replies[i] = connection.read_response()
    except BaseException as exc:
        for _, connection, _ in used:
            connection.disconnect()
        if isinstance(exc, (redis.RedisError, OSError)):
            raise NotSent() from exc
        raise
    finally:
        for pool, connection, _ in used:
            pool.release(connection)
    return replies
