"""Semi-transparent overlays (watermarks) and the edges of single-colour ink: recover the pixels
under them instead of filling.

A watermark is a neutral colour ``c`` (white, grey or black: the same value in R, G and B)
laid over the photo at an opacity ``a``, through the glyphs' antialiased coverage ``k``
(1 inside the strokes, fractional on their edges, 0 off them)::

    image = (1 - a·k) · background + a·k · (c, c, c)

Every pixel under it still carries the background, scaled by ``1 - a·k``. Once ``c`` and ``a``
are known the background can be solved for, pixel by pixel, which is far closer to the truth
than any fill: an inpainter must invent the texture under a large glyph, un-blending reads it.

:class:`Unblender` runs after an inpainter, on the regions it filled for text
(``processors.inpaint.edit_region`` builds them). For each connected part of a region:

1. **Colour.** The strongly changed pixels each define a line in RGB from the fill (an
   estimate of the background) through the observed colour; an overlay's lines all pass near
   its colour. ``c`` is the point of the grey axis closest to them (least squares, weighted by
   how much each pixel changed); the median distance of the lines from it says how well they
   agree.
2. **Opacity.** Each pixel's change, projected on the direction from the fill to ``c``, is
   ``a·k`` (plus the fill's error). Inside the strokes ``k = 1``, so an overlay shows as a
   peak of that ratio at ``a``; ``a`` is the median of the ratios near the histogram's peak,
   and the *peak share* (ratios above 0.1 within 0.05 of ``a``) says how sharp it is.

   **Search** (``unblend-3``). Where that closed-form colour fails the gate below, the grey
   levels that the lines pass within ``search_line_distance`` of are tried in turn
   (:func:`search_overlay`), and the one whose opacity ratios agree best (the sharpest peak,
   at least ``search_min_peak`` and sharper than the closed form's) is taken. The closed form
   is ill-conditioned when the lines run nearly along the grey axis (white over a pale wall or
   a dark blue sky), and can land far from the overlay's colour; a searched overlay is held to
   a stricter texture check (``search_max_texture``).
3. **Gate.** Only a part with a sharp peak (``min_peak``), an opacity of a semi-transparent
   overlay (``min_alpha``-``max_alpha``: opaque text has ``a`` = 1 and is left to the fill) and
   lines that meet (``max_line_distance``) is un-blended. A part that fails the gate on its own
   but shows the same peak under the image's sharpest accepted estimate, with colour lines
   that pass near its colour, adopts it (one watermark often falls apart into several parts,
   and the estimate is surest on the part over the smoothest background).
4. **Recovery.** ``k`` is estimated per pixel from the current background estimate, the
   background solved for, and the estimate replaced by the 5×5 median of the recovered
   pixels; ``iterations`` rounds. Where the fill is wrong (busy texture) the first ``k`` is
   noisy; the median of recovered pixels is a better background estimate than the fill, and
   each round sharpens ``k``. A recovered part far busier than its surroundings
   (``max_texture``) was opaque text that passed the gate by chance; it keeps the fill.

Pixels outside the accepted parts keep the fill, so the result is never further from the input
than the fill is. On the seeded quality corpus (``bench/quality.py``) this lifts removal PSNR
from 34.54 to 35.25 dB (seed 0) and from 33.18 to 33.68 dB (seed 1); docs/models.md has the
figures.

**Ink** (``unblend-2``). Opaque single-colour text (a camera timestamp, flat lettering) cannot
be un-blended in its strokes, but its mask holds two kinds of pixels that need no fill: clean
background the detector's growth took in, and the antialiased edge, ``(1 - k)·background +
k·ink``. For each part the overlay step left alone:

5. **Colour.** The ink is the colour most strongly changed pixels share
   (:func:`estimate_ink`); a part where under ``ink_min_share`` of them lie near it is left.
6. **Explain.** Each masked pixel is matched to the nearest segment ``known → ink`` over the
   known pixels within ``ink_reach`` px. A part where more than ``ink_max_unexplained`` of the
   pixels match no segment within the local tolerance (``ink_floor``, or ``ink_gain`` times
   the texture level) has a second colour (an outlined caption's outline and shadow) and keeps
   the fill. In the other parts, a pixel whose segment is within ``ink_solve_factor`` times the
   tolerance, at coverage ``k <= ink_max_coverage``, is solved, ``(pixel - k·ink) / (1 - k)``;
   a clean pixel (``k = 0``) is kept as it is.
7. **Refill.** With a ``refill`` inpainter, the unsolved pixels (the opaque cores) of a part
   whose pixels were mostly solved (at least ``refill_min_solved`` of them: the first fill had
   to bridge them) are filled again, with the solved pixels as the fill's known edge.

On the seeded corpus this lifts removal PSNR from 35.25 to 35.96 dB (seed 0) and from 33.68 to
34.16 dB (seed 1), mostly timestamps (docs/models.md).

``unblend-3`` adds the colour search (a watermark over grace hopper's portrait, seed 1: 18.4 ->
27.0 dB), refills by the solved share instead of the unexplained share, checks a refilled
part's texture after its refill, and reads ink shared by 10 % of the changed pixels (was 20 %):
35.96 -> 36.40 dB on seed 0 and 34.16 -> 34.89 dB on seed 1 (docs/models.md).

``unblend-4`` judges a refilled part that fails its texture check again in pieces along it
(each as long as the part's bounding box is thick, against the ring around the piece), until
no piece fails, and sends only the failing pieces back to the first fill; a piece sent back
calms its neighbours' surroundings, which are judged again. A line of orange digits close to
an orange suit's colour at one end (ghosts there) that crosses a metal ring at the other (which
the ink step kept and the fill smears) keeps the ink step's result over the ring (seed 2's
astronaut timestamp: 17.7 -> 26.9 dB).

``unblend-5`` asks a part that adopts another part's overlay for lines that meet at its
colour too, not only for the same opacity peak: a yellow caption over brown wood had adopted a
white watermark's estimate, and un-blending it put the caption back (seed 1's coffee, two
overlays: 16.7 -> 19.4 dB).

Un-blending is a classical method (it is how watermark removal from a known overlay works,
e.g. Dekel et al., CVPR 2017, with many images of one watermark); no library ships the
single-image estimate or the ink matching, so both are written here with numpy and OpenCV.

Errors: bad inputs raise ``ValueError`` (``TypeError`` for a non-array).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import cv2
import numpy as np
import numpy.typing as npt

from processors.inpaint import box_around, texture_level
from processors.quality import texture_ratio
from processors.tensors import Image, Mask, check_image, check_mask

__all__ = [
    "Ink", "Overlay", "UnblendConfig", "Unblender", "estimate_ink", "estimate_overlay",
    "search_overlay",
]

FloatArray = npt.NDArray[np.float64]

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
_TEXTURE_REACH = 10
"""Crop margin around a part: :func:`processors.quality.texture_ratio`'s ring reaches 7 px
beyond it and its Laplacian one more (the median needs only 2)."""
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


_Part = tuple[tuple[slice, slice], npt.NDArray[np.bool_]]
"""A part of a region: its box in the image, and its pixels within the box."""
_MIN_PIECE = 8
"""Least length (px) of the pieces that a refilled part failing its texture check is judged
again in (:func:`_pieces`)."""


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


@dataclass(frozen=True, kw_only=True)
class UnblendConfig:
    """Knobs of :class:`Unblender` (the defaults are the measured ones)."""

    min_area: int = 300
    """Parts of a region smaller than this (px) are left to the fill."""
    min_peak: float = 0.25
    """Least peak share for a part to count as an overlay."""
    min_alpha: float = 0.15
    """Least opacity: fainter, the estimate is mostly the fill's error."""
    max_alpha: float = 0.8
    """Most opacity: above it the overlay is opaque and only a fill can replace it (solving
    for the background would amplify rounding by ``1 / (1 - a)``)."""
    max_line_distance: float = 40.0
    """Most median distance (levels) of the colour lines from the estimated colour."""
    iterations: int = 10
    """Rounds of coverage estimate and recovery."""
    max_texture: float = 4.0
    """Most :func:`processors.quality.texture_ratio` of a recovered part (its detail over the
    detail around it): above it the "overlay" was opaque text whose colours happened to line
    up (a white caption with a dark outline), and solving for the background put the text
    back; such a part keeps the fill. The parts accepted on the seed-0 quality corpus measured
    0.2-3.0 after recovery; the caption put back on ``make demo``'s sample 26 measured 26.8."""
    search: bool = True
    """Where the closed-form colour (:func:`estimate_overlay`) fails the gate, search the grey
    axis for the colour with the sharpest opacity peak (:func:`search_overlay`), held to the
    stricter ``search_*`` limits below."""
    search_line_distance: float = 20.0
    """Most median distance (levels) of the colour lines from a searched colour."""
    search_min_peak: float = 0.35
    """Least peak share of a searched overlay (it must also beat the closed form's)."""
    search_max_texture: float = 2.0
    """Most texture ratio of a part recovered with a searched overlay (``max_texture`` for the
    closed form's): an opaque label can line up with some grey level by chance, and its
    recovery then carries the label's edge."""
    ink: bool = True
    """Also recover the antialiased edge of opaque single-colour text (see
    :func:`estimate_ink`): the clean pixels a mask takes in around thin strokes, and the blend
    of ink and background on the strokes' edges."""
    ink_min_area: int = 30
    """Parts smaller than this (px) are left to the fill by the ink step."""
    ink_min_share: float = 0.1
    """Least :attr:`Ink.share` for a part to be read as single-colour ink. The explain gate,
    the second-ink rule and the texture check do the sorting; this only skips parts with no
    common colour at all. A timestamp over a white suit whose fill missed the white (0.15), or
    a white watermark over fur, whose blends share a light colour (0.17-0.20), are read (seed
    0 and 1 of the quality corpus: no part lost by going from 0.2 to 0.05)."""
    ink_max_coverage: float = 0.6
    """Most ink coverage of a pixel that is solved for; above it the pixel keeps the fill
    (solving would amplify the error by ``1 / (1 - coverage)``)."""
    ink_reach: int = 16
    """Radius (px) within which a known pixel may explain a masked one."""
    ink_floor: float = 2.0
    """Least distance (levels) a pixel may lie from every ink-background blend and still be
    solved: the tolerance on a flat render."""
    ink_gain: float = 3.0
    """On textured backgrounds the tolerance is this many times the local texture level
    (:func:`processors.inpaint.texture_level`)."""
    ink_solve_factor: float = 8.0
    """Inside a part read as ink, a pixel is solved where its nearest segment lies within this
    many times the tolerance. The tolerance itself decides whether the part is ink (an outline
    or a shadow leaves many pixels far from every segment: 9-100× on a flat render's outlined
    caption); once it is, a pixel somewhat off every segment is clean background with more
    grain than the local texture level shows (a timestamp's unexplained clean pixels: median
    1.7-4.5×), and filling it costs more than keeping it."""
    ink_second_share: float = 0.1
    """A second colour among the strongly changed pixels with at least this share is read as a
    second ink: its pixels keep the fill (the outlined captions of the tests' fixture: 0.18-0.22;
    its timestamps' commonest other colour, background the fill missed: 0.03-0.12)."""
    ink_max_texture: float = 2.0
    """Most :func:`processors.quality.texture_ratio` of a part after the ink step (a part
    filled again is judged after its refill); above it the part keeps the fill."""
    ink_max_unexplained: float = 0.25
    """Most share of a part's pixels that no blend of its ink with a nearby background explains
    (within the tolerance) for the part to be read as single-colour ink. An outlined caption
    has many such pixels (its outline and shadow: 0.26-0.65 of a part on the seed-0 quality
    corpus); a timestamp has few (0-0.23)."""
    refill_min_solved: float = 0.3
    """Least share of a part's pixels the ink step solved for its unsolved pixels to be filled
    again (with a ``refill``). A timestamp's mask is mostly clean background and antialiased
    edge (0.6-0.8 of its pixels solved on the quality corpus), which the first fill had to
    bridge; a promo label is mostly its opaque body (under 0.05 solved), which the first fill
    already saw as it is, and filling it again only moves it."""

    def __post_init__(self) -> None:
        if self.min_area < 1:
            raise ValueError(f"UnblendConfig: min_area must be >= 1, got {self.min_area}.")
        if not 0.0 < self.min_alpha < self.max_alpha < 1.0:
            raise ValueError(
                "UnblendConfig: need 0 < min_alpha < max_alpha < 1, got"
                f" {self.min_alpha} and {self.max_alpha}."
            )
        if not 0.0 <= self.min_peak <= 1.0:
            raise ValueError(f"UnblendConfig: min_peak must be in [0, 1], got {self.min_peak}.")
        if self.max_line_distance <= 0:
            raise ValueError(
                f"UnblendConfig: max_line_distance must be > 0, got {self.max_line_distance}."
            )
        if self.iterations < 1:
            raise ValueError(f"UnblendConfig: iterations must be >= 1, got {self.iterations}.")
        if self.max_texture <= 0:
            raise ValueError(f"UnblendConfig: max_texture must be > 0, got {self.max_texture}.")
        # The search's and the ink step's knobs, one rule each (name, holds, what it must be).
        rules = (
            ("search_line_distance", self.search_line_distance > 0, "> 0"),
            ("search_min_peak", 0.0 <= self.search_min_peak <= 1.0, "in [0, 1]"),
            ("search_max_texture", self.search_max_texture > 0, "> 0"),
            ("ink_min_area", self.ink_min_area >= 1, ">= 1"),
            ("ink_min_share", 0.0 <= self.ink_min_share <= 1.0, "in [0, 1]"),
            ("ink_max_coverage", 0.0 < self.ink_max_coverage < 1.0, "in (0, 1)"),
            ("ink_reach", self.ink_reach >= 1, ">= 1"),
            ("ink_second_share", 0.0 < self.ink_second_share <= 1.0, "in (0, 1]"),
            ("ink_max_texture", self.ink_max_texture > 0, "> 0"),
            ("ink_solve_factor", self.ink_solve_factor >= 1, ">= 1"),
            ("ink_floor", self.ink_floor >= 0, ">= 0"),
            ("ink_gain", self.ink_gain >= 0, ">= 0"),
            ("ink_max_unexplained", 0.0 <= self.ink_max_unexplained <= 1.0, "in [0, 1]"),
            ("refill_min_solved", 0.0 <= self.refill_min_solved <= 1.0, "in [0, 1]"),
        )
        for name, holds, rule in rules:
            if not holds:
                raise ValueError(
                    f"UnblendConfig: {name} must be {rule}, got {getattr(self, name)}."
                )


class Unblender:
    """Replace the fill of semi-transparent overlays by the background solved from under them.

    ``unblender(images, regions, fills)``: ``images`` HWC uint8 RGB as uploaded, ``regions``
    HW uint8 masks of the text an inpainter filled (255 = filled; the caller's object masks
    left out: what they cover must go), ``fills`` the inpainter's outputs. Returns new images,
    equal to ``fills`` except inside the parts where an overlay or ink was found.

    ``refill``, when given, is the inpainter that made ``fills`` (``images, masks -> images``):
    the unsolved pixels of the ink parts mostly solved (``refill_min_solved``) are filled
    again, in one batch, with the pixels solved around them now known: the first fill had to
    bridge the clean pixels the mask took in, the second sees them.
    """

    version = "unblend-5"

    def __init__(
        self,
        config: UnblendConfig | None = None,
        refill: Callable[[Sequence[Image], Sequence[Mask]], list[Image]] | None = None,
    ) -> None:
        self.config = config or UnblendConfig()
        self.refill = refill

    def __call__(
        self, images: Sequence[Image], regions: Sequence[Mask], fills: Sequence[Image]
    ) -> list[Image]:
        if not len(images) == len(regions) == len(fills):
            raise ValueError(
                f"Unblender: got {len(images)} images, {len(regions)} regions and {len(fills)}"
                " fills; pass one region and one fill per image."
            )
        done = [
            self._one(check_image(image, "image"), region, check_image(fill, "fill"))
            for image, region, fill in zip(images, regions, fills, strict=True)
        ]
        outs = [out for out, _, _ in done]
        again = [i for i, (_, holes, _) in enumerate(done) if holes.any()]
        if self.refill is not None and again:
            holes = [
                np.where(done[i][1], np.uint8(255), np.uint8(0)).astype(np.uint8) for i in again
            ]
            refilled = self.refill([outs[i] for i in again], holes)
            for i, hole, image in zip(again, holes, refilled, strict=True):
                outs[i] = np.where(hole[..., None] > 0, image, outs[i])
        # The texture check of the parts meant for the refill (one solved throughout had
        # nothing to fill again), on what they finally hold. A part that fails it is judged
        # again in pieces, and only the failing pieces keep the first fill: a line of digits
        # may leave ghosts where its ink is close to the background's colour and cross a metal
        # ring elsewhere, which the ink step kept and the fill smears.
        limit = self.config.ink_max_texture
        for out, fill, (_, _, parts) in zip(outs, fills, done, strict=True):
            for box, inside in parts:
                if _busyness(out[box].astype(np.float64), inside) <= limit:
                    continue
                # Until none fails: a piece sent back calms its neighbours' surroundings.
                pieces = _pieces(inside)
                while pieces:
                    crop = out[box].astype(np.float64)
                    passed = []
                    for piece in pieces:
                        if _busyness(crop, piece) > limit:
                            out[box][piece] = fill[box][piece]
                        else:
                            passed.append(piece)
                    if len(passed) == len(pieces):
                        break
                    pieces = passed
        return outs

    def _one(
        self, image: Image, region: Mask, fill: Image
    ) -> tuple[Image, npt.NDArray[np.bool_], list[_Part]]:
        """(the result for one image, the pixels to fill again when a ``refill`` is given, the
        parts they belong to: their texture check waits for the refill)."""
        if fill.shape != image.shape:
            raise ValueError(
                f"Unblender: fill has shape {fill.shape}, image {image.shape}; pass the"
                " inpainter's output for this image."
            )
        mask = check_mask(region, image.shape[:2], "region") > 127
        cfg = self.config
        # The connected parts either step may judge (the smaller of their least areas), each
        # built once: a part is a full-size mask, so tiny specks are skipped by their area.
        count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8))
        least = min(cfg.min_area, cfg.ink_min_area)
        sized = [
            (labels == label, int(stats[label, cv2.CC_STAT_AREA]))
            for label in range(1, count)
            if stats[label, cv2.CC_STAT_AREA] >= least
        ]
        if not sized:
            return fill.copy(), np.zeros(mask.shape, dtype=bool), []
        observed = image.astype(np.float64)
        filled = fill.astype(np.float64)
        # Each part large enough to judge, with the overlay it shows on its own (None: none
        # that passes the gate).
        parts: list[tuple[npt.NDArray[np.bool_], Overlay | None]] = [
            (part, self._overlay(observed, filled, part))
            for part, area in sized
            if area >= cfg.min_area
        ]
        accepted = [overlay for _, overlay in parts if overlay is not None]
        sharpest = max(accepted, key=lambda o: o.peak) if accepted else None
        out = filled.copy()
        unblended = np.zeros(mask.shape, dtype=bool)
        for part, overlay in parts:
            chosen = overlay
            if chosen is None and sharpest is not None:
                chosen = sharpest if self._adopts(observed, filled, part, sharpest) else None
            if chosen is None:
                continue
            box = box_around(part, _TEXTURE_REACH)
            inside = part[box]
            recovered = _recover(observed[box], filled[box], inside, chosen, cfg.iterations)
            limit = cfg.search_max_texture if chosen.searched else cfg.max_texture
            if _busyness(recovered, inside) <= limit:
                out[box][inside] = recovered[inside]
                unblended |= part
        holes = np.zeros(mask.shape, dtype=bool)
        refilled: list[_Part] = []
        if cfg.ink:
            ink_parts = [part for part, area in sized if area >= cfg.ink_min_area]
            holes, refilled = self._ink(image, observed, filled, mask, ink_parts, unblended, out)
        return np.clip(np.rint(out), 0, 255).astype(np.uint8), holes, refilled

    def _ink(
        self, image: Image, observed: FloatArray, filled: FloatArray,
        mask: npt.NDArray[np.bool_], parts: list[npt.NDArray[np.bool_]],
        unblended: npt.NDArray[np.bool_], out: FloatArray,
    ) -> tuple[npt.NDArray[np.bool_], list[_Part]]:
        """Solve, in ``out``, the pixels of single-colour ink parts that an ink-background blend
        explains (the parts already un-blended are left as they are); returns the unsolved
        pixels of the parts to fill again (with a ``refill``), and those parts."""
        cfg = self.config
        holes = np.zeros(mask.shape, dtype=bool)
        refilled: list[_Part] = []
        for part in parts:
            if (part & unblended).any():
                continue
            ink = estimate_ink(observed, filled, part)
            if ink is None or ink.share < cfg.ink_min_share:
                continue
            box = box_around(part, cfg.ink_reach + 1)
            known = ~mask[box]
            tolerance = np.maximum(
                cfg.ink_floor, cfg.ink_gain * texture_level(image[box].astype(np.int16), known)
            )
            inside = part[box]
            solved, values, unexplained = _recover_ink(
                observed[box], known, inside, np.asarray(ink.colour), tolerance, cfg
            )
            size = np.count_nonzero(inside)
            if unexplained / size > cfg.ink_max_unexplained:
                continue  # a second colour (an outline, a shadow, a label's text): fill
            if ink.second is not None and ink.second_share >= cfg.ink_second_share:
                # Pixels of a second ink (an outlined caption's fill), and the blends of the two
                # inks along their shared edge, may match a background of the second ink's
                # colour nearby (white letters over a white shirt): never solved.
                solved &= ~_near_segment(observed[box], np.asarray(ink.colour),
                                         np.asarray(ink.second), tolerance)
            candidate = np.where(solved[..., None], values, out[box])
            solved_share = np.count_nonzero(solved & inside) / size
            again = (
                self.refill is not None and solved.any() and solved_share >= cfg.refill_min_solved
            )
            # Ghosts of the strokes left (an ink near the background's colour) keep the fill;
            # a part filled again is judged after its refill (the ghost may be its core).
            if not again and _busyness(candidate, inside) > cfg.ink_max_texture:
                continue
            out[box] = candidate
            if again:
                holes[box] |= inside & ~solved
                refilled.append((box, inside))
        return holes, refilled

    def _adopts(
        self, observed: FloatArray, filled: FloatArray, part: npt.NDArray[np.bool_],
        overlay: Overlay,
    ) -> bool:
        """Whether ``part``, which shows no overlay of its own, is read as ``overlay`` (the
        image's sharpest): its opacity ratios peak at the overlay's opacity, and its colour
        lines pass near the overlay's colour, as the gate asks of a part's own estimate. The
        ratios alone can agree by chance: a yellow caption over brown wood peaks at a white
        watermark's opacity (seed 1's coffee, two overlays), and un-blending it put the caption
        back; its lines miss white by 100-200 levels, a watermark's by under 20. A part with
        too few strongly changed pixels to draw lines from is judged by the peak alone."""
        cfg = self.config
        pixels = _pixels(observed, filled, part)
        if _share(_ratios(pixels, overlay.colour), overlay.alpha) < cfg.min_peak:
            return False
        lines = _lines(pixels)
        return lines is None or (
            _line_distance(lines[0], lines[1], overlay.colour) <= cfg.max_line_distance
        )

    def _overlay(
        self, observed: FloatArray, filled: FloatArray, part: npt.NDArray[np.bool_]
    ) -> Overlay | None:
        """The overlay ``part`` shows on its own that passes the gate: the closed-form estimate,
        else (with ``search``) a searched one with a sharper peak; None if neither."""
        cfg = self.config
        estimate = estimate_overlay(observed, filled, part)
        accepted = self._gate(estimate)
        if accepted is not None or estimate is None or not cfg.search:
            return accepted
        found = search_overlay(
            observed, filled, part, max_line_distance=cfg.search_line_distance,
            min_alpha=cfg.min_alpha, max_alpha=cfg.max_alpha,
        )
        if found is None or found.peak < max(cfg.search_min_peak, estimate.peak):
            return None
        return self._gate(found)

    def _gate(self, overlay: Overlay | None) -> Overlay | None:
        """``overlay`` if it passes the gate (a sharp peak, a semi-transparent opacity, lines
        that meet), else None."""
        cfg = self.config
        passes = overlay is not None and (
            overlay.peak >= cfg.min_peak
            and cfg.min_alpha <= overlay.alpha <= cfg.max_alpha
            and overlay.line_distance <= cfg.max_line_distance
        )
        return overlay if passes else None


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


def _recover(
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


def _pieces(inside: npt.NDArray[np.bool_]) -> list[npt.NDArray[np.bool_]]:
    """``inside`` cut across its bounding box's long side into pieces as long as the short side
    (at least ``_MIN_PIECE`` px): a line of text in pieces of about a glyph height."""
    rows, cols = box_around(inside, 0)
    height, width = rows.stop - rows.start, cols.stop - cols.start
    step = max(_MIN_PIECE, min(height, width))
    along_columns = width >= height
    span_along = cols if along_columns else rows
    pieces = []
    for start in range(span_along.start, span_along.stop, step):
        span = slice(start, start + step)
        piece = np.zeros_like(inside)
        if along_columns:
            piece[:, span] = inside[:, span]
        else:
            piece[span] = inside[span]
        if piece.any():
            pieces.append(piece)
    return pieces


def _busyness(crop: FloatArray, inside: npt.NDArray[np.bool_]) -> float:
    """:func:`processors.quality.texture_ratio` of a recovered crop (float, rounded to 8 bits as
    it will be stored) inside ``inside``: above a few, a step put text back rather than the
    background."""
    rounded = np.clip(np.rint(crop), 0, 255).astype(np.uint8)
    return texture_ratio(rounded, np.where(inside, np.uint8(255), np.uint8(0)).astype(np.uint8))


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


def _near_segment(
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


def _recover_ink(
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
