"""Window tiles in Redis: one hash per entity (field: tile index, value: msgpack of the tile), merged by a script.

`apply_tiles` merges a batch's partial tiles, appends its dead letters and
moves the consumer's watermark (the last entry id applied) in one Lua script,
so a batch is applied entirely or not at all, and a batch at or below the
watermark (a redelivery after a crash) is refused: nothing is counted twice.
The script also checks the consumer's lease (`claim_lease`): one process at a
time consumes a stream group.
Reads fetch an entity's tiles with HGETALL and sum the tiles of each window.
"""

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import msgpack
import redis

from feature_platform.definitions.aggregations import StreamFeatureGroup
from feature_platform.online.store import OnlineStore
from feature_platform.windows.tiles import TileBatch, layout, tile_micros, tiles_in, window_values

APPLY_SCRIPT = """
if redis.call('GET', KEYS[3]) ~= ARGV[8] then return -2 end
redis.call('PEXPIRE', KEYS[3], ARGV[9])
local mark = redis.call('GET', KEYS[1])
if mark then
  local ms, seq = string.match(mark, '(%d+)-(%d+)')
  local fms, fseq = string.match(ARGV[1], '(%d+)-(%d+)')
  ms, seq, fms, fseq = tonumber(ms), tonumber(seq), tonumber(fms), tonumber(fseq)
  if ms > fms or (ms == fms and seq >= fseq) then return -1 end
end
local codes = ARGV[3]
local expire_ms = tonumber(ARGV[4])
local max_fields = tonumber(ARGV[5])
local oldest = tonumber(ARGV[6])
local function merge(old, new)
  for i = 1, #codes do
    local c = string.sub(codes, i, i)
    if c == 'a' then old[i] = old[i] + new[i]
    elseif c == 'n' then if new[i] < old[i] then old[i] = new[i] end
    elseif c == 'x' then if new[i] > old[i] then old[i] = new[i] end
    else
      local best = {}
      local o, n = old[i], new[i]
      for j = 1, #o, 2 do best[o[j]] = o[j + 1] end
      for j = 1, #n, 2 do
        local r = best[n[j]]
        if r == nil or n[j + 1] > r then best[n[j]] = n[j + 1] end
      end
      local out = {}
      for reg, rank in pairs(best) do out[#out + 1] = reg; out[#out + 1] = rank end
      old[i] = out
    end
  end
  return old
end
-- ARGV[10]: the tiles column by column: entity key index, tile index, then one column per tile position.
local columns = cmsgpack.unpack(ARGV[10])
local entity, tile = columns[1], columns[2]
local width = #columns - 2
for row = 1, #tile do
  local key = KEYS[entity[row] + 4]
  local field = tostring(tile[row])
  local value = {}
  for i = 1, width do value[i] = columns[i + 2][row] end
  local stored = redis.call('HGET', key, field)
  if stored then
    redis.call('HSET', key, field, cmsgpack.pack(merge(cmsgpack.unpack(stored), value)))
  else
    redis.call('HSET', key, field, cmsgpack.pack(value))
    -- A new tile: the entity is active, so keep its key a horizon longer and drop tiles no window reads any more.
    redis.call('PEXPIRE', key, expire_ms)
    if redis.call('HLEN', key) > max_fields then
      for _, old in ipairs(redis.call('HKEYS', key)) do
        if tonumber(old) < oldest then redis.call('HDEL', key, old) end
      end
    end
  end
end
for _, fields in ipairs(cmsgpack.unpack(ARGV[7])) do
  redis.call('XADD', KEYS[2], '*', unpack(fields))
end
redis.call('SET', KEYS[1], ARGV[2])
return #tile
"""


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


def entity_keys(online: OnlineStore, group: StreamFeatureGroup, entities: Sequence[tuple[Any, ...]]) -> list[bytes]:
    columns = [list(column) for column in zip(*entities)] if entities else [[] for _ in group.join_keys]
    return online.encode_keys(online.prefix(group), columns)


def apply_tiles(
    online: OnlineStore,
    group: StreamFeatureGroup,
    batch: TileBatch,
    dead_letters: Sequence[Sequence[str]],
    *,
    watermark_key: bytes,
    dead_key: str,
    lease: tuple[bytes, str, int],
    first_id: str,
    last_id: str,
    now_us: int,
) -> int | None:
    """Merge partial tiles and append dead letters atomically, unless the batch is at or below the watermark (None).

    `lease` is `(key, token, ms)`; a lease held by another process raises `LeaseLost`.
    Redis errors are raised as they are, for the caller to retry.
    """
    keys = [watermark_key, dead_key.encode(), lease[0], *entity_keys(online, group, batch.entities)]
    span = tiles_in(group, group.largest_window)
    horizon = group.largest_window + 2 * group.tile + group.max_future
    oldest = now_us // tile_micros(group) - span
    args = [
        first_id, last_id, layout(group).codes, horizon // timedelta(milliseconds=1) + (group.ttl or timedelta(0)) // timedelta(milliseconds=1),
        span + 2, oldest, msgpack.packb([list(f) for f in dead_letters]), lease[1], lease[2],
        msgpack.packb([batch.entity_index, batch.tiles, *batch.columns]),
    ]
    applied = int(online.client.register_script(APPLY_SCRIPT)(keys=keys, args=args))
    if applied == -2:
        raise LeaseLost(f"stream group '{group.name}': another process took over the consumer lease; this one stops")
    return None if applied < 0 else applied


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
    unpack = msgpack.unpackb
    return [window_values(group, {int(t): unpack(v) for t, v in reply.items()}, now_us) for reply in replies]
