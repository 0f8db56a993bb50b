"""Geometry of text lines: rotated boxes (:class:`Region`), their scaling, overlap and merging,
and the connected regions of binary maps (:class:`Glyphs`)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

__all__ = [
    "Box",
    "FloatArray",
    "Glyphs",
    "Region",
    "axis_offsets",
    "bounds",
    "continues",
    "disc",
    "extent",
    "find_glyphs",
    "glyph_line",
    "linked",
    "merge_touching",
    "near_end",
    "overlap",
    "points_region",
    "rescaled",
    "rotated_region",
]

Box = tuple[int, int, int, int]
"""An axis-aligned box ``(x, y, w, h)`` in image pixels."""
FloatArray = npt.NDArray[np.float32]

_ALONG_ANGLE = math.radians(10.0)
"""A segmented group continues a known line only when their directions differ by less than
this (:func:`continues`)."""


@dataclass(frozen=True)
class Region:
    """A text line's rotated box, in the pixels of the image it was found in (a working image
    or the input; :func:`rescaled` maps it from one to the other)."""

    centre: tuple[float, float]
    """Centre (x, y)."""
    along: tuple[float, float]
    """Unit vector along the long side, pointing right (x >= 0)."""
    length: float
    """Long side, px."""
    thickness: float
    """Short side, px."""
    grow: float
    """The unclip distance the box was grown by, px: glyphs lie within it of the DB region."""

    def corners(self, grow: float = 0.0, extend: float = 0.0) -> npt.NDArray[np.float64]:
        """(4, 2) corners: top-left, top-right, bottom-right, bottom-left (reading order), of
        the box grown by ``grow`` on every side and by ``extend`` more at both ends."""
        cx, cy = self.centre
        ux, uy = self.along
        vx, vy = -uy, ux  # across, pointing down for level text
        half_l, half_t = self.length / 2 + grow + extend, self.thickness / 2 + grow
        return np.array(
            [
                [cx - ux * half_l - vx * half_t, cy - uy * half_l - vy * half_t],
                [cx + ux * half_l - vx * half_t, cy + uy * half_l - vy * half_t],
                [cx + ux * half_l + vx * half_t, cy + uy * half_l + vy * half_t],
                [cx - ux * half_l + vx * half_t, cy - uy * half_l + vy * half_t],
            ]
        )


def rotated_region(rect: tuple[Sequence[float], Sequence[float], float], grow: float) -> Region:
    """A :class:`Region` from an OpenCV rotated rectangle, grown by ``grow`` on every side."""
    (cx, cy), (rw, rh), angle = rect
    theta = math.radians(angle)
    ux, uy = math.cos(theta), math.sin(theta)
    if rh > rw:
        ux, uy, rw, rh = -uy, ux, rh, rw
    if rw < 1.3 * rh and abs(uy) > abs(ux):
        # Nearly square (a single glyph): read it level rather than on its side.
        ux, uy, rw, rh = -uy, ux, rh, rw
    if ux < 0 or (ux == 0 and uy > 0):
        ux, uy = -ux, -uy
    return Region(
        centre=(float(cx), float(cy)),
        along=(ux, uy),
        length=float(rw + 2 * grow),
        thickness=float(rh + 2 * grow),
        grow=grow,
    )


def bounds(corners: npt.NDArray[np.float64], width: int, height: int) -> tuple[int, int, int, int]:
    """``x0, y0, x1, y1`` of the pixels the corners enclose, clipped to the image (never empty)."""
    x0 = int(np.clip(math.floor(corners[:, 0].min()), 0, width - 1))
    y0 = int(np.clip(math.floor(corners[:, 1].min()), 0, height - 1))
    x1 = int(np.clip(math.ceil(corners[:, 0].max()) + 1, x0 + 1, width))
    y1 = int(np.clip(math.ceil(corners[:, 1].max()) + 1, y0 + 1, height))
    return x0, y0, x1, y1


def disc(radius: int) -> npt.NDArray[np.uint8]:
    """An elliptic structuring element of the given radius."""
    size = (2 * radius + 1, 2 * radius + 1)
    return np.asarray(cv2.getStructuringElement(cv2.MORPH_ELLIPSE, size), dtype=np.uint8)


def merge_touching(entries: list[tuple[Region, bool]]) -> list[Region]:
    """Groups of regions that touch and are of similar thickness, with at least one member
    flagged (not yet read as text), each as one rotated region around all their corners."""
    regions = [region for region, _ in entries]
    failed = [flag for _, flag in entries]
    count = len(regions)
    if count < 2:
        return []
    links = []
    for a in range(count):
        for b in range(a + 1, count):
            ra, rb = regions[a], regions[b]
            thin, thick = sorted((ra.thickness, rb.thickness))
            if thick > 2.5 * thin:
                continue
            gap = np.subtract(rb.centre, ra.centre)
            distance = float(np.linalg.norm(gap))
            if distance == 0.0:
                links.append((a, b))
                continue
            d = gap / distance
            if distance - extent(ra, d) - extent(rb, d) <= 0.3 * thick:
                links.append((a, b))
    found = []
    for members in linked(count, links):
        if len(members) < 2 or not any(failed[k] for k in members):
            continue
        points = np.concatenate([regions[k].corners() for k in members]).astype(np.float32)
        found.append(rotated_region(cv2.minAreaRect(points), 0.0))
    return found


def linked(count: int, links: Iterable[tuple[int, int]]) -> list[list[int]]:
    """The groups of ``0 .. count - 1`` that ``links`` join (union-find), each in ascending
    order, ordered by their first member."""
    parent = list(range(count))

    def root(k: int) -> int:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    for a, b in links:
        parent[root(b)] = root(a)
    groups: dict[int, list[int]] = {}
    for k in range(count):
        groups.setdefault(root(k), []).append(k)
    return list(groups.values())


def points_region(xs: npt.NDArray[np.intp], ys: npt.NDArray[np.intp]) -> tuple[Region, float]:
    """The minimum-area rotated box around pixel coordinates, grown by 15 % of its short side
    (at least 2 px) so the recognizer sees some paper around the glyphs; and that short side."""
    rect = cv2.minAreaRect(np.column_stack([xs, ys]).astype(np.float32))
    short = float(min(rect[1]))
    return rotated_region(rect, max(2.0, 0.15 * short)), short


def extent(region: Region, direction: npt.NDArray[np.float64]) -> float:
    """Half the region's width along a unit direction."""
    ux, uy = region.along
    along = abs(ux * direction[0] + uy * direction[1])
    across = abs(-uy * direction[0] + ux * direction[1])
    return float(region.length / 2 * along + region.thickness / 2 * across)


def overlap(region: Region, others: list[Region], size: tuple[int, int]) -> float:
    """Fraction of ``region``'s box covered by the boxes of ``others`` (all in the pixels of
    a working image of ``size``)."""
    if not others:
        return 0.0
    covered = np.zeros(size, np.uint8)
    cv2.fillPoly(covered, [np.round(r.corners()).astype(np.int32) for r in others], 1)
    own = np.zeros(size, np.uint8)
    cv2.fillPoly(own, [np.round(region.corners()).astype(np.int32)], 1)
    area = np.count_nonzero(own)
    return float(np.count_nonzero(own & covered)) / area if area else 1.0


def rescaled(region: Region, sx: float, sy: float) -> Region:
    """The region in another image's pixels (scaled by ``sx``, ``sy``)."""
    ux, uy = region.along
    vx, vy = -uy, ux
    along = np.array([ux * sx, uy * sy])
    across = np.array([vx * sx, vy * sy])
    length = region.length * float(np.linalg.norm(along))
    thickness = region.thickness * float(np.linalg.norm(across))
    direction = along / np.linalg.norm(along)
    return Region(
        centre=(region.centre[0] * sx, region.centre[1] * sy),
        along=(float(direction[0]), float(direction[1])),
        length=length,
        thickness=thickness,
        grow=region.grow * math.sqrt(sx * sy),
    )


@dataclass(frozen=True)
class Glyphs:
    """The connected regions (8-connected) of a binary map, in OpenCV's layout: ``labels``
    (0 = background), ``stats`` (x, y, width, height, area per label) and ``centres``."""

    labels: npt.NDArray[np.int32]
    stats: npt.NDArray[np.int32]
    centres: npt.NDArray[np.float64]


def find_glyphs(binary: npt.NDArray[np.uint8]) -> Glyphs:
    """The 8-connected regions of ``binary``."""
    _, labels, stats, centres = cv2.connectedComponentsWithStats(binary, connectivity=8)
    return Glyphs(
        np.asarray(labels, np.int32), np.asarray(stats, np.int32), np.asarray(centres, np.float64)
    )


def glyph_line(region: Region) -> Region:
    """The box of the glyphs of a DBNet region: its unclipped box is about twice the glyph
    height thick, and as much longer."""
    glyph = region.thickness / 2
    return Region(region.centre, region.along, max(glyph, region.length - glyph), glyph, 0.0)


def continues(region: Region, line: Region) -> bool:
    """Whether segmented ``region`` continues ``line``: within ``_ALONG_ANGLE`` of its
    direction, with ``line``'s centre inside ``region``'s box, and reaching at least a line
    thickness (``region``'s) beyond it: a group no longer than the line adds nothing to it but
    what touched it."""
    cos = abs(float(np.dot(region.along, line.along)))
    if cos < math.cos(_ALONG_ANGLE) or line.length + region.thickness > region.length:
        return False
    along, across = (abs(float(v)) for v in axis_offsets(region, line.centre))
    return along <= region.length / 2 and across <= region.thickness / 2


def axis_offsets(region: Region, points: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Signed offsets of ``points`` (x, y; one or many) from ``region``'s centre, along its
    direction and across it."""
    along = np.asarray(region.along)
    offsets = np.subtract(points, region.centre)
    return offsets @ along, offsets @ np.array([-along[1], along[0]])


def near_end(region: Region, point: tuple[int, int], heights: float) -> bool:
    """Whether ``point`` lies beyond an end of ``region``, within ``heights`` line heights."""
    along, across = (abs(float(v)) for v in axis_offsets(region, point))
    half = region.length / 2
    return half <= along <= half + heights * region.thickness and across <= region.thickness / 2
