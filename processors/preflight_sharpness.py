"""Edge sharpness: how blurred an image's sharper edges are, independent of their contrast.

It is measured on a grey copy shrunk so its long side is at most 512 px (so the figure does not
depend on resolution): the image is blurred again with a Gaussian of sigma ``s = 3`` and the
gradient magnitudes compared at the re-blurred image's edge maxima. For a step edge already
blurred by sigma ``b`` that ratio is ``R = sqrt(b**2 + s**2) / b``, independent of the edge's
contrast, so ``sharpness = sqrt(R**2 - 1) / s = 1 / b`` (in 1/px at the 512-px scale). The 75th
percentile over edges is used, so a photo with a sharp product and a soft background passes.
"""

from __future__ import annotations

import math
from typing import Final

import cv2
import numpy as np
import numpy.typing as npt

__all__ = ["edge_sharpness"]

_BLUR_SCALE: Final = 512
_BLUR_PROBE_SIGMA: Final = 3.0
_EDGE_FRACTION: Final = 0.25
_EDGE_FLOOR: Final = 0.5
_EDGE_PERCENTILE: Final = 75.0
_MIN_EDGE_PIXELS: Final = 16

_FloatArray = npt.NDArray[np.float32]
_BoolArray = npt.NDArray[np.bool_]


def edge_sharpness(grey: npt.NDArray[np.uint8]) -> float | None:
    """Edge sharpness of a grey image, ``1 / sigma`` in 1/px at the 512-px scale.

    ``sigma`` is the Gaussian blur of the sharper quarter of the image's edges, measured on a
    copy shrunk (area filter) so its long side is at most 512 px; contrast does not matter.
    Focused photos measure about 0.7-2, a photo blurred by sigma 8 at that scale about 0.15.
    Returns None when there are too few edges to measure (flat or nearly flat images).
    """
    if grey.ndim != 2 or grey.size == 0:
        raise ValueError(f"edge_sharpness: expected a 2-D grey image, got shape {grey.shape}.")
    height, width = grey.shape
    small: npt.NDArray[np.uint8] = grey
    if max(height, width) > _BLUR_SCALE:
        scale = _BLUR_SCALE / max(height, width)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        small = np.asarray(cv2.resize(grey, size, interpolation=cv2.INTER_AREA), dtype=np.uint8)
    values = small.astype(np.float32)
    gx, gy = _gradients(values)
    magnitude = np.hypot(gx, gy)
    blurred = np.asarray(
        cv2.GaussianBlur(values, (0, 0), _BLUR_PROBE_SIGMA, borderType=cv2.BORDER_REFLECT),
        dtype=np.float32,
    )
    bx, by = _gradients(blurred)
    blurred_magnitude = np.hypot(bx, by)
    strongest = float(np.percentile(blurred_magnitude, 99.9))
    floor = max(_EDGE_FLOOR, _EDGE_FRACTION * strongest)
    edges = _edge_maxima(blurred_magnitude, bx, by) & (blurred_magnitude >= floor)
    if int(edges.sum()) < _MIN_EDGE_PIXELS:
        return None
    ratio = magnitude[edges] / blurred_magnitude[edges]
    r = float(np.percentile(ratio, _EDGE_PERCENTILE))
    return math.sqrt(max(r * r - 1.0, 0.0)) / _BLUR_PROBE_SIGMA



def _gradients(values: _FloatArray) -> tuple[_FloatArray, _FloatArray]:
    """Sobel derivatives in grey levels per pixel."""
    gx = cv2.Sobel(values, cv2.CV_32F, 1, 0, ksize=3, borderType=cv2.BORDER_REFLECT)
    gy = cv2.Sobel(values, cv2.CV_32F, 0, 1, ksize=3, borderType=cv2.BORDER_REFLECT)
    return np.asarray(gx, dtype=np.float32) / 8.0, np.asarray(gy, dtype=np.float32) / 8.0


def _edge_maxima(magnitude: _FloatArray, gx: _FloatArray, gy: _FloatArray) -> _BoolArray:
    """Non-maximum suppression along the gradient direction (4 direction bins)."""
    height, width = magnitude.shape
    padded = np.pad(magnitude, 1, mode="edge")

    def shifted(dy: int, dx: int) -> _FloatArray:
        return padded[1 + dy : 1 + dy + height, 1 + dx : 1 + dx + width]

    direction = (np.rint(np.arctan2(gy, gx) / (np.pi / 4)) % 4).astype(np.intp)
    ahead = np.choose(direction, [shifted(0, 1), shifted(1, 1), shifted(1, 0), shifted(1, -1)])
    behind = np.choose(direction, [shifted(0, -1), shifted(-1, -1), shifted(-1, 0), shifted(-1, 1)])
    return (magnitude >= ahead) & (magnitude > behind)
