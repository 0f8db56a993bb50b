"""Shape tests on binary maps of glyphs: which connected parts lie on a line, touch a limit, are
glyph-sized, or form a ring; and the probability map drawn as ink for the recognizer."""

from __future__ import annotations

import math

import cv2
import numpy as np
import numpy.typing as npt

from processors.tensors import Image
from processors.text.geometry import FloatArray, Region, axis_offsets

__all__ = [
    "CENTRED",
    "ON_LINE",
    "filled_holes",
    "glyph_sized",
    "is_circle",
    "joined_or_centred",
    "on_line",
    "paper_of",
    "part_sizes",
    "touching",
    "weighted_median",
]

ON_LINE = 0.6
"""Segmented regions of an accepted group further than this many glyph sizes across the line
from its middle are background beside it, not text."""

CENTRED = 0.25
"""The segmenter pass's hysteresis keeps a weaker region inside an accepted line's box when it
touches the line's glyphs or its centre lies within this share of the line's thickness of the
line's axis (:func:`joined_or_centred`)."""


def paper_of(prob: FloatArray) -> Image:
    """The probability map drawn as dark ink on white paper (RGB), for the recognizer."""
    grey = np.clip(np.rint(255.0 - 255.0 * prob), 0, 255).astype(np.uint8)
    return np.repeat(grey[:, :, None], 3, axis=2)


def on_line(glyphs: npt.NDArray[np.bool_], along: tuple[float, float]) -> npt.NDArray[np.bool_]:
    """The connected regions of ``glyphs`` whose centres lie on the line through the rest (in
    direction ``along``): within ``ON_LINE`` glyph sizes of the weighted median across the
    line, each region weighing its area up to the typical region's. Background edges that the
    segmenter marked beside a line of text, and that joined its group, lie off it."""
    count, found, stats, centres = cv2.connectedComponentsWithStats(
        glyphs.astype(np.uint8), connectivity=8
    )
    if count <= 2:
        return glyphs
    sizes, areas, _ = part_sizes(stats)
    # Each part weighs its area up to the typical part's (the area-weighted median): one large
    # blob of background (a row of medal ribbons above a caption) does not pull the line's
    # centre and glyph size to itself.
    areas = np.minimum(areas, weighted_median(areas, areas))
    size = weighted_median(sizes.astype(np.float64), areas)
    offsets = centres[1:] @ np.array([-along[1], along[0]])
    centre = weighted_median(offsets, areas)
    on = np.concatenate([[False], np.abs(offsets - centre) <= ON_LINE * size])
    return np.asarray(on[found], np.bool_)


def joined_or_centred(
    weak: npt.NDArray[np.bool_], strong: npt.NDArray[np.bool_], lines: list[Region]
) -> npt.NDArray[np.bool_]:
    """The connected regions (8-connected) of ``weak`` that touch ``strong``, or whose centre
    lies on one of ``lines``: within ``CENTRED`` of its thickness across it, and between its
    ends. A letter the segmenter was less sure of sits on its line; a piece of background edge
    inside the line's box mostly does not."""
    count, labels, _, centres = cv2.connectedComponentsWithStats(
        weak.astype(np.uint8), connectivity=8
    )
    if count <= 1:
        return weak
    keep = np.zeros(count, np.bool_)
    keep[np.unique(labels[weak & strong])] = True
    for line in lines:
        along, across = axis_offsets(line, centres)
        keep |= (np.abs(across) <= CENTRED * line.thickness) & (np.abs(along) <= line.length / 2)
    keep[0] = False
    return np.asarray(keep[labels], np.bool_)


def touching(ink: npt.NDArray[np.bool_], allowed: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
    """The connected regions (8-connected) of ``ink`` that reach into ``allowed``, whole."""
    count, labels = cv2.connectedComponents(ink.astype(np.uint8), connectivity=8)
    if count <= 1:
        return ink
    hit = np.zeros(count, np.bool_)
    hit[np.unique(labels[ink & allowed])] = True
    hit[0] = False
    return np.asarray(hit[labels], np.bool_)


def weighted_median(values: npt.NDArray[np.float64], weights: npt.NDArray[np.float64]) -> float:
    """The value at which the cumulative weight (in ascending order of value) reaches half."""
    order = np.argsort(values)
    cumulative = np.cumsum(weights[order])
    return float(values[order][np.searchsorted(cumulative, cumulative[-1] / 2)])


def part_sizes(
    stats: npt.ArrayLike,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], float]:
    """Of the connected parts in ``stats`` (OpenCV's, background first): each part's size (max
    of width and height), its area, and their area-weighted median size."""
    parts = np.asarray(stats, np.int64)[1:]
    sizes = np.maximum(parts[:, cv2.CC_STAT_WIDTH], parts[:, cv2.CC_STAT_HEIGHT])
    areas = parts[:, cv2.CC_STAT_AREA].astype(np.float64)
    return sizes, areas, weighted_median(sizes.astype(np.float64), areas)


def glyph_sized(mask: npt.NDArray[np.bool_], factor: float) -> npt.NDArray[np.bool_]:
    """The connected parts of ``mask`` no larger (max of width and height) than ``factor``
    times their area-weighted median size (the size of the parts that hold most of the
    ink); all of it when it has fewer than two parts."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8))
    if count <= 2:
        return mask
    sizes, _, typical = part_sizes(stats)
    small = np.concatenate([[False], sizes <= factor * typical])
    return np.asarray(small[labels] & mask, dtype=np.bool_)


def filled_holes(blob: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """``blob`` with the holes inside its outer outline filled."""
    contours, _ = cv2.findContours(blob, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    filled = np.zeros_like(blob)
    cv2.drawContours(filled, contours, -1, 1, thickness=cv2.FILLED)
    return filled


def is_circle(blob: npt.NDArray[np.uint8]) -> bool:
    """Whether ``blob`` (one region) is a ring: its convex hull is round and about the disc of
    its box, and the region fills little of it (a "©", even with a gap in its outline)."""
    height, width = blob.shape
    if not 0.75 <= width / height <= 1.33 or min(width, height) < 8:
        return False
    points = cv2.findNonZero(blob)
    hull = cv2.convexHull(points)
    hull_area = float(cv2.contourArea(hull))
    _, radius = cv2.minEnclosingCircle(hull)
    if hull_area <= 0.0:
        return False
    round_hull = hull_area / (math.pi * radius**2) >= 0.75
    disc = 0.8 <= hull_area / (math.pi * width * height / 4) <= 1.1
    return bool(round_hull and disc and np.count_nonzero(blob) / hull_area <= 0.8)
