"""Inpainting baseline: OpenCV's Telea or Navier-Stokes fill inside a slightly grown mask.

The mask (255 = remove) is grown by ``InpaintConfig.dilate`` px first, so the fill starts from
clean pixels rather than from the antialiased fringe of what is being removed. The result is
then composed so that only pixels inside the grown mask can differ from the input: everything
outside is byte-identical, which the quality gate checks (``processors.quality.measure_edits``
uses the same :func:`dilate_mask`).

A learned inpainter replaces this in a later issue; the API stays.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from processors.tensors import Image, Mask, check_image, check_mask

__all__ = ["DEFAULT_DILATE", "InpaintConfig", "Inpainter", "dilate_mask"]

DEFAULT_DILATE = 3
"""Pixels a mask is grown by before filling (and before measuring what lies outside it)."""

_FLAGS = {"telea": cv2.INPAINT_TELEA, "ns": cv2.INPAINT_NS}


@dataclass(frozen=True, kw_only=True)
class InpaintConfig:
    """Knobs of the OpenCV inpainting baseline."""

    method: Literal["telea", "ns"] = "telea"
    """``telea`` (fast marching, Telea 2004) or ``ns`` (Navier-Stokes, Bertalmio et al. 2001)."""
    radius: int = 5
    """Neighbourhood radius, in px, that each filled pixel is estimated from."""
    dilate: int = DEFAULT_DILATE
    """Pixels the mask is grown by (elliptical element) before filling; 0 keeps it as is."""

    def __post_init__(self) -> None:
        if self.method not in _FLAGS:
            raise ValueError(
                f"InpaintConfig: method must be one of {sorted(_FLAGS)}, got {self.method!r}."
            )
        if self.radius < 1:
            raise ValueError(f"InpaintConfig: radius must be >= 1 px, got {self.radius}.")
        if self.dilate < 0:
            raise ValueError(f"InpaintConfig: dilate must be >= 0 px, got {self.dilate}.")


def dilate_mask(mask: Mask, pixels: int) -> Mask:
    """``mask`` (HW, 255 = selected) grown by ``pixels`` with an elliptical element.

    The one definition of "the dilated mask" shared by the inpainter and the quality gate.
    """
    if pixels < 0:
        raise ValueError(f"dilate_mask: pixels must be >= 0, got {pixels}.")
    binary = np.where(mask > 127, np.uint8(255), np.uint8(0)).astype(np.uint8)
    if pixels == 0:
        return binary
    side = 2 * pixels + 1
    element = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (side, side))
    return np.asarray(cv2.dilate(binary, element), dtype=np.uint8)


class Inpainter:
    """Fill masked regions with OpenCV's inpainting, changing nothing outside the grown mask."""

    version: str = "inpaint-telea-1"
    """Goes into result events; names the method, so ``ns`` reads ``inpaint-ns-1``."""

    def __init__(self, config: InpaintConfig | None = None) -> None:
        self.config = config if config is not None else InpaintConfig()
        self.version = f"inpaint-{self.config.method}-1"

    def __call__(self, images: Sequence[Image], masks: Sequence[Mask]) -> list[Image]:
        """Inpaint each image where its mask is 255; returns new arrays, inputs are untouched."""
        if len(images) != len(masks):
            raise ValueError(
                f"Inpainter: got {len(images)} images but {len(masks)} masks; pass one HxW mask "
                "per image."
            )
        pairs = []
        for i, (image, mask) in enumerate(zip(images, masks, strict=True)):
            checked = check_image(image, f"images[{i}]")
            pairs.append((checked, check_mask(mask, checked.shape[:2], f"masks[{i}]")))
        return [self._inpaint(image, mask) for image, mask in pairs]

    def _inpaint(self, image: Image, mask: Mask) -> Image:
        grown = dilate_mask(mask, self.config.dilate)
        if not grown.any():
            return image.copy()
        filled = np.asarray(
            cv2.inpaint(image, grown, float(self.config.radius), _FLAGS[self.config.method]),
            dtype=np.uint8,
        )
        out = image.copy()
        inside = grown > 0
        out[inside] = filled[inside]
        return out
