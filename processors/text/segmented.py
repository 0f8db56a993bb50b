"""The segmenter pass: faint watermarks over busy photos that DBNet does not see.

A small network trained by this repo (:mod:`processors.text_seg`, ``bench/train_text_seg.py``)
marks, per pixel, what an overlay changed; its regions are accepted only when their *shape*
reads as text. Each group of segmented glyphs (glyphs within a few px of each other, and
separately chains of similar-sized glyphs in a line) is cut out upright from the probability
map drawn as ink on white and read by the recognizer (at least ``min_chars`` characters at
``segment_min_confidence``), at ``segment_threshold`` and again at each of
``segment_strict_thresholds``; one that continues a line the other passes read (same
direction, over it, a line thickness longer) needs only ``segment_confirmed_confidence``, and
keeps only its glyph-sized parts. Of a group read as text, only the glyphs on its line are kept
(background edges that joined it beside the line are dropped). Accepted lines are then followed
beyond their ends (:mod:`processors.text.line_ends`). Inside an accepted line's box, weaker
regions (above ``segment_low_threshold``) join when they touch its glyphs or sit on its axis.
The accepted pixels, grown by ``dilation``, join the mask.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import numpy.typing as npt
import torch
from scipy.spatial import cKDTree

from processors.tensors import Image, Mask
from processors.text.config import TextDetectorConfig
from processors.text.geometry import (
    Box,
    FloatArray,
    Glyphs,
    Region,
    bounds,
    continues,
    disc,
    find_glyphs,
    linked,
    points_region,
    rescaled,
)
from processors.text.line_ends import MIN_GLYPH_AREA, continued, rings, symbols
from processors.text.recognizer import Reading, Recognizer, rec_crop
from processors.text.shapes import glyph_sized, joined_or_centred, on_line, paper_of
from processors.text_seg import segment

__all__ = ["SegmenterPass", "ink_limit", "seg_prob"]

_GROUP_REACH = 4
"""Segmented glyphs closer than twice this (in px of the segmenter's working image) are judged
as one group."""
_CONFIRMED_SIZE = 1.5
"""Of a segmented group read as text only at ``segment_confirmed_confidence``, the parts larger
than this many times its typical glyph are letters joined to background edges: dropped."""


def seg_prob(
    model: torch.nn.Module, image: Image, segment_size: int, device: torch.device
) -> tuple[FloatArray, float]:
    """The segmenter's probability map of ``image``, shrunk to at most ``segment_size`` on its
    long side, and the scale it was shrunk by."""
    h, w = image.shape[:2]
    scale = min(1.0, segment_size / max(h, w))
    small = image
    if scale < 1.0:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        small = np.asarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA), np.uint8)
    return segment(model, small, device=device), scale


def ink_limit(cfg: TextDetectorConfig, prob: FloatArray, image: Image) -> Mask | None:
    """Where ink found in a detected box may lie (``ink_reach``), at the image's size;
    None = anywhere."""
    if cfg.ink_reach == 0:
        return None
    h, w = image.shape[:2]
    sure = (prob >= cfg.ink_reach_threshold).astype(np.uint8)
    if sure.shape != (h, w):
        sure = np.asarray(cv2.resize(sure, (w, h), interpolation=cv2.INTER_NEAREST), np.uint8)
    return np.asarray(cv2.dilate(sure, disc(cfg.ink_reach)), np.uint8)


class SegmenterPass:
    """Turns the segmenter's probability map into a text mask, judged by the recognizer."""

    def __init__(self, config: TextDetectorConfig, read: Recognizer) -> None:
        self.config = config
        self._read = read

    def __call__(
        self, image: Image, prob: FloatArray, scale: float, lines: Sequence[Region] = ()
    ) -> tuple[Mask, list[Box]]:
        """The segmenter's mask (grown by ``dilation``) from its probability map ``prob`` (of
        ``image`` shrunk by ``scale``), and the boxes of its glyph groups; ``lines`` (text
        lines found by the other passes, image px) are searched for lone symbols at their ends
        too."""
        cfg = self.config
        h, w = image.shape[:2]
        chosen = np.zeros(prob.shape, np.uint8)
        paper = paper_of(prob)
        accepted: list[Region] = []
        # Each threshold's glyphs (connected regions), labelled once for every step below.
        glyphs_at: list[Glyphs] = []
        known = [rescaled(line, scale, scale) for line in lines]
        # At a stricter threshold, letters that touch background edges at the first one come
        # apart from them; each threshold's groups and lines are judged on their own.
        for threshold in (cfg.segment_threshold, *cfg.segment_strict_thresholds):
            binary = (prob > threshold).astype(np.uint8)
            kept, grouped = self._groups(prob, paper, binary, known)
            chosen[kept] = 255
            glyphs = find_glyphs(binary)
            glyphs_at.append(glyphs)
            lined, chained = self._lines(paper, glyphs, known)
            chosen |= lined
            accepted += grouped + chained
        extended: list[Region] = []
        for glyphs in glyphs_at:
            more, extended = continued(cfg, prob, glyphs, chosen, accepted)
            chosen |= more
            chosen |= symbols(cfg, self._read, paper, glyphs, chosen, extended + known)
        chosen[self._weaker(prob, chosen, accepted)] = 255
        if scale < 1.0:
            chosen = np.asarray(cv2.resize(chosen, (w, h), interpolation=cv2.INTER_LINEAR))
            chosen = np.where(chosen >= 128, 255, 0).astype(np.uint8)
        mask = np.asarray(cv2.dilate(chosen, disc(cfg.dilation)), np.uint8)
        if cfg.rings and (extended or lines):
            # The lines as the last threshold's glyphs continued them, and the other passes'.
            starts = [rescaled(line, 1.0 / scale, 1.0 / scale) for line in extended]
            mask |= rings(image, [*starts, *lines], mask, cfg.dilation)
        return mask, _boxes(accepted, scale, w, h)

    def _groups(
        self,
        prob: FloatArray,
        paper: Image,
        binary: npt.NDArray[np.uint8],
        known: Sequence[Region],
    ) -> tuple[npt.NDArray[np.bool_], list[Region]]:
        """The glyph groups of ``binary`` (one threshold's map) that read as text
        (:meth:`_verify`): their glyph pixels and the boxes of their lines.

        The glyphs of a line are separate regions: a group is the glyphs within a few px of
        each other, judged together (a lone speck of texture is small, doubtful)."""
        cfg = self.config
        groups = cv2.dilate(binary, disc(_GROUP_REACH))
        count, found, found_stats, _ = cv2.connectedComponentsWithStats(groups, connectivity=8)
        labels = np.asarray(found, np.int32)
        stats = np.asarray(found_stats, np.int32)
        inside = binary > 0
        areas = np.bincount(labels[inside], minlength=count)
        scores = np.bincount(labels[inside], weights=prob[inside], minlength=count)
        keep = (areas >= cfg.segment_min_area) & (scores >= cfg.segment_min_score * areas)
        keep[0] = False
        return self._verify(paper, labels, stats, keep, inside, known)

    def _weaker(
        self, prob: FloatArray, chosen: Mask, accepted: Sequence[Region]
    ) -> npt.NDArray[np.bool_]:
        """Fainter strokes inside the accepted lines (hysteresis): where the background
        crosses a letter the segmenter is less sure of it. Only the regions above
        ``segment_low_threshold`` that touch the line's glyphs or sit on its axis: a
        background edge crossing the box (a neck ring, a tower) is not a fainter stroke."""
        support = np.zeros(prob.shape, np.uint8)
        for region in accepted:
            cv2.fillPoly(support, [np.round(region.corners()).astype(np.int32)], 1)
        weak = (support > 0) & (prob > self.config.segment_low_threshold)
        return joined_or_centred(weak, chosen > 0, list(accepted))

    def _verify(
        self,
        paper: Image,
        labels: npt.NDArray[np.int32],
        stats: npt.NDArray[np.int32],
        keep: npt.NDArray[np.bool_],
        glyphs: npt.NDArray[np.bool_],
        known: Sequence[Region] = (),
    ) -> tuple[npt.NDArray[np.bool_], list[Region]]:
        """The ``glyphs`` pixels of the groups (``keep``) whose *shape* reads as text, and the
        upright boxes of their lines.

        Each group is cut out upright (its minimum-area rotated box) from ``paper``, the
        probability map drawn as dark ink on white (:func:`paper_of`), and read by the
        recognizer: a faint watermark's contrast does not matter here, only the letter shapes
        the segmenter drew. A group read as a
        single confident glyph (the "©" a space away from "shop") is kept when it lies within
        a line height of a group read as text. A group that continues one of the ``known`` lines
        (accepted by the other passes) needs only ``segment_confirmed_confidence``.
        """
        groups = np.flatnonzero(keep)
        if len(groups) == 0:
            return np.zeros(labels.shape, np.bool_), []
        regions = []
        for k in groups:
            x, y, bw, bh = (int(v) for v in stats[k, :4])
            ys, xs = np.nonzero(labels[y : y + bh, x : x + bw] == k)
            regions.append(points_region(xs + x, ys + y)[0])
        readings, confirmed = self._read_segmented(paper, regions, known)
        kept = np.zeros(labels.shape, np.bool_)
        near = np.zeros(labels.shape, np.uint8)
        accepted = []
        for index, (k, region, reading) in enumerate(zip(groups, regions, readings, strict=True)):
            if reading is Reading.TEXT:
                x, y, bw, bh = (int(v) for v in stats[k, :4])
                window = (labels[y : y + bh, x : x + bw] == k) & glyphs[y : y + bh, x : x + bw]
                line = on_line(window, region.along)
                if index in confirmed:
                    line = glyph_sized(line, _CONFIRMED_SIZE)
                kept[y : y + bh, x : x + bw] |= line
                if index in confirmed:
                    # Its glyphs on the line count; the line itself is the other passes'
                    # (not followed further, no weaker strokes taken in its box).
                    continue
                ys, xs = np.nonzero(line)
                line_region = points_region(xs + x, ys + y)[0] if len(xs) else region
                accepted.append(line_region)
                reach = round(line_region.thickness)
                cv2.fillPoly(near, [np.round(line_region.corners(reach)).astype(np.int32)], 1)
        for k, reading in zip(groups, readings, strict=True):
            if reading is Reading.SHORT and near[labels == k].any():
                kept |= (labels == k) & glyphs
        return kept, accepted

    def _lines(
        self, paper: Image, glyphs: Glyphs, known: Sequence[Region] = ()
    ) -> tuple[Mask, list[Region]]:
        """Segmented glyphs that line up as text (chains, :func:`_chains`), read by the
        recognizer (255 = kept), and the upright boxes of the lines read as text.

        Each chain is cut out upright from ``paper`` and read like in :meth:`_verify` (along
        one of the ``known`` lines, at ``segment_confirmed_confidence``).
        """
        out = np.zeros(glyphs.labels.shape, np.uint8)
        members, regions = _chains(glyphs)
        if not regions:
            return out, []
        readings, confirmed = self._read_segmented(paper, regions, known)
        accepted = []
        for index, (member, region, reading) in enumerate(
            zip(members, regions, readings, strict=True)
        ):
            if reading is Reading.TEXT:
                out[member] = 255
                if index not in confirmed:
                    accepted.append(region)
        return out, accepted

    def _read_segmented(
        self, paper: Image, regions: list[Region], known: Sequence[Region]
    ) -> tuple[list[Reading], set[int]]:
        """What the recognizer makes of the segmented ``regions`` cut out of ``paper`` (at
        ``segment_min_confidence``; those read as doubtful text that continue a ``known``
        line, :func:`continues`, again at ``segment_confirmed_confidence``), and the indices
        that the second reading made text."""
        cfg = self.config
        readings = self._read(
            [rec_crop(paper, region) for region in regions],
            cfg.segment_min_confidence,
            cfg.min_chars,
        )
        if cfg.segment_confirmed_confidence >= cfg.segment_min_confidence:
            return readings, set()
        again = [
            i
            for i, (region, reading) in enumerate(zip(regions, readings, strict=True))
            if reading is Reading.DOUBTFUL and any(continues(region, line) for line in known)
        ]
        if not again:
            return readings, set()
        second = self._read(
            [rec_crop(paper, regions[i]) for i in again],
            cfg.segment_confirmed_confidence,
            cfg.min_chars,
        )
        out = list(readings)
        for i, reading in zip(again, second, strict=True):
            out[i] = reading
        return out, {i for i, reading in zip(again, second, strict=True) if reading is Reading.TEXT}


def _chains(glyphs: Glyphs) -> tuple[list[npt.NDArray[np.bool_]], list[Region]]:
    """The chains of segmented glyphs that may be lines of text: their pixels and their upright
    boxes.

    Glyph candidates are the connected regions ``glyphs``; two are linked when their sizes are
    within 2.5x of each other and their centres within 1.3 glyph sizes: the letters of one line
    chain up, while a long background edge that the segmenter partly marked is much larger than
    the letters beside it and stays out. Chains of two or more glyphs that are about one glyph
    thick count.
    """
    labels, stats, centres = glyphs.labels, glyphs.stats, glyphs.centres
    ids = np.flatnonzero(stats[:, cv2.CC_STAT_AREA] >= MIN_GLYPH_AREA)
    ids = ids[ids > 0]
    if len(ids) < 2:
        return [], []
    sizes = np.maximum(stats[ids, cv2.CC_STAT_WIDTH], stats[ids, cv2.CC_STAT_HEIGHT])
    sizes = sizes.astype(np.float64)
    tree = cKDTree(centres[ids])
    links = []
    for a, b in tree.query_pairs(1.3 * float(sizes.max())):
        small, large = sorted((sizes[a], sizes[b]))
        if large > 2.5 * small:
            continue
        if np.hypot(*(centres[ids[a]] - centres[ids[b]])) <= 1.3 * large:
            links.append((a, b))
    regions = []
    members = []
    for group in linked(len(ids), links):
        if len(group) < 2:
            continue
        member = np.isin(labels, ids[group])
        ys, xs = np.nonzero(member)
        region, short = points_region(xs, ys)
        # One line is about one glyph thick; a chain spread over an area is not a line.
        if short > 2.0 * float(np.median(sizes[group])):
            continue
        members.append(member)
        regions.append(region)
    return members, regions


def _boxes(accepted: Sequence[Region], scale: float, width: int, height: int) -> list[Box]:
    """The distinct axis-aligned boxes (image px) of the ``accepted`` lines (segmenter px,
    ``scale`` times the image's)."""
    boxes: list[Box] = []
    for region in accepted:
        x0, y0, x1, y1 = bounds(rescaled(region, 1.0 / scale, 1.0 / scale).corners(), width, height)
        if (x0, y0, x1 - x0, y1 - y0) not in boxes:
            boxes.append((x0, y0, x1 - x0, y1 - y0))
    return boxes
