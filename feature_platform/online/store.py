"""The online store: the latest feature values per entity in Redis, written without ever regressing.

Writes go through a server-side Lua script that replaces a value only with one
of a greater `(event_time, created_time)` (equal pairs: the later write wins),
many keys per call. Reads fetch every group and entity of a request with one
MGET. See `online_codec` for the key and value layout.
"""

import os
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from queue import Queue
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pyarrow as pa
import pyarrow.compute as pc
import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from feature_platform.definitions.concepts import FeatureGroup
from feature_platform.errors import FeaturePlatformError
from feature_platform.online import codec

BATCH = 2000
SOCKET_TIMEOUT_S = 5.0
CONNECT_TIMEOUT_S = 2.0

# ARGV[1] is the stride: 1 (values only) or 2 (value, expiry as unix ms) per key.
WRITE_SCRIPT = """
local stride = tonumber(ARGV[1])
local written = 0
for i = 1, #KEYS do
  local at = 2 + (i - 1) * stride
  local new = ARGV[at]
  local old = redis.call('GET', KEYS[i])
  local replace = true
  if old then
    local oe, oc, ow = struct.unpack('>i8i8i8', old)
    local ne, nc, nw = struct.unpack('>i8i8i8', new)
    if ne ~= oe then replace = ne > oe
    elseif nc ~= oc then replace = nc > oc
    else replace = nw >= ow end
  end
  if replace then
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
    """`url` without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = f"{parts.username}:***@" if parts.username else ":***@"
    host = parts.hostname or ""
    netloc = f"{user}{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def connect(url: str) -> redis.Redis:
    """A client for `redis://` or `rediss://` (TLS) URLs with bounded timeouts."""
    # One quick retry, so an unreachable Redis fails a request in seconds, not after a backoff series.
    return redis.Redis.from_url(url, retry=Retry(ExponentialBackoff(cap=0.05, base=0.01), 1), **client_options(url))


def command_timeout_s() -> float:
    """Seconds a Redis command may take before it fails: `FEATURE_PLATFORM_REDIS_TIMEOUT_S`, default 5."""
    text = os.environ.get("FEATURE_PLATFORM_REDIS_TIMEOUT_S")
    if text is None:
        return SOCKET_TIMEOUT_S
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds < 3600:
        raise OnlineStoreError(f"FEATURE_PLATFORM_REDIS_TIMEOUT_S must be a number of seconds in (0, 3600), got {text!r}")
    return seconds


def client_options(url: str) -> dict[str, Any]:
    """Timeouts, credentials and TLS settings of a client for `url`, shared by the sync and asyncio clients.

    User and password come from the URL, else from `FEATURE_PLATFORM_REDIS_USERNAME`
    / `FEATURE_PLATFORM_REDIS_PASSWORD`; `FEATURE_PLATFORM_REDIS_CA_CERT` names a CA
    bundle for TLS.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise OnlineStoreError(f"online store URL must start with redis://, rediss:// or unix://, got {redact(url)!r}")
    options: dict[str, Any] = {"socket_timeout": command_timeout_s(), "socket_connect_timeout": CONNECT_TIMEOUT_S}
    if parts.password is None and os.environ.get("FEATURE_PLATFORM_REDIS_PASSWORD"):
        options["password"] = os.environ["FEATURE_PLATFORM_REDIS_PASSWORD"]
        if parts.username is None and os.environ.get("FEATURE_PLATFORM_REDIS_USERNAME"):
            options["username"] = os.environ["FEATURE_PLATFORM_REDIS_USERNAME"]
    if parts.scheme == "rediss" and os.environ.get("FEATURE_PLATFORM_REDIS_CA_CERT"):
        options["ssl_ca_certs"] = os.environ["FEATURE_PLATFORM_REDIS_CA_CERT"]
    return options


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
        self._local = threading.local()

    def __repr__(self) -> str:
        return f"OnlineStore({redact(self.url)!r}, project={self.project!r})"

    def ping(self) -> bool:
        """True when Redis answers."""
        try:
            return bool(self.client.ping())
        except redis.RedisError:
            return False

    def prefix(self, group: FeatureGroup) -> bytes:
        return codec.key_prefix(self.project, group)

    def write(self, group: FeatureGroup, table: pa.Table, *, now: datetime | None = None) -> WriteCount:
        """Write the latest row per entity of `table` (the group's stored schema), never regressing."""
        table = latest_per_entity(group, table)
        if table.num_rows == 0:
            return WriteCount(0, 0)
        now = now or datetime.now(timezone.utc)
        batches = (self._batch(group, table.slice(start, BATCH), now) for start in range(0, table.num_rows, BATCH))
        return WriteCount(table.num_rows, self._send(batches))

    def _batch(self, group: FeatureGroup, table: pa.Table, now: datetime) -> list[Any]:
        """The EVALSHA arguments after the script: key count, keys, stride, then value (and expiry) per key."""
        types = group.key_types
        key_columns = []
        for name in group.join_keys:
            column = table.column(name)
            if pa.types.is_integer(types[name]) or pa.types.is_string(types[name]):
                key_columns.append(column.to_pylist())
            else:
                normalise = codec.key_normaliser(name, types[name])
                key_columns.append([normalise(v) for v in column.to_pylist()])
        keys = codec.encode_keys(self.prefix(group), key_columns)
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
        values = codec.encode_values(event, created, written, features)
        if group.ttl is None:
            return [len(keys), *keys, 1, *values]
        # Keep a value one ttl past the moment it goes stale, so reads can say OUTSIDE_MAX_AGE.
        ttl_us = group.ttl // timedelta(microseconds=1)
        now_us = codec.to_micros(now)
        args: list[Any] = [len(keys), *keys, 2]
        for value, e in zip(values, event):
            args += (value, (max(e + ttl_us, now_us) + ttl_us) // 1000)
        return args

    def _send(self, batches: Iterator[list[Any]]) -> int:
        """Run the write script on each batch; a thread keeps two calls in flight while this one encodes."""
        try:
            sha = self.client.script_load(WRITE_SCRIPT)
        except redis.RedisError as exc:
            raise self._error(exc) from None
        queue: Queue = Queue(maxsize=4)
        outcome: dict[str, Any] = {"written": 0, "error": None}

        def sender() -> None:
            connection = self.client.connection_pool.make_connection()
            in_flight = 0
            ended = False
            try:
                while True:
                    batch = queue.get()
                    if batch is None:
                        ended = True
                        break
                    if outcome["error"] is None:
                        connection.send_command("EVALSHA", sha, *batch)
                        in_flight += 1
                        if in_flight == 2:
                            outcome["written"] += int(connection.read_response())
                            in_flight -= 1
                while in_flight and outcome["error"] is None:
                    outcome["written"] += int(connection.read_response())
                    in_flight -= 1
            except Exception as exc:  # surfaced in the caller below
                outcome["error"] = exc
                while not ended and queue.get() is not None:
                    pass
            finally:
                connection.disconnect()

        worker = threading.Thread(target=sender, name="online-write", daemon=True)
        worker.start()
        try:
            for batch in batches:
                if outcome["error"] is not None:
                    break
                queue.put(batch)
        finally:
            queue.put(None)
            worker.join()
        if outcome["error"] is not None:
            raise self._error(outcome["error"])
        return int(outcome["written"])

    def _error(self, exc: BaseException) -> OnlineStoreError:
        return OnlineStoreError(f"online store {redact(self.url)}: {type(exc).__name__}: {exc}")

    def mget(self, keys: Sequence[bytes]) -> list[bytes | None]:
        """The stored values of `keys` in one round trip.

        Each thread keeps its own connection, which skips the pool's checkout
        and bookkeeping on the hot path; a broken connection is retried once, a
        timeout is not (a frozen Redis fails the call after one timeout, not two).
        """
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._local.connection = self.client.connection_pool.make_connection()
        for attempt in (1, 2):
            try:
                connection.send_command("MGET", *keys)
                return connection.read_response()
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                connection.disconnect()
                if attempt == 2 or isinstance(exc, redis.TimeoutError):
                    raise self._error(exc) from None
            except redis.RedisError as exc:
                raise self._error(exc) from None
        raise AssertionError("unreachable")

    def delete_group(self, group: FeatureGroup) -> int:
        """Remove every key of one group version (e.g. an old version no longer served)."""
        deleted = 0
        pattern = self.prefix(group).replace(b"[", b"\\[").replace(b"*", b"\\*") + b"*"
        batch = []
        for key in self.client.scan_iter(match=pattern, count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                deleted += self.client.unlink(*batch)
                batch = []
        if batch:
            deleted += self.client.unlink(*batch)
        return deleted

    def close(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.disconnect()
        self.client.close()


def now_micros() -> int:
    return int(time.time() * 1_000_000)
