"""The promo label behind a line of text: a bounded patch of one colour, burned in with it.

Text on a bounded patch of one colour gets the patch masked too. Its edge is where the colour
departs from the label's by more than the label's own spread (so a dark label on a dark coat,
a few levels apart, is told from the coat), and a pill's round ends come with it.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import numpy.typing as npt

from processors.tensors import Image, Mask
from processors.text.geometry import Region, bounds, disc

__all__ = ["paint_label"]

_LABEL_MIN_TOLERANCE = 3.0
"""Least colour tolerance (max over RGB) of a label's edge search, for a perfectly flat label."""
_LEVEL = math.sin(math.radians(5.0))
"""Promo labels are looked for behind text within 5 degrees of level."""

_Sides = tuple[int, int, int, int]
"""``left, top, right, bottom`` of a box in a window's pixels (right and bottom exclusive)."""


def paint_label(
    mask: Mask, image: Image, region: Region, behind: Image, tolerance: float, dilation: int
) -> bool:
    """Mark the bounded patch of one colour the text sits on, if any (a promo label: it was
    burned in with the text), grown by ``dilation``; say whether there was one. ``behind``
    holds the box's pixels that are not ink; ``tolerance`` is the largest colour difference
    (max over RGB) within a label."""
    pixels = behind.astype(np.int16)
    if len(pixels) == 0 or abs(region.along[1]) > _LEVEL:
        return False
    colour = np.median(pixels, axis=0)
    deviation = np.abs(pixels - colour).max(axis=1)
    if np.mean(deviation <= tolerance) < 0.8:
        return False
    # Where the label's edge is told from what lies around it, allow only what the label's
    # own pixels vary by (a flat fill, give or take compression noise): a dark label on a
    # dark coat differs from it by a few levels, less than ``label_tolerance``.
    tolerance = min(tolerance, max(_LABEL_MIN_TOLERANCE, 3.0 * float(np.percentile(deviation, 75))))
    reach = math.ceil(2.0 * region.thickness)
    x0, y0, x1, y1 = bounds(region.corners(reach), *image.shape[1::-1])
    close = np.abs(image[y0:y1, x0:x1].astype(np.int16) - colour).max(axis=2) <= tolerance
    bx0, by0, bx1, by1 = bounds(region.corners(), *image.shape[1::-1])
    text = (bx0 - x0, by0 - y0, bx1 - x0, by1 - y0)
    label = _grown(close, text)
    if not _is_label(close, text, label):
        return False
    filled = _with_round_ends(close, label)
    target = mask[y0:y1, x0:x1]
    target[cv2.dilate(filled, disc(dilation)) > 0] = 255
    return True


def _grown(close: npt.NDArray[np.bool_], box: _Sides) -> _Sides:
    """``box`` grown one row or column at a time while the new edge is mostly (0.6) of the
    label's colour (``close``); a label ends well before the window's edge on every side."""
    left, top, right, bottom = box
    height, width = close.shape
    moved = True
    while moved:
        moved = False
        if top > 0 and close[top - 1, left:right].mean() >= 0.6:
            top, moved = top - 1, True
        if bottom < height and close[bottom, left:right].mean() >= 0.6:
            bottom, moved = bottom + 1, True
        if left > 0 and close[top:bottom, left - 1].mean() >= 0.6:
            left, moved = left - 1, True
        if right < width and close[top:bottom, right].mean() >= 0.6:
            right, moved = right + 1, True
    return left, top, right, bottom


def _is_label(close: npt.NDArray[np.bool_], text: _Sides, label: _Sides) -> bool:
    """Whether ``label``, grown from the ``text`` box over the label's colour (``close``), is
    a label: it ends inside the window, with a margin around the text on every side and a
    sharp edge (the pixels just outside it are not of its colour; a smooth gradient is not a
    label)."""
    left, top, right, bottom = label
    height, width = close.shape
    if min(top, left) <= 0 or bottom >= height or right >= width:
        return False
    if min(text[1] - top, text[0] - left, bottom - text[3], right - text[2]) < 2:
        return False
    outside = np.concatenate(
        [
            close[top - 1, left:right],
            close[bottom, left:right],
            close[top:bottom, left - 1],
            close[top:bottom, right],
        ]
    )
    return not outside.mean() > 0.3


def _with_round_ends(close: npt.NDArray[np.bool_], label: _Sides) -> npt.NDArray[np.uint8]:
    """The label's box with the round ends of a pill: a column across them is mostly not the
    label's colour, so the growth stopped short. The label's pixels within half its height
    beyond either end, in its rows, and joined to it come with it."""
    left, top, right, bottom = label
    filled = np.zeros(close.shape, np.uint8)
    filled[top:bottom, left:right] = 1
    reach = (bottom - top) // 2
    zone = np.zeros_like(filled)
    zone[top:bottom, max(0, left - reach) : right + reach] = 1
    _, joined = cv2.connectedComponents(((close & (zone > 0)) | (filled > 0)).astype(np.uint8))
    return np.asarray(joined == joined[top, left], np.uint8)
