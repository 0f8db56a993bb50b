"""The "©" before a watermark's first letter, found in the image itself.

Most watermarks start with "©" ("© shopname"). The text segmenter (:mod:`processors.text_seg`)
often draws the letters of a faint watermark but not its "©", and the recognizer's dictionary
has no "©" at all, so the sign stays on the picture after its line is removed. It has a shape
no letter has: a ring about a capital's size with a "c" inside it. :func:`find_ring` looks for
exactly that shape just before the start of a text line that was already accepted, with a
matched filter on the image's luma:

1. For each radius from ``0.22`` to ``0.6`` line thicknesses (a line's thickness is its box's
   short side, whose share taken by the capitals depends on the detector that found it), a
   zero-mean kernel (the ring's stroke, minus a band just outside it and the gap just inside
   it) is correlated with the luma over the centres that lie on the line's axis (within
   ``0.2`` thicknesses across) from half a radius to two thicknesses before the line's start.
   Its strongest response, of either sign (white or dark overlays), is the candidate.
2. The candidate is a "©" when its stroke stands out (at least 12 levels) all the way round
   (each of 8 sectors at least 0.35 of the mean contrast, and from both sides: the band
   outside and the gap inside), and a "c" of the same polarity sits inside it at 0.4-0.6 of
   its radius in 5 to 7 of 8 sectors: an "o" or a wheel has nothing inside (0), a disc or a
   target has a closed ring there (8); the "c"'s opening is what a "©" has.
3. A ring whose strokes are mostly in the mask already (over 0.6) was found by another step.

The mask is the two strokes grown by a pixel (the caller grows it like the rest of the mask),
never the hole inside the "c": the background seen there is what the un-blending of a
semi-transparent sign leans on. Hand-written rather than a Hough transform
(``cv2.HoughCircles``): the test is on a stroke's contrast from both sides and on the "c"
inside, which a circle-edge vote does not give, and the search is confined to a line's start.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

__all__ = ["Ring", "find_ring"]

RADII = (0.22, 0.6)
"""Radii searched (of the ring's stroke centre), in line thicknesses."""
REACH = 2.0
"""Most line thicknesses between a line's start and the ring's near edge."""
ACROSS = 0.2
"""Most line thicknesses between the ring's centre and the line's axis."""
STROKE = 0.22
"""A "©"'s stroke width as a share of its radius (at least 2 px)."""
GAP = 0.12
"""Width of the gap band inside the stroke, as a share of the radius (at least 1 px)."""
MIN_CONTRAST = 12.0
"""Least mean difference (luma levels) between the stroke and the bands around it."""
SECTOR = 0.35
"""Least share of the mean contrast in each of the 8 sectors (stroke and "c" alike)."""
SIDES = 0.4
"""Least share of the mean contrast against the band outside and against the gap inside."""
INNER = (0.4, 0.5, 0.6)
"""Radii of the "c" tried, as shares of the ring's."""
C_SECTORS = (5, 7)
"""Fewest and most of the 8 sectors the "c" must show in."""
KNOWN = 0.6
"""A ring whose strokes are more than this share in the known mask is not new."""

Mask = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class Ring:
    """A "©" found in the image."""

    centre: tuple[int, int]
    """Centre (x, y), px."""
    radius: float
    """Radius of the ring's stroke centre, px."""
    stroke: float
    """Stroke width, px."""
    inner: float
    """Radius of the "c"'s stroke centre, px."""
    contrast: float
    """Mean stroke contrast, luma levels (negative: a dark sign)."""

    def ink(self, shape: tuple[int, int]) -> Mask:
        """The ring's and the "c"'s strokes, grown by 1 px, as a mask of ``shape``."""
        out = np.zeros(shape, np.uint8)
        reach = math.ceil(self.radius + self.stroke / 2 + 1)
        cx, cy = self.centre
        x0, y0 = max(0, cx - reach), max(0, cy - reach)
        x1, y1 = min(shape[1], cx + reach + 1), min(shape[0], cy + reach + 1)
        yy, xx = np.mgrid[y0:y1, x0:x1]
        d = np.hypot(xx - cx, yy - cy)
        half = self.stroke / 2 + 1
        strokes = (np.abs(d - self.radius) <= half) | (np.abs(d - self.inner) <= half)
        out[y0:y1, x0:x1][strokes] = 255
        return out

    @property
    def hole(self) -> int:
        """Radius (px) of the hole inside the "c" that the mask leaves alone."""
        return max(0, int(self.inner - self.stroke / 2 - 1))


class _Template:
    """The kernel and the sampling masks of a ring of one radius and stroke."""

    def __init__(self, radius: float, stroke: float) -> None:
        self.radius, self.stroke = radius, stroke
        self.reach = math.ceil(radius + 1.5 * stroke + 3)
        r = self.reach
        yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
        self.d = np.hypot(xx, yy)
        half = stroke / 2
        self.ring = np.abs(self.d - radius) <= half
        self.outer = (self.d > radius + half + 1) & (self.d <= radius + 1.5 * stroke + 2)
        gap = max(1.0, GAP * radius)
        self.gap = (self.d < radius - half - 0.5) & (self.d >= radius - half - 0.5 - gap)
        self.around = self.outer | self.gap
        """The stroke's bands on both sides."""
        self.kernel = (self.ring / self.ring.sum() - self.around / self.around.sum()).astype(
            np.float32
        )
        angle = np.arctan2(yy, xx)
        self.sectors = [
            (angle >= -math.pi + s * math.pi / 4) & (angle < -math.pi + (s + 1) * math.pi / 4)
            for s in range(8)
        ]
        self.usable = bool(self.gap.any()) and all(
            (self.ring & s).any() and (self.around & s).any() for s in self.sectors
        )
        """Whether every sector has stroke and band pixels (not so for the smallest radii)."""


def find_ring(
    luma: npt.NDArray[np.float32],
    start: tuple[float, float],
    outward: tuple[float, float],
    thickness: float,
    known: Mask,
) -> Ring | None:
    """The "©" just before a text line's start, if there is one (see the module doc).

    ``luma``: the image's luma (float32, 0..255); ``start``: the middle of the line's starting
    edge (x, y); ``outward``: unit vector from there away from the line; ``thickness``: the
    line's short side, px; ``known``: the mask found so far (nonzero = text), same shape.
    """
    h, w = luma.shape
    u = np.asarray(outward, np.float64)
    v = np.array([-u[1], u[0]])
    end = np.asarray(start, np.float64)
    best: Ring | None = None
    for radius in np.arange(
        RADII[0] * thickness, RADII[1] * thickness + 0.01, max(1.0, 0.03 * thickness)
    ):
        t = _Template(float(radius), max(2.0, STROKE * float(radius)))
        r = t.reach
        near, far = radius / 2, REACH * thickness + radius
        side = ACROSS * thickness
        corners = np.array([end + u * a + v * b for a in (radius, far) for b in (-side, side)])
        x0, y0 = np.floor(corners.min(0)).astype(int)
        x1, y1 = np.ceil(corners.max(0)).astype(int)
        x0, y0 = max(int(x0), r), max(int(y0), r)
        x1, y1 = min(int(x1), w - r - 1), min(int(y1), h - r - 1)
        if x1 <= x0 or y1 <= y0:
            continue
        crop = luma[y0 - r : y1 + r + 1, x0 - r : x1 + r + 1]
        response = cv2.filter2D(crop, -1, t.kernel, borderType=cv2.BORDER_REPLICATE)[r:-r, r:-r]
        gy, gx = np.mgrid[y0 : y1 + 1, x0 : x1 + 1]
        along = (gx - end[0]) * u[0] + (gy - end[1]) * u[1]
        across = np.abs((gx - end[0]) * v[0] + (gy - end[1]) * v[1])
        allowed = (along >= near) & (along <= far) & (across <= ACROSS * thickness)
        if not allowed.any():
            continue
        score = np.where(allowed, np.abs(response), -1.0)
        iy, ix = np.unravel_index(int(np.argmax(score)), score.shape)
        found = _judge(luma, known, t, (int(x0 + ix), int(y0 + iy)), float(response[iy, ix]))
        if found is not None and (best is None or abs(found.contrast) > abs(best.contrast)):
            best = found
    return best


def _judge(
    luma: npt.NDArray[np.float32],
    known: Mask,
    t: _Template,
    centre: tuple[int, int],
    contrast: float,
) -> Ring | None:
    """The ring of template ``t`` at ``centre`` when it passes the module doc's tests."""
    cx, cy = centre
    r = t.reach
    window = luma[cy - r : cy + r + 1, cx - r : cx + r + 1]
    sign, size = math.copysign(1.0, contrast), abs(contrast)
    if size < MIN_CONTRAST or not t.usable:
        return None
    for sector in t.sectors:
        if (
            sign * (window[t.ring & sector].mean() - window[t.around & sector].mean())
            < SECTOR * size
        ):
            return None
    stroke = window[t.ring].mean()
    for band in (t.outer, t.gap):
        if sign * (stroke - window[band].mean()) < SIDES * size:
            return None
    shown, inner = 0, INNER[1] * t.radius
    for share in INNER:
        c_radius = share * t.radius
        c_ring = np.abs(t.d - c_radius) <= t.stroke / 2
        gap = (t.d > c_radius + t.stroke / 2 + 0.5) & (t.d < t.radius - t.stroke / 2 - 0.5)
        count = sum(
            sign * (window[c_ring & s].mean() - window[gap & s].mean()) >= SECTOR * size
            for s in t.sectors
            if (c_ring & s).any() and (gap & s).any()
        )
        if count > shown:
            shown, inner = count, c_radius
    if not C_SECTORS[0] <= shown <= C_SECTORS[1]:
        return None
    strokes = (np.abs(t.d - t.radius) <= t.stroke / 2) | (np.abs(t.d - inner) <= t.stroke / 2)
    if np.count_nonzero(known[cy - r : cy + r + 1, cx - r : cx + r + 1][strokes]) > KNOWN * (
        np.count_nonzero(strokes)
    ):
        return None
    return Ring(centre=centre, radius=t.radius, stroke=t.stroke, inner=inner, contrast=contrast)
