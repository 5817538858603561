"""Window tiles in Redis: one hash per entity (field: tile index, value: the tile, see `windows.tile_bytes`).

`write_tiles` sets a batch's tiles (merged by the consumer, see
`tile_cache`), appends its dead letters and moves the consumer's watermark (the
last entry id applied) in one Lua script, so a batch is applied entirely or not
at all, and only on top of the state the consumer merged into: the script
compares the stored watermark with the one the consumer expects, so a
redelivery, a lost reply or a Redis restart never counts an event twice. The
script also checks the consumer's lease (`claim_lease`): one process at a time
consumes a stream group. Reads fetch an entity's tiles with HGETALL and sum
the tiles of each window.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import msgpack
import redis

from feature_platform.definitions.aggregations import StreamFeatureGroup
from feature_platform.online.store import OnlineStore
from feature_platform.windows.tile_bytes import tile_bytes
from feature_platform.windows.tiles import window_values

# KEYS: watermark, dead-letter stream, lease. ARGV: expected watermark ('' = none), new watermark, lease token,
# lease ms, expiry ms, then four msgpack arrays: the dead letters; per entity `tiles to set, refresh expiry (0/1),
# n, n tile indexes to delete`, flat; the entity keys; the (field, value) pairs to set, entity after entity. Values
# are final: the consumer merged them. Entity keys and pairs travel as one msgpack string each, not as 30,000
# command arguments: Redis parses those one by one, and so does redis-py when it sends them (most of the cost of a
# batch on both sides). So the entity keys are not declared; the consumer refuses a Redis Cluster.
APPLY_SCRIPT = """
if redis.call('GET', KEYS[3]) ~= ARGV[3] then return -2 end
local mark = redis.call('GET', KEYS[1]) or ''
if mark ~= ARGV[1] then return -1 end
redis.call('PEXPIRE', KEYS[3], ARGV[4])
local heads = cmsgpack.unpack(ARGV[7])
local keys = cmsgpack.unpack(ARGV[8])
local fields = cmsgpack.unpack(ARGV[9])
local at, h = 1, 1
for _, key in ipairs(keys) do
  local last = at + 2 * heads[h] - 1
  while at <= last do
    local upto = math.min(at + 999, last)
    redis.call('HSET', key, unpack(fields, at, upto))
    at = upto + 1
  end
  if heads[h + 1] == 1 then redis.call('PEXPIRE', key, ARGV[5]) end
  local stale = heads[h + 2]
  for j = h + 3, h + 2 + stale, 1000 do
    redis.call('HDEL', key, unpack(heads, j, math.min(j + 999, h + 2 + stale)))
  end
  h = h + 3 + stale
end
for _, letter in ipairs(cmsgpack.unpack(ARGV[6])) do
  redis.call('XADD', KEYS[2], '*', unpack(letter))
end
redis.call('SET', KEYS[1], ARGV[2])
return #keys
"""


def packed_strings(values: Sequence[Any]) -> bytes:
    """A msgpack array whose bytes are msgpack strings: the Lua msgpack of Redis 6 reads no binary type."""
    return msgpack.packb(values, use_bin_type=False)


def stream_state_key(online: OnlineStore, group: StreamFeatureGroup, name: str) -> bytes:
    """Where the consumer's `watermark` or `lease` lives: beside the tiles, so a group delete removes it too.

    Entity keys continue the prefix with a msgpack array header, never with `!`.
    """
    return online.prefix(group) + b"!stream:" + name.encode()


class LeaseLost(RuntimeError):
    """Another process holds the lease of the group's consumer."""


LEASE_SCRIPT = """
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""


def claim_lease(online: OnlineStore, key: bytes, token: str, lease_ms: int) -> bool:
    """Take or renew the consumer lease; False while another process holds it."""
    return bool(online.client.register_script(LEASE_SCRIPT)(keys=[key], args=[token, lease_ms]))


def release_lease(online: OnlineStore, key: bytes, token: str) -> None:
    script = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
    online.client.eval(script, 1, key, token)


def watermark(online: OnlineStore, key: bytes) -> str | None:
    """The last entry id the consumer applied, or None before its first batch."""
    value = online.client.get(key)
    return None if value is None else value.decode()


@dataclass
class TileWrites:
    """What a batch changes in the tiles: the entity keys; per entity, flat in `heads`, how many tiles it sets,
    whether to refresh its expiry, and how many and which tiles to delete; the (field, packed tile) pairs to set."""

    keys: list[bytes] = field(default_factory=list)
    heads: list[int] = field(default_factory=list)
    pairs: list[bytes] = field(default_factory=list)


def write_tiles(
    online: OnlineStore,
    group: StreamFeatureGroup,
    writes: TileWrites,
    dead_letters: Sequence[Sequence[str]],
    *,
    watermark_key: bytes,
    dead_key: str,
    lease: tuple[bytes, str, int],
    expected: str | None,
    last_id: str,
) -> bool:
    """Set the merged tiles, append dead letters and move the watermark to `last_id`, atomically, if the watermark
    is still `expected` (False otherwise: another writer, a lost reply or a Redis restart moved it).

    `lease` is `(key, token, ms)`; a lease held by another process raises `LeaseLost`.
    Redis errors are raised as they are, for the caller to retry.
    """
    args = [
        expected or "", last_id, lease[1], lease[2], expiry(group) // timedelta(milliseconds=1),
        msgpack.packb([list(f) for f in dead_letters]), msgpack.packb(writes.heads), packed_strings(writes.keys),
        packed_strings(writes.pairs),
    ]
    applied = int(online.client.register_script(APPLY_SCRIPT)(keys=[watermark_key, dead_key.encode(), lease[0]], args=args))
    if applied == -2:
        raise LeaseLost(f"stream group '{group.name}': another process took over the consumer lease; this one stops")
    return applied >= 0


def expiry(group: StreamFeatureGroup) -> timedelta:
    """How long an entity's tiles are kept after its expiry was last refreshed: past every window, and its ttl."""
    return group.largest_window + 2 * group.tile + group.max_future + (group.ttl or timedelta(0))


def read_windows(online: OnlineStore, group: StreamFeatureGroup, keys: Sequence[bytes], now_us: int) -> list[tuple[list[Any] | None, int | None]]:
    """Per entity key: the group's window features at `now_us` (None: no event in any window) and its last event time."""
    if not keys:
        return []
    try:
        pipe = online.client.pipeline(transaction=False)
        for key in keys:
            pipe.hgetall(key)
        replies = pipe.execute()
    except redis.RedisError as exc:
        raise online._error(exc) from None
    form = tile_bytes(group)
    return [window_values(group, form, {int(t): tile for t, tile in reply.items()}, now_us) for reply in replies]
