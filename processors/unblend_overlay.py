"""Semi-transparent neutral overlays (watermarks): their colour and opacity estimated from one
image and its fill, and the background solved from under them.

A watermark is a neutral colour ``c`` laid over the photo at an opacity ``a`` through the
glyphs' coverage ``k``: ``image = (1 - a·k) · background + a·k · (c, c, c)``. Each strongly
changed pixel defines a line in RGB from the fill (an estimate of the background) through the
observed colour; an overlay's lines all pass near its colour (:func:`estimate_overlay` in
closed form, :func:`search_overlay` along the grey axis). Projected on the direction from the
fill to ``c``, a pixel's change is ``a·k``, which peaks at ``a`` inside the strokes.
:func:`recover_overlay` then solves for the background. :mod:`processors.unblend` decides which
parts of a region to treat so.
"""

from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np
import numpy.typing as npt

__all__ = [
    "FloatArray", "Overlay", "adopts", "estimate_overlay", "recover_overlay", "search_overlay",
]

FloatArray = npt.NDArray[np.float64]
"""An HWC (or N x 3) float image, in levels 0-255."""

_STRONG_PERCENTILE = 60.0
"""Pixels changed more than this percentile of a part (and by at least ``_STRONG_LEVELS``) fix
the overlay's colour."""
_STRONG_LEVELS = 20.0
_MIN_SPREAD = 30.0
"""Least distance (levels) between the fill and the overlay colour for a pixel's ratio to be
read: nearer, the ratio is mostly the fill's error."""
_BIN = 0.025
"""Histogram bin of the opacity ratio."""
_NEAR_PEAK = 0.04
"""Ratios within this of the histogram's peak give the opacity (their median)."""
_PEAK_WIDTH = 0.05
"""Ratios within this of the opacity count towards the peak share."""
_SEARCH_STEP = 5
"""Grey levels :func:`search_overlay` tries (every this many)."""
_SEARCH_MIN_READABLE = 50
"""Least readable pixels (fill far enough from the colour) for a searched colour to count."""
_MEDIAN = 5
"""Side of the median that turns recovered pixels into the next background estimate."""


class Overlay(NamedTuple):
    """A semi-transparent neutral overlay found in one part of a region."""

    colour: float
    """Its grey level ``c`` (0-255), the same in R, G and B."""
    alpha: float
    """Its opacity ``a`` inside the strokes."""
    peak: float
    """Share of the part's changed pixels whose ratio lies within 0.05 of ``alpha``."""
    line_distance: float
    """Median distance (levels) of the changed pixels' colour lines from ``(c, c, c)``."""
    searched: bool = False
    """Found by :func:`search_overlay` rather than :func:`estimate_overlay`'s closed form."""



def estimate_overlay(
    image: FloatArray, fill: FloatArray, part: npt.NDArray[np.bool_]
) -> Overlay | None:
    """The neutral overlay that best explains ``image`` over ``fill`` in ``part`` (HWC float
    arrays, HW bool), or None where its pixels give no estimate (nothing changed enough)."""
    pixels = _pixels(image, fill, part)
    lines = _lines(pixels)
    if lines is None:
        return None
    start, direction, weight = lines
    # Squared distance of (c, c, c) from the line start + t·direction is
    # |c·1 - start|² - ((c·1 - start)·direction)², a quadratic in c: its minimum in closed form.
    along_grey = direction.sum(axis=1)
    start_along = (start * direction).sum(axis=1)
    curvature = float((weight * (3.0 - along_grey**2)).sum())
    if curvature <= 1e-9:
        return None
    colour = float((weight * (start.sum(axis=1) - start_along * along_grey)).sum() / curvature)
    colour = min(max(colour, 0.0), 255.0)
    ratios = _ratios(pixels, colour)
    if ratios.size == 0:
        return None
    alpha, share = _peak(ratios)
    return Overlay(colour, alpha, share, _line_distance(start, direction, colour))


def search_overlay(
    image: FloatArray, fill: FloatArray, part: npt.NDArray[np.bool_], *,
    max_line_distance: float, min_alpha: float, max_alpha: float,
) -> Overlay | None:
    """The overlay with the sharpest opacity peak in ``part`` among the grey levels (every
    ``_SEARCH_STEP``) that its colour lines pass within ``max_line_distance`` of, at an opacity
    in ``[min_alpha, max_alpha]``; None where no grey level qualifies. Its ``searched`` is True.

    :func:`estimate_overlay`'s closed-form colour is ill-conditioned when the lines run nearly
    parallel to the grey axis (a white overlay over a dark blue sky: the lines from each sky
    colour to white all point roughly along grey), and it can land far from the overlay's
    colour. The right colour still makes the opacity ratios agree, so the sharpest peak
    finds it; on a background with little spread in colour any colour gives a sharp peak,
    which is why this only backs up the closed form."""
    pixels = _pixels(image, fill, part)
    lines = _lines(pixels)
    if lines is None:
        return None
    start, direction, _ = lines
    best: Overlay | None = None
    for level in range(0, 256, _SEARCH_STEP):
        colour = float(level)
        distance = _line_distance(start, direction, colour)
        if distance > max_line_distance:
            continue
        ratios = _ratios(pixels, colour)
        if ratios.size < _SEARCH_MIN_READABLE:
            continue
        alpha, share = _peak(ratios)
        if min_alpha <= alpha <= max_alpha and (best is None or share > best.peak):
            best = Overlay(colour, alpha, share, distance, searched=True)
    return best


class _Pixels(NamedTuple):
    """A part's pixels, taken out of the image and its fill once (the search reads them for
    every grey level it tries)."""

    fill: FloatArray
    """The fill's colours, one row per pixel."""
    change: FloatArray
    """The observed colour less the fill's, one row per pixel."""


def _pixels(image: FloatArray, fill: FloatArray, part: npt.NDArray[np.bool_]) -> _Pixels:
    under = fill[part]
    return _Pixels(under, image[part] - under)


def _lines(pixels: _Pixels) -> tuple[FloatArray, FloatArray, FloatArray] | None:
    """The colour lines of a part's strongly changed pixels: (start: the fill, unit direction:
    towards the observed colour, weight: how much the pixel changed), or None where fewer than
    3 pixels changed strongly."""
    change = pixels.change
    size = np.sqrt((change * change).sum(axis=1))
    strong = size > max(float(np.percentile(size, _STRONG_PERCENTILE)), _STRONG_LEVELS)
    if np.count_nonzero(strong) < 3:
        return None
    return pixels.fill[strong], change[strong] / size[strong, None], size[strong]


def _line_distance(start: FloatArray, direction: FloatArray, colour: float) -> float:
    """Median distance (levels) of the lines ``start + t·direction`` from ``(c, c, c)``."""
    offset = colour - start
    along = (offset * direction).sum(axis=1)
    return float(np.median(np.sqrt(np.maximum((offset * offset).sum(axis=1) - along**2, 0))))


def _peak(ratios: FloatArray) -> tuple[float, float]:
    """(opacity, peak share) of the opacity ratios: the median of the ratios near the
    smoothed histogram's peak, and the share of ratios above 0.1 within ``_PEAK_WIDTH`` of it."""
    edges = np.arange(0.05, 1.0, _BIN)
    counts, _ = np.histogram(ratios, bins=edges)
    smooth = cv2.GaussianBlur(counts.astype(np.float32).reshape(1, -1), (0, 0), 1.5).ravel()
    top = int(np.argmax(smooth))
    first = float(edges[top] + edges[top + 1]) / 2
    near = np.abs(ratios - first) < _NEAR_PEAK
    alpha = float(np.median(ratios[near])) if np.count_nonzero(near) > 10 else first
    return alpha, _share(ratios, alpha)


def _ratios(pixels: _Pixels, colour: float) -> FloatArray:
    """Per pixel of a part (where the fill is not too near ``colour``): the change from the
    fill projected on the direction to ``colour``, as a share of the distance (``a·k``)."""
    towards = colour - pixels.fill
    length = (towards * towards).sum(axis=1)
    readable = length > _MIN_SPREAD**2
    projected: FloatArray = (pixels.change * towards).sum(axis=1)[readable] / length[readable]
    return projected


def _share(ratios: FloatArray, alpha: float) -> float:
    above = ratios[ratios > 0.1]
    return float(np.mean(np.abs(above - alpha) < _PEAK_WIDTH)) if above.size else 0.0


def recover_overlay(
    crop: FloatArray, fill: FloatArray, inside: npt.NDArray[np.bool_], overlay: Overlay,
    iterations: int,
) -> FloatArray:
    """The background under ``overlay`` in ``inside`` (HWC float; ``crop`` elsewhere), for a
    crop of the image and its fill that reaches at least ``_MEDIAN // 2`` px beyond the part."""
    estimate = fill
    colour, alpha = overlay.colour, overlay.alpha
    recovered = crop
    for _ in range(iterations):
        towards = colour - estimate
        length = (towards * towards).sum(axis=2)
        ratio = ((crop - estimate) * towards).sum(axis=2) / np.maximum(length, 1e-6)
        coverage = np.where(length > _MIN_SPREAD**2 / 3, ratio / alpha, 0.0)
        opacity = (alpha * np.clip(coverage, 0.0, 1.0))[..., None]
        solved = (crop - opacity * colour) / (1.0 - opacity)
        recovered = np.where(inside[..., None], solved, crop)
        rounded = np.clip(np.rint(recovered), 0, 255).astype(np.uint8)
        median = cv2.medianBlur(rounded, _MEDIAN).astype(np.float64)
        estimate = np.where(inside[..., None], median, crop)
    return recovered


def adopts(
    image: FloatArray, fill: FloatArray, part: npt.NDArray[np.bool_], overlay: Overlay, *,
    min_peak: float, max_line_distance: float,
) -> bool:
    """Whether ``part``, which shows no overlay of its own, is read as ``overlay`` (another
    part's): its opacity ratios peak at the overlay's opacity (a peak share of at least
    ``min_peak``), and its colour lines pass within ``max_line_distance`` of the overlay's
    colour, as the gate asks of a part's own estimate. The ratios alone can agree by chance: a
    coloured caption over a background of another hue can peak at a white watermark's opacity,
    and un-blending it puts the caption back; such a caption's lines miss white by 100-200
    levels, a watermark's by under 20 (the overlays of the quality corpus). A part with too few
    strongly changed pixels to draw lines from is judged by the peak alone."""
    pixels = _pixels(image, fill, part)
    if _share(_ratios(pixels, overlay.colour), overlay.alpha) < min_peak:
        return False
    lines = _lines(pixels)
    return lines is None or (
        _line_distance(lines[0], lines[1], overlay.colour) <= max_line_distance
    )
