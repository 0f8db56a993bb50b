"""The PP-OCRv4 recognizer as a check: does a region read as text?

Each region is cut out upright (rotated so that its long side is horizontal), scaled to height
48 and read with CTC greedy decoding. A region is text when at least ``min_chars`` characters
are read with a mean confidence of at least ``min_confidence``: textures, foliage, fabric and
product edges that fire a detector read as nothing or as a low-confidence character or two.
"""

from __future__ import annotations

import enum
import math

import cv2
import numpy as np
import onnxruntime as ort

from processors.tensors import Image
from processors.text.geometry import FloatArray, Region

__all__ = ["Reading", "Recognizer", "rec_crop"]

_REC_HEIGHT = 48
_REC_WIDTH_STEP = 64
"""Recognizer crops are padded to a multiple of this width, decided by the crop alone, so that a
crop reads the same whatever else is in the batch."""
_REC_MAX_WIDTH = 1920


class Reading(enum.Enum):
    """What the recognizer made of a region."""

    TEXT = "text"
    """At least ``min_chars`` characters, confidently."""
    SHORT = "short"
    """Fewer characters, confidently (one glyph of a line the detector split)."""
    NOTHING = "nothing"
    """No character at all."""
    DOUBTFUL = "doubtful"
    """Characters with low confidence: texture, not text."""


class Recognizer:
    """Reads crops (:func:`rec_crop`) with the recognizer's ONNX session."""

    def __init__(self, session: ort.InferenceSession) -> None:
        self._session = session
        charset = session.get_modelmeta().custom_metadata_map["character"].splitlines()
        self.charset: list[str] = ["", *charset, " "]
        """The characters of the CTC classes (0 = blank)."""

    def __call__(
        self, crops: list[FloatArray], min_confidence: float, min_chars: int
    ) -> list[Reading]:
        """What the recognizer makes of each crop (crops of equal width run together), judged
        by the least mean confidence and the fewest characters of text."""
        readings = [Reading.NOTHING] * len(crops)
        widths = [crop.shape[2] for crop in crops]
        for width in sorted(set(widths)):
            members = [i for i, w in enumerate(widths) if w == width]
            (out,) = self._session.run(
                None, {self._session.get_inputs()[0].name: np.stack([crops[i] for i in members])}
            )
            for i, steps in zip(members, out, strict=True):
                readings[i] = _judge(steps, min_confidence, min_chars)
        return readings


def _judge(steps: FloatArray, min_confidence: float, min_chars: int) -> Reading:
    """The reading of one crop from its per-step class scores (CTC greedy decoding)."""
    best = steps.argmax(axis=1)
    emitted = (best != 0) & np.concatenate([[True], best[1:] != best[:-1]])
    if not emitted.any():
        return Reading.NOTHING
    confidence = float(steps[np.flatnonzero(emitted), best[emitted]].mean())
    if confidence < min_confidence:
        return Reading.DOUBTFUL
    if int(emitted.sum()) < min_chars:
        return Reading.SHORT
    return Reading.TEXT


def rec_crop(image: Image, region: Region) -> FloatArray:
    """The region cut out upright at height 48, as CHW float32 BGR in [-1, 1], padded with 0
    to a multiple of 64 px wide."""
    width = int(
        min(
            _REC_MAX_WIDTH,
            max(_REC_HEIGHT // 2, round(_REC_HEIGHT * region.length / max(region.thickness, 1.0))),
        )
    )
    corners = region.corners().astype(np.float32)
    target = np.array([[0, 0], [width, 0], [width, _REC_HEIGHT]], np.float32)
    warp = cv2.getAffineTransform(corners[:3], target)
    crop = cv2.warpAffine(
        image, warp, (width, _REC_HEIGHT), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    padded = np.zeros(
        (3, _REC_HEIGHT, math.ceil(width / _REC_WIDTH_STEP) * _REC_WIDTH_STEP), np.float32
    )
    padded[:, :, :width] = (crop[:, :, ::-1].astype(np.float32) / 127.5 - 1.0).transpose(2, 0, 1)
    return padded
