"""The text detector: DBNet detection checked by the recognizer, a second DBNet pass on a
contrast-normalised copy, the segmenter pass, mask painting and completion on smooth
backgrounds, composed per batch (see :mod:`processors.text`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from processors.tensors import Image, Mask, check_image
from processors.text.config import TextDetectorConfig
from processors.text.dbnet import MAX_OVERLAP, DBNet, boost_size, db_regions, work_size
from processors.text.geometry import (
    Box,
    FloatArray,
    Region,
    glyph_line,
    merge_touching,
    overlap,
    rescaled,
)
from processors.text.models import open_sessions
from processors.text.paint import Found, paint_regions
from processors.text.recognizer import Reading, Recognizer, rec_crop
from processors.text.segmented import SegmenterPass, ink_limit, seg_prob
from processors.text_seg import load_text_seg
from processors.text_smooth import complete_on_smooth

__all__ = ["TextDetector", "TextResult"]


@dataclass(frozen=True)
class TextResult:
    """What the detector found in one image."""

    mask: Mask
    """HxW uint8, 255 = text: glyphs, their outline and shadow, antialiasing, slightly dilated."""
    boxes: tuple[Box, ...]
    """Axis-aligned ``(x, y, w, h)`` boxes of the accepted text regions, in detection order."""
    coverage: float
    """Mask area over image area, in [0, 1]."""

    @property
    def found(self) -> bool:
        """Whether any text region was accepted."""
        return bool(self.boxes)


@dataclass(frozen=True)
class _FirstPass:
    """DBNet's first pass over a batch, per image."""

    sizes: list[tuple[int, int]]
    """Working size (height, width)."""
    probs: list[FloatArray]
    """Probability map at the working size."""
    regions: list[list[Region]]
    """Candidate regions, working px."""
    scales: list[tuple[float, float]]
    """Scale ``(sx, sy)`` from the working size to the image."""


class TextDetector:
    """Find burned-in text and return a mask per image (see :mod:`processors.text`)."""

    version: str = "text-ppocr4-8"
    """Goes into result events; it changes whenever a mask can change."""

    def __init__(self, config: TextDetectorConfig | None = None) -> None:
        self.config = config if config is not None else TextDetectorConfig()
        det, rec = open_sessions(self.config.device, self.config.threads)
        self._dbnet = DBNet(det)
        self._read = Recognizer(rec)
        self.providers: tuple[str, ...] = tuple(det.get_providers())
        """onnxruntime providers in use, first = active (``CUDAExecutionProvider`` or CPU)."""
        use_cuda = self.config.device == "cuda" and torch.cuda.is_available()
        self._torch_device = torch.device("cuda" if use_cuda else "cpu")
        self._seg: torch.nn.Module | None = None
        if self.config.segmenter:
            self._seg = load_text_seg(self.config.segmenter_weights).to(self._torch_device)
        self._segmenter_pass = SegmenterPass(self.config, self._read)

    def __call__(self, images: Sequence[Image]) -> list[TextResult]:
        """One :class:`TextResult` per image."""
        checked = [check_image(image, f"images[{i}]") for i, image in enumerate(images)]
        first = self._first_pass(checked)
        found = self._read_first_pass(checked, first)
        if self.config.boost_side:
            self._boost_pass(checked, first, found)
        return [self._result(image, kept) for image, kept in zip(checked, found, strict=True)]

    def _first_pass(self, images: list[Image]) -> _FirstPass:
        """DBNet on each image at its working size, and its candidate regions."""
        sizes = [work_size(self.config, image.shape[0], image.shape[1]) for image in images]
        probs = self._dbnet(images, sizes)
        return _FirstPass(
            sizes=sizes,
            probs=probs,
            regions=[db_regions(self.config, prob) for prob in probs],
            scales=_scales(images, sizes),
        )

    def _read_first_pass(self, images: list[Image], first: _FirstPass) -> list[list[Found]]:
        """The first pass's regions that read as text, per image.

        Regions read as too few characters, or as nothing (the detector splits faint or widely
        spaced text into single glyphs), get a second chance: they are read again as one line
        with their neighbours (:func:`~processors.text.geometry.merge_touching`). Regions read
        with low confidence (textures) are left out."""
        cfg = self.config
        candidates = [(i, region) for i, found in enumerate(first.regions) for region in found]
        readings = self._read(
            [rec_crop(images[i], rescaled(r, *first.scales[i])) for i, r in candidates],
            cfg.min_confidence,
            cfg.min_chars,
        )
        merged = [
            (i, group)
            for i in range(len(images))
            for group in merge_touching(
                [
                    (r, reading is not Reading.TEXT)
                    for (o, r), reading in zip(candidates, readings, strict=True)
                    if o == i and reading is not Reading.DOUBTFUL
                ]
            )
        ]
        merged_readings = self._read(
            [rec_crop(images[i], rescaled(r, *first.scales[i])) for i, r in merged],
            cfg.min_confidence,
            cfg.min_chars,
        )
        found: list[list[Found]] = [[] for _ in images]
        for (i, r), reading in zip(
            [*candidates, *merged], [*readings, *merged_readings], strict=True
        ):
            if reading is Reading.TEXT:
                found[i].append((r, first.probs[i], first.scales[i]))
        return found

    def _boost_pass(self, images: list[Image], first: _FirstPass, found: list[list[Found]]) -> None:
        """Add to ``found`` the text of the second pass, on contrast-normalised copies at a
        short side of ``boost_side``.

        Faint overlays (grey at alpha 0.3 on a flat colour differs from it by about 10 levels)
        get no DBNet response on the image itself. Regions the first pass already had (read as
        text or not) are not read again; the others count only when read confidently as
        several characters (``boost_min_confidence``, ``boost_min_chars``): normalisation makes
        textures look inked."""
        cfg = self.config
        sizes = [boost_size(cfg, image.shape[0], image.shape[1]) for image in images]
        probs = self._dbnet(images, sizes, cfg.boost_sigma)
        scales = _scales(images, sizes)
        extra = [
            (i, region)
            for i, prob in enumerate(probs)
            for region in db_regions(cfg, prob)
            if overlap(
                rescaled(
                    region, scales[i][0] / first.scales[i][0], scales[i][1] / first.scales[i][1]
                ),
                first.regions[i],
                first.sizes[i],
            )
            < MAX_OVERLAP
        ]
        readings = self._read(
            [rec_crop(images[i], rescaled(r, *scales[i])) for i, r in extra],
            cfg.boost_min_confidence,
            cfg.boost_min_chars,
        )
        for (i, r), reading in zip(extra, readings, strict=True):
            if reading is Reading.TEXT:
                found[i].append((r, probs[i], scales[i]))

    def _result(self, image: Image, found: list[Found]) -> TextResult:
        """The mask of the regions ``found`` (:func:`~processors.text.paint.paint_regions`),
        joined with the segmenter pass's (if on), and completed on smooth backgrounds
        (:mod:`processors.text_smooth`)."""
        cfg = self.config
        if self._seg is None:
            mask, boxes = paint_regions(cfg, image, found)
        else:
            small, scale = seg_prob(self._seg, image, cfg.segment_size, self._torch_device)
            lines = [glyph_line(rescaled(r, *f)) for r, _, f in found]
            extra, extra_boxes = self._segmenter_pass(image, small, scale, lines)
            # The limit is for the ink of the lines found above; without any, it is not built.
            limit = ink_limit(cfg, small, image) if found else None
            mask, boxes = paint_regions(cfg, image, found, limit)
            boxes += _new_boxes(mask, extra, extra_boxes)
            mask |= extra
        mask = complete_on_smooth(image, mask, cfg.smooth_reach, cfg.smooth_contrast)
        return TextResult(
            mask=mask, boxes=tuple(boxes), coverage=float(np.count_nonzero(mask)) / mask.size
        )


def _scales(images: list[Image], sizes: list[tuple[int, int]]) -> list[tuple[float, float]]:
    """Per image, the scale ``(sx, sy)`` from its working size to the image."""
    return [
        (image.shape[1] / size[1], image.shape[0] / size[0])
        for image, size in zip(images, sizes, strict=True)
    ]


def _new_boxes(mask: Mask, extra: Mask, extra_boxes: list[Box]) -> list[Box]:
    """The segmenter's boxes whose pixels (in ``extra``) ``mask`` does not already hold half
    of: a group the DBNet regions already masked is not a new line of text."""
    boxes = []
    for x, y, bw, bh in extra_boxes:
        window = extra[y : y + bh, x : x + bw] > 0
        if np.count_nonzero(mask[y : y + bh, x : x + bw][window]) < 0.5 * window.sum():
            boxes.append((x, y, bw, bh))
    return boxes
