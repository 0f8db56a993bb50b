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
(``processors.inpaint.edit_region`` builds them). Each connected part of a region goes through
these passes:

1. **Overlay colour** (:mod:`processors.unblend_overlay`). The strongly changed pixels each
   define a line in RGB from the fill (an estimate of the background) through the observed
   colour; an overlay's lines all pass near its colour. ``c`` is the point of the grey axis
   closest to them (least squares, weighted by how much each pixel changed); the median
   distance of the lines from it says how well they agree.
2. **Opacity.** Each pixel's change, projected on the direction from the fill to ``c``, is
   ``a·k`` (plus the fill's error). Inside the strokes ``k = 1``, so an overlay shows as a
   peak of that ratio at ``a``; ``a`` is the median of the ratios near the histogram's peak,
   and the *peak share* (ratios above 0.1 within 0.05 of ``a``) says how sharp it is.
   The closed-form colour is ill-conditioned when the lines run nearly along the grey axis
   (white over a pale wall or a dark blue sky) and can land far from the overlay's colour;
   where it fails the gate, the grey levels that the lines pass within
   ``search_line_distance`` of are tried in turn (:func:`search_overlay`), and the one whose
   opacity ratios agree best (the sharpest peak, at least ``search_min_peak`` and sharper than
   the closed form's) is taken, held to a stricter texture check (``search_max_texture``).
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

Opaque single-colour text (a camera timestamp, flat lettering) cannot be un-blended in its
strokes, but its mask holds two kinds of pixels that need no fill: clean background the
detector's growth took in, and the antialiased edge, ``(1 - k)·background + k·ink``. Each part
the overlay passes left alone goes on (:mod:`processors.unblend_ink`):

5. **Ink colour.** The ink is the colour most strongly changed pixels share
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
8. **Texture check.** A part the ink step changed is judged on what it finally holds (after
   its refill): one busier than ``ink_max_texture`` times its surroundings is judged again in
   pieces along it (each as long as the part's bounding box is thick), until no piece fails,
   and only the failing pieces go back to the first fill. A line of digits can leave ghosts
   where its ink is close to the background's colour and cross detail elsewhere that the ink
   step kept and a fill would smear; a piece sent back calms its neighbours' surroundings,
   which are judged again.

Pixels outside the accepted parts keep the fill, so the result is never further from the input
than the fill is. ``bench/quality.py`` measures what un-blending adds to removal on the seeded
quality corpus (docs/models.md).

Un-blending is a classical method (it is how watermark removal from a known overlay works,
e.g. Dekel et al., CVPR 2017, with many images of one watermark); no library ships the
single-image estimate or the ink matching, so both are written here with numpy and OpenCV.

Errors: bad inputs raise ``ValueError`` (``TypeError`` for a non-array).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from processors.quality import texture_ratio
from processors.tensors import Image, Mask, check_image, check_mask, check_range
from processors.trim import box_around, texture_level
from processors.unblend_ink import Ink, estimate_ink, near_segment, recover_ink
from processors.unblend_overlay import (
    FloatArray,
    Overlay,
    adopts,
    estimate_overlay,
    recover_overlay,
    search_overlay,
)

__all__ = [
    "Ink", "Overlay", "UnblendConfig", "Unblender", "estimate_ink", "estimate_overlay",
    "search_overlay",
]

_TEXTURE_REACH = 10
"""Crop margin around a part: :func:`processors.quality.texture_ratio`'s ring reaches 7 px
beyond it and its Laplacian one more (the median needs only 2)."""
_Part = tuple[tuple[slice, slice], npt.NDArray[np.bool_]]
"""A part of a region: its box in the image, and its pixels within the box."""
_Parts = list[tuple[npt.NDArray[np.bool_], int]]
"""The connected parts of a region large enough to judge: full-size masks and their areas."""
_MIN_PIECE = 8
"""Least length (px) of the pieces that a refilled part failing its texture check is judged
again in (:func:`_pieces`)."""


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
    detail around it): above it the "overlay" is opaque text whose colours happen to line up
    (a white caption with a dark outline), and solving for the background puts the text back;
    such a part keeps the fill. Overlays recovered correctly measure 0.2-3.0 on the quality
    corpus (``bench/quality.py``); an outlined caption put back measures tens (26.8 for one
    of the demo's samples)."""
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
    common colour at all. Parts that are ink measure 0.15 and up on the quality corpus (a
    timestamp over a same-coloured background that the fill missed: 0.15; a white watermark
    over fur, whose blends share a light colour: 0.17-0.20)."""
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
    (:func:`processors.trim.texture_level`)."""
    ink_solve_factor: float = 8.0
    """Inside a part read as ink, a pixel is solved where its nearest segment lies within this
    many times the tolerance. The tolerance itself decides whether the part is ink (an outline
    or a shadow leaves many pixels far from every segment: 9-100× on a flat render's outlined
    caption); once it is, a pixel somewhat off every segment is clean background with more
    grain than the local texture level shows (a timestamp's unexplained clean pixels: median
    1.7-4.5×), and filling it costs more than keeping it."""
    ink_second_share: float = 0.1
    """A second colour among the strongly changed pixels with at least this share is read as a
    second ink: its pixels keep the fill (outlined captions on a flat render measure 0.18-0.22;
    a timestamp's commonest other colour, background the fill missed, 0.03-0.12)."""
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
        if not self.min_alpha < self.max_alpha:
            raise ValueError(
                "UnblendConfig: need 0 < min_alpha < max_alpha < 1, got"
                f" {self.min_alpha} and {self.max_alpha}."
            )
        for name, low, high, ends in _RANGES:
            check_range(f"UnblendConfig: {name}", getattr(self, name), low, high, ends)


_RANGES: tuple[tuple[str, float, float | None, str], ...] = (
    ("min_area", 1, None, "[]"),
    ("min_alpha", 0.0, 1.0, "()"),
    ("max_alpha", 0.0, 1.0, "()"),
    ("min_peak", 0.0, 1.0, "[]"),
    ("max_line_distance", 0.0, None, "()"),
    ("iterations", 1, None, "[]"),
    ("max_texture", 0.0, None, "()"),
    ("search_line_distance", 0.0, None, "()"),
    ("search_min_peak", 0.0, 1.0, "[]"),
    ("search_max_texture", 0.0, None, "()"),
    ("ink_min_area", 1, None, "[]"),
    ("ink_min_share", 0.0, 1.0, "[]"),
    ("ink_max_coverage", 0.0, 1.0, "()"),
    ("ink_reach", 1, None, "[]"),
    ("ink_second_share", 0.0, 1.0, "(]"),
    ("ink_max_texture", 0.0, None, "()"),
    ("ink_solve_factor", 1, None, "[]"),
    ("ink_floor", 0, None, "[]"),
    ("ink_gain", 0, None, "[]"),
    ("ink_max_unexplained", 0.0, 1.0, "[]"),
    ("refill_min_solved", 0.0, 1.0, "[]"),
)
"""Each numeric knob of :class:`UnblendConfig` and the range it accepts: ``(name, low, high,
ends)``, ``ends`` in interval notation (which ends are included)."""


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
    """Goes into result events (the models that touched an image)."""

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
        """The passes: per image, overlays then ink (:meth:`_one`); the refill of every image
        in one batch; then the texture check of each part meant for the refill."""
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
        self._refill_holes(outs, [holes for _, holes, _ in done])
        for out, fill, (_, _, parts) in zip(outs, fills, done, strict=True):
            for box, inside in parts:
                _check_texture(out, fill, box, inside, self.config.ink_max_texture)
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
        sized = _sized_parts(mask, min(cfg.min_area, cfg.ink_min_area))
        if not sized:
            return fill.copy(), np.zeros(mask.shape, dtype=bool), []
        observed = image.astype(np.float64)
        filled = fill.astype(np.float64)
        out = filled.copy()
        unblended = self._overlays(observed, filled, sized, out)
        holes = np.zeros(mask.shape, dtype=bool)
        refilled: list[_Part] = []
        if cfg.ink:
            ink_parts = [part for part, area in sized if area >= cfg.ink_min_area]
            holes, refilled = self._ink(image, observed, filled, mask, ink_parts, unblended, out)
        return np.clip(np.rint(out), 0, 255).astype(np.uint8), holes, refilled

    def _overlays(
        self, observed: FloatArray, filled: FloatArray, sized: _Parts, out: FloatArray
    ) -> npt.NDArray[np.bool_]:
        """Un-blend, in ``out``, the parts (at least ``min_area``) that show an overlay of their
        own or adopt the image's sharpest; returns the pixels un-blended."""
        cfg = self.config
        # Each part large enough to judge, with the overlay it shows on its own (None: none
        # that passes the gate).
        parts: list[tuple[npt.NDArray[np.bool_], Overlay | None]] = [
            (part, self._overlay(observed, filled, part))
            for part, area in sized
            if area >= cfg.min_area
        ]
        accepted = [overlay for _, overlay in parts if overlay is not None]
        sharpest = max(accepted, key=lambda o: o.peak) if accepted else None
        unblended = np.zeros(observed.shape[:2], dtype=bool)
        for part, overlay in parts:
            chosen = overlay
            if chosen is None and sharpest is not None:
                chosen = sharpest if self._adopts(observed, filled, part, sharpest) else None
            if chosen is None:
                continue
            box = box_around(part, _TEXTURE_REACH)
            inside = part[box]
            recovered = recover_overlay(
                observed[box], filled[box], inside, chosen, cfg.iterations
            )
            limit = cfg.search_max_texture if chosen.searched else cfg.max_texture
            if _busyness(recovered, inside) <= limit:
                out[box][inside] = recovered[inside]
                unblended |= part
        return unblended

    def _refill_holes(self, outs: list[Image], holes: list[npt.NDArray[np.bool_]]) -> None:
        """With a ``refill``, fill the ``holes`` of every image again in one batch, in
        ``outs``."""
        again = [i for i, hole in enumerate(holes) if hole.any()]
        if self.refill is None or not again:
            return
        masks = [np.where(holes[i], np.uint8(255), np.uint8(0)).astype(np.uint8) for i in again]
        refilled = self.refill([outs[i] for i in again], masks)
        for i, mask, image in zip(again, masks, refilled, strict=True):
            outs[i] = np.where(mask[..., None] > 0, image, outs[i])

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
            solved, values, unexplained = recover_ink(
                observed[box], known, inside, np.asarray(ink.colour), tolerance, cfg
            )
            size = np.count_nonzero(inside)
            if unexplained / size > cfg.ink_max_unexplained:
                continue  # a second colour (an outline, a shadow, a label's text): fill
            if ink.second is not None and ink.second_share >= cfg.ink_second_share:
                # Pixels of a second ink (an outlined caption's fill), and the blends of the two
                # inks along their shared edge, may match a background of the second ink's
                # colour nearby (white letters over a white shirt): never solved.
                solved &= ~near_segment(observed[box], np.asarray(ink.colour),
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
        image's sharpest): :func:`processors.unblend_overlay.adopts` with the gate's limits."""
        return adopts(
            observed, filled, part, overlay,
            min_peak=self.config.min_peak, max_line_distance=self.config.max_line_distance,
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


def _sized_parts(mask: npt.NDArray[np.bool_], least: int) -> _Parts:
    """The connected parts of ``mask`` of at least ``least`` px, each built once (a part is a
    full-size mask, so tiny specks are skipped by their area)."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8))
    return [
        (labels == label, int(stats[label, cv2.CC_STAT_AREA]))
        for label in range(1, count)
        if stats[label, cv2.CC_STAT_AREA] >= least
    ]


def _check_texture(
    out: Image, fill: Image, box: tuple[slice, slice], inside: npt.NDArray[np.bool_],
    limit: float,
) -> None:
    """The texture check of a part meant for the refill, on what ``out`` finally holds (in
    place): a part busier than ``limit`` is judged again in pieces, and only the failing pieces
    get ``fill`` back, until none fails (a piece sent back calms its neighbours' surroundings).
    A line of digits may leave ghosts where its ink is close to the background's colour and
    cross detail elsewhere, which the ink step kept and the fill smears."""
    if _busyness(out[box].astype(np.float64), inside) <= limit:
        return
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
