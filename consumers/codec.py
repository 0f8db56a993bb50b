"""Encoding and decoding of pipeline images (PNG, from pixels only, deterministic).

Outputs are encoded from pixel arrays, so no EXIF, GPS, XMP, ICC or trailing bytes survive, and
identical pixels always give identical bytes (a replay rewrites identical objects).
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image as PILImage

from processors.tensors import Image, Mask, check_image, check_mask

__all__ = ["decode_image", "decode_mask", "encode_mask", "encode_png"]

_PNG_LEVEL = 6


def encode_png(image: Image, alpha: Mask | None = None) -> bytes:
    """PNG bytes of an RGB image, with ``alpha`` as a fourth channel if given."""
    rgb = check_image(image)
    if alpha is not None:
        a = check_mask_exact(alpha, rgb.shape[:2])
        pil = PILImage.fromarray(np.dstack([rgb, a]), mode="RGBA")
    else:
        pil = PILImage.fromarray(rgb, mode="RGB")
    buffer = io.BytesIO()
    pil.save(buffer, format="PNG", compress_level=_PNG_LEVEL)
    return buffer.getvalue()


def encode_mask(mask: Mask) -> bytes:
    """PNG bytes of a 0/255 mask (mode L)."""
    buffer = io.BytesIO()
    PILImage.fromarray(np.ascontiguousarray(mask), mode="L").save(
        buffer, format="PNG", compress_level=_PNG_LEVEL
    )
    return buffer.getvalue()


def decode_image(data: bytes) -> Image:
    """An RGB uint8 array from trusted pipeline bytes (already preflighted)."""
    with PILImage.open(io.BytesIO(data)) as pil:
        return np.ascontiguousarray(np.asarray(pil.convert("RGB"), dtype=np.uint8))


def decode_mask(data: bytes, shape: tuple[int, int] | None = None) -> Mask:
    """A 0/255 mask; resized with nearest neighbour to ``shape`` (H, W) if it differs.

    Caller-supplied object masks are decoded here with Pillow's decompression-bomb guard intact.
    """
    with PILImage.open(io.BytesIO(data)) as pil:
        gray = pil.convert("L")
        if shape is not None and gray.size != (shape[1], shape[0]):
            gray = gray.resize((shape[1], shape[0]), PILImage.Resampling.NEAREST)
        array = np.asarray(gray, dtype=np.uint8)
    return check_mask(array, array.shape[:2] if shape is None else shape)


def check_mask_exact(alpha: Mask, shape: tuple[int, ...]) -> Mask:
    """An alpha channel of the image's height and width (values kept, not binarised)."""
    if alpha.shape != shape[:2] or alpha.dtype != np.uint8:
        raise ValueError(
            f"alpha: expected uint8 of shape {shape[:2]}, got {alpha.dtype} {alpha.shape}"
        )
    return np.ascontiguousarray(alpha)
