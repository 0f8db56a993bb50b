"""Mask painting: the glyph pixels inside each accepted DBNet box, at the input resolution.

Inside each box, the background is estimated by filling the box from a ring around it (OpenCV
Telea); glyph pixels are those that differ from it by more than an adaptive threshold (Otsu,
clamped to ``[min_ink_contrast, ink_contrast]`` and raised on textured backgrounds), in either
polarity, so outlines and shadows are included; ink must also stand out from a local median
(which follows background edges). When too little ink is found on a quiet background (faint
semi-transparent watermarks), the DB text region of the box is used instead. With the
segmenter, only the connected pieces of ink that come within ``ink_reach`` px of what it sees as
text are kept, whole (a light, a tower's edge or a shadow in the box is not); a line it barely
sees keeps all its ink. The ink is grown by ``dilation`` px plus a share of the glyph height for
drop shadows (at most :data:`~processors.text.config.MAX_REACH` px). A promo label behind the
text is masked with it (:mod:`processors.text.label`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np
import numpy.typing as npt

from processors.tensors import Image, Mask
from processors.text.config import MAX_REACH, TextDetectorConfig
from processors.text.geometry import Box, FloatArray, Region, bounds, disc, rescaled
from processors.text.label import paint_label
from processors.text.shapes import touching

__all__ = ["Found", "paint_region", "paint_regions"]

Found = tuple[Region, FloatArray, tuple[float, float]]
"""An accepted DBNet region (working px), the probability map it was found in, and that map's
scale ``(sx, sy)`` to the image."""

_SEEN = 0.5
"""``ink_reach`` limits a line's ink only when at least this share of it is within reach of
the segmenter's text (the segmenter sees that line)."""


def paint_regions(
    cfg: TextDetectorConfig, image: Image, found: Sequence[Found], limit: Mask | None = None
) -> tuple[Mask, list[Box]]:
    """The mask of the accepted regions ``found`` at the image's size, and their boxes in
    order; ink counts only inside ``limit`` (if given, see :func:`paint_region`)."""
    h, w = image.shape[:2]
    mask = np.zeros((h, w), np.uint8)
    boxes: list[Box] = []
    text_regions: dict[int, Mask] = {}
    for region, prob, (sx, sy) in found:
        if id(prob) not in text_regions:
            binary = (prob > cfg.binary_threshold).astype(np.uint8)
            text_regions[id(prob)] = np.asarray(
                cv2.resize(binary, (w, h), interpolation=cv2.INTER_NEAREST), dtype=np.uint8
            )
        boxes.append(
            paint_region(cfg, mask, image, rescaled(region, sx, sy), text_regions[id(prob)], limit)
        )
    return mask, boxes


def paint_region(
    cfg: TextDetectorConfig,
    mask: Mask,
    image: Image,
    region: Region,
    text_region: Mask,
    limit: Mask | None = None,
) -> Box:
    """Mark the ink of one region (image px) in ``mask`` (and its label, if any); return its
    axis-aligned box. ``text_region`` is the DB text region at the image's size; ink counts
    only where it reaches into ``limit`` (if given and the segmenter sees the line)."""
    h, w = image.shape[:2]
    margin = max(2.0, 0.1 * region.thickness)
    ring = max(3.0, 0.2 * region.thickness)
    # Glyph height is about half the unclipped box's thickness; a drop shadow reaches about
    # a tenth of it beyond the glyphs, plus its blur.
    radius = min(MAX_REACH, cfg.dilation + round(cfg.shadow_reach * region.thickness / 2))
    # The window reaches a glyph height or more around the box: room for a label, and for
    # a symbol at either end of the line that the detector left out (the "©" of "© shop").
    x0, y0, x1, y1 = bounds(
        region.corners(max(margin + ring + radius, region.thickness), region.thickness), w, h
    )
    offset = np.array([x0, y0])
    crop = image[y0:y1, x0:x1]
    inner = np.zeros(crop.shape[:2], np.uint8)
    cv2.fillPoly(inner, [np.round(region.corners(margin) - offset).astype(np.int32)], 1)
    texture, noise = _texture(crop, region, inner, margin + ring, offset)
    near = cv2.dilate(text_region[y0:y1, x0:x1], disc(math.ceil(region.grow))) > 0
    quiet = noise < cfg.min_ink_contrast
    ink = _ink(cfg, crop, inner > 0, near, texture, noise)
    if np.count_nonzero(ink) < cfg.min_ink_fraction * np.count_nonzero(inner) and quiet:
        ink = (text_region[y0:y1, x0:x1] > 0) & (inner > 0) & near
    allowed = None if limit is None else _allowed(ink, limit[y0:y1, x0:x1] > 0)
    if allowed is not None:
        ink = touching(ink, allowed)
    grown = cv2.dilate(ink.astype(np.uint8), disc(radius))
    target = mask[y0:y1, x0:x1]
    target[grown > 0] = 255
    behind = crop[(inner > 0) & near & (grown == 0)]
    on_label = paint_label(mask, image, region, behind, cfg.label_tolerance, cfg.dilation)
    if quiet and not on_label:
        # On a quiet background, look for ink along the line beyond the detected box too
        # (the detector leaves out symbols such as the "©" of "© shop").
        cv2.fillPoly(
            inner,
            [np.round(region.corners(margin, region.thickness) - offset).astype(np.int32)],
            1,
        )
        ink = _ink(cfg, crop, inner > 0, near | (inner > 0), texture, noise)
        if allowed is not None:
            ink = touching(ink, allowed)
        target[cv2.dilate(ink.astype(np.uint8), disc(radius)) > 0] = 255
    bx0, by0, bx1, by1 = bounds(region.corners(), w, h)
    return (bx0, by0, bx1 - bx0, by1 - by0)


def _texture(
    crop: Image, region: Region, inner: Mask, reach: float, offset: npt.NDArray[np.int_]
) -> tuple[npt.NDArray[np.int16], float]:
    """Each pixel's departure from a local median (max over RGB), and the background's texture
    level: the 90th percentile of that departure in the ring between ``inner`` and the box
    grown by ``reach``.

    A median over about half a glyph height follows the background's edges and drops thin
    strokes: ink must stand out from it too (where the box crosses a busy background, the fill
    from the ring is wrong), and the background's own departure from it around the box (its
    texture) raises the threshold."""
    size = max(5, 2 * round(region.thickness / 4) + 1)
    texture = np.abs(crop.astype(np.int16) - cv2.medianBlur(crop, size).astype(np.int16))
    texture = texture.max(axis=2)
    around = np.zeros(crop.shape[:2], np.uint8)
    cv2.fillPoly(around, [np.round(region.corners(reach) - offset).astype(np.int32)], 1)
    outside = texture[(around > 0) & (inner == 0)]
    noise = float(np.percentile(outside, 90)) if outside.size else 0.0
    return texture, noise


def _allowed(
    ink: npt.NDArray[np.bool_], window: npt.NDArray[np.bool_]
) -> npt.NDArray[np.bool_] | None:
    """Where the segmenter's ``window`` (the ink limit) applies to ``ink``: only when it sees
    the line (at least ``_SEEN`` of its ink within reach). Text it was not trained on (another
    script, an unusual face) keeps all its ink (None)."""
    if ink.any() and np.count_nonzero(ink & window) >= _SEEN * np.count_nonzero(ink):
        return window
    return None


def _ink(
    cfg: TextDetectorConfig,
    crop: Image,
    inner: npt.NDArray[np.bool_],
    near: npt.NDArray[np.bool_],
    texture: npt.NDArray[np.int16],
    noise: float,
) -> npt.NDArray[np.bool_]:
    """Pixels of ``inner`` near the text region that differ from the background filled in
    from around ``inner``, and from the local median, by more than the glyph threshold."""
    background = cv2.inpaint(crop, inner.astype(np.uint8), 3, cv2.INPAINT_TELEA)
    diff = np.abs(crop.astype(np.int16) - background.astype(np.int16)).max(axis=2)
    inside = inner & near
    values = diff[inside].astype(np.uint8)
    otsu, _ = cv2.threshold(values.reshape(1, -1), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    threshold = min(cfg.ink_contrast, max(cfg.min_ink_contrast, float(otsu)))
    threshold = max(threshold, cfg.texture_factor * noise)
    ink: npt.NDArray[np.bool_] = (diff > threshold) & (texture > threshold) & inside
    return ink
