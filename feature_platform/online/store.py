"""The online store: the latest feature values per entity in Redis, written without ever regressing.

Writes go through a server-side Lua script that replaces a value only with one
of a greater `(event_time, created_time)` (equal pairs: the later write wins),
many keys per call. Reads fetch every group and entity of a request with one
MGET. See `online.codec` for the key and value layout, and `online.cluster`
for the same on a Redis Cluster (per hash slot, pipelined per node).
"""

import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pyarrow as pa
import pyarrow.compute as pc
import redis
from redis.backoff import ExponentialBackoff
from redis.cluster import RedisCluster
from redis.exceptions import RedisClusterException
from redis.retry import Retry

from feature_platform.definitions.concepts import FeatureGroup
from feature_platform.definitions.records import layout_ids
from feature_platform.errors import FeaturePlatformError
from feature_platform.online import cluster, codec

BATCH = 2000
# The cluster client raises RedisClusterException (not a RedisError) when it cannot map or reach slots.
REDIS_ERRORS = (redis.RedisError, RedisClusterException)
SOCKET_TIMEOUT_S = 5.0
CONNECT_TIMEOUT_S = 2.0

# ARGV[1] is the stride: 1 (values only) or 2 (value, expiry as unix ms) per key.
# Headers compare as (high signed, low unsigned) 32-bit halves: exact for every int64, where a
# Lua number (a double) is exact only below 2**53.
WRITE_SCRIPT = """
local stride = tonumber(ARGV[1])
local function not_older(new, old)
  local n = {struct.unpack('>i4I4i4I4i4I4', new)}
  local o = {struct.unpack('>i4I4i4I4i4I4', old)}
  for j = 1, 6 do
    if n[j] ~= o[j] then return n[j] > o[j] end
  end
  return true
end
local written = 0
for i = 1, #KEYS do
  local at = 2 + (i - 1) * stride
  local new = ARGV[at]
  local old = redis.call('GET', KEYS[i])
  if not old or not_older(new, old) then
    if stride == 2 then
      redis.call('SET', KEYS[i], new, 'PXAT', ARGV[at + 1])
    else
      redis.call('SET', KEYS[i], new)
    end
    written = written + 1
  end
end
return written
"""


class OnlineStoreError(FeaturePlatformError):
    """The online store cannot be reached or refused a command."""


def redact(url: str) -> str:
    """`url` without its password, for messages and logs (also when the URL is malformed)."""
    parts = urlsplit(url)
    credentials, at, host = parts.netloc.rpartition("@")
    if not at or ":" not in credentials:
        return url
    user = credentials.split(":", 1)[0]
    return urlunsplit((parts.scheme, f"{user}:***@{host}", parts.path, parts.query, parts.fragment))


def connect(url: str) -> "redis.Redis | RedisCluster":
    """A client for `redis://`, `rediss://` (TLS) or, for a Redis Cluster, `redis+cluster://` / `rediss+cluster://`.

    Timeouts are bounded. User and password come from the URL, else from
    `FEATURE_PLATFORM_REDIS_USERNAME` / `FEATURE_PLATFORM_REDIS_PASSWORD`;
    `FEATURE_PLATFORM_REDIS_CA_CERT` names a CA bundle for TLS.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss", "unix", *cluster.CLUSTER_SCHEMES):
        raise OnlineStoreError(
            "online store URL must start with redis://, rediss://, unix://, redis+cluster:// or rediss+cluster://, "
            f"got {redact(url)!r}"
        )
    options: dict[str, Any] = {
        "socket_timeout": SOCKET_TIMEOUT_S,
        "socket_connect_timeout": CONNECT_TIMEOUT_S,
        # One quick retry of a broken connection; a timeout is not retried, so a hung Redis
        # fails a call after one socket timeout.
        "retry": Retry(ExponentialBackoff(cap=0.05, base=0.01), 1, supported_errors=(redis.ConnectionError,)),
    }
    if parts.password is None and os.environ.get("FEATURE_PLATFORM_REDIS_PASSWORD"):
        options["password"] = os.environ["FEATURE_PLATFORM_REDIS_PASSWORD"]
        if parts.username is None and os.environ.get("FEATURE_PLATFORM_REDIS_USERNAME"):
            options["username"] = os.environ["FEATURE_PLATFORM_REDIS_USERNAME"]
    if parts.scheme.startswith("rediss") and os.environ.get("FEATURE_PLATFORM_REDIS_CA_CERT"):
        options["ssl_ca_certs"] = os.environ["FEATURE_PLATFORM_REDIS_CA_CERT"]
    if cluster.is_cluster_url(url):
        try:
            return cluster.connect_cluster(url, options)
        except (*REDIS_ERRORS, ValueError) as exc:
            raise OnlineStoreError(f"online store {redact(url)}: cannot reach the Redis Cluster: {type(exc).__name__}: {exc}") from None
    try:
        return redis.Redis.from_url(url, **options)
    except ValueError as exc:
        raise OnlineStoreError(f"online store URL {redact(url)!r} is not valid: {exc}") from None


@dataclass(frozen=True)
class WriteCount:
    """Rows offered to the online store and how many replaced the stored value."""

    rows: int
    written: int

    @property
    def skipped(self) -> int:
        return self.rows - self.written


def latest_per_entity(group: FeatureGroup, table: pa.Table) -> pa.Table:
    """The row of greatest `(event_time, created_time, _written_at)` per entity (nulls first)."""
    if table.num_rows <= 1:
        return table
    keys = group.join_keys
    order = [group.event_time, *([group.created_time] if group.created_time else [])]
    order += ["_written_at"] if "_written_at" in table.column_names else []
    columns = [*keys, *order]
    indices = pc.sort_indices(table.select(columns), sort_keys=[(c, "ascending", "at_start") for c in columns])
    count = len(indices)
    last_of_run = None
    for key in keys:
        ordered = table.column(key).take(indices)
        differs = pc.not_equal(ordered.slice(0, count - 1), ordered.slice(1))
        last_of_run = differs if last_of_run is None else pc.or_(last_of_run, differs)
    mask = pa.concat_arrays([*pa.chunked_array(last_of_run).chunks, pa.array([True])])
    return table.take(pc.filter(indices, mask))


class OnlineStore:
    """Feature values of the groups of one project in one Redis database."""

    def __init__(self, url: str, *, project: str = "default") -> None:
        self.url = url
        self.project = project
        self.client = connect(url)
        self.cluster = isinstance(self.client, RedisCluster)
        self._sha: str | None = None

    def __repr__(self) -> str:
        return f"OnlineStore({redact(self.url)!r}, project={self.project!r})"

    def ping(self) -> bool:
        """True when Redis answers."""
        try:
            return bool(self.client.ping())
        except REDIS_ERRORS:
            return False

    def prefix(self, group: FeatureGroup) -> bytes:
        return codec.key_prefix(self.project, group)

    def write(self, group: FeatureGroup, table: pa.Table, *, now: datetime | None = None) -> WriteCount:
        """Write the latest row per entity of `table` (the group's stored schema), never regressing."""
        table = latest_per_entity(group, table)
        if table.num_rows == 0:
            return WriteCount(0, 0)
        now = now or datetime.now(timezone.utc)
        if self.cluster:
            return WriteCount(table.num_rows, self._send_by_slot(group, table, now))
        def batches() -> Iterator[list[Any]]:
            return (self._batch(group, table.slice(start, BATCH), now) for start in range(0, table.num_rows, BATCH))

        return WriteCount(table.num_rows, self._send(batches))

    def _send_by_slot(self, group: FeatureGroup, table: pa.Table, now: datetime) -> int:
        """Cluster writes: the script once per hash slot (at most BATCH keys a call), pipelined per node."""
        slots: dict[int, tuple[list[bytes], list[Any]]] = {}
        stride = 1
        for start in range(0, table.num_rows, BATCH):
            keys, stride, args = self._encode(group, table.slice(start, BATCH), now)
            cluster.add_by_slot(slots, keys, args, stride)
        try:
            return cluster.run_script_calls(self.client, WRITE_SCRIPT, cluster.script_calls(slots, stride, BATCH))
        except REDIS_ERRORS as exc:
            raise self._error(exc) from None

    def encode_keys(self, prefix: bytes, key_values: Sequence[Sequence[Any]]) -> list[bytes]:
        """The keys of entities given column by column, laid out for this Redis (hash-tagged on a cluster)."""
        return codec.encode_keys(prefix, key_values, hash_tag=self.cluster)

    def _batch(self, group: FeatureGroup, table: pa.Table, now: datetime) -> list[Any]:
        """The EVALSHA arguments after the script: key count, keys, stride, then value (and expiry) per key."""
        keys, stride, args = self._encode(group, table, now)
        return [len(keys), *keys, stride, *args]

    def _encode(self, group: FeatureGroup, table: pa.Table, now: datetime) -> tuple[list[bytes], int, list[Any]]:
        """The keys of `table`'s rows, the stride, and per key its value (and expiry as unix ms)."""
        types = group.key_types
        key_columns = []
        for name in group.join_keys:
            column = table.column(name)
            if pa.types.is_integer(types[name]) or pa.types.is_string(types[name]):
                key_columns.append(column.to_pylist())
            else:
                normalise = codec.key_normaliser(name, types[name])
                key_columns.append([normalise(v) for v in column.to_pylist()])
        keys = self.encode_keys(self.prefix(group), key_columns)
        event = codec.column_for_packing(table.column(group.event_time))
        if group.created_time:
            created = pc.fill_null(table.column(group.created_time).cast(pa.int64()), codec.NO_CREATED_TIME).to_pylist()
        else:
            created = [codec.NO_CREATED_TIME] * table.num_rows
        if "_written_at" in table.column_names:
            written = codec.column_for_packing(table.column("_written_at"))
        else:
            written = [codec.to_micros(now)] * table.num_rows
        features = [codec.column_for_packing(table.column(name)) for name in group.feature_names]
        values = codec.encode_values(event, created, written, features, layout_ids(group)[-1])
        if group.ttl is None:
            return keys, 1, values
        # Keep a value one ttl past the moment it goes stale, so reads can say OUTSIDE_MAX_AGE.
        ttl_us = group.ttl // timedelta(microseconds=1)
        now_us = codec.to_micros(now)
        args: list[Any] = []
        for value, e in zip(values, event):
            args += (value, (max(e + ttl_us, now_us) + ttl_us) // 1000)
        return keys, 2, args

    def _send(self, make_batches: Callable[[], Iterator[list[Any]]]) -> int:
        """Run the write script on each batch over one pooled connection, always returned to the pool.

        Two calls stay in flight while the next batch is encoded. Every error
        reaches the caller; a script missing on the server (restart, SCRIPT FLUSH)
        is loaded again and the write redone (writes are idempotent).
        """
        for attempt in (1, 2):
            try:
                return self._pipelined(self._script_sha(), make_batches())
            except redis.exceptions.NoScriptError:
                self._sha = None
                if attempt == 2:
                    raise self._error(redis.exceptions.NoScriptError("the write script vanished twice")) from None
        raise AssertionError("unreachable")

    def _script_sha(self) -> str:
        if self._sha is None:
            try:
                self._sha = str(self.client.script_load(WRITE_SCRIPT))
            except redis.RedisError as exc:
                raise self._error(exc) from None
        return self._sha

    def _pipelined(self, sha: str, batches: Iterator[list[Any]]) -> int:
        pool = self.client.connection_pool
        connection = None
        clean = False
        try:
            connection = pool.get_connection()
            written = in_flight = 0
            for batch in batches:
                connection.send_command("EVALSHA", sha, *batch)
                in_flight += 1
                if in_flight == 2:
                    written += int(connection.read_response())
                    in_flight -= 1
            while in_flight:
                written += int(connection.read_response())
                in_flight -= 1
            clean = True
            return written
        except redis.exceptions.NoScriptError:
            raise
        except redis.RedisError as exc:
            raise self._error(exc) from None
        finally:
            if connection is not None:
                if not clean:  # replies may still be pending on it
                    connection.disconnect()
                pool.release(connection)

    def _error(self, exc: BaseException) -> OnlineStoreError:
        hint = ""
        if not self.cluster and isinstance(exc, (redis.exceptions.ClusterCrossSlotError, redis.exceptions.AskError)):
            hint = " (this Redis is a cluster: name it with a redis+cluster:// or rediss+cluster:// URL)"
        return OnlineStoreError(f"online store {redact(self.url)}: {type(exc).__name__}: {exc}{hint}")

    def mget(self, keys: Sequence[bytes]) -> list[bytes | None]:
        """The stored values of `keys` in one round trip; a broken pooled connection is retried once."""
        if self.cluster:
            try:
                return cluster.mget(self.client, keys)
            except REDIS_ERRORS as exc:
                raise self._error(exc) from None
        pool = self.client.connection_pool
        for attempt in (1, 2):
            connection = None
            try:
                connection = pool.get_connection()
                connection.send_command("MGET", *keys)
                return connection.read_response()
            except redis.ConnectionError as exc:
                if connection is not None:
                    connection.disconnect()
                if attempt == 2:
                    raise self._error(exc) from None
            except redis.RedisError as exc:
                if connection is not None:
                    connection.disconnect()
                raise self._error(exc) from None
            finally:
                if connection is not None:
                    pool.release(connection)
        raise AssertionError("unreachable")

    def delete_group(self, group: FeatureGroup) -> int:
        """Remove every key of one group version (e.g. an old version no longer served)."""
        deleted = 0
        pattern = self.prefix(group).replace(b"[", b"\\[").replace(b"*", b"\\*") + b"*"
        try:
            batch = []
            for key in self.client.scan_iter(match=pattern, count=1000):
                batch.append(key)
                if len(batch) >= 1000:
                    deleted += self.client.unlink(*batch)
                    batch = []
            if batch:
                deleted += self.client.unlink(*batch)
        except REDIS_ERRORS as exc:
            raise self._error(exc) from None
        return deleted

    def close(self) -> None:
        self.client.close()


def now_micros() -> int:
    return int(time.time() * 1_000_000)
