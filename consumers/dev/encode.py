"""Encoders for the sample files: fixed JPEG and PNG settings (reproducible bytes), 16-bit PNGs
with a DPI chunk, and a decompression-bomb PNG that is never allocated."""

from __future__ import annotations

import struct
import zlib
from functools import cache
from io import BytesIO
from typing import Final

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image

__all__ = ["JPEG_EXT", "bomb_png", "jpeg_bytes", "png16_bytes", "png_bytes"]

JPEG_EXT: Final = "jpg"
"""File extension of the JPEG samples."""
PNG_LEVEL: Final = 1  # fast zlib level: sample files favour generation speed over size


def jpeg_bytes(img: Image.Image, dpi: int, *, quality: int = 90, **extra: object) -> bytes:
    buf = BytesIO()
    img.save(
        buf,
        "JPEG",
        quality=quality,
        optimize=False,
        progressive=False,
        subsampling="4:2:0",
        dpi=(dpi, dpi),
        **extra,
    )
    return buf.getvalue()


def png_bytes(img: Image.Image, dpi: int | None = None, **extra: object) -> bytes:
    buf = BytesIO()
    if dpi is not None:
        extra["dpi"] = (dpi, dpi)
    img.save(buf, "PNG", compress_level=PNG_LEVEL, optimize=False, **extra)
    return buf.getvalue()


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload)
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def _phys_chunk(dpi: int) -> bytes:
    ppm = round(dpi / 0.0254)
    return _png_chunk(b"pHYs", struct.pack(">IIB", ppm, ppm, 1))


def png16_bytes(arr: npt.NDArray[np.uint16], dpi: int) -> bytes:
    """Encode a 16-bit gray or BGR array as PNG with OpenCV, then add a pHYs (DPI) chunk."""
    ok, encoded = cv2.imencode(".png", arr, [cv2.IMWRITE_PNG_COMPRESSION, PNG_LEVEL])
    if not ok:
        msg = f"OpenCV could not encode a {arr.dtype} array of shape {arr.shape} as PNG"
        raise RuntimeError(msg)
    raw = encoded.tobytes()
    ihdr_end = 8 + 4 + 4 + 13 + 4  # signature, IHDR length, type, data, CRC
    return raw[:ihdr_end] + _phys_chunk(dpi) + raw[ihdr_end:]


@cache
def bomb_png(side: int, dpi: int) -> bytes:
    """A valid 1-bit PNG of ``side`` x ``side`` black pixels, ~110 kB on disk for 30000².

    Hand-crafted so nothing ever allocates the image: each run of rows is deflated once after
    a full flush (which resets the compressor, so every run compresses to the same bytes) and
    the block is repeated.
    """
    row = b"\0" * (1 + (side + 7) // 8)  # filter byte "None" + packed bits
    per_block = 256
    full, rest = divmod(side, per_block)
    block_co = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = block_co.compress(row * per_block) + block_co.flush(zlib.Z_FULL_FLUSH)
    tail_co = zlib.compressobj(9, zlib.DEFLATED, -15)
    tail = tail_co.compress(row * rest) + tail_co.flush()
    checksum = 1
    chunk = row * per_block
    for _ in range(full):
        checksum = zlib.adler32(chunk, checksum)
    checksum = zlib.adler32(row * rest, checksum)
    stream = b"\x78\xda" + block * full + tail + struct.pack(">I", checksum)
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)  # 1-bit grayscale
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _phys_chunk(dpi)
        + _png_chunk(b"IDAT", stream)
        + _png_chunk(b"IEND", b"")
    )
