"""Where each online value came from, so a re-sync can replace what a partition used to provide.

Every online value has a source: the offline partition (a day number) or the
unpartitioned table it was synced or pushed from, or `PUSH` for a push to the
online store alone. Redis keeps them in one sorted set per group version (per
hash slot on a cluster), member = the entity part of the key, score = the
source, updated by the write script together with the value; for a group
with a ttl a second sorted set holds when each value expires, and the script
trims the members whose value Redis expired. A sync of some
partitions finds the entities those partitions provided, replaces their values
whatever their time, and re-derives or deletes those that the partitions no
longer hold: the non-regressing rule protects only values from elsewhere.
"""

from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any

import msgpack
from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

DAY_US = 86_400_000_000
# Day numbers of every representable event time lie strictly between these.
FIRST_DAY = -(2**40)
LAST_DAY = 2**40
TABLE = 2**41  # an unpartitioned group's table
PUSH = -(2**41)  # a push to the online store alone: ahead of the offline store, never re-synced

_slot_tags: dict[int, bytes] = {}


@dataclass(frozen=True)
class Resync:
    """The sources a sync replaces (inclusive range) and when it read the offline store.

    A value from these sources written after `read_at_us` (a push racing the
    sync) is newer than what the sync read, so it is compared as usual instead.
    """

    first: int
    last: int
    read_at_us: int

    def arguments(self) -> list[int]:
        return [self.first, self.last, self.read_at_us]


def day_number(day: date | datetime) -> int:
    """The source of a partition day."""
    if isinstance(day, datetime):
        day = day.astimezone(timezone.utc).date() if day.tzinfo else day.date()
    return (day - date(1970, 1, 1)).days


def index_key(prefix: bytes, slot: int | None = None) -> bytes:
    """The sorted set of sources of one group version (on a cluster: of the entities in one hash slot).

    The NUL byte cannot start an entity key (msgpack of a tuple), so it never collides with one.
    """
    if slot is None:
        return prefix + b"\x00lineage"
    return prefix + b"\x00lineage{" + slot_tag(slot) + b"}"


def expiry_key(prefix: bytes, slot: int | None = None) -> bytes:
    """The sorted set of when each indexed value of a group with a ttl expires (unix ms), in the index's slot.

    The write script trims index members whose value expired, so neither set outgrows the live values.
    """
    if slot is None:
        return prefix + b"\x00lineage-expiry"
    return prefix + b"\x00lineage-expiry{" + slot_tag(slot) + b"}"


def slot_tag(slot: int) -> bytes:
    """A short hash tag that lands in `slot`, found once per process."""
    if not _slot_tags:
        number = 0
        while len(_slot_tags) < REDIS_CLUSTER_HASH_SLOTS:
            tag = b"%d" % number
            _slot_tags.setdefault(key_slot(tag), tag)
            number += 1
    return _slot_tags[slot]


def slots_key(prefix: bytes) -> bytes:
    """On a cluster, the set of hash slots that hold an index of the group version (added before writing)."""
    return prefix + b"\x00lineage-slots"


def member_key_values(member: bytes, hash_tag: bool) -> tuple[Any, ...]:
    """The canonical join-key values of an index member (see `codec.encode_keys`)."""
    return tuple(msgpack.unpackb(member[1:-1] if hash_tag else member))
