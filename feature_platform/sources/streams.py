"""Event streams: the small protocol a stream consumer needs, and its Redis Streams transport.

A transport delivers entries `(id, {field: value})` to named consumer groups,
at least once: an entry stays pending until acknowledged, and a restarted
consumer claims the pending entries and gets them again. Entry ids increase
along the stream, which is what lets a sink skip what it already applied (see
`feature_platform.streaming`). A Kafka transport
fits the same protocol (offsets per partition as ids); only Redis Streams ships,
because only it is tested against a real broker here.
"""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any, Protocol

import redis

from feature_platform.errors import FeaturePlatformError

Entry = tuple[str, dict[bytes, bytes]]
LAG_COUNT_LIMIT = 100_000


def entry_order(entry_id: str) -> tuple[int, int]:
    """A sortable form of a stream entry id `<ms>-<seq>`."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


@dataclass(frozen=True)
class StreamLag:
    """How far a consumer group is behind: undelivered entries, delivered but unacknowledged ones, and seconds.

    `behind` is None when the broker cannot count it cheaply; it is at least
    `LAG_COUNT_LIMIT` when it equals that.
    """

    behind: int | None
    pending: int
    last_delivered: str
    last_entry: str
    seconds: float


class EventStream(Protocol):
    """What the stream consumer uses; one instance per stream."""

    name: str

    def publish(self, events: Iterable[Mapping[str, Any]]) -> list[str]: ...

    def ensure_consumer_group(self, group: str) -> None: ...

    def read(self, group: str, consumer: str, *, count: int, block_ms: int | None = None, pending_after: str | None = None) -> list[Entry]: ...

    def acknowledge(self, group: str, ids: Sequence[str]) -> int: ...

    def claim_pending(self, group: str, consumer: str) -> int: ...

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

    def read(
        self, group: str, consumer: str, *, count: int, block_ms: int | None = None, pending_after: str | None = None
    ) -> list[Entry]:
        """Up to `count` entries for `consumer`: new ones (waiting up to `block_ms`), or with `pending_after`
        (`"0"` to start) its own delivered but unacknowledged ones after that id."""
        position = ">" if pending_after is None else pending_after
        try:
            reply = self.client.xreadgroup(group, consumer, {self.key: position}, count=count, block=block_ms if pending_after is None else None)
        except redis.ResponseError as exc:
            if "NOGROUP" in str(exc):
                raise FeaturePlatformError(
                    f"stream {self.key}: consumer group '{group}' does not exist (was the Redis data lost?); "
                    "nothing was read — restore Redis or restart the consumer to create the group anew"
                ) from None
            raise
        if not reply:
            return []
        # A pending entry deleted from the stream by a trim comes back with no fields: there is nothing to apply.
        return [(i.decode(), f) for i, f in reply[0][1] if f is not None]

    def acknowledge(self, group: str, ids: Sequence[str]) -> int:
        return int(self.client.xack(self.key, group, *ids)) if ids else 0

    def claim_pending(self, group: str, consumer: str) -> int:
        """Move every pending entry of `group` (e.g. of a consumer that died) to `consumer`; returns how many."""
        claimed, start = 0, "0-0"
        while True:
            reply = self.client.xautoclaim(self.key, group, consumer, min_idle_time=0, start_id=start, count=1000)
            start = reply[0].decode() if isinstance(reply[0], bytes) else str(reply[0])
            claimed += len(reply[1])
            if start == "0-0":
                return claimed

    def lag(self, group: str) -> StreamLag:
        """Entries not yet delivered to `group`, those pending, and the time between its position and the stream's end."""
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
        return StreamLag(behind, int(state["pending"]), delivered, last, seconds)

    def entries(self, start: str = "-", end: str = "+", count: int | None = None) -> list[Entry]:
        """Stored entries between two ids (inclusive), oldest first: the raw history a backfill replays."""
        return [(i.decode(), f) for i, f in self.client.xrange(self.key, start, end, count=count)]

    def dead_letters(self, count: int | None = None) -> list[dict[str, str]]:
        """Rejected entries with their reason, oldest first."""
        rows = self.client.xrange(self.dead_key, "-", "+", count=count)
        return [{k.decode(): v.decode("utf-8", "backslashreplace") for k, v in f.items()} for _, f in rows]

    def trim_acknowledged(self, groups: Sequence[str], keep_after_ms: int) -> int:
        """Delete entries every group has acknowledged and that are older than `keep_after_ms` (epoch ms)."""
        info = {g["name"].decode(): g for g in self.client.xinfo_groups(self.key)}
        if any(g not in info for g in groups):
            return 0
        safe = []
        for group in groups:
            summary = self.client.xpending(self.key, group)
            oldest = summary["min"].decode() if summary["pending"] else None
            delivered = info[group]["last-delivered-id"].decode()
            safe.append(entry_order(oldest) if oldest else (entry_order(delivered)[0], entry_order(delivered)[1] + 1))
        ms, seq = min([*safe, (keep_after_ms, 0)])
        return int(self.client.xtrim(self.key, minid=f"{ms}-{seq}", approximate=False))
