"""The report's thumbnails: small JPEGs embedded as ``data:`` URIs.

Only pixelgate's own outputs are decoded here (``ReportRow.before``, ``after``, ``mask`` and
``candidate``), never raw uploads, and with Pillow's default decompression-bomb limit; a file
that fails to decode gets a reason for a placeholder, never an exception.
"""

from __future__ import annotations

import base64
import os
import struct
import warnings
import zlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from io import BytesIO
from pathlib import Path
from typing import Final

import numpy as np
from PIL import Image

from consumers.report.records import ReportRow

__all__ = ["THUMBNAIL_PX", "Thumbnail", "thumbnails"]

THUMBNAIL_PX: Final = 240
"""Longest side of the embedded thumbnails, in pixels."""

Thumbnail = tuple[str | None, str]
"""``(data URI, "")`` for an image that decoded, ``(None, why)`` for one that did not."""

# Everything a corrupt, truncated, hostile or missing image can raise while Pillow opens,
# decodes or thumbnails it. Programming errors (TypeError, AttributeError) still propagate.
_DECODE_ERRORS: Final = (
    OSError,  # missing file, unidentified format, truncated data
    ValueError,
    SyntaxError,  # Pillow's plugins signal malformed headers this way
    EOFError,
    IndexError,
    KeyError,
    MemoryError,
    struct.error,
    zlib.error,
    Image.DecompressionBombError,
    Image.DecompressionBombWarning,
)


def _to_rgb(img: Image.Image) -> Image.Image:
    """Any decoded mode as 8-bit RGB; transparency shown over a light checkerboard."""
    if img.mode in {"I;16", "I;16L", "I;16B", "I;16N", "I", "F"}:
        arr = np.asarray(img, dtype=np.float32)
        top = 65535.0 if img.mode.startswith("I;16") else max(float(arr.max()), 1.0)
        img = Image.fromarray(np.clip(arr * (255.0 / top), 0, 255).astype(np.uint8), "L")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in {"RGBA", "LA", "PA", "RGBa", "La"}:
        rgba = img.convert("RGBA")
        board = np.full((rgba.height, rgba.width, 3), 255, np.uint8)
        yy, xx = np.mgrid[0 : rgba.height, 0 : rgba.width]
        board[((yy // 8) + (xx // 8)) % 2 == 1] = 220
        return Image.alpha_composite(Image.fromarray(board, "RGB").convert("RGBA"), rgba).convert(
            "RGB"
        )
    return img.convert("RGB")


def _thumbnail(path: Path, size: int = THUMBNAIL_PX) -> str:
    """A ``data:image/jpeg;base64,...`` thumbnail of ``path``; raises one of _DECODE_ERRORS."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(path) as img:
            img.draft("RGB", (size, size))  # JPEG: decode at a reduced scale, much faster
            img.thumbnail((size * 2, size * 2), Image.Resampling.BILINEAR, reducing_gap=None)
            thumb = _to_rgb(img)
    thumb.thumbnail((size, size), Image.Resampling.LANCZOS)
    buf = BytesIO()
    thumb.save(buf, "JPEG", quality=80, optimize=False, progressive=False)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _safe_thumbnail(path: Path) -> Thumbnail:
    """``(data URI, "")``, or ``(None, why)`` when the image cannot be shown."""
    try:
        return _thumbnail(path), ""
    except _DECODE_ERRORS as exc:
        return None, f"{type(exc).__name__}: {exc}"[:300]


def thumbnails(rows: Sequence[ReportRow]) -> dict[Path, Thumbnail]:
    """The thumbnail of every image the rows name, each decoded once, on up to 4 threads."""
    paths = sorted(
        {
            path
            for row in rows
            for path in (row.before, row.after, row.mask, row.candidate)
            if path is not None
        },
        key=str,
    )
    workers = max(1, min(4, os.cpu_count() or 1, len(paths)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="thumb") as pool:
        return dict(zip(paths, pool.map(_safe_thumbnail, paths), strict=True))
