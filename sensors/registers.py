"""Pure decoding and encoding of Modbus registers: types, byte orders, scale, sentinels.

Nothing here does I/O, so the whole register layer is testable with hex tables.
Byte orders name the four bytes of a 32-bit value as they arrive on the wire
(register 0 high byte first): ABCD is big-endian, CDAB swaps words (the common
"word-swapped float"), BADC swaps the bytes inside each word, DCBA reverses all.
For 64-bit values the same rule is applied to four registers (CDAB reverses the
word order, as pymodbus's ``word_order="little"`` does).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence

from facility.config.checks import ORDERS, REGISTERS
from facility.domain.model import Quality, round_to

__all__ = ["ORDERS", "REGISTERS", "DecodeError", "register_count", "derive_decimals",
           "words_to_bytes", "bytes_to_words", "raw_int", "decode", "encode", "decode_value"]

# struct format of each numeric type (big-endian after reordering)
_FMT: dict[str, str] = {
    "int16": ">h", "uint16": ">H", "int32": ">i", "uint32": ">I",
    "int64": ">q", "uint64": ">Q", "float32": ">f", "float64": ">d",
}
FLOAT_TYPES = ("float32", "float64")
INT_TYPES = ("int16", "uint16", "int32", "uint32", "int64", "uint64")


class DecodeError(ValueError):
    """Registers that cannot be decoded as the point says (wrong count, bad order)."""


def register_count(type_: str, count: int | None = None) -> int:
    """Registers (or bits, for bool in a bit table) a value of ``type_`` occupies."""
    try:
        needed = REGISTERS[type_][0]
    except KeyError:
        raise DecodeError(f"type={type_!r} is unknown; use one of {', '.join(REGISTERS)}") from None
    if type_ == "string":
        if not count:
            raise DecodeError("type='string' needs count (registers, 2 characters each)")
        return count
    return needed


def derive_decimals(scale: float, type_: str = "uint16", decimals: int | None = None) -> int:
    """The point's decimals: given, else ``max(0, -floor(log10(|scale|)))``.

    Floats keep at least 3 decimals when none are given: a float32 in Pa with scale 1
    would otherwise be rounded to whole pascals.
    """
    if decimals is not None:
        return decimals
    d = max(0, -math.floor(math.log10(abs(scale)))) if scale else 0
    return max(d, 3) if type_ in FLOAT_TYPES else d


def words_to_bytes(words: Sequence[int], order: str = "ABCD") -> bytes:
    """Registers as received -> big-endian bytes (ABCD) for ``struct``."""
    if order not in ORDERS:
        raise DecodeError(f"order={order!r} is not allowed; use one of {', '.join(ORDERS)}")
    for w in words:
        if not 0 <= w <= 0xFFFF:
            raise DecodeError(f"register value {w!r} is not 0..0xFFFF")
    ws = list(words)
    if order in ("CDAB", "DCBA"):
        ws.reverse()
    raw = b"".join(w.to_bytes(2, "big") for w in ws)
    if order in ("BADC", "DCBA"):
        raw = b"".join(raw[i + 1:i + 2] + raw[i:i + 1] for i in range(0, len(raw), 2))
    return raw


def bytes_to_words(raw: bytes, order: str = "ABCD") -> list[int]:
    """Inverse of :func:`words_to_bytes` (each order is its own inverse)."""
    if order not in ORDERS:
        raise DecodeError(f"order={order!r} is not allowed; use one of {', '.join(ORDERS)}")
    if order in ("BADC", "DCBA"):
        raw = b"".join(raw[i + 1:i + 2] + raw[i:i + 1] for i in range(0, len(raw), 2))
    ws = [int.from_bytes(raw[i:i + 2], "big") for i in range(0, len(raw), 2)]
    if order in ("CDAB", "DCBA"):
        ws.reverse()
    return ws


def raw_int(words: Sequence[int], order: str = "ABCD") -> int:
    """The unsigned integer the registers spell in ``order`` (used for sentinels)."""
    return int.from_bytes(words_to_bytes(words, order), "big")


def decode_value(words: Sequence[int] | Sequence[bool], type_: str, order: str = "ABCD",
                 bit: int | None = None) -> float | int | str | bool:
    """Registers (or bits) -> the raw value, before scale: int, float, str or bool."""
    n = len(words)
    if type_ == "bool" or bit is not None:
        if n < 1:
            raise DecodeError("no data for a bool")
        w = words[0]
        if isinstance(w, bool):
            return w
        if bit is not None:
            if not 0 <= bit <= 15:
                raise DecodeError(f"bit={bit} is out of range; 0-15")
            return bool((int(w) >> bit) & 1)
        return int(w) != 0
    if type_ == "string":
        raw = words_to_bytes(words, order)
        return raw.split(b"\x00", 1)[0].decode("ascii", errors="replace").strip()
    fmt = _FMT.get(type_)
    if fmt is None:
        raise DecodeError(f"type={type_!r} is unknown; use one of {', '.join(REGISTERS)}")
    need = REGISTERS[type_][0]
    if n != need:
        raise DecodeError(f"type={type_!r} needs {need} registers but got {n}")
    return struct.unpack(fmt, words_to_bytes(words, order))[0]


def _is_sentinel(words: Sequence[int], order: str, raw_value, nan: Sequence[int]) -> bool:
    if not nan or not words or isinstance(words[0], bool):
        return False
    unsigned = raw_int(words, order)
    for s in nan:
        if s == unsigned or (isinstance(raw_value, int) and s == raw_value):
            return True
        # a 16-bit sentinel on a multi-register value: every register holds it (0xFFFF 0xFFFF)
        if 0 <= s <= 0xFFFF and len(words) > 1 and all(w == s for w in words):
            return True
    return False


def decode(words: Sequence[int] | Sequence[bool], type_: str, order: str = "ABCD", *,
           bit: int | None = None, scale: float = 1.0, offset: float = 0.0,
           decimals: int | None = None, nan: Sequence[int] = ()) -> tuple[float | None, Quality]:
    """Registers -> ``(value, quality)`` as a Sample wants them.

    ``value = raw * scale + offset`` rounded to ``decimals``. A sentinel (raw value in
    ``nan``), a non-finite float or undecodable registers give ``(None, Quality.BAD)``:
    a failed read is never a number.
    """
    try:
        raw = decode_value(words, type_, order, bit)
    except (DecodeError, struct.error):
        return None, Quality.BAD
    if isinstance(raw, str):
        return None, Quality.BAD  # strings are not sample values; use decode_value
    if bit is None and _is_sentinel(words, order, raw, nan):
        return None, Quality.BAD
    value = float(raw) * scale + offset
    if not math.isfinite(value):
        return None, Quality.BAD
    value = round_to(value, derive_decimals(scale, type_, decimals))
    return value + 0.0, Quality.GOOD  # + 0.0 turns -0.0 into 0.0


def encode(value: float | int | str | bool, type_: str, order: str = "ABCD", *,
           scale: float = 1.0, offset: float = 0.0, count: int | None = None) -> list[int]:
    """Engineering value -> registers, the inverse of :func:`decode` (for the simulator).

    Integer types round ``(value - offset) / scale`` to the nearest integer and clamp
    it to the type's range.
    """
    if type_ == "bool":
        return [1 if value else 0]
    if type_ == "string":
        n = register_count("string", count)
        raw = str(value).encode("ascii")[: 2 * n].ljust(2 * n, b"\x00")
        return bytes_to_words(raw, order)
    fmt = _FMT.get(type_)
    if fmt is None:
        raise DecodeError(f"type={type_!r} is unknown; use one of {', '.join(REGISTERS)}")
    if isinstance(value, float) and not math.isfinite(value) and type_ in FLOAT_TYPES:
        x: float | int = value
    else:
        x = (float(value) - offset) / scale if (scale != 1.0 or offset) else value
    if type_ in INT_TYPES:
        bits = struct.calcsize(fmt) * 8
        lo, hi = ((-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if type_.startswith("int")
                  else (0, (1 << bits) - 1))
        x = min(hi, max(lo, int(round(x))))
    else:
        x = float(x)
    return bytes_to_words(struct.pack(fmt, x), order)
