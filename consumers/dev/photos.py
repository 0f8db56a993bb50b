"""Pixel sources for the sample files: random crops of scikit-image's bundled photos."""

from __future__ import annotations

from functools import cache
from typing import Any, Final

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image
from skimage import data as skdata

__all__ = ["U8", "bundled", "elliptical_matte", "photo", "photo_array", "photo_float", "resize"]

U8 = npt.NDArray[np.uint8]
"""HWC (or HW) uint8 pixels."""
F32 = npt.NDArray[np.float32]

# Sharp, textured colour photos: safe for "accepted" kinds (no flat or smooth sources that a
# blank or blur check could mistake for a bad upload).
_PHOTOS: Final = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry")


def bundled(name: str) -> U8:
    """A scikit-image bundled picture, as stored (gray, RGB or RGBA uint8)."""
    return np.asarray(getattr(skdata, name)(), dtype=np.uint8)


@cache
def _source(name: str) -> U8:
    """A bundled picture as uint8 RGB (cached, read-only)."""
    raw = bundled(name)
    if raw.ndim == 2:
        raw = np.repeat(raw[:, :, None], 3, axis=2)
    arr = np.ascontiguousarray(raw[:, :, :3])
    arr.setflags(write=False)
    return arr


def resize(arr: npt.NDArray[Any], width: int, height: int) -> npt.NDArray[Any]:
    """``arr`` resized to ``width`` x ``height`` (area filter when shrinking, else cubic)."""
    shrinking = width * height < arr.shape[0] * arr.shape[1]
    interp = cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC
    return np.asarray(cv2.resize(arr, (width, height), interpolation=interp))


def _photo_crop(
    rng: np.random.Generator,
    short: tuple[int, int],
    aspect: tuple[float, float],
    source: str | None,
) -> tuple[U8, int, int]:
    """A random crop of a bundled photo, and a random output size for it (width, height)."""
    name = source if source is not None else _PHOTOS[int(rng.integers(len(_PHOTOS)))]
    src = _source(name)
    ratio = float(rng.uniform(*aspect))  # width / height
    side = int(rng.integers(short[0], short[1] + 1))
    width, height = (round(side * ratio), side) if ratio >= 1 else (side, round(side / ratio))
    src_h, src_w = src.shape[:2]
    crop_w = min(src_w, round(src_h * ratio))
    crop_h = min(src_h, round(crop_w / ratio))
    scale = float(rng.uniform(0.8, 1.0))
    crop_w, crop_h = max(8, round(crop_w * scale)), max(8, round(crop_h * scale))
    x0 = int(rng.integers(0, src_w - crop_w + 1))
    y0 = int(rng.integers(0, src_h - crop_h + 1))
    return src[y0 : y0 + crop_h, x0 : x0 + crop_w], width, height


def photo_array(
    rng: np.random.Generator,
    *,
    short: tuple[int, int] = (520, 900),
    aspect: tuple[float, float] = (0.75, 1.45),
    source: str | None = None,
) -> U8:
    """A random crop of a bundled photo resized to a random size: uint8 RGB."""
    crop, width, height = _photo_crop(rng, short, aspect, source)
    return np.asarray(resize(crop, width, height), dtype=np.uint8)


def photo_float(
    rng: np.random.Generator,
    *,
    short: tuple[int, int] = (520, 900),
    source: str | None = None,
) -> F32:
    """Like ``photo_array`` but resized in float32: values in [0, 255] with real fractional
    gradations (for 16-bit files, whose low byte should carry information)."""
    crop, width, height = _photo_crop(rng, short, (0.75, 1.45), source)
    return np.asarray(resize(crop.astype(np.float32), width, height), dtype=np.float32)


def photo(
    rng: np.random.Generator,
    *,
    short: tuple[int, int] = (520, 900),
    aspect: tuple[float, float] = (0.75, 1.45),
) -> Image.Image:
    return Image.fromarray(photo_array(rng, short=short, aspect=aspect), "RGB")


def elliptical_matte(rng: np.random.Generator, width: int, height: int) -> U8:
    matte = np.zeros((height, width), np.uint8)
    center = (width // 2 + int(rng.integers(-width // 20, width // 20 + 1)), height // 2)
    axes = (int(width * rng.uniform(0.32, 0.45)), int(height * rng.uniform(0.32, 0.45)))
    cv2.ellipse(matte, center, axes, 0.0, 0.0, 360.0, 255, -1, cv2.LINE_AA)
    return np.asarray(cv2.GaussianBlur(matte, (0, 0), 2.0), dtype=np.uint8)
