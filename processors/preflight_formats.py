"""What a file's container says before any pixel is decoded: the format its magic bytes claim,
whether it ends early, how many frames it holds (counted from headers, with a stop), its bits
per channel and resolution, and the Pillow decoders an allow-list needs."""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Callable
from typing import Final

from PIL import Image as PILImage
from PIL import ImageCms
from PIL.ImageFile import ImageFile

__all__ = [
    "DECODE_ERRORS",
    "SIXTEEN_BIT_MODES",
    "channel_bits",
    "claimed_format",
    "count_frames",
    "cut_short",
    "decoders_for",
    "parse_dpi",
]

_DECODED_BY: Final = {"MPO": "JPEG"}
"""Formats Pillow produces from another format's decoder rather than registering their own."""
SIXTEEN_BIT_MODES: Final = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})
_MODE_BITS: Final = {"1": 1, "I": 32, "F": 32} | dict.fromkeys(SIXTEEN_BIT_MODES, 16)

# Everything Pillow's decoders are known to raise on hostile bytes. Kept to the calls that run
# Pillow code, so a bug in this module still surfaces.
DECODE_ERRORS: Final = (
    OSError,  # includes UnidentifiedImageError, "image file is truncated", zlib/libjpeg errors
    ValueError,
    SyntaxError,
    EOFError,
    struct.error,
    zlib.error,
    IndexError,
    KeyError,
    TypeError,
    AttributeError,
    AssertionError,
    ArithmeticError,  # ZeroDivisionError, OverflowError
    RuntimeError,  # RecursionError, NotImplementedError
    MemoryError,
    PILImage.DecompressionBombError,
    ImageCms.PyCMSError,
)


def decoders_for(allowed: frozenset[str]) -> tuple[str, ...]:
    """The Pillow decoders to try for an allow-list (MPO comes out of the JPEG decoder)."""
    PILImage.init()  # register every plugin once, so the check below sees them all
    wanted = {_DECODED_BY.get(name, name) for name in allowed}
    unknown = sorted(name for name in allowed if _DECODED_BY.get(name, name) not in PILImage.OPEN)
    if unknown:
        raise ValueError(
            f"allowed_formats: Pillow cannot decode {unknown}; decodable formats are "
            f"{', '.join(sorted(set(PILImage.OPEN) | set(_DECODED_BY)))}."
        )
    return tuple(sorted(wanted))


def count_frames(im: ImageFile, data: bytes, limit: int) -> int:
    """Frames in ``im``, counted from headers only and at most ``limit + 1``.

    Pillow's ``n_frames`` walks every GIF frame and TIFF page, which a hostile file can make
    millions; here the walk stops one past the limit.
    """
    if im.format == "GIF":
        return _gif_frame_count(data, stop=limit + 1)
    if im.format == "TIFF":
        count = 1
        try:
            while count <= limit:
                im.seek(count)  # one IFD further; page headers only, no pixel data
                count += 1
        except DECODE_ERRORS:  # EOFError: no more pages; anything else: page 0 decides
            pass
        finally:
            im.seek(0)
        return count
    return int(getattr(im, "n_frames", 1))


def _gif_frame_count(data: bytes, *, stop: int) -> int:
    """Count image descriptors in a GIF by skipping its blocks, up to ``stop``. Malformed
    structure just ends the count: decoding frame 0 judges the file."""
    end = len(data)
    if end < 13:
        return 0
    flags = data[10]
    pos = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)  # global colour table
    count = 0
    while pos < end and count < stop:
        block = data[pos]
        if block == 0x21:  # extension: introducer, label, sub-blocks
            pos = _skip_sub_blocks(data, pos + 2)
        elif block == 0x2C:  # image: descriptor, local colour table, LZW size, sub-blocks
            if pos + 10 > end:
                break
            packed = data[pos + 9]
            pos += 10 + (3 << ((packed & 7) + 1) if packed & 0x80 else 0)
            pos = _skip_sub_blocks(data, pos + 1)
            count += 1
        else:  # 0x3B trailer, or garbage
            break
    return count


def _skip_sub_blocks(data: bytes, pos: int) -> int:
    end = len(data)
    while pos < end:
        size = data[pos]
        pos += 1 + size
        if size == 0:
            break
    return pos


def claimed_format(data: bytes) -> str | None:
    """The allow-list format a file claims by its magic bytes (used only to classify files
    whose header Pillow cannot parse)."""
    return next((name for name, claims in _SIGNATURES if claims(data)), None)


def _claims_bmp(data: bytes) -> bool:
    """``BM`` followed, at offset 14, by the size of a BMP info header of a known version."""
    return (
        data.startswith(b"BM")
        and len(data) >= 18
        and struct.unpack_from("<I", data, 14)[0] in (12, 16, 40, 52, 56, 64, 108, 124)
    )


_SIGNATURES: Final[tuple[tuple[str, Callable[[bytes], bool]], ...]] = (
    ("JPEG", lambda data: data.startswith(b"\xff\xd8\xff")),
    ("PNG", lambda data: data.startswith(b"\x89PNG\r\n\x1a\n")),
    ("GIF", lambda data: data.startswith((b"GIF87a", b"GIF89a"))),
    ("WEBP", lambda data: data.startswith(b"RIFF") and data[8:12] == b"WEBP"),
    ("TIFF", lambda data: data.startswith((b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"))),
    ("BMP", _claims_bmp),
)
"""Each format's magic-byte test (no two can hold for the same bytes)."""


def cut_short(data: bytes, fmt: str | None) -> bool | None:
    """Whether the container shows the file was cut off; None when it cannot tell."""
    if fmt in ("JPEG", "MPO"):
        last_scan = data.rfind(b"\xff\xda")
        return data.find(b"\xff\xd9", max(last_scan, 0)) < 0
    if fmt == "PNG":
        return data.rfind(b"IEND") < 0
    if fmt == "GIF":
        return not data.rstrip(b"\x00").endswith(b";")
    if fmt == "WEBP" and len(data) >= 8:
        return bool(struct.unpack_from("<I", data, 4)[0] + 8 > len(data))
    if fmt == "BMP" and len(data) >= 6:
        return bool(struct.unpack_from("<I", data, 2)[0] > len(data))
    return None


def channel_bits(im: PILImage.Image) -> int:
    """Bits per channel of the stored data, from the mode and the decoder's raw mode."""
    if im.mode in _MODE_BITS:
        return _MODE_BITS[im.mode]
    tile = getattr(im, "tile", None)
    if tile:
        args = tile[0].args
        raw = args if isinstance(args, str) else args[0] if isinstance(args, tuple) and args else ""
        if isinstance(raw, str) and ";" in raw:
            base, _, suffix = raw.partition(";")
            digits = "".join(ch for ch in suffix if ch.isdigit())
            if digits == "16" and base in ("RGB", "RGBA", "RGBX", "LA", "CMYK"):
                return 16
            if digits in ("1", "2", "4") and base in ("P", "L", "1"):
                return int(digits)
    return 8


def parse_dpi(value: object) -> tuple[float, float] | None:
    if not isinstance(value, tuple) or len(value) != 2:
        return None
    try:
        x, y = float(value[0]), float(value[1])
    except (TypeError, ValueError, ZeroDivisionError, OverflowError):
        return None
    if not (math.isfinite(x) and math.isfinite(y) and x > 0 and y > 0):
        return None
    return (x, y)
