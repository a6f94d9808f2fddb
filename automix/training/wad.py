"""Doom WAD files: the lump directory, and the music lumps in it.

A WAD (``IWAD`` or ``PWAD``) starts with a 12-byte header: the 4-byte id, the number of lumps
and the offset of the directory (little-endian int32). The directory holds one 16-byte entry
per lump: offset, size (int32) and an 8-byte ASCII name padded with NULs. Music lumps are named
``D_<track>``; in Freedoom they are Standard MIDI files (``MThd``), in the original Doom DMX MUS
(``MUS\\x1a``), which this module recognises but does not convert.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

WAD_IDS = (b"IWAD", b"PWAD")
MIDI_MAGIC = b"MThd"
MUS_MAGIC = b"MUS\x1a"


@dataclass(frozen=True)
class Lump:
    name: str
    data: bytes


def lumps(wad: bytes) -> list[Lump]:
    """Every lump of a WAD, in directory order; `ValueError` when ``wad`` is not one."""
    if len(wad) < 12 or wad[:4] not in WAD_IDS:
        raise ValueError(f"not a WAD (id {wad[:4]!r}, expected one of {WAD_IDS})")
    count, directory = struct.unpack_from("<ii", wad, 4)
    if count < 0 or directory < 12 or directory + 16 * count > len(wad):
        raise ValueError(f"WAD directory of {count} lumps at {directory} lies outside the "
                         f"{len(wad)}-byte file")
    out = []
    for i in range(count):
        offset, size, raw = struct.unpack_from("<ii8s", wad, directory + 16 * i)
        if offset < 0 or size < 0 or offset + size > len(wad):
            raise ValueError(f"WAD lump {i} ({offset}+{size}) lies outside the file")
        name = raw.split(b"\0", 1)[0].decode("ascii", "replace")
        out.append(Lump(name, wad[offset:offset + size]))
    return out


def music_lumps(wad: bytes) -> tuple[list[Lump], int]:
    """The music lumps (``D_*``) that are MIDI files, and how many others are DMX MUS."""
    music = [lump for lump in lumps(wad) if lump.name.upper().startswith("D_")]
    midi = [lump for lump in music if lump.data[:4] == MIDI_MAGIC]
    mus = sum(lump.data[:4] == MUS_MAGIC for lump in music)
    return midi, mus
