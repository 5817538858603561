"""A small HyperLogLog: approximate distinct counts that merge across tiles and agree online and offline.

Each value is hashed to 64 bits (splitmix64 for integers, BLAKE2b for
strings); the top `PRECISION` bits pick a register, the rank of the rest is
kept as the register's maximum. Merging is a register-wise maximum, so the
estimate of a window depends only on its events, never on how they were tiled
or batched: the online tiles and the offline events give the same number.
"""

import hashlib

import numpy as np
import pyarrow as pa

PRECISION = 10
REGISTERS = 1 << PRECISION
_ALPHA = 0.7213 / (1 + 1.079 / REGISTERS)
_MASK = np.uint64((1 << (64 - PRECISION)) - 1)


def _splitmix64(values: np.ndarray) -> np.ndarray:
    z = values.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def hashes(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """64-bit hashes of integer or string values (no nulls)."""
    if pa.types.is_integer(values.type):
        with np.errstate(over="ignore"):
            return _splitmix64(np.asarray(values.cast(pa.int64()).to_numpy(zero_copy_only=False)).view(np.uint64))
    digests = [hashlib.blake2b(v.encode(), digest_size=8).digest() for v in values.to_pylist()]
    return np.frombuffer(b"".join(digests), dtype=">u8").astype(np.uint64) if digests else np.zeros(0, np.uint64)


def _bit_length(values: np.ndarray) -> np.ndarray:
    """Bit length of each uint64, exactly (float64 holds each 32-bit half exactly)."""
    high = (values >> np.uint64(32)).astype(np.float64)
    low = (values & np.uint64(0xFFFFFFFF)).astype(np.float64)
    return np.where(high > 0, 32 + np.frexp(high)[1], np.frexp(low)[1])


def registers_and_ranks(values: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """The register each value lands in and its rank (position of the first set bit of the rest)."""
    hashed = hashes(values)
    register = (hashed >> np.uint64(64 - PRECISION)).astype(np.int64)
    rank = (64 - PRECISION) - _bit_length(hashed & _MASK) + 1
    return register, rank.astype(np.int64)


def estimate(registers: np.ndarray) -> int:
    """The distinct-count estimate of a dense register array (with the small-range correction)."""
    zeros = int(np.count_nonzero(registers == 0))
    raw = _ALPHA * REGISTERS * REGISTERS / float(np.sum(np.ldexp(1.0, -registers.astype(np.int64))))
    if raw <= 2.5 * REGISTERS and zeros:
        raw = REGISTERS * np.log(REGISTERS / zeros)
    return int(round(raw))


RANK_BITS = 6  # ranks are at most 64 - PRECISION + 1 = 55


def codes_of(registers: np.ndarray, ranks: np.ndarray) -> np.ndarray:
    """Pairs as little-endian uint16 codes `register << 6 | rank`, as tiles store them: of one register, the larger
    code has the larger rank."""
    return ((registers.astype(np.uint16) << RANK_BITS) | ranks.astype(np.uint16)).astype("<u2")


def dense(codes: bytes | np.ndarray) -> np.ndarray:
    """A dense register array (each register's maximum rank) from codes, as bytes or an array."""
    values = np.sort(np.frombuffer(codes, "<u2") if isinstance(codes, bytes) else codes)
    registers = np.zeros(REGISTERS, dtype=np.int64)
    if len(values):  # sorted, a register's last code has its largest rank (faster than np.maximum.at)
        register = values >> RANK_BITS
        last = np.flatnonzero(np.append(register[1:] != register[:-1], True))
        registers[register[last]] = values[last] & ((1 << RANK_BITS) - 1)
    return registers


def compact(codes: np.ndarray) -> np.ndarray:
    """One code per register, its maximum rank: the same estimate from at most `REGISTERS` codes."""
    registers = dense(codes)
    used = np.flatnonzero(registers)
    return codes_of(used, registers[used])
