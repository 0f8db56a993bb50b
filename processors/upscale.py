"""Upscaling baseline: Lanczos resampling at exactly x2 or x4, plus size planning helpers.

``Upscaler`` is the stage processor; a learned super-resolution model replaces its method in a
later issue and keeps the API. :func:`plan_scale` picks the factor for an ``upscale_to`` target
and :func:`resize_long_side` lands an image on an exact long side afterwards.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from processors.tensors import Image, check_image

__all__ = ["SCALES", "UpscaleConfig", "Upscaler", "plan_scale", "resize_long_side"]

SCALES = (2, 4)
"""The factors the upscaler supports."""


@dataclass(frozen=True, kw_only=True)
class UpscaleConfig:
    """Knobs of the upscaling baseline."""

    method: Literal["lanczos"] = "lanczos"
    """Resampling kernel; Lanczos-4 (8x8 taps, OpenCV ``INTER_LANCZOS4``) is the only one."""

    def __post_init__(self) -> None:
        if self.method != "lanczos":
            raise ValueError(f"UpscaleConfig: method must be 'lanczos', got {self.method!r}.")


class Upscaler:
    """Enlarge images by exactly 2 or 4 with Lanczos resampling (values clipped to 0..255)."""

    version: str = "upscale-lanczos-1"
    """Goes into result events."""

    def __init__(self, config: UpscaleConfig | None = None) -> None:
        self.config = config if config is not None else UpscaleConfig()

    def __call__(self, images: Sequence[Image], *, scale: int) -> list[Image]:
        """Each image enlarged to ``(H * scale, W * scale)``."""
        _check_scale(scale)
        checked = [check_image(im, f"images[{i}]") for i, im in enumerate(images)]
        return [_resize(im, im.shape[1] * scale, im.shape[0] * scale) for im in checked]


def plan_scale(height: int, width: int, target_long_side: int) -> int:
    """The smallest supported factor whose output long side reaches ``target_long_side``.

    Returns 4 when neither factor reaches it (the caller upscales by 4, then decides). Raises
    ValueError when the target is not larger than the current long side: nothing to upscale.
    """
    for name, value in (
        ("height", height),
        ("width", width),
        ("target_long_side", target_long_side),
    ):
        if not _is_int(value) or value < 1:
            raise ValueError(f"plan_scale: {name} must be a positive integer, got {value!r}.")
    long_side = max(height, width)
    if target_long_side <= long_side:
        raise ValueError(
            f"plan_scale: target long side {target_long_side} px is not larger than the image's "
            f"{long_side} px; no upscaling is needed (resize down with resize_long_side instead)."
        )
    for factor in SCALES:
        if long_side * factor >= target_long_side:
            return factor
    return SCALES[-1]


def resize_long_side(image: Image, long_side: int) -> Image:
    """``image`` resized so that ``max(H, W) == long_side``, aspect ratio kept (the short side is
    rounded, at least 1 px). Lanczos-4 when enlarging, area averaging when shrinking."""
    checked = check_image(image)
    if not _is_int(long_side) or long_side < 1:
        raise ValueError(
            f"resize_long_side: long_side must be a positive integer, got {long_side!r}."
        )
    height, width = checked.shape[:2]
    current = max(height, width)
    if long_side == current:
        return checked.copy()
    factor = long_side / current
    if height >= width:
        new_h, new_w = int(long_side), max(1, round(width * factor))
    else:
        new_h, new_w = max(1, round(height * factor)), int(long_side)
    return _resize(checked, new_w, new_h)


def _check_scale(scale: object) -> None:
    if not _is_int(scale) or scale not in SCALES:
        raise ValueError(f"Upscaler: scale must be the integer 2 or 4, got {scale!r}.")


def _is_int(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _resize(image: Image, width: int, height: int) -> Image:
    enlarge = width * height >= image.shape[0] * image.shape[1]
    method = cv2.INTER_LANCZOS4 if enlarge else cv2.INTER_AREA
    return np.asarray(cv2.resize(image, (width, height), interpolation=method), dtype=np.uint8)
