"""EPP over TCP (RFC 5734 §4): each data unit is a 32-bit big-endian total length, counting
the four header bytes, followed by the XML instance."""

from __future__ import annotations

import asyncio
import struct

HEADER = struct.Struct(">I")
# Bounds on one frame: a registry's largest answer (a long poll message, a big info) is far
# below this; a peer announcing more is broken or hostile, and is refused before allocation.
MAX_FRAME_BYTES = 4 * 1024 * 1024


class FramingError(Exception):
    """The peer broke the framing; the connection cannot be used any more."""


def encode_frame(payload: bytes) -> bytes:
    if len(payload) + HEADER.size > MAX_FRAME_BYTES:
        raise FramingError(f"frame of {len(payload)} bytes exceeds {MAX_FRAME_BYTES}")
    return HEADER.pack(len(payload) + HEADER.size) + payload


async def read_frame(reader: asyncio.StreamReader, limit: int = MAX_FRAME_BYTES) -> bytes:
    """The next data unit's XML bytes. Raises FramingError, or IncompleteReadError at EOF."""
    (total,) = HEADER.unpack(await reader.readexactly(HEADER.size))
    if total < HEADER.size:
        raise FramingError(f"frame length {total} is shorter than its own header")
    if total > limit:
        raise FramingError(f"frame length {total} exceeds the limit of {limit} bytes")
    return await reader.readexactly(total - HEADER.size)


async def write_frame(writer: asyncio.StreamWriter, payload: bytes) -> None:
    writer.write(encode_frame(payload))
    await writer.drain()
