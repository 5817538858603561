"""Event streams: the small protocol a stream consumer needs, and its Redis Streams transport.

A transport delivers entries `(id, [field, value, ...])` to a named consumer
group in id order, without acknowledgements (Redis `NOACK`): the consumer keeps
durable watermarks of what its sinks applied and, after a crash or an outage,
rewinds the group to them and reads the rest again (at least once). Entry ids
increase along the stream, which is what lets a sink skip what it already
applied (see `feature_platform.streaming`). A Kafka transport fits the same
protocol (offsets per partition as ids, `rewind` as a seek); only Redis
Streams ships, because only it is tested against a real broker here.
"""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timezone
from operator import itemgetter
from typing import Any, Protocol

import redis

from feature_platform.errors import FeaturePlatformError

# Fields as Redis sends them, `[field, value, field, value, ...]`, or a mapping.
Entry = tuple[str, Sequence[bytes] | Mapping[bytes, bytes]]
LAG_COUNT_LIMIT = 100_000


def entry_order(entry_id: str) -> tuple[int, int]:
    """A sortable form of a stream entry id `<ms>-<seq>`."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


@dataclass(frozen=True)
class StreamLag:
    """How far a consumer group is behind: undelivered entries, and seconds between its position and the stream's end.

    `behind` is None when the broker cannot count it cheaply; it is at least
    `LAG_COUNT_LIMIT` when it equals that.
    """

    behind: int | None
    last_delivered: str
    last_entry: str
    seconds: float


class EventStream(Protocol):
    """What the stream consumer uses; one instance per stream."""

    name: str

    def publish(self, events: Iterable[Mapping[str, Any]]) -> list[str]: ...

    def ensure_consumer_group(self, group: str) -> None: ...

    def read(self, group: str, consumer: str, *, count: int, block_ms: int | None = None) -> list[Entry]: ...

    def rewind(self, group: str, after_id: str) -> None: ...

    def lag(self, group: str) -> StreamLag: ...

    def entries(self, start: str = "-", end: str = "+", count: int | None = None) -> list[Entry]: ...


def _wire(value: Any) -> str | bytes | int | float:
    """A field value as stream text: datetimes as ISO 8601 (UTC), everything else as is."""
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).astimezone(timezone.utc).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, bytes, int, float)):
        return value
    return str(value)


class RedisStream:
    """A Redis stream `fp:<project>:stream:<name>` and its dead-letter stream `<key>:dead`.

    Uses the client it is given (the online store's), so there is one Redis
    connection setup for the whole platform.
    """

    def __init__(self, client: redis.Redis, name: str, *, project: str = "default") -> None:
        self.client = client
        self.name = name
        self.key = f"fp:{project}:stream:{name}"
        self.dead_key = f"{self.key}:dead"
        self._raw: redis.Redis | None = None

    def __repr__(self) -> str:
        return f"RedisStream({self.key!r})"

    def publish(self, events: Iterable[Mapping[str, Any]]) -> list[str]:
        """Append events (one stream entry each) in one round trip per 1,000; returns their entry ids."""
        ids: list[str] = []
        pipe = self.client.pipeline(transaction=False)
        queued = 0
        for event in events:
            pipe.xadd(self.key, {k: _wire(v) for k, v in event.items()})
            queued += 1
            if queued == 1000:
                ids += [i.decode() for i in pipe.execute()]
                queued = 0
        if queued:
            ids += [i.decode() for i in pipe.execute()]
        return ids

    def ensure_consumer_group(self, group: str) -> None:
        """Create the consumer group at the start of the stream (creating the stream if needed)."""
        try:
            self.client.xgroup_create(self.key, group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def read(self, group: str, consumer: str, *, count: int, block_ms: int | None = None) -> list[Entry]:
        """Up to `count` entries after the group's position (waiting up to `block_ms`), moving the position past them.

        No acknowledgements (`NOACK`): nothing is kept pending, and a consumer
        that must read entries again `rewind`s the group. The reply is taken as
        the server sends it (flat field lists), without a dict per entry.
        """
        args: list[Any] = ["GROUP", group, consumer, "COUNT", count]
        if block_ms is not None:
            args += ["BLOCK", block_ms]
        try:
            reply = self._raw_client().execute_command("XREADGROUP", *args, "NOACK", "STREAMS", self.key, ">")
        except redis.ResponseError as exc:
            if "NOGROUP" in str(exc):
                raise FeaturePlatformError(
                    f"stream {self.key}: consumer group '{group}' does not exist (was the Redis data lost?); "
                    "nothing was read — restore Redis or restart the consumer to create the group anew"
                ) from None
            raise
        if not reply:
            return []
        entries = next(iter(reply.values())) if isinstance(reply, dict) else reply[0][1]
        return list(zip(map(bytes.decode, map(itemgetter(0), entries)), map(itemgetter(1), entries)))

    def _raw_client(self) -> redis.Redis:
        """A client on the same connection pool whose XREADGROUP replies are not reshaped into dicts."""
        if self._raw is None:
            self._raw = redis.Redis(connection_pool=self.client.connection_pool)
            self._raw.set_response_callback("XREADGROUP", lambda reply, **_: reply)
        return self._raw

    def rewind(self, group: str, after_id: str) -> None:
        """Move the group's position back to `after_id` (`"0"`: the start): the next read returns the entries after it."""
        self.client.xgroup_setid(self.key, group, after_id)

    def lag(self, group: str) -> StreamLag:
        """Entries not yet delivered to `group`, and the time between its position and the stream's end."""
        info = {g["name"].decode(): g for g in self.client.xinfo_groups(self.key)}
        if group not in info:
            raise FeaturePlatformError(f"stream {self.key} has no consumer group '{group}'")
        state = info[group]
        delivered = state["last-delivered-id"].decode()
        last = self.client.xinfo_stream(self.key)["last-generated-id"].decode()
        behind = state.get("lag")
        if not isinstance(behind, int):
            # Redis before 7 has no lag field: count the undelivered entries, up to a limit.
            behind = len(self.client.xrange(self.key, f"({delivered}", "+", count=LAG_COUNT_LIMIT))
        seconds = max(0, entry_order(last)[0] - entry_order(delivered)[0]) / 1000 if behind else 0.0
        return StreamLag(behind, delivered, last, seconds)

    def entries(self, start: str = "-", end: str = "+", count: int | None = None) -> list[Entry]:
        """Stored entries between two ids (inclusive), oldest first: the raw history a backfill replays."""
        return [(i.decode(), f) for i, f in self.client.xrange(self.key, start, end, count=count)]

    def dead_letters(self, count: int | None = None) -> list[dict[str, str]]:
        """Rejected entries with their reason, oldest first."""
        rows = self.client.xrange(self.dead_key, "-", "+", count=count)
        return [{k.decode(): v.decode("utf-8", "backslashreplace") for k, v in f.items()} for _, f in rows]

    def length(self) -> int:
        """The entries the stream holds (the consumer trims what both sinks stored, past its retention)."""
        return int(self.client.xlen(self.key))

    def trim(self, before_id: str) -> int:
        """Delete the entries older than `before_id` (the consumer passes what both its sinks made durable)."""
        return int(self.client.xtrim(self.key, minid=before_id, approximate=False))
