"""Burned-in text detection: the deterministic, classical (morphological) detector.

The benchmarks' baseline for the learned detector (:class:`processors.text.TextDetector`): it
needs no model package and returns the same :class:`processors.text.TextResult`. It finds the
overlay text that vendors burn into product photos (captions, camera date stamps, promo labels
and, best effort, semi-transparent rotated watermarks on plain backgrounds) and leaves textures
and clean photos alone.

How it works, per image (shrunk first so that its long side is at most ``work_size``):

1. **Planes.** Luminance plus two opponent-colour planes (red-green, yellow-blue). Coloured text
   can be brighter than its background in one RGB channel and darker in another; in these planes
   its contrast has one sign, so an orange date stamp on a beige wall shows in yellow-blue.
2. **Stroke response**, per plane and polarity: a morphological top-hat (text brighter than its
   surroundings) or black-hat (darker), with a square element wider than the thickest stroke
   expected at ``max_glyph_height``.
3. **Stroke pixels**: at least half of the strongest response around them (so antialiased
   strokes keep their true width), where that local peak reaches ``min_contrast``.
4. **Glyph candidates**: connected components of stroke pixels inside the glyph size band, with
   thin strokes (the ridge of the distance transform) of nearly constant width, and not solid.
5. **Lines**: candidates are linked when they are aligned along a direction (each of ``angles``
   in turn), close along it and of similar height and ink colour. A linked group is a text line
   when its glyph centres lie on a straight line (the fitted direction may differ from the
   linking one by up to 20 degrees), their bottoms sit on a baseline or their tops on a top line,
   heights and stroke widths agree, the ink is one colour, the glyphs are dense along the line,
   contrast is high, and at least one side of the line is clear of other strokes: text is not
   part of a field of similar strokes, as grass or gravel is. Lines with fewer than
   ``strong_glyphs`` glyphs pass stricter limits and must be level; slanted lines (watermarks)
   need a clear background. A component used by a line is not reused at a later angle.
6. **Mask**: the line's glyphs, small stroke parts next to them (dots, hyphens, the rings of
   "%"), and opposite-polarity strokes touching the glyphs (outline and shadow), dilated by
   ``dilation`` px to cover antialiasing.

Measured on the test scenes (``tests/bench/test_text_morph.py``): captions, bar captions,
date stamps and promo labels on the scikit-image photos are found with glyph-pixel recall 1.0; the
``grass``/``gravel``/``brick`` textures and the clean photos get an empty mask. Known misses:
white-on-pale or dark-on-dark text with little contrast, text smaller than ``min_glyph_px``,
and watermarks over busy photos. Known false alarms: rows of similar round objects (coins).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from processors.tensors import Image, Mask, check_image
from processors.text import TextResult

__all__ = ["MorphTextDetector", "MorphTextDetectorConfig"]

FloatArray = npt.NDArray[np.float64]
IndexArray = npt.NDArray[np.int64]
Plane = npt.NDArray[np.float32]
Binary = npt.NDArray[np.uint8]
Box = tuple[int, int, int, int]


@dataclass(frozen=True, kw_only=True)
class MorphTextDetectorConfig:
    """Knobs of the classical text detector. Heights are fractions of the image's shorter side
    (after shrinking to ``work_size``)."""

    min_glyph_height: float = 0.025
    """Smallest glyph height looked for, as a fraction of the shorter image side."""
    min_glyph_px: int = 8
    """Floor on the smallest glyph height, in working pixels: smaller text is left alone."""
    max_glyph_height: float = 0.2
    """Largest glyph height looked for, as a fraction of the shorter image side."""
    min_contrast: float = 40.0
    """Least stroke contrast against the local background, in 0..255 levels of a plane."""
    min_glyphs: int = 3
    """Fewest glyph-like components that can make a text line."""
    strong_glyphs: int = 6
    """Lines with fewer glyphs than this must be level and pass stricter limits."""
    max_colour_spread: float = 20.0
    """Largest RMS spread of the glyphs' ink colours within one line, in 0..255 levels."""
    angles: tuple[float, ...] = (0.0, 30.0, -30.0, 45.0, -45.0)
    """Line directions tried, in degrees counter-clockwise from horizontal, in this order."""
    dilation: int = 3
    """Pixels (of the input image) the final mask is grown by, for antialiasing and outline."""
    work_size: int = 1024
    """Images whose long side is larger are shrunk to it for detection; the mask is scaled
    back. Bounds the cost (about 0.1 s for a 512 px image on one core)."""

    def __post_init__(self) -> None:
        if not 0.0 < self.min_glyph_height < self.max_glyph_height <= 1.0:
            raise ValueError(
                "MorphTextDetectorConfig: need 0 < min_glyph_height < max_glyph_height <= 1, got "
                f"{self.min_glyph_height} and {self.max_glyph_height}."
            )
        if self.min_glyph_px < 3:
            raise ValueError(
                f"MorphTextDetectorConfig: min_glyph_px must be >= 3, got {self.min_glyph_px}."
            )
        if not 0.0 < self.min_contrast <= 255.0:
            raise ValueError(
                "MorphTextDetectorConfig: min_contrast must be in (0, 255], got "
                f"{self.min_contrast}."
            )
        if not 2 <= self.min_glyphs <= self.strong_glyphs:
            raise ValueError(
                "MorphTextDetectorConfig: need 2 <= min_glyphs <= strong_glyphs, got "
                f"{self.min_glyphs} and {self.strong_glyphs}."
            )
        if self.max_colour_spread <= 0.0:
            raise ValueError(
                "MorphTextDetectorConfig: max_colour_spread must be > 0, got "
                f"{self.max_colour_spread}."
            )
        if not self.angles or any(not -90.0 <= a <= 90.0 for a in self.angles):
            raise ValueError(
                "MorphTextDetectorConfig: angles must be one or more degrees in [-90, 90], got "
                f"{self.angles}."
            )
        if self.dilation < 0:
            raise ValueError(
                f"MorphTextDetectorConfig: dilation must be >= 0, got {self.dilation}."
            )
        if self.work_size < 64:
            raise ValueError(
                f"MorphTextDetectorConfig: work_size must be >= 64, got {self.work_size}."
            )


@dataclass(frozen=True)
class _Limits:
    """Line acceptance limits. Lengths are in line heights."""

    across: float
    """Robust spread (1.4826 MAD) of glyph centres across the line."""
    aligned: float
    """Least fraction of glyphs whose bottom is on the baseline or whose top is on the top line,
    within 0.12 line heights."""
    height_dev: float
    """Median relative deviation of glyph heights from the line height."""
    stroke_cv: float
    """Coefficient of variation of the glyphs' stroke widths (the widest left out in long
    lines: a glyph merged with its shadow)."""
    occupancy: float
    """Least summed glyph width over the line length (text is dense along its line)."""
    colour: float
    """Colour spread limit, as a fraction of ``max_colour_spread``."""
    contrast: float
    """Least median glyph contrast, as a multiple of ``min_contrast``."""
    clutter: float
    """Most density of other stroke pixels in a band 0.6 to 1.5 line heights beside the line,
    on its clearer side (a side mostly off the image does not count; if only one side is on the
    image, its density counts double)."""


_LIMITS = _Limits(
    across=0.13,
    aligned=0.8,
    height_dev=0.17,
    stroke_cv=0.20,
    occupancy=0.55,
    colour=1.0,
    contrast=1.2,
    clutter=0.25,
)
_STRICT_LIMITS = _Limits(
    across=0.07,
    aligned=0.8,
    height_dev=0.10,
    stroke_cv=0.25,
    occupancy=0.65,
    colour=0.75,
    contrast=1.5,
    clutter=0.05,
)
_SLANTED_CLUTTER = 0.08
"""Clutter limit for lines slanted over 10 degrees: watermarks on busy photos are given up, to
keep out textures, whose strokes line up at every angle."""


@dataclass(frozen=True)
class _Candidates:
    """Glyph-like components of one plane and polarity (arrays indexed by candidate)."""

    strokes: Binary
    """HxW stroke pixels (1) of this plane and polarity."""
    labels: npt.NDArray[np.int32]
    """HxW component labels of the stroke pixels (0 = none)."""
    areas: IndexArray
    """Pixel count of every label (index = label)."""
    ids: IndexArray
    """Label of each candidate."""
    centre: FloatArray
    """(N, 2) centroid x, y."""
    cov: FloatArray
    """(N, 3) covariance of the pixel coordinates: xx, yy, xy."""
    colour: FloatArray
    """(N, 3) ink colour: mean RGB of the pixels with at least 85 % of the peak response."""
    contrast: FloatArray
    """Mean stroke contrast, 0..255 levels."""
    stroke: FloatArray
    """Mean stroke width, px."""


@dataclass(frozen=True)
class _Line:
    """An accepted text line: its candidates and its oriented frame."""

    members: IndexArray
    u: FloatArray
    """Unit vector along the line (x, y)."""
    v: FloatArray
    """Unit vector across the line, pointing down for horizontal text."""
    height: float
    """Median glyph height across the line, px."""


class MorphTextDetector:
    """Find burned-in text lines and return a mask per image (see the module docstring)."""

    version: str = "text-morph-1"
    """Goes into result events."""

    def __init__(self, config: MorphTextDetectorConfig | None = None) -> None:
        self.config = config if config is not None else MorphTextDetectorConfig()

    def __call__(self, images: Sequence[Image]) -> list[TextResult]:
        """One :class:`TextResult` per image (each image is processed on its own)."""
        checked = [check_image(im, f"images[{i}]") for i, im in enumerate(images)]
        return [self._detect(im) for im in checked]

    def _detect(self, image: Image) -> TextResult:
        cfg = self.config
        height, width = image.shape[:2]
        scale = min(1.0, cfg.work_size / max(height, width))
        if scale < 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            work = _u8(cv2.resize(image, size, interpolation=cv2.INTER_AREA))
        else:
            work = image
        mask, boxes = self._find(work)
        if scale < 1.0:
            mask = _u8(cv2.resize(mask, (width, height), interpolation=cv2.INTER_NEAREST))
            boxes = [_scale_box(box, 1.0 / scale, width, height) for box in boxes]
        if cfg.dilation > 0 and boxes:
            mask = _u8(cv2.dilate(mask, _disc(cfg.dilation)))
        coverage = float(np.count_nonzero(mask)) / float(height * width)
        return TextResult(mask=mask, boxes=tuple(boxes), coverage=coverage)

    def _find(self, image: Image) -> tuple[Mask, list[Box]]:
        """The undilated text mask and line boxes at the working size."""
        cfg = self.config
        height, width = image.shape[:2]
        short = min(height, width)
        min_h = max(float(cfg.min_glyph_px), cfg.min_glyph_height * short)
        max_h = max(2.0 * min_h, cfg.max_glyph_height * short)
        side = _odd(max(5, round(0.3 * max_h)))
        element = _u8(cv2.getStructuringElement(cv2.MORPH_RECT, (side, side)))
        mask = np.zeros((height, width), np.uint8)
        boxes: list[Box] = []
        for plane in _planes(image):
            responses = (
                _f32(cv2.morphologyEx(plane, cv2.MORPH_TOPHAT, element)),
                _f32(cv2.morphologyEx(plane, cv2.MORPH_BLACKHAT, element)),
            )
            strokes = [self._strokes(r, element) for r in responses]
            for polarity in (0, 1):
                cands = _candidates(image, responses[polarity], strokes[polarity], min_h, max_h)
                for line in self._lines(cands, min_h, max_h):
                    _add_box(boxes, _paint(mask, cands, line, strokes[1 - polarity]))
        return mask, boxes

    def _strokes(self, response: Plane, element: npt.NDArray[np.uint8]) -> Binary:
        """Stroke pixels: at least half the local peak response, where the peak is strong."""
        peak = cv2.dilate(response, element)
        keep = (response * 2.0 >= peak) & (peak >= self.config.min_contrast)
        keep &= response >= 0.5 * self.config.min_contrast
        return keep.astype(np.uint8)

    def _lines(self, cands: _Candidates, min_h: float, max_h: float) -> list[_Line]:
        """Groups of candidates that form straight text lines, trying each angle in turn."""
        cfg = self.config
        count = len(cands.ids)
        if count < cfg.min_glyphs:
            return []
        a, b = _near_pairs(cands)
        if len(a) == 0:
            return []
        delta = cands.centre[b] - cands.centre[a]
        colour_gap = np.linalg.norm(cands.colour[a] - cands.colour[b], axis=1)
        used = np.zeros(count, bool)
        found: list[_Line] = []
        for angle in cfg.angles:
            theta = math.radians(angle)
            u = np.array([math.cos(theta), -math.sin(theta)])
            v = np.array([math.sin(theta), math.cos(theta)])
            ext_u, ext_v = _extent(cands.cov, u), _extent(cands.cov, v)
            tall = np.maximum(ext_v[a], ext_v[b])
            link = (
                ~used[a]
                & ~used[b]
                & (np.abs(delta @ v) <= 0.35 * tall)
                & (np.abs(delta @ u) - (ext_u[a] + ext_u[b]) / 2 <= 1.2 * tall)
                & (2.5 * np.minimum(ext_v[a], ext_v[b]) >= tall)
                & (colour_gap <= 3.0 * cfg.max_colour_spread)
            )
            if not link.any():
                continue
            graph = coo_matrix((np.ones(int(link.sum())), (a[link], b[link])), shape=(count, count))
            n_groups, group = connected_components(graph, directed=False)
            sizes = np.bincount(group, minlength=n_groups)
            for g in np.flatnonzero(sizes >= cfg.min_glyphs):
                members = np.flatnonzero(group == g)
                line = self._accept(cands, members, u=u, v=v, min_h=min_h, max_h=max_h)
                if line is not None:
                    used[members] = True
                    found.append(line)
        return found

    def _accept(
        self,
        cands: _Candidates,
        members: IndexArray,
        *,
        u: FloatArray,
        v: FloatArray,
        min_h: float,
        max_h: float,
    ) -> _Line | None:
        """The line these linked candidates make, or None when they do not look like text: its
        shape (:func:`_frame`), its glyphs' likeness (:func:`_uniform`) and its surroundings
        (:func:`_cluttered`) are checked in turn."""
        cfg = self.config
        strict = len(members) < cfg.strong_glyphs
        limits = _STRICT_LIMITS if strict else _LIMITS
        if strict and abs(float(u[1])) > 1e-9:
            return None  # a few aligned blobs at a slant are common in textures
        if not strict:
            u, v = _refine(cands.centre[members], u, v)
        frame = _frame(cands, members, u, v, limits, (min_h, max_h))
        if frame is None or not _uniform(cands, members, limits, cfg):
            return None
        if _cluttered(cands, members, u, v, frame, limits):
            return None
        return _Line(members=members, u=u, v=v, height=frame.height)


@dataclass(frozen=True)
class _Frame:
    """Where a candidate line lies, in its own frame (px along ``u`` and across ``v``)."""

    height: float
    """Median glyph height across the line."""
    start: float
    """Where the first glyph begins, along the line."""
    stop: float
    """Where the last glyph ends, along the line."""
    centre: float
    """Median position of the glyph centres across the line."""


def _frame(
    cands: _Candidates,
    members: IndexArray,
    u: FloatArray,
    v: FloatArray,
    limits: _Limits,
    height_range: tuple[float, float],
) -> _Frame | None:
    """The line's frame, or None when its shape is not a text line's: glyph height outside
    ``height_range``, too short or too sparse along the line, centres scattered across it, or
    glyphs neither on a baseline or top line nor of one height."""
    cov = cands.cov[members]
    heights, widths = _extent(cov, v), _extent(cov, u)
    line_h = float(np.median(heights))
    if not height_range[0] <= line_h <= height_range[1]:
        return None
    across = cands.centre[members] @ v
    along = cands.centre[members] @ u
    start = float((along - widths / 2).min())
    stop = float((along + widths / 2).max())
    length = stop - start
    if length < 2.0 * line_h or not limits.occupancy <= float(widths.sum()) / length <= 1.3:
        return None
    centre_v = float(np.median(across))
    if 1.4826 * float(np.median(np.abs(across - centre_v))) > limits.across * line_h:
        return None
    if not _aligned(across, heights, line_h, limits):
        return None
    return _Frame(height=line_h, start=start, stop=stop, centre=centre_v)


def _aligned(across: FloatArray, heights: FloatArray, line_h: float, limits: _Limits) -> bool:
    """Glyph bottoms on a baseline or tops on a top line, and glyph heights that agree."""
    tops, bottoms = across - heights / 2, across + heights / 2
    tolerance = 0.12 * line_h
    aligned = (np.abs(bottoms - np.median(bottoms)) <= tolerance) | (
        np.abs(tops - np.median(tops)) <= tolerance
    )
    if float(aligned.mean()) < limits.aligned:
        return False
    return not float(np.median(np.abs(heights - line_h))) > limits.height_dev * line_h


def _uniform(
    cands: _Candidates, members: IndexArray, limits: _Limits, cfg: MorphTextDetectorConfig
) -> bool:
    """The glyphs share a stroke width and an ink colour, and stand out enough."""
    stroke = np.sort(cands.stroke[members])
    trimmed = stroke[:-1] if len(stroke) >= cfg.strong_glyphs else stroke
    if float(trimmed.std()) > limits.stroke_cv * float(trimmed.mean()):
        return False
    colours = cands.colour[members]
    spread = float(np.sqrt(np.mean(np.sum((colours - colours.mean(0)) ** 2, axis=1))))
    if spread > limits.colour * cfg.max_colour_spread:
        return False
    return not float(np.median(cands.contrast[members])) < limits.contrast * cfg.min_contrast


def _cluttered(
    cands: _Candidates,
    members: IndexArray,
    u: FloatArray,
    v: FloatArray,
    frame: _Frame,
    limits: _Limits,
) -> bool:
    """Other strokes crowd both sides of the line (text is not part of a field of similar
    strokes); slanted lines get the stricter :data:`_SLANTED_CLUTTER` limit."""
    line_h, centre_v = frame.height, frame.centre
    others = cands.strokes & ~np.isin(cands.labels, cands.ids[members]).astype(np.uint8)
    bands = [(0.6 * line_h, 1.5 * line_h), (-1.5 * line_h, -0.6 * line_h)]
    sides = [
        _band_density(others, u, v, (frame.start, frame.stop), (centre_v + near, centre_v + far))
        for near, far in bands
    ]
    seen = [density for density, visible in sides if visible >= 0.4]
    clutter = min(seen) * (2.0 if len(seen) == 1 else 1.0) if seen else 0.0
    slanted = abs(float(u[1])) > math.sin(math.radians(10.0))
    return clutter > (min(limits.clutter, _SLANTED_CLUTTER) if slanted else limits.clutter)


def _planes(image: Image) -> tuple[Plane, Plane, Plane]:
    """Luminance (BT.601), red-green and yellow-blue planes, in 0..255-level units."""
    rgb = image.astype(np.float32)
    red, green, blue = rgb[:, :, 0], rgb[:, :, 1], rgb[:, :, 2]
    luma = 0.299 * red + 0.587 * green + 0.114 * blue
    return luma, red - green, 0.5 * (red + green) - blue


def _refine(centres: FloatArray, u: FloatArray, v: FloatArray) -> tuple[FloatArray, FloatArray]:
    """The line direction fitted to the glyph centres (total least squares), when it is within
    20 degrees of the direction the glyphs were linked along; else the linked direction."""
    offsets = centres - centres.mean(axis=0)
    _, vectors = np.linalg.eigh(offsets.T @ offsets)
    fitted = vectors[:, 1]
    if float(fitted @ u) < 0.0:
        fitted = -fitted
    if float(fitted @ u) < math.cos(math.radians(20.0)):
        return u, v
    return fitted, np.array([-fitted[1], fitted[0]])


def _near_pairs(cands: _Candidates) -> tuple[IndexArray, IndexArray]:
    """Candidate pairs ``a < b`` close enough to be linked at some angle.

    A link needs the gap along the line <= 1.2 heights and the offset across <= 0.35 heights,
    so the centres are at most about 2.25 times the larger candidate's size apart. Searching
    each candidate's own radius keeps the pair count linear in dense textures.
    """
    xx, yy, xy = cands.cov[:, 0], cands.cov[:, 1], cands.cov[:, 2]
    largest = (xx + yy) / 2 + np.sqrt(((xx - yy) / 2) ** 2 + xy**2)
    radius = 2.25 * (np.sqrt(12.0 * np.maximum(largest, 0.0)) + 1.0)
    found = cKDTree(cands.centre).query_ball_point(cands.centre, r=radius)
    first = np.repeat(np.arange(len(found), dtype=np.int64), [len(f) for f in found])
    second = np.concatenate([np.asarray(f, dtype=np.int64) for f in found])
    low, high = np.minimum(first, second), np.maximum(first, second)
    keys = np.unique(low[low != high] * len(found) + high[low != high])
    return keys // len(found), keys % len(found)


def _odd(value: int) -> int:
    return value if value % 2 else value + 1


def _extent(cov: FloatArray, direction: FloatArray) -> FloatArray:
    """Approximate extent along ``direction`` from second moments (a uniform bar: sqrt(12 var))."""
    dx, dy = float(direction[0]), float(direction[1])
    var = cov[:, 0] * dx * dx + cov[:, 1] * dy * dy + 2.0 * cov[:, 2] * dx * dy
    return np.sqrt(12.0 * np.maximum(var, 0.0)) + 1.0


def _polygon(
    shape: tuple[int, int],
    u: FloatArray,
    v: FloatArray,
    span_u: tuple[float, float],
    span_v: tuple[float, float],
) -> Binary:
    """The oriented rectangle ``span_u`` x ``span_v`` (in line coordinates) as an HxW mask."""
    corners = np.array(
        [
            cu * u + cv * v
            for cu, cv in (
                (span_u[0], span_v[0]),
                (span_u[1], span_v[0]),
                (span_u[1], span_v[1]),
                (span_u[0], span_v[1]),
            )
        ]
    )
    region = np.zeros(shape, np.uint8)
    cv2.fillConvexPoly(region, np.round(corners).astype(np.int32), 1)
    return region


def _band_density(
    strokes: Binary,
    u: FloatArray,
    v: FloatArray,
    span_u: tuple[float, float],
    span_v: tuple[float, float],
) -> tuple[float, float]:
    """Fraction of stroke pixels in an oriented band, and the fraction of the band on the image."""
    region = _polygon(strokes.shape[:2], u, v, span_u, span_v).astype(bool)
    total = int(np.count_nonzero(region))
    area = max(1.0, (span_u[1] - span_u[0]) * abs(span_v[1] - span_v[0]))
    if not total:
        return 0.0, 0.0
    return float(np.count_nonzero(strokes[region])) / total, min(1.0, total / area)


def _paint(mask: Mask, cands: _Candidates, line: _Line, opposite: Binary) -> Box:
    """Draw one line into ``mask`` and return its box: the glyphs, small stroke parts inside the
    line's box within half a line height of them, and opposite-polarity strokes touching both."""
    member_pixels = np.isin(cands.labels, cands.ids[line.members])
    ys, xs = np.nonzero(member_pixels)
    points = np.stack([xs, ys], axis=1).astype(np.float64)
    pu, pv = points @ line.u, points @ line.v
    pad_u, pad_v = 0.6 * line.height, 0.3 * line.height
    region = _polygon(
        mask.shape[:2],
        line.u,
        line.v,
        (float(pu.min()) - pad_u, float(pu.max()) + pad_u),
        (float(pv.min()) - pad_v, float(pv.max()) + pad_v),
    ).astype(bool)
    count = len(cands.areas)
    near = cv2.dilate(member_pixels.astype(np.uint8), _disc(max(1, round(0.5 * line.height))))
    inside = np.bincount(cands.labels[region], minlength=count)
    close = np.bincount(cands.labels[region & (near > 0)], minlength=count) > 0
    small = (inside == cands.areas) & close & (cands.areas <= line.height * line.height)
    small[0] = False
    own = member_pixels | small[cands.labels]
    ring = _disc(max(2, round(0.15 * line.height)))
    touching = (opposite > 0) & (cv2.dilate(own.astype(np.uint8), ring) > 0) & region
    hit = own | touching
    mask[hit] = 255
    x, y, w, h = cv2.boundingRect(hit.astype(np.uint8))
    return (int(x), int(y), int(w), int(h))


def _disc(radius: int) -> Binary:
    return _u8(cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1)))


def _u8(array: npt.ArrayLike) -> Binary:
    """``array`` typed as uint8 (OpenCV's results are untyped; no copy when already uint8)."""
    return np.asarray(array, dtype=np.uint8)


def _f32(array: npt.ArrayLike) -> Plane:
    return np.asarray(array, dtype=np.float32)


def _scale_box(box: Box, factor: float, width: int, height: int) -> Box:
    """A working-size box scaled back to the input size (rounded outwards, clipped)."""
    x0 = max(0, math.floor(box[0] * factor))
    y0 = max(0, math.floor(box[1] * factor))
    x1 = min(width, math.ceil((box[0] + box[2]) * factor))
    y1 = min(height, math.ceil((box[1] + box[3]) * factor))
    return (x0, y0, x1 - x0, y1 - y0)


def _add_box(boxes: list[Box], box: Box) -> None:
    """Append ``box``, or merge it into a box it mostly overlaps (the same line found twice)."""
    x, y, w, h = box
    for i, (bx, by, bw, bh) in enumerate(boxes):
        iw = min(x + w, bx + bw) - max(x, bx)
        ih = min(y + h, by + bh) - max(y, by)
        if iw > 0 and ih > 0 and iw * ih >= 0.5 * min(w * h, bw * bh):
            x0, y0 = min(x, bx), min(y, by)
            boxes[i] = (x0, y0, max(x + w, bx + bw) - x0, max(y + h, by + bh) - y0)
            return
    boxes.append(box)


def _candidates(
    image: Image, response: Plane, strokes: Binary, min_h: float, max_h: float
) -> _Candidates:
    """Connected stroke components that look like glyphs."""
    n, raw_labels, raw_stats, _ = cv2.connectedComponentsWithStats(strokes, connectivity=8)
    labels = np.asarray(raw_labels, dtype=np.int32)
    stats = np.asarray(raw_stats, dtype=np.int64)
    bw = stats[:, cv2.CC_STAT_WIDTH]
    bh = stats[:, cv2.CC_STAT_HEIGHT]
    area = stats[:, cv2.CC_STAT_AREA].astype(np.int64)
    size = np.maximum(bw, bh).astype(np.float64)
    dist = _f32(cv2.distanceTransform(strokes, cv2.DIST_L2, 3))
    ridge = ((dist > 0) & (dist >= cv2.dilate(dist, np.ones((3, 3), np.uint8)))).ravel()
    flat = labels.ravel()
    ridge_labels = flat[ridge]
    ridge_dist = dist.ravel()[ridge].astype(np.float64)
    n_ridge = np.maximum(np.bincount(ridge_labels, minlength=n).astype(np.float64), 1.0)
    mean_dist = np.bincount(ridge_labels, ridge_dist, minlength=n) / n_ridge
    var_dist = np.bincount(ridge_labels, ridge_dist**2, minlength=n) / n_ridge - mean_dist**2
    stroke_w = 2.0 * mean_dist
    fill = area / np.maximum(bw * bh, 1)
    bar = np.minimum(bw, bh) <= 2.5 * stroke_w + 1
    ok = (
        (size >= 0.6 * min_h)
        & (size <= 2.0 * max_h)
        & (area >= 0.5 * min_h)
        & (stroke_w <= 0.35 * size)
        & (np.sqrt(np.maximum(var_dist, 0.0)) <= 0.45 * mean_dist + 0.5)
        & ((fill <= 0.8) | bar)
        & (fill >= 0.08)
    )
    ok[0] = False
    ids = np.flatnonzero(ok)
    safe_area = np.maximum(area, 1).astype(np.float64)
    ys, xs = np.indices(labels.shape, dtype=np.float64)
    xs_f, ys_f = xs.ravel(), ys.ravel()
    mx = np.bincount(flat, xs_f, minlength=n) / safe_area
    my = np.bincount(flat, ys_f, minlength=n) / safe_area
    cxx = np.bincount(flat, xs_f * xs_f, minlength=n) / safe_area - mx**2
    cyy = np.bincount(flat, ys_f * ys_f, minlength=n) / safe_area - my**2
    cxy = np.bincount(flat, xs_f * ys_f, minlength=n) / safe_area - mx * my
    # Ink colour: the mean colour of the pixels with (nearly) the component's peak response,
    # where antialiasing has not blended the ink with the background.
    resp_flat = response.ravel()
    stroke_idx = np.flatnonzero(flat)
    peak = np.zeros(n, np.float32)
    np.maximum.at(peak, flat[stroke_idx], resp_flat[stroke_idx])
    core = stroke_idx[resp_flat[stroke_idx] >= 0.85 * peak[flat[stroke_idx]]]
    core_labels = flat[core]
    n_core = np.maximum(np.bincount(core_labels, minlength=n).astype(np.float64), 1.0)
    pixels = image.reshape(-1, 3)[core].astype(np.float64)
    colour = np.stack(
        [np.bincount(core_labels, pixels[:, c], minlength=n) / n_core for c in range(3)], axis=1
    )
    contrast = np.bincount(flat, response.ravel().astype(np.float64), minlength=n) / safe_area
    return _Candidates(
        strokes=strokes,
        labels=labels,
        areas=area,
        ids=ids.astype(np.int64),
        centre=np.stack([mx, my], axis=1)[ids],
        cov=np.stack([cxx, cyy, cxy], axis=1)[ids],
        colour=colour[ids],
        contrast=contrast[ids],
        stroke=stroke_w[ids],
    )
