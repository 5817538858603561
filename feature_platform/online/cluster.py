"""The online store on a Redis Cluster: slot-aware writes and reads through redis-py's `RedisCluster`.

A cluster refuses a command whose keys span hash slots, so keys carry the
entity as a hash tag (`fp:<project>:<group>:v<n>:{<entity>}`): every group of
one entity key lives in one slot. Writes group keys by slot and run the
non-regressing script once per slot (atomic per key, as on one node), many
slots per pipeline, one pipeline per node; reads are one MGET per slot, also
pipelined per node. `RedisCluster` follows MOVED/ASK and re-reads the slot map
after a failover.
"""

from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.backoff import ExponentialWithJitterBackoff
from redis.cluster import RedisCluster
from redis.crc import key_slot
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


def run_script_calls(client: RedisCluster, script: str, calls: Iterable[list[Any]]) -> list[int]:
    """Run the write script for each call, pipelined per node; the sums of the counts the calls return.

    A node that does not know the script (a replica just promoted) gets it
    loaded and the calls it refused sent again.
    """
    sha = client.script_load(script)
    counts = [0, 0, 0]
    pending: list[list[Any]] = []
    for call in calls:
        pending.append(call)
        if len(pending) == COMMANDS_PER_PIPELINE:
            counts = _add(counts, _pipelined(client, script, sha, pending))
            pending = []
    if pending:
        counts = _add(counts, _pipelined(client, script, sha, pending))
    return counts


def _add(counts: list[int], results: Iterable[Any]) -> list[int]:
    for result in results:
        counts = [c + int(r) for c, r in zip(counts, result)]
    return counts


def _pipelined(client: RedisCluster, script: str, sha: str, calls: list[list[Any]]) -> list[Any]:
    """The results of the calls, in any order."""
    pipe = client.pipeline()
    for call in calls:
        pipe.execute_command("EVALSHA", sha, *call)
    results = pipe.execute(raise_on_error=False)
    refused = [call for call, result in zip(calls, results) if isinstance(result, redis.exceptions.NoScriptError)]
    for result in results:
        if isinstance(result, Exception) and not isinstance(result, redis.exceptions.NoScriptError):
            raise result
    done = [r for r in results if not isinstance(r, Exception)]
    if refused:
        client.script_load(script)
        pipe = client.pipeline()
        for call in refused:
            pipe.execute_command("EVALSHA", sha, *call)
        done += pipe.execute()
    return done
