"""The PP-OCRv4 DBNet text detector: working sizes, input preparation, probability maps and the
DB post-processing that turns a map into rotated boxes.

Each image is resized so that its long side is at most ``work_size`` and its short side at least
``min_side`` (when the long side allows), then each side is rounded to a multiple of 32 (the
network needs it). Images are resized, never padded or tiled: the network's response is global
(squeeze-excitation blocks average over the whole image), so padding or tiling would change the
scores. Images whose working size is equal run as one batch; the result of an image does not
depend on the other images in the batch.

The probability map is thresholded at ``binary_threshold``; each connected region gives a
minimum-area rotated box, kept when its mean probability reaches ``box_threshold``, then grown by
the DB "unclip" distance (area * ``unclip_ratio`` / perimeter). This finds horizontal captions as
well as rotated watermarks.
"""

from __future__ import annotations

import cv2
import numpy as np
import onnxruntime as ort

from processors.tensors import Image
from processors.text.config import TextDetectorConfig
from processors.text.geometry import FloatArray, Region, rotated_region

__all__ = [
    "MAX_OVERLAP",
    "DBNet",
    "boost_size",
    "db_regions",
    "det_input",
    "normalise",
    "rounded",
    "work_size",
]

MAX_OVERLAP = 0.5
"""A region of the second pass that the first pass's boxes cover more than this is skipped."""
_BOOST_LEVEL = 40.0
"""Local contrast (RMS, 0..255) that the boosted copy brings every neighbourhood to..."""
_BOOST_FLOOR = 4.0
"""... unless it is below about this much (flat areas stay flat, noise is not blown up) ..."""
_BOOST_MAX_GAIN = 6.0
"""... and never by more than this gain."""


class DBNet:
    """Probability maps from the detector's ONNX session."""

    def __init__(self, session: ort.InferenceSession) -> None:
        self._session = session

    def __call__(
        self, images: list[Image], sizes: list[tuple[int, int]], boost_sigma: float = 0.0
    ) -> list[FloatArray]:
        """DBNet probability maps at the given working sizes (equal sizes run as one batch);
        with ``boost_sigma`` > 0, of contrast-normalised copies (:func:`normalise`)."""
        by_index: dict[int, FloatArray] = {}
        for size in sorted(set(sizes)):
            members = [i for i, s in enumerate(sizes) if s == size]
            batch = np.stack([det_input(images[i], size, boost_sigma) for i in members])
            (out,) = self._session.run(None, {self._session.get_inputs()[0].name: batch})
            for i, prob in zip(members, out[:, 0], strict=True):
                by_index[i] = np.ascontiguousarray(prob, dtype=np.float32)
        return [by_index[i] for i in range(len(images))]


def work_size(cfg: TextDetectorConfig, height: int, width: int) -> tuple[int, int]:
    """Working size of the first pass: long side at most ``work_size``, short side at least
    ``min_side`` where the long side allows."""
    scale = min(cfg.work_size / max(height, width), max(1.0, cfg.min_side / min(height, width)))
    return rounded(height, width, scale)


def boost_size(cfg: TextDetectorConfig, height: int, width: int) -> tuple[int, int]:
    """Working size of the second pass: short side ``boost_side``, long side at most
    ``work_size``."""
    scale = min(cfg.work_size / max(height, width), cfg.boost_side / min(height, width))
    return rounded(height, width, scale)


def db_regions(cfg: TextDetectorConfig, prob: FloatArray) -> list[Region]:
    """DB post-processing: rotated, unclipped boxes of the confident text regions."""
    binary = (prob > cfg.binary_threshold).astype(np.uint8)
    contours, _ = cv2.findContours(binary, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    found = []
    for contour in sorted(contours, key=lambda c: (int(c[:, 0, 1].min()), int(c[:, 0, 0].min()))):
        if len(contour) < 3:
            continue
        _, (rw, rh), _ = cv2.minAreaRect(contour)
        if min(rw, rh) < cfg.min_box_side:
            continue
        x, y, bw, bh = cv2.boundingRect(contour)
        inside = np.zeros((bh, bw), np.uint8)
        cv2.drawContours(inside, [contour - np.array([x, y])], -1, 1, thickness=-1)
        score = float(prob[y : y + bh, x : x + bw][inside > 0].mean())
        if score < cfg.box_threshold:
            continue
        grow = rw * rh * cfg.unclip_ratio / (2.0 * (rw + rh))
        found.append(rotated_region(cv2.minAreaRect(contour), grow))
    return found


def det_input(image: Image, size: tuple[int, int], boost_sigma: float = 0.0) -> FloatArray:
    """CHW float32 BGR in [-1, 1] at the working size; with ``boost_sigma`` > 0, contrast
    normalised (see :func:`normalise`)."""
    height, width = size
    if image.shape[:2] != (height, width):
        shrink = height * width < image.shape[0] * image.shape[1]
        interpolation = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
        image = np.asarray(
            cv2.resize(image, (width, height), interpolation=interpolation), dtype=np.uint8
        )
    if boost_sigma > 0.0:
        image = normalise(image, boost_sigma)
    bgr = image[:, :, ::-1].astype(np.float32)
    return np.ascontiguousarray((bgr / 127.5 - 1.0).transpose(2, 0, 1))


def rounded(height: int, width: int, scale: float) -> tuple[int, int]:
    """``height``, ``width`` scaled and rounded to multiples of 32 (at least 32)."""
    return (max(32, round(height * scale / 32) * 32), max(32, round(width * scale / 32) * 32))


def normalise(image: Image, sigma: float) -> Image:
    """Local contrast normalisation: each channel minus its Gaussian blur (``sigma`` px), scaled
    by the inverse local contrast (capped at ``_BOOST_MAX_GAIN``) and centred on mid-grey. Faint
    strokes on flat colour come out as clear as printed text."""
    pixels = image.astype(np.float32)
    detail = pixels - cv2.GaussianBlur(pixels, (0, 0), sigma)
    energy = cv2.GaussianBlur(np.square(detail).mean(axis=2), (0, 0), 2.0 * sigma)
    gain = np.minimum(_BOOST_MAX_GAIN, _BOOST_LEVEL / (np.sqrt(energy) + _BOOST_FLOOR))
    boosted = detail * gain[:, :, None] + 128.0
    return np.asarray(np.clip(np.rint(boosted), 0, 255), dtype=np.uint8)
