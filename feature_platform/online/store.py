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
from feature_platform.definitions.settings import seconds_setting
from feature_platform.errors import FeaturePlatformError
from feature_platform.online import cluster, codec, lineage

BATCH = 2000
# The cluster client raises RedisClusterException (not a RedisError) when it cannot map or reach slots.
REDIS_ERRORS = (redis.RedisError, RedisClusterException)
SOCKET_TIMEOUT_S = 5.0
CONNECT_TIMEOUT_S = 2.0

# KEYS[1] is the lineage index (entity -> source, see `online.lineage`), KEYS[2] the expiry index
# (entity -> unix ms its value expires), KEYS[3..] the entities.
# ARGV: stride (2: value, source; 3: value, source, expiry as unix ms), the re-synced sources
# first..last (empty: none), the sync's read time (high, low halves), the key prefix length,
# then the arguments of each key. An empty value deletes a re-synced entity.
# Times compare as (high signed, low unsigned) 32-bit halves: exact for every int64, where a
# Lua number (a double) is exact only below 2**53.
# Each call then trims index members whose value Redis expired (by the server's clock), up to
# twice the keys it wrote plus 64, so the indexes follow the values instead of growing forever.
WRITE_SCRIPT = """
local stride = tonumber(ARGV[1])
local first, last = tonumber(ARGV[2]), tonumber(ARGV[3])
local read_hi, read_lo = tonumber(ARGV[4]), tonumber(ARGV[5])
local cut = tonumber(ARGV[6]) + 1
local index, expiry = KEYS[1], KEYS[2]
local prefix = string.sub(index, 1, cut - 1)
local function not_older(new, old)
  local n = {struct.unpack('>i4I4i4I4i4I4', new)}
  local o = {struct.unpack('>i4I4i4I4i4I4', old)}
  for j = 1, 6 do
    if n[j] ~= o[j] then return n[j] > o[j] end
  end
  return true
end
local function written_by_then(old)
  local hi, lo = struct.unpack('>i4I4', old, 17)
  return hi < read_hi or (hi == read_hi and lo <= read_lo)
end
local written, older, removed = 0, 0, 0
for i = 3, #KEYS do
  local at = 7 + (i - 3) * stride
  local key, new = KEYS[i], ARGV[at]
  local member = string.sub(key, cut)
  local old = redis.call('GET', key)
  local resynced = false
  if first then
    local from = redis.call('ZSCORE', index, member)
    if from then
      from = tonumber(from)
      resynced = from >= first and from <= last and (not old or written_by_then(old))
    end
  end
  if new == '' then
    if resynced then
      if old then
        redis.call('DEL', key)
        removed = removed + 1
      end
      redis.call('ZREM', index, member)
      redis.call('ZREM', expiry, member)
    end
  elseif not old or resynced or not_older(new, old) then
    if stride == 3 then
      redis.call('SET', key, new, 'PXAT', ARGV[at + 2])
      redis.call('ZADD', expiry, ARGV[at + 2], member)
    else
      redis.call('SET', key, new)
    end
    redis.call('ZADD', index, ARGV[at + 1], member)
    written = written + 1
  else
    older = older + 1
  end
end
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local due = redis.call('ZRANGEBYSCORE', expiry, '-inf', now_ms, 'LIMIT', 0, 2 * (#KEYS - 2) + 64)
for _, member in ipairs(due) do
  redis.call('ZREM', expiry, member)
  -- a value still there was rewritten without an expiry (its group's ttl was removed): it keeps its source
  if redis.call('EXISTS', prefix .. member) == 0 then
    redis.call('ZREM', index, member)
  end
end
return {written, older, removed}
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
    options = client_options(url)
    # One quick retry of a broken connection; a timeout is not retried, so a hung Redis
    # fails a call after one socket timeout.
    options["retry"] = Retry(ExponentialBackoff(cap=0.05, base=0.01), 1, supported_errors=(redis.ConnectionError,))
    if cluster.is_cluster_url(url):
        try:
            return cluster.connect_cluster(url, options)
        except (*REDIS_ERRORS, ValueError) as exc:
            raise OnlineStoreError(f"online store {redact(url)}: cannot reach the Redis Cluster: {type(exc).__name__}: {exc}") from None
    try:
        return redis.Redis.from_url(url, **options)
    except ValueError as exc:
        raise OnlineStoreError(f"online store URL {redact(url)!r} is not valid: {exc}") from None


def client_options(url: str) -> dict[str, Any]:
    """Timeouts, credentials and TLS settings of a client for `url`, shared by the sync and asyncio clients."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss", "unix", *cluster.CLUSTER_SCHEMES):
        raise OnlineStoreError(
            "online store URL must start with redis://, rediss://, unix://, redis+cluster:// or rediss+cluster://, "
            f"got {redact(url)!r}"
        )
    options: dict[str, Any] = {"socket_timeout": command_timeout_s(), "socket_connect_timeout": CONNECT_TIMEOUT_S}
    if parts.password is None and os.environ.get("FEATURE_PLATFORM_REDIS_PASSWORD"):
        options["password"] = os.environ["FEATURE_PLATFORM_REDIS_PASSWORD"]
        if parts.username is None and os.environ.get("FEATURE_PLATFORM_REDIS_USERNAME"):
            options["username"] = os.environ["FEATURE_PLATFORM_REDIS_USERNAME"]
    if parts.scheme.startswith("rediss") and os.environ.get("FEATURE_PLATFORM_REDIS_CA_CERT"):
        options["ssl_ca_certs"] = os.environ["FEATURE_PLATFORM_REDIS_CA_CERT"]
    return options


def command_timeout_s() -> float:
    """Seconds a Redis command may take before it fails: `FEATURE_PLATFORM_REDIS_TIMEOUT_S`, default 5."""
    return seconds_setting("FEATURE_PLATFORM_REDIS_TIMEOUT_S", SOCKET_TIMEOUT_S, error=OnlineStoreError)


@dataclass(frozen=True)
class WriteCount:
    """What one write did: entities offered, values written, not written (Redis held a newer one), removed."""

    rows: int
    written: int
    older: int = 0
    removed: int = 0

    def __add__(self, other: "WriteCount") -> "WriteCount":
        return WriteCount(self.rows + other.rows, self.written + other.written, self.older + other.older, self.removed + other.removed)


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
        # On a cluster the entity part of a key is a hash tag, so all groups of an entity share a slot.
        self.hash_tag = self.cluster
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

    def write(
        self,
        group: FeatureGroup,
        table: pa.Table,
        *,
        now: datetime | None = None,
        pushed: bool = False,
        resync: lineage.Resync | None = None,
    ) -> WriteCount:
        """Write the latest row per entity of `table` (the group's stored schema), never regressing.

        Each value records its source: its offline partition (or the table), or
        `PUSH` when `pushed` to the online store alone. With `resync`, values from
        those sources are replaced whatever their time (the partition was recomputed).
        """
        table = latest_per_entity(group, table)
        if table.num_rows == 0:
            return WriteCount(0, 0)
        now = now or datetime.now(timezone.utc)

        def encoded() -> Iterator[tuple[list[bytes], int, list[Any]]]:
            for start in range(0, table.num_rows, BATCH):
                yield self._encode(group, table.slice(start, BATCH), now, pushed)

        return self._run(group, encoded, resync, table.num_rows)

    def remove(self, group: FeatureGroup, members: Sequence[bytes], resync: lineage.Resync) -> WriteCount:
        """Delete the entities (index members) whose value still comes from the re-synced sources."""
        prefix = self.prefix(group)

        def encoded() -> Iterator[tuple[list[bytes], int, list[Any]]]:
            for start in range(0, len(members), BATCH):
                chunk = members[start : start + BATCH]
                yield [prefix + m for m in chunk], 2, [b"", 0] * len(chunk)

        return self._run(group, encoded, resync, 0)

    def sources_in(self, group: FeatureGroup, first: int, last: int) -> Iterator[bytes]:
        """The entities (index members) whose online value came from sources `first..last`."""
        prefix = self.prefix(group)
        try:
            if self.cluster:  # one index per hash slot in use: all in one pipeline, a round trip per node
                pipe = self.client.pipeline()
                for slot in sorted(int(s) for s in self.client.smembers(lineage.slots_key(prefix))):
                    pipe.zrangebyscore(lineage.index_key(prefix, slot), first, last)
                for members in pipe.execute():
                    yield from members
                return
            page, offset = 10_000, 0
            while True:
                members = self.client.zrangebyscore(lineage.index_key(prefix), first, last, start=offset, num=page)
                yield from members
                if len(members) < page:
                    return
                offset += page
        except REDIS_ERRORS as exc:
            raise self._error(exc) from None

    def _run(
        self,
        group: FeatureGroup,
        encoded: Callable[[], Iterator[tuple[list[bytes], int, list[Any]]]],
        resync: lineage.Resync | None,
        rows: int,
    ) -> WriteCount:
        prefix = self.prefix(group)
        options: list[Any] = ["", "", 0, 0] if resync is None else [resync.first, resync.last, resync.read_at_us >> 32, resync.read_at_us & 0xFFFFFFFF]
        options.append(len(prefix))
        if self.cluster:
            counts = self._send_by_slot(prefix, encoded(), options)
        else:
            indexes = [lineage.index_key(prefix), lineage.expiry_key(prefix)]

            def batches() -> Iterator[list[Any]]:
                for keys, stride, args in encoded():
                    yield [len(keys) + 2, *indexes, *keys, stride, *options, *args]

            counts = self._send(batches)
        return WriteCount(rows, *counts)

    def _send_by_slot(self, prefix: bytes, encoded: Iterator[tuple[list[bytes], int, list[Any]]], options: list[Any]) -> list[int]:
        """Cluster writes: the script once per hash slot (at most BATCH keys a call), pipelined per node.

        A slot's indexes are trimmed when it is written; so that slots written once are trimmed too,
        each write also runs the script without keys on up to `2 * slots + 16` other listed slots.
        """
        slots: dict[int, tuple[list[bytes], list[Any]]] = {}
        stride = 2
        for keys, stride, args in encoded:
            cluster.add_by_slot(slots, keys, args, stride)
        try:
            if slots:  # before the writes: a slot listed without an index costs a lookup, one missing loses lineage
                pipe = self.client.pipeline()
                pipe.srandmember(lineage.slots_key(prefix), 2 * len(slots) + 16)
                pipe.sadd(lineage.slots_key(prefix), *slots)
                listed = pipe.execute()[0]
                for slot in listed:
                    slots.setdefault(int(slot), ([], []))
            calls = cluster.script_calls(
                slots, stride, BATCH, lambda slot: [lineage.index_key(prefix, slot), lineage.expiry_key(prefix, slot)], options
            )
            return cluster.run_script_calls(self.client, WRITE_SCRIPT, calls)
        except REDIS_ERRORS as exc:
            raise self._error(exc) from None

    def encode_keys(self, prefix: bytes, key_values: Sequence[Sequence[Any]]) -> list[bytes]:
        """The keys of entities given column by column, laid out for this Redis (hash-tagged on a cluster)."""
        return codec.encode_keys(prefix, key_values, hash_tag=self.hash_tag)

    def entity_members(self, group: FeatureGroup, table: pa.Table) -> list[bytes]:
        """The index members (keys without the prefix) of `table`'s rows."""
        cut = len(self.prefix(group))
        return [key[cut:] for key in self.encode_keys(self.prefix(group), self._key_columns(group, table))]

    def _key_columns(self, group: FeatureGroup, table: pa.Table) -> list[list[Any]]:
        types = group.key_types
        key_columns = []
        for name in group.join_keys:
            column = table.column(name)
            if pa.types.is_integer(types[name]) or pa.types.is_string(types[name]):
                key_columns.append(column.to_pylist())
            else:
                normalise = codec.key_normaliser(name, types[name])
                key_columns.append([normalise(v) for v in column.to_pylist()])
        return key_columns

    def _encode(self, group: FeatureGroup, table: pa.Table, now: datetime, pushed: bool) -> tuple[list[bytes], int, list[Any]]:
        """The keys of `table`'s rows, the stride, and per key its value, source (and expiry as unix ms)."""
        keys = self.encode_keys(self.prefix(group), self._key_columns(group, table))
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
        if pushed:
            sources = [lineage.PUSH] * len(values)
        elif group.partitions is None:
            sources = [lineage.TABLE] * len(values)
        else:
            sources = [e // lineage.DAY_US for e in event]
        args: list[Any] = []
        if group.ttl is None:
            for value, source in zip(values, sources):
                args += (value, source)
            return keys, 2, args
        # Keep a value one ttl past the moment it goes stale, so reads can say OUTSIDE_MAX_AGE.
        ttl_us = group.ttl // timedelta(microseconds=1)
        now_us = codec.to_micros(now)
        for value, source, e in zip(values, sources, event):
            args += (value, source, (max(e + ttl_us, now_us) + ttl_us) // 1000)
        return keys, 3, args

    def _send(self, make_batches: Callable[[], Iterator[list[Any]]]) -> list[int]:
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

    def _pipelined(self, sha: str, batches: Iterator[list[Any]]) -> list[int]:
        pool = self.client.connection_pool
        connection = None
        clean = False
        try:
            connection = pool.get_connection()
            counts = [0, 0, 0]
            in_flight = 0
            for batch in batches:
                connection.send_command("EVALSHA", sha, *batch)
                in_flight += 1
                if in_flight == 2:
                    counts = [c + int(r) for c, r in zip(counts, connection.read_response())]
                    in_flight -= 1
            while in_flight:
                counts = [c + int(r) for c, r in zip(counts, connection.read_response())]
                in_flight -= 1
            clean = True
            return counts
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
        """Remove every key of one group version (e.g. an old version no longer served); returns entities removed."""
        prefix = self.prefix(group)
        pattern = prefix.replace(b"[", b"\\[").replace(b"*", b"\\*") + b"*"
        entities = 0
        try:
            batch = []
            for key in self.client.scan_iter(match=pattern, count=1000):
                batch.append(key)
                entities += not key.startswith(prefix + b"\x00")  # the lineage index is no entity
                if len(batch) >= 1000:
                    self.client.unlink(*batch)
                    batch = []
            if batch:
                self.client.unlink(*batch)
        except REDIS_ERRORS as exc:
            raise self._error(exc) from None
        return entities

    def close(self) -> None:
        self.client.close()


def now_micros() -> int:
    return int(time.time() * 1_000_000)
