"""The stream consumer of one stream group: events in, online tiles and offline events out, each exactly once.

Each batch read from the stream is merged into the consumer's copy of the
tiles (`online.tile_cache`) and written by one Redis script that also moves the
online watermark (the last entry id applied), only if the stored watermark is
the one this consumer last wrote. The script is sent, on a writer thread, just
after the next batch is read and its uncached entities loaded (a read sent after
it would wait behind it in Redis), and runs while that batch is merged (one write
in flight). While the consumer keeps up, reads are at least `min_read_interval`
apart, and the write goes out before that wait. A batch counts as applied, and
its watermark as ours, only once its write is confirmed. Each batch is also
buffered for the offline table; the buffer is appended to the group's Delta
table in one commit whose metadata records the offline watermark. Entries are
read without acknowledgements: at start, and after a Redis outage, the
consumer rewinds its consumer group to the older of the two durable
watermarks and reads from there, and each sink skips what its watermark
covers. So an event is never lost and never counted twice, whoever replays
it. Watermarks need the entries in stream order, so one process at a time
consumes a stream group (a lease in Redis).
"""

import gc
import os
import secrets
import socket
import time
from collections import deque
from contextlib import contextmanager
from concurrent.futures import Future, ThreadPoolExecutor
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

import pyarrow as pa
import pyarrow.compute as pc
import redis
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_exponential

from feature_platform.definitions.aggregations import StreamFeatureGroup
from feature_platform.offline.store import OfflineStore
from feature_platform.online.store import OnlineStore
from feature_platform.online.tile_cache import TileCache
from feature_platform.online.tiles import TileWrites, claim_lease, release_lease, stream_state_key, watermark, write_tiles
from feature_platform.errors import ArgumentError, FeaturePlatformError
from feature_platform.sources.streams import Entry, RedisStream, StreamLag, entry_order
from feature_platform.windows.events import DeadLetter, ParsedEvents, parse_entries
from feature_platform.windows.tiles import partial_tiles

CONSUMER_GROUP = "feature-platform"
# How long the stream keeps entries both sinks stored, for replays and backfills from raw history.
DEFAULT_STREAM_RETENTION = timedelta(hours=1)
# The least time between reads while the consumer keeps up (see `StreamProcessor`).
DEFAULT_MIN_READ_INTERVAL = timedelta(milliseconds=50)
LEASE_MS = 30_000
WATERMARK_KEY = "stream_watermark"
CONSUMER_KEY = "stream_consumer"
T = TypeVar("T")


@contextmanager
def fewer_collections(threshold: int = 50_000) -> Iterator[None]:
    """Raise the garbage collector's first threshold while consuming, then restore it.

    A batch makes tens of thousands of short-lived lists; at the default (700)
    their churn promotes them and sets off full collections of the whole heap
    many times a second (a third of the consumer's CPU time in the benchmark).
    """
    previous = gc.get_threshold()
    gc.set_threshold(max(threshold, previous[0]), *previous[1:])
    try:
        yield
    finally:
        gc.set_threshold(*previous)


def default_consumer() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass
class StreamStats:
    """What a run of the consumer did, and where the stream stands."""

    group: str
    consumer: str
    events: int = 0
    dead_letters: int = 0
    offline_rows: int = 0
    redelivered: int = 0
    seconds: float = 0.0
    last_event_time: datetime | None = None
    lag: StreamLag | None = None
    # Per batch, the oldest entry's time from reaching the stream to visible online, and its events (bounded history).
    latencies_ms: deque = field(default_factory=lambda: deque(maxlen=100_000), repr=False)
    batch_events: deque = field(default_factory=lambda: deque(maxlen=100_000), repr=False)

    @property
    def events_per_second(self) -> float:
        return round(self.events / self.seconds, 1) if self.seconds else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "group": self.group, "consumer": self.consumer, "events": self.events, "dead_letters": self.dead_letters,
            "offline_rows": self.offline_rows, "redelivered": self.redelivered, "seconds": round(self.seconds, 3),
            "events_per_second": self.events_per_second,
            "last_event_time": self.last_event_time.isoformat() if self.last_event_time else None,
            "lag_events": self.lag.behind if self.lag else None, "lag_seconds": self.lag.seconds if self.lag else None,
        }


def dead_letter_fields(stream: str, letter: DeadLetter) -> list[str]:
    """The dead-letter stream entry of a rejected event: where it came from, why, and its fields."""
    fields = ["source_stream", stream, "source_id", letter.entry_id, "reason", letter.reason]
    for name, value in letter.fields.items():
        fields += [f"field:{name}", value]
    return fields


class StreamProcessor:
    """Consumes one stream group's events into its online tiles and its offline Delta table.

    `cached_entities` bounds the entities whose tiles the consumer keeps
    (memory: about their packed tiles); past it the longest cached are loaded
    again from Redis when next touched. `min_read_interval` is the least time
    between reads while the consumer keeps up (a read came back short): the
    stream fills meanwhile, and fewer, bigger batches cost less CPU per event
    (40% less at 50,000 events/s with 50 ms), which leaves the cores to Redis
    and its append-only-file rewrites; events wait up to that long more.

    >>> with StreamProcessor(store.online, store.offline, group, stream) as processor:
    ...     processor.run(max_seconds=10).as_dict()
    """

    def __init__(
        self,
        online: OnlineStore,
        offline: OfflineStore,
        group: StreamFeatureGroup,
        stream: RedisStream,
        *,
        consumer: str | None = None,
        batch_size: int = 10_000,
        block_ms: int = 100,
        offline_batch: int = 250_000,
        offline_interval: timedelta = timedelta(seconds=5),
        retention: timedelta | None = DEFAULT_STREAM_RETENTION,
        max_outage: timedelta = timedelta(minutes=5),
        cached_entities: int = 200_000,
        min_read_interval: timedelta = DEFAULT_MIN_READ_INTERVAL,
    ) -> None:
        if batch_size < 1:
            raise ArgumentError(f"stream group '{group.name}': batch_size must be 1 or more (the most entries a read "
                                f"takes; Redis reads without a limit at 0), not {batch_size}")
        for name, value, meaning in (
            ("retention", retention, "how long the stream keeps entries both sinks stored"),
            ("min_read_interval", min_read_interval, "the least time between reads while the consumer keeps up"),
        ):
            if value is not None and value < timedelta(0):
                raise ArgumentError(f"stream group '{group.name}': {name} must be 0 or more ({meaning}), not {value}")
        if online.cluster:
            raise FeaturePlatformError(
                f"stream group '{group.name}': the consumer applies each batch in one Redis script, which a Redis "
                "Cluster cannot run across slots; point FEATURE_PLATFORM_REDIS_URL at a single Redis (or a replicated one)"
            )
        self.online = online
        self.offline = offline
        self.group = group
        self.stream = stream
        self.consumer = consumer or default_consumer()
        self.batch_size = batch_size
        self.block_ms = block_ms
        self.offline_batch = offline_batch
        self.offline_interval = offline_interval.total_seconds()
        self.retention = retention
        self.max_outage = max_outage.total_seconds()
        self.min_read_interval = min_read_interval.total_seconds()
        self._token = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._lease_key = stream_state_key(online, group, "lease")
        self._watermark_key = stream_state_key(online, group, "watermark")
        self._tiles = TileCache(online, group, capacity=cached_entities)
        self._online_id: str | None = None
        self._online_mark: tuple[int, int] | None = None
        self._offline_mark: tuple[int, int] | None = None
        self._rewind = True
        self._buffer: list[pa.Table] = []
        self._offline_last = ""
        self._flusher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="offline-flush")
        self._flushing: Future | None = None
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="online-write")
        self._prepared: tuple[TileWrites, ParsedEvents, list[Entry], StreamStats] | None = None  # merged, not sent
        self._in_flight: tuple[Future, ParsedEvents, list[Entry], StreamStats] | None = None
        self._short_read_at: float | None = None  # when the last read that returned fewer than `batch_size` did
        self._started = False

    def start(self) -> None:
        """Create the consumer group, take the lease, load both watermarks and rewind the group to the older one."""
        self._retrying(self._start)

    def _start(self) -> None:
        self.stream.ensure_consumer_group(CONSUMER_GROUP)
        if not claim_lease(self.online, self._lease_key, self._token, LEASE_MS) and not self._take_over_dead_lease():
            raise FeaturePlatformError(
                f"stream group '{self.group.name}' is already consumed by another process (one consumer per stream "
                f"group); stop it, or wait {LEASE_MS // 1000} s for a dead one's lease to expire"
            )
        offline_mark = self.offline.last_commit_value(self.group, WATERMARK_KEY)
        self._offline_mark = entry_order(offline_mark) if offline_mark else None
        self._rewind_to_durable()
        self._started = True

    def _rewind_to_durable(self) -> None:
        """Read again from the older durable watermark: whatever was read but is not in both sinks comes back.

        The online watermark is reloaded (Redis may have restarted with older
        state); the offline one is the last Delta commit's, kept in memory.
        """
        self._load_online_mark()
        durable = self._durable_mark()
        self.stream.rewind(CONSUMER_GROUP, "0" if durable is None else f"{durable[0]}-{durable[1]}")
        self._rewind = False

    def _load_online_mark(self) -> None:
        self._online_id = watermark(self.online, self._watermark_key)
        self._online_mark = entry_order(self._online_id) if self._online_id else None

    def _durable_mark(self) -> tuple[int, int] | None:
        """The last entry both sinks have applied (None: possibly none)."""
        if self._online_mark is None or self._offline_mark is None:
            return None
        return min(self._online_mark, self._offline_mark)

    def _take_over_dead_lease(self) -> bool:
        """Take the lease of a consumer on this machine whose process has died (no need to wait for it to expire)."""
        holder = self.online.client.get(self._lease_key)
        host, _, rest = (holder or b"").decode().partition(":")
        pid = rest.partition(":")[0]
        if host != socket.gethostname() or not pid.isdigit():
            return False
        try:
            os.kill(int(pid), 0)
            return False
        except ProcessLookupError:
            release_lease(self.online, self._lease_key, (holder or b"").decode())
            return claim_lease(self.online, self._lease_key, self._token, LEASE_MS)
        except PermissionError:
            return False

    def _read(self) -> list[Entry]:
        """The next batch; without waiting for entries while a merged batch waits to be sent.

        After a short read the stream is given until `min_read_interval` to fill, with the merged batch's
        write sent first, so what is merged becomes visible meanwhile.
        """
        if self._short_read_at is not None:
            wait = self.min_read_interval - (time.monotonic() - self._short_read_at)
            if wait > 0:
                self._send()
                time.sleep(wait)
        if self._rewind:
            self._rewind_to_durable()
        block_ms = None if self._prepared else self.block_ms
        entries = self.stream.read(CONSUMER_GROUP, self.consumer, count=self.batch_size, block_ms=block_ms)
        self._short_read_at = time.monotonic() if 0 < len(entries) < self.batch_size else None
        return entries

    def _after(self, entries: list[Entry], mark: tuple[int, int] | None) -> list[Entry]:
        """The entries after `mark` (entries come in stream order, so usually all of them)."""
        if mark is None or entry_order(entries[0][0]) > mark:
            return entries
        return [e for e in entries if entry_order(e[0]) > mark]

    def step(self, stats: StreamStats) -> int:
        """Read a batch and load its uncached entities, send the previous batch's online write, merge this batch,
        confirm that write; buffer offline.

        Returns the entries read or, when none came, those of the write confirmed (0: none new, none pending).
        This batch's write is sent by the next step (after its read and load) or by `drain`. Reads go before the
        write because Redis runs one command at a time: a read sent after the write's script waits for it.
        """
        entries = self._read()
        if not entries:
            self._send()
            claim_lease(self.online, self._lease_key, self._token, LEASE_MS)
            pending = len(self._in_flight[2]) if self._in_flight else 0
            self._confirm()
            return pending
        online, offline = self._after(entries, self._online_mark), self._after(entries, self._offline_mark)
        stats.redelivered += len(entries) - len(online)
        parsed = parse_entries(self.group, online) if online else None
        batch = partial_tiles(self.group, parsed.table) if parsed is not None else None
        # None of these entities has a write pending: the cache keeps those.
        states = self._tiles.load(batch.entities) if batch is not None else None
        self._send()
        writes = self._tiles.merge(batch, time.time_ns() // 1000, states) if batch is not None else None
        self._confirm()
        if self._rewind:  # the previous write was refused: this batch is read again after the rewind
            return len(entries)
        if parsed is not None and writes is not None:  # (both or neither)
            self._prepared = (writes, parsed, online, stats)
        if offline:
            rows = parsed.table if parsed is not None and len(online) == len(offline) else parse_entries(self.group, offline).table
            self._buffer.append(rows)
            self._offline_last = offline[-1][0]
        return len(entries)

    def _send(self) -> None:
        """Send the merged batch's online write (on the writer thread), expecting the last confirmed watermark."""
        if self._prepared is None:
            return
        (writes, parsed, entries, stats), self._prepared = self._prepared, None
        dead = [dead_letter_fields(self.stream.name, d) for d in parsed.dead]
        self._in_flight = (self._writer.submit(self._write, writes, dead, self._online_id, entries[-1][0]), parsed, entries, stats)

    def _events_in_flight(self) -> int:
        """The events and dead letters merged but not yet confirmed online (counted once they are)."""
        return sum(p[1].table.num_rows + len(p[1].dead) for p in (self._prepared, self._in_flight) if p is not None)

    def _write(self, writes: TileWrites, dead: list[list[str]], expected: str | None, last_id: str) -> float | None:
        """Store a merged batch (on the writer thread); when it became visible online (epoch ms), None if refused."""
        written = write_tiles(
            self.online, self.group, writes, dead, watermark_key=self._watermark_key, dead_key=self.stream.dead_key,
            lease=(self._lease_key, self._token, LEASE_MS), expected=expected, last_id=last_id,
        )
        return time.time() * 1000 if written else None

    def drain(self) -> None:
        """Send the merged batch's online write, if any, and confirm it (`step` leaves it pending)."""
        self._send()
        self._confirm()

    def _confirm(self) -> None:
        """Wait for the online write in flight and count it; if the stored watermark refused it, rewind.

        Refused: the stored watermark is not the one we wrote (Redis came back with older state, or a write whose
        reply was lost went through). Each sink skips what its reloaded watermark covers; the rest is read again.
        """
        if self._in_flight is None:
            return
        (write, parsed, entries, stats), self._in_flight = self._in_flight, None
        try:
            visible_ms = write.result()
        except BaseException:
            self._tiles.clear()  # the retry rewinds (`_reset_after_outage`)
            raise
        if visible_ms is None:
            self._reset_after_outage()
            return
        self._online_id = entries[-1][0]
        self._online_mark = entry_order(entries[-1][0])
        stats.events += parsed.table.num_rows
        stats.dead_letters += len(parsed.dead)
        stats.latencies_ms.append(visible_ms - entry_order(entries[0][0])[0])
        stats.batch_events.append(len(entries))
        if parsed.table.num_rows:
            latest = pc.max(parsed.table.column(self.group.event_time)).as_py()
            stats.last_event_time = max(stats.last_event_time or latest, latest)

    def flush_offline(self, stats: StreamStats, *, wait: bool = True) -> None:
        """Append the buffered events to the Delta table in one commit, moving the offline watermark.

        Without `wait` the commit runs on a background thread while consuming goes on (one at a time).
        """
        self._wait_for_flush()
        buffer, last = self._buffer, self._offline_last
        self._buffer = []
        self._flushing = self._flusher.submit(self._flush, buffer, last, stats)
        if wait:
            self._wait_for_flush()

    def _flush(self, buffer: list[pa.Table], last: str, stats: StreamStats) -> None:
        rows = pa.concat_tables(buffer) if buffer else None
        if rows is not None and rows.num_rows:
            if not self._retrying(lambda: claim_lease(self.online, self._lease_key, self._token, LEASE_MS), reset=False):
                raise FeaturePlatformError(f"stream group '{self.group.name}': another process took over the consumer lease; this one stops")
            self.offline.append(self.group, rows, commit_metadata={CONSUMER_KEY: self.consumer, WATERMARK_KEY: last})
            stats.offline_rows += rows.num_rows
        if buffer:
            self._offline_mark = entry_order(last)

    def _wait_for_flush(self) -> None:
        """Wait for the commit in flight (raising its error, if any)."""
        flushing, self._flushing = self._flushing, None
        if flushing is not None:
            flushing.result()

    def _reset_after_outage(self) -> None:
        """Forget what was read but not yet offline: the next read rewinds to the durable watermarks.

        A commit in flight finishes first, so what it appends is not read and appended again; so does an online
        write in flight (counted if stored: the reloaded watermark then skips it).
        """
        self._wait_for_flush()
        self._prepared = None
        try:
            self._confirm()
        except Exception:
            pass  # whether it went through or not, the rewind reloads the stored watermark
        self._rewind = True
        self._buffer = []
        self._tiles.clear()

    def run(
        self,
        *,
        max_events: int | None = None,
        max_seconds: float | None = None,
        until_idle: bool = False,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> StreamStats:
        """Consume until a limit, until no new entry arrives (`until_idle`), or until `should_stop()`.

        Redis outages up to `max_outage` are waited out; the offline table is
        brought up to date (everything read is then in both sinks) before returning.
        """
        if not self._started:
            self.start()
        stats = StreamStats(self.group.name, self.consumer)
        began = last_flush = time.monotonic()
        try:
            with fewer_collections():
                while not should_stop():
                    handled = self._retrying(lambda: self.step(stats))
                    buffered = sum(t.num_rows for t in self._buffer)
                    if buffered >= self.offline_batch or time.monotonic() - last_flush >= self.offline_interval:
                        self.flush_offline(stats, wait=False)
                        self._trim()
                        last_flush = time.monotonic()
                    stats.seconds = time.monotonic() - began
                    if (max_events is not None and stats.events + stats.dead_letters + self._events_in_flight() >= max_events) or (
                        max_seconds is not None and stats.seconds >= max_seconds
                    ) or (until_idle and handled == 0):
                        break
                self._retrying(self.drain)
                self.flush_offline(stats)
                self._trim()
        finally:
            stats.seconds = time.monotonic() - began
        stats.lag = self._retrying(lambda: self.stream.lag(CONSUMER_GROUP))
        return stats

    def _trim(self) -> None:
        """Drop entries older than `retention` that both sinks have applied (a rewind never needs them)."""
        durable = self._durable_mark()
        if self.retention is not None and durable is not None:
            keep_after = int((datetime.now(timezone.utc) - self.retention).timestamp() * 1000)
            ms, seq = min((durable[0], durable[1] + 1), (keep_after, 0))
            self._retrying(lambda: self.stream.trim(f"{ms}-{seq}"))

    def __enter__(self) -> "StreamProcessor":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Give the lease up, so another process can consume the group at once."""
        self._writer.shutdown(wait=True)
        self._flusher.shutdown(wait=True)
        try:
            release_lease(self.online, self._lease_key, self._token)
        except redis.RedisError:
            pass  # the lease expires by itself

    def _retrying(self, call: Callable[[], T], *, reset: bool = True) -> T:
        """`call()`, waiting out a Redis restart or outage (connection refused, loading) up to `max_outage`.

        A retried step starts over from the durable watermarks (`reset`), so what was read but not stored is not skipped.
        """
        for attempt in Retrying(
            retry=retry_if_exception_type((redis.ConnectionError, redis.TimeoutError)),
            wait=wait_exponential(multiplier=0.05, max=2.0),
            stop=stop_after_delay(self.max_outage),
            before_sleep=lambda _: self._reset_after_outage() if reset else None,
            reraise=True,
        ):
            with attempt:
                return call()
        raise AssertionError("unreachable")


def stream_for(online: OnlineStore, group: StreamFeatureGroup) -> RedisStream:
    """The Redis stream of a stream group, on the online store's Redis."""
    return RedisStream(online.client, group.stream_name, project=online.project)


def backfill_offline(offline: OfflineStore, group: StreamFeatureGroup, entries: Sequence[Entry]) -> int:
    """Rebuild the group's offline events from raw history (stream entries) through the same parsing; returns rows."""
    table = parse_entries(group, entries).table
    offline.append(group, table, commit_metadata={"stream_backfill": "true"})
    return table.num_rows
