"""Opaque single-colour ink (a camera timestamp, flat lettering): its colour, and the pixels of
its mask that a blend of the ink with a nearby background explains, solved for that background.

A pixel of antialiased ink is ``(1 - k)·background + k·ink``: a clean pixel that the mask took
in has ``k = 0``, a stroke's edge a fractional ``k``. :func:`estimate_ink` finds the ink's
colour; :func:`recover_ink` matches each masked pixel to the nearest colour segment from a
known pixel nearby to the ink and un-mixes it. :mod:`processors.unblend` decides which parts
of a region to treat so.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import numpy.typing as npt

from processors.unblend_overlay import FloatArray

if TYPE_CHECKING:
    from processors.unblend import UnblendConfig

__all__ = ["Ink", "estimate_ink", "near_segment", "recover_ink"]

_INK_STRONG = 60.0
"""Pixels changed by more than this (levels, RGB distance) from the fill show the ink's colour."""
_INK_BIN = 8
"""Colour histogram bin (levels per channel) whose fullest bin seeds the ink's colour."""
_INK_NEAR = 12.0
"""Pixels within this distance (levels) of the ink colour count as its opaque core."""
_SECOND_APART = 60.0
"""Least distance (levels) of a second ink colour from the first."""
_INK_MIN_SPREAD = 30.0
"""Least distance (levels) between a known colour and the ink colour for the pair to explain a
pixel: nearer, the blend's coverage cannot be read."""



class Ink(NamedTuple):
    """An opaque single-colour overlay (a camera timestamp, flat lettering) found in one part."""

    colour: tuple[float, float, float]
    """Its RGB colour."""
    share: float
    """Share of the part's strongly changed pixels within ``_INK_NEAR`` levels of ``colour``:
    how much of the change is the ink itself rather than a mix or a second colour."""
    second: tuple[float, float, float] | None = None
    """The commonest colour of the other strongly changed pixels (at least
    ``_SECOND_APART`` levels from ``colour``), if any: an outlined caption's fill, a label's
    text, or just background that the fill missed."""
    second_share: float = 0.0
    """Share of the strongly changed pixels within ``_INK_NEAR`` levels of ``second``."""


def estimate_ink(image: FloatArray, fill: FloatArray, part: npt.NDArray[np.bool_]) -> Ink | None:
    """The colour of opaque ink in ``part`` (HWC float image and fill, HW bool): the colour
    most of its strongly changed pixels share, and the commonest colour among the rest. None
    where too few pixels changed strongly."""
    change = image[part] - fill[part]
    strong = image[part][np.sqrt((change * change).sum(axis=1)) > _INK_STRONG]
    if strong.shape[0] < 20:
        return None
    colour, share = _mode(strong, strong)
    rest = strong[np.sqrt(((strong - colour) ** 2).sum(axis=1)) >= _SECOND_APART]
    second, second_share = _mode(rest, strong) if rest.shape[0] >= 20 else (None, 0.0)
    return Ink(
        (float(colour[0]), float(colour[1]), float(colour[2])), share,
        None if second is None else (float(second[0]), float(second[1]), float(second[2])),
        second_share,
    )


def near_segment(
    crop: FloatArray, start: FloatArray, end: FloatArray, tolerance: npt.NDArray[np.float32]
) -> npt.NDArray[np.bool_]:
    """Pixels of ``crop`` within ``max(tolerance, _INK_NEAR)`` levels of the colour segment
    ``start → end``, its ends included."""
    direction = end - start
    along = np.clip(((crop - start) * direction).sum(axis=2) / float((direction**2).sum()), 0, 1)
    offset = crop - start - along[..., None] * direction
    near: npt.NDArray[np.bool_] = np.sqrt((offset * offset).sum(axis=2)) < np.maximum(
        tolerance, _INK_NEAR
    )
    return near


def _mode(pixels: FloatArray, among: FloatArray) -> tuple[FloatArray, float]:
    """(the commonest colour of ``pixels``, the share of ``among`` within ``_INK_NEAR`` of it).

    The fullest cell of a coarse colour histogram seeds it; the median of the pixels near that
    seed refines it (an opaque core is one exact colour, a blend or a photo is not)."""
    _, inverse, counts = np.unique(
        (pixels // _INK_BIN).astype(np.int32), axis=0, return_inverse=True, return_counts=True
    )
    seed = np.median(pixels[inverse.ravel() == int(np.argmax(counts))], axis=0)
    near = np.sqrt(((pixels - seed) ** 2).sum(axis=1)) < _INK_NEAR
    colour = np.median(pixels[near], axis=0)
    return colour, float(np.mean(np.sqrt(((among - colour) ** 2).sum(axis=1)) < _INK_NEAR))


def recover_ink(
    crop: FloatArray, known: npt.NDArray[np.bool_], inside: npt.NDArray[np.bool_],
    colour: FloatArray, tolerance: npt.NDArray[np.float32], cfg: UnblendConfig,
) -> tuple[npt.NDArray[np.bool_], FloatArray, int]:
    """(pixels solved, their background, how many pixels no blend explains) for one ink part,
    on a crop that reaches ``cfg.ink_reach`` px beyond it.

    A pixel of antialiased ink is ``(1 - k)·background + k·ink``. Every known pixel ``K``
    within ``ink_reach`` px offers a candidate background: the pixel lies at distance ``d``
    from the segment ``K → ink``, at coverage ``k``. The nearest segment is kept; where it is
    within ``ink_solve_factor`` times ``tolerance`` and ``k <= ink_max_coverage`` the pixel is
    solved, ``(pixel - k·ink) / (1 - k)``: a clean pixel that the mask took in (``k = 0``) is
    kept as it is, a stroke's edge is un-mixed. Pixels no blend of ink and a nearby background
    explains (an outline, a shadow, a second colour) and the opaque cores keep the fill.
    Unlike the fill, which must guess the background from the mask's edge, this reads it from
    the pixel; the nearest-segment search is hand-written with numpy because no library
    matches pixels to colour segments.
    """
    height, width = inside.shape
    # Work on the part's pixels only, as flat indices into the crop (padded by ``reach`` so
    # that every offset stays inside it); an opaque core pixel (the ink's own colour) cannot
    # be solved and is skipped. Colours are taken relative to the ink: with P = pixel - ink
    # and Q = known - ink, the pixel's nearest point on the segment is ink + s·Q with
    # s = clip(P·Q / |Q|², 0, 1) (coverage k = 1 - s), at squared distance
    # |P|² - 2·s·P·Q + s²·|Q|², so each offset costs one dot product (float32: the colours
    # are whole levels, far inside its precision).
    reach = cfg.ink_reach
    pad = ((reach, reach), (reach, reach))
    relative = (crop - colour).astype(np.float32)
    planes = [np.pad(relative[..., c], pad).ravel() for c in range(3)]
    spread = planes[0] ** 2 + planes[1] ** 2 + planes[2] ** 2
    usable = np.pad(known, pad).ravel() & (spread > _INK_MIN_SPREAD**2)
    padded_width = width + 2 * reach
    ys, xs = np.nonzero(inside & (np.sqrt((relative**2).sum(axis=2)) >= _INK_NEAR))
    at = (ys + reach) * padded_width + xs + reach
    p0, p1, p2 = (plane[at] for plane in planes)
    own = spread[at]
    best = np.full(at.shape, np.inf, dtype=np.float32)
    share = np.zeros(at.shape, dtype=np.float32)
    for dy in range(-reach, reach + 1):
        for dx in range(-reach, reach + 1):
            if dy * dy + dx * dx > reach * reach or (dy, dx) == (0, 0):
                continue
            source = at + dy * padded_width + dx
            dot = p0 * planes[0][source] + p1 * planes[1][source] + p2 * planes[2][source]
            length = spread[source]
            along = np.clip(dot / np.maximum(length, 1e-6), 0.0, 1.0)
            distance = own - 2.0 * along * dot + along * along * length
            nearer = usable[source] & (distance < best)
            best = np.where(nearer, distance, best)
            share = np.where(nearer, along, share)
    coverage = 1.0 - share.astype(np.float64)
    limit = tolerance[ys, xs].astype(np.float32) ** 2
    explained = best < limit
    ok = (best < limit * cfg.ink_solve_factor**2) & (coverage <= cfg.ink_max_coverage)
    solved = np.zeros((height, width), dtype=bool)
    solved[ys[ok], xs[ok]] = True
    values = crop.copy()
    values[ys[ok], xs[ok]] = (crop[ys[ok], xs[ok]] - coverage[ok, None] * colour) / (
        1.0 - coverage[ok, None]
    )
    return solved, values, int(np.count_nonzero(~explained))
