"""Following accepted lines beyond their ends: glyphs that continue a line, lone symbols just
past either end, and the "©" before a line's start.

An accepted line is followed glyph by glyph beyond its ends (segmented regions of its glyph
size, centred on it, at most a line height on), so a word whose letters cross busy background
is continued from the part that was read. A lone symbol just beyond either end of any accepted
line is kept when it reads as one confident character, or when it is a ring of about a
capital's size: the "©" that starts most watermarks and that the recognizer's dictionary lacks.
One the segmenter did not draw at all is looked for in the image itself, a ring with a "c"
inside just before a line's start (:mod:`processors.text_ring`).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import numpy.typing as npt

from processors.tensors import Image, Mask
from processors.text.config import TextDetectorConfig
from processors.text.geometry import FloatArray, Glyphs, Region, disc, near_end
from processors.text.recognizer import Reading, Recognizer, rec_crop
from processors.text.shapes import ON_LINE, filled_holes, is_circle
from processors.text_ring import Ring, find_ring

__all__ = ["MIN_GLYPH_AREA", "continued", "rings", "symbols"]

MIN_GLYPH_AREA = 6
"""Segmented regions smaller than this (px) are specks, not glyphs."""
_STROKE_FILL = 0.6
"""Most of its box that a segmented glyph's strokes fill (a solid blob is background)."""


def continued(
    cfg: TextDetectorConfig,
    prob: FloatArray,
    glyphs: Glyphs,
    chosen: Mask,
    lines: list[Region],
) -> tuple[Mask, list[Region]]:
    """Glyphs that continue the accepted ``lines``: segmented regions (of ``glyphs``) not
    yet ``chosen``, of about the line's glyph size, centred on the line (within half
    ``ON_LINE`` of its height across it), at most a line height beyond its current end,
    and segmented with a mean probability of at least ``segment_min_score``; each one
    taken moves the end, so a word the recognizer did not accept (its letters cross busy
    background) is followed letter by letter from the part that was read. Returns the
    glyphs' mask and the lines reaching as far as they now do."""
    labels, stats, centres = glyphs.labels, glyphs.stats, glyphs.centres
    out = np.zeros(labels.shape, np.uint8)
    if not lines:
        return out, []
    count = len(stats)
    inside = labels > 0
    areas = np.bincount(labels[inside], minlength=count)
    scores = np.bincount(labels[inside], weights=prob[inside], minlength=count)
    sizes = np.maximum(stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT])
    taken_before = np.bincount(labels[inside & (chosen > 0)], minlength=count) > 0
    free = [
        k
        for k in range(1, count)
        if areas[k] >= MIN_GLYPH_AREA
        and not taken_before[k]
        and scores[k] >= cfg.segment_min_score * areas[k]
        # Strokes fill little of their box; a solid blob is a patch of background.
        and areas[k] <= _STROKE_FILL * stats[k, cv2.CC_STAT_WIDTH] * stats[k, cv2.CC_STAT_HEIGHT]
    ]
    taken: set[int] = set()
    extended = [_followed(line, free, taken, centres, sizes) for line in lines]
    if taken:
        out[np.isin(labels, sorted(taken))] = 255
    return out, extended


def _followed(
    line: Region,
    free: list[int],
    taken: set[int],
    centres: npt.NDArray[np.float64],
    sizes: npt.NDArray[np.int32],
) -> Region:
    """``line`` followed glyph by glyph: each of the ``free`` glyphs (not yet ``taken``, which
    it adds to) of about its glyph size, centred on it and at most a line height beyond its
    current end moves that end, until none does; returns the line reaching as far as it now
    does."""
    along = np.asarray(line.along)
    across = np.array([-along[1], along[0]])
    centre = np.asarray(line.centre)
    low, high = -line.length / 2, line.length / 2
    height = line.thickness
    grown = True
    while grown:
        grown = False
        for k in free:
            if k in taken or not 0.3 * height <= sizes[k] <= 1.5 * height:
                continue
            offset = centres[k] - centre
            t, a = float(offset @ along), float(offset @ across)
            half = sizes[k] / 2
            if abs(a) > ON_LINE * height / 2:
                continue
            if low - height <= t + half <= low or high <= t - half <= high + height:
                taken.add(k)
                low, high = min(low, t - half), max(high, t + half)
                grown = True
    middle = centre + along * (low + high) / 2
    return Region((float(middle[0]), float(middle[1])), line.along, high - low, height, line.grow)


def symbols(
    cfg: TextDetectorConfig,
    read: Recognizer,
    paper: Image,
    glyphs: Glyphs,
    chosen: Mask,
    lines: list[Region],
) -> Mask:
    """Lone symbols just beyond either end of the accepted ``lines`` (the "©" of
    "© shop", a space or two away): segmented regions not yet ``chosen``, of about the
    line's glyph size, kept when the recognizer reads them as one confident character
    within a line height of an end, or when they are a ring (:func:`is_circle`) within
    two line heights.

    The circle test is there because the recognizer's dictionary has no "©" (it reads one
    as "@" or "c" at low confidence), and "©" is the usual first character of a watermark.
    """
    labels, stats, centres = glyphs.labels, glyphs.stats, glyphs.centres
    out = np.zeros(labels.shape, np.uint8)
    if not lines:
        return out
    candidates: list[tuple[int, bool, bool, Region]] = []
    for k in range(1, len(stats)):
        x, y, bw, bh, area = (int(v) for v in stats[k])
        centre = (int(centres[k][0]), int(centres[k][1]))
        glyph = max(bw, bh)
        sized = [r for r in lines if 0.3 * r.thickness <= glyph <= 1.5 * r.thickness]
        if area < MIN_GLYPH_AREA or not any(near_end(r, centre, 2.0) for r in sized):
            continue
        if chosen[y : y + bh, x : x + bw][labels[y : y + bh, x : x + bw] == k].any():
            continue
        close = any(near_end(r, centre, 1.0) for r in sized)
        # A "©" is about a capital's height, some 0.6 of a line's height from ascender to
        # descender: a larger ring near the line is something else (the lettered rim of a
        # round badge).
        ring = any(near_end(r, centre, 2.0) and glyph <= 0.7 * r.thickness for r in sized)
        box = Region((x + bw / 2, y + bh / 2), (1.0, 0.0), bw + 4.0, bh + 4.0, 2.0)
        candidates.append((k, close, ring, box))
    if not candidates:
        return out
    # A reading counts only within a line height of an end: the others are not read.
    closer = [box for _, close, _, box in candidates if close]
    readings = iter(read([rec_crop(paper, box) for box in closer], cfg.segment_min_confidence, 1))
    for k, close, ring, _ in candidates:
        x, y, bw, bh = (int(v) for v in stats[k, :4])
        window_labels = labels[y : y + bh, x : x + bw]
        blob = (window_labels == k).astype(np.uint8)
        text = close and next(readings) is Reading.TEXT
        if text or (ring and is_circle(blob)):
            # A ring's inside (the "c" of "©") comes with it.
            filled = filled_holes(blob)
            window = out[y : y + bh, x : x + bw]
            window[(filled > 0) & (window_labels > 0)] = 255
    return out


def rings(image: Image, lines: Sequence[Region], mask: Mask, dilation: int) -> Mask:
    """The "©" just before the start of each of ``lines`` (image px), found in the image
    (:func:`processors.text_ring.find_ring`) and grown by ``dilation`` like the rest of
    ``mask`` (the segmenter's mask so far), except into the hole inside its "c"."""
    kernel = disc(dilation)
    luma = np.asarray(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), np.float32)
    # What the segmenter chose, before its growth: a ring it already has is not new.
    known = np.asarray(cv2.erode(mask, kernel), np.uint8)
    out = np.zeros(mask.shape, np.uint8)
    found: list[Ring] = []
    for line in lines:
        x, y = np.subtract(line.centre, np.multiply(line.along, line.length / 2))
        outward = (-line.along[0], -line.along[1])
        ring = find_ring(luma, (float(x), float(y)), outward, line.thickness, known)
        if ring is not None:
            out |= ring.ink(mask.shape)
            found.append(ring)
    if not found:
        return out
    out = np.asarray(cv2.dilate(out, kernel), np.uint8)
    for ring in found:
        cv2.circle(out, ring.centre, ring.hole, 0, thickness=-1)
    return out
