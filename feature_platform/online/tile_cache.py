"""The stream consumer's copy of the tiles it writes: batches merge here, so Redis only stores the results.

One process at a time writes a stream group's tiles (the lease), and each
write moves the watermark only if it is still the one this process last wrote
(`tiles.write_tiles`). So while the stored watermark is ours, the stored tiles
of a cached entity are exactly the cached ones, and a batch costs Redis one
`HSET` per touched entity instead of a read and a merge per tile (`tile_bytes`
merges a batch's tiles together). An entity's tiles are loaded with one
`HGETALL` the first time a batch touches it (tiles of an earlier format
converted); after a refused or failed write the cache is dropped and reloaded
from Redis. Tiles are kept packed, as stored; past `capacity` entities, the
longest cached go first.
"""

from collections import deque
from itertools import islice
from typing import Any

import msgpack
import numpy as np

from feature_platform.definitions.aggregations import StreamFeatureGroup
from feature_platform.online.store import OnlineStore
from feature_platform.online.tiles import TileWrites, packed_strings
from feature_platform.windows.tile_bytes import tile_bytes
from feature_platform.windows.tiles import TileBatch, tile_micros, tiles_in

# An entity's Redis key and its stored tiles, `{tile index: packed tile}`.
_State = tuple[bytes, dict[int, bytes]]

# ARGV[1]: the entity keys as one msgpack array (see `tiles.APPLY_SCRIPT` for why not as arguments); the reply is
# one msgpack array of their HGETALL replies.
LOAD_SCRIPT = """
local out = {}
for i, key in ipairs(cmsgpack.unpack(ARGV[1])) do out[i] = redis.call('HGETALL', key) end
return cmsgpack.pack(out)
"""


class TileCache:
    """The tiles of recently touched entities of one stream group, as stored in Redis.

    Per entity its Redis key and `{tile index: packed tile}`: tuples, bytes and
    ints only, which Python's garbage collector leaves alone however many there are.

    >>> cache = TileCache(store.online, group)
    >>> writes = cache.merge(partial_tiles(group, events), now_us)
    """

    def __init__(self, online: OnlineStore, group: StreamFeatureGroup, *, capacity: int = 200_000) -> None:
        self.online = online
        self.group = group
        self.capacity = capacity
        self._form = tile_bytes(group)
        self._prefix = online.prefix(group)
        self._tile_us = tile_micros(group)
        self._span = tiles_in(group, group.largest_window)
        self._entities: dict[tuple[Any, ...], _State] = {}
        self._refreshed: dict[bytes, int] = {}  # by entity key: when this process last refreshed its expiry

    def clear(self) -> None:
        self._entities.clear()
        self._refreshed.clear()

    def merge(self, batch: TileBatch, now_us: int, states: list[_State] | None = None) -> TileWrites:
        """Merge a batch into the cached tiles; returns the writes that store the results (`tiles.write_tiles`).

        `states` are what `load(batch.entities)` returned, if the caller loaded them already. The caller drops the
        cache (`clear`) when those writes fail or are refused. Past `capacity` the longest cached entities go,
        except this batch's: while its write is in flight, they must not be loaded again.
        """
        try:
            writes = self._merge(batch, now_us, self.load(batch.entities) if states is None else states)
        except BaseException:
            self.clear()
            raise
        excess = len(self._entities) - self.capacity
        if excess > 0:
            touched = set(batch.entities)
            for entity in list(islice((e for e in self._entities if e not in touched), excess)):
                self._refreshed.pop(self._entities.pop(entity)[0], None)
        return writes

    def load(self, entities: list[tuple[Any, ...]]) -> list[_State]:
        """The cached state of each entity, those not cached loaded first in one script call.

        The stream consumer loads a batch's entities before it sends the previous batch's write: Redis runs one
        command at a time, and a load sent after that write would wait for it.
        """
        cached = self._entities
        states = list(map(cached.get, entities))
        missing = [p for p, state in enumerate(states) if state is None]
        if missing:
            try:
                loaded = self._load([entities[p] for p in missing])
            except BaseException:
                self.clear()
                raise
            for p, state in zip(missing, loaded):
                cached[entities[p]] = states[p] = state
        return states  # type: ignore[return-value]  # (none is None any more)

    def _merge(self, batch: TileBatch, now_us: int, states: list[_State]) -> TileWrites:
        entity_tiles = [tiles for _, tiles in states]
        # Per batch tile, its entity's tiles; `map` over built-ins runs without a Python frame per tile.
        tiles_of = list(map(entity_tiles.__getitem__, batch.entity_index))
        packed = self._form.combine(self.group, list(map(dict.get, tiles_of, batch.tiles)), batch.header, batch.codes)
        deque(map(dict.__setitem__, tiles_of, batch.tiles, packed), maxlen=0)
        # The batch's tiles come entity after entity (`partial_tiles`): entity i's are the next `changed[i]`.
        changed = np.bincount(np.asarray(batch.entity_index, dtype=np.int64), minlength=len(states)).tolist()
        writes = TileWrites(keys=[key for key, _ in states])
        oldest = now_us // self._tile_us - self._span
        refreshed, every, longest = self._refreshed, self._tile_us, self._span + 2
        heads: list[int] = []
        dropped: set[int] = set()  # positions of changed tiles that are also stale (deleted, not set)
        start = 0
        for (key, tiles), count in zip(states, changed):
            refresh = 0
            if now_us - refreshed.get(key, -every) >= every:
                refreshed[key], refresh = now_us, 1
            if len(tiles) <= longest:
                heads += (count, refresh, 0)
            else:
                stale = [t for t in tiles if t < oldest]
                for tile in stale:  # tiles no window reads any more
                    del tiles[tile]
                gone = [p for p in range(start, start + count) if batch.tiles[p] < oldest]
                dropped.update(gone)
                heads += (count - len(gone), refresh, len(stale), *stale)
            start += count
        names = list(map({tile: b"%d" % tile for tile in set(batch.tiles)}.__getitem__, batch.tiles))
        if dropped:
            names = [n for p, n in enumerate(names) if p not in dropped]
            packed = [v for p, v in enumerate(packed) if p not in dropped]
        pairs: list[bytes] = [b""] * (2 * len(names))
        pairs[0::2], pairs[1::2] = names, packed
        writes.heads, writes.pairs = heads, pairs
        return writes

    def _load(self, entities: list[tuple[Any, ...]]) -> list[_State]:
        """The stored tiles of entities not in the cache, in one script call (one reply, not one per entity)."""
        keys = self.online.encode_keys(self._prefix, [list(column) for column in zip(*entities)])
        replies = msgpack.unpackb(self.online.client.register_script(LOAD_SCRIPT)(keys=[], args=[packed_strings(keys)]), raw=True)
        upgrade = self._form.upgrade
        return [(key, dict(zip(map(int, flat[0::2]), map(upgrade, flat[1::2])))) for key, flat in zip(keys, replies)]
