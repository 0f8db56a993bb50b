"""Quality metrics for the gates: PSNR, SSIM, edit preservation and seams, upscale consistency.

All functions are pure and deterministic over HWC uint8 RGB images (regions are HW uint8 masks,
255 = inside). Figures:

- :func:`psnr`: dB on the 0..255 scale over the region's pixels and all three channels.
- :func:`ssim`: SSIM of the BT.601 luminance, averaged over the region. It is computed with
  ``skimage.metrics.structural_similarity`` (7x7 uniform window, K1=0.01, K2=0.03, data range
  255): the reference implementation the literature's figures come from, so our numbers compare
  with published ones. Its full map is averaged over the region, border windows included.
- :func:`measure_edits`: preservation outside the grown mask (should be lossless: PSNR inf,
  SSIM 1), the seam score at the mask boundary (see :func:`seam_score`), and how busy the
  filled region is relative to its surroundings before and after (:func:`texture_ratio`), for
  the "no worse than the input" gate.
- :func:`measure_upscales`: the output shrunk back to the input size (area averaging) against
  the input, and its fine detail relative to the input's (:func:`detail_level`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
from skimage.metrics import structural_similarity

from processors.inpaint import DEFAULT_DILATE, dilate_mask
from processors.tensors import Image, Mask, check_image, check_mask

__all__ = [
    "PSNR_CAP",
    "EditMetrics",
    "UpscaleMetrics",
    "detail_level",
    "measure_edits",
    "measure_upscales",
    "psnr",
    "seam_score",
    "ssim",
    "texture_ratio",
]

PSNR_CAP = 99.0
"""``to_dict`` writes an infinite PSNR (identical pixels) as this finite number of dB."""
SSIM_WINDOW = 7
"""Side of SSIM's uniform window, px."""
SEAM_CONTEXT_FLOOR = 2.0
"""Least context gradient (luminance levels per px) the seam score divides by, so that a flat
background does not turn a faint step into a huge score."""

TEXTURE_FLOOR = 1.0
"""Least ring detail (mean absolute Laplacian, luminance levels) :func:`texture_ratio` divides
by, so a perfectly flat background does not turn faint noise into a huge ratio."""

FloatArray = npt.NDArray[np.float64]

_structural_similarity: Callable[..., Any] = structural_similarity
"""scikit-image ships no annotations; this typed handle keeps strict mypy honest at the call."""


def psnr(reference: Image, test: Image, region: Mask | None = None) -> float:
    """Peak signal-to-noise ratio in dB (peak 255) over the pixels where ``region`` is 255.

    ``inf`` when the pixels are identical, ``nan`` when the region is empty.
    """
    ref, tst, inside = _pair(reference, test, region, "psnr")
    if inside is None:
        diff = ref.astype(np.float64) - tst.astype(np.float64)
    else:
        if not inside.any():
            return math.nan
        diff = ref[inside].astype(np.float64) - tst[inside].astype(np.float64)
    mse = float(np.mean(diff * diff))
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(255.0 * 255.0 / mse)


def ssim(reference: Image, test: Image, region: Mask | None = None) -> float:
    """Mean SSIM of the luminance over the pixels where ``region`` is 255 (all if None).

    1.0 for identical images, ``nan`` for an empty region. Images smaller than 7 px on a side
    use the largest odd window that fits; below 3 px, one window over the whole image.
    """
    ref, tst, inside = _pair(reference, test, region, "ssim")
    if inside is not None and not inside.any():
        return math.nan
    score_map = _ssim_map(_luma(ref), _luma(tst))
    score = float(score_map.mean() if inside is None else score_map[inside].mean())
    # Where the images agree, the map's values and their mean can round a hair above 1
    # (1.0000000000000009 in result events); SSIM is at most 1, and consumers may check that.
    return min(score, 1.0)


def seam_score(edited: Image, mask: Mask) -> float:
    """How much the boundary of ``mask`` stands out in ``edited``: 0 = seamless.

    ``G`` is the Sobel gradient magnitude of the luminance, in levels per px. ``boundary`` is the
    band within 1 px of the mask edge on both sides; ``context`` is the ring 3 to 7 px outside
    the mask (pixels the edit did not touch). The score is

        max(0, mean(G on boundary) - mean(G on context)) / max(mean(G on context), 2.0)

    i.e. the excess gradient across the boundary relative to the surrounding texture. 0 means
    the boundary is no busier than its surroundings; 1 means its gradients are twice those of
    the context. A fill with the wrong flat colour on a smooth background scores well above 1; a
    good inpaint scores near 0. An empty mask, or one with no context around it, scores 0.
    """
    image = check_image(edited, "edited")
    selected = check_mask(mask, image.shape[:2], "mask")
    if not selected.any() or selected.all():
        return 0.0
    inner = cv2.erode(selected, _disc(1), borderType=cv2.BORDER_REPLICATE) > 0
    outer = dilate_mask(selected, 1) > 0
    boundary = outer & ~inner
    context = (dilate_mask(selected, 7) > 0) & ~(dilate_mask(selected, 2) > 0)
    if not context.any():
        return 0.0
    luma = _luma(image)
    gx = cv2.Sobel(luma, cv2.CV_64F, 1, 0, ksize=3, borderType=cv2.BORDER_REPLICATE)
    gy = cv2.Sobel(luma, cv2.CV_64F, 0, 1, ksize=3, borderType=cv2.BORDER_REPLICATE)
    gradient = np.hypot(gx, gy) / 8.0
    at_boundary = float(gradient[boundary].mean())
    around = float(gradient[context].mean())
    return max(0.0, at_boundary - around) / max(around, SEAM_CONTEXT_FLOOR)


def detail_level(image: Image, region: Mask | None = None) -> float:
    """Fine detail: the mean absolute 3x3 Laplacian of the luminance (levels), over ``region``.

    Noise, ringing and hallucinated texture raise it; blur lowers it. 0 for a flat image.
    """
    checked = check_image(image)
    laplace = np.abs(cv2.Laplacian(_luma(checked), cv2.CV_64F, ksize=1,
                                   borderType=cv2.BORDER_REPLICATE))
    if region is None:
        return float(laplace.mean())
    inside = check_mask(region, checked.shape[:2], "region") > 0
    return float(laplace[inside].mean()) if inside.any() else 0.0


def texture_ratio(image: Image, mask: Mask) -> float:
    """Detail inside ``mask`` over detail in the ring 3 to 7 px outside it (:func:`detail_level`,
    the ring floored at :data:`TEXTURE_FLOOR`): about 1 where a fill matches its surroundings,
    below 1 for a smooth fill, far above 1 for noise or for text still in place. 0 for an empty
    mask or a mask with no ring around it."""
    checked = check_image(image)
    selected = check_mask(mask, checked.shape[:2], "mask")
    ring = (dilate_mask(selected, 7) > 0) & ~(dilate_mask(selected, 2) > 0)
    if not selected.any() or not ring.any():
        return 0.0
    ring_mask = np.where(ring, np.uint8(255), np.uint8(0)).astype(np.uint8)
    return detail_level(checked, selected) / max(detail_level(checked, ring_mask), TEXTURE_FLOOR)


@dataclass(frozen=True)
class EditMetrics:
    """How an edit (inpainting) measures against its original."""

    psnr_outside: float
    """PSNR (dB) outside the grown mask; ``inf`` when lossless, ``nan`` if the mask is all."""
    ssim_outside: float
    """Luminance SSIM over the pixels whose whole 7x7 window lies outside the grown mask; 1.0
    when lossless, ``nan`` when no such pixel exists."""
    seam: float
    """Seam score at the grown mask's boundary (:func:`seam_score`): 0 = seamless, 1 = boundary
    gradients twice the surrounding ones."""
    mask_fraction: float
    """Fraction of the image inside the grown mask (the pixels the edit may change)."""
    texture_in: float
    """:func:`texture_ratio` of the grown mask in the original (text in place scores high)."""
    texture_out: float
    """:func:`texture_ratio` of the grown mask in the edited image: the gate fails an edit that
    leaves the region busier than it was (noise, garbage) — "no worse than the input"."""

    def to_dict(self) -> dict[str, float | None]:
        """JSON-safe figures: ``inf`` PSNR becomes :data:`PSNR_CAP` (99.0); ``nan`` becomes None."""
        return {key: _json_number(value) for key, value in asdict(self).items()}


@dataclass(frozen=True)
class UpscaleMetrics:
    """How an upscaled output agrees with its input."""

    consistency_psnr: float
    """PSNR (dB) of the output shrunk back to the input size (area averaging) vs the input."""
    consistency_ssim: float
    """Luminance SSIM of the same pair."""
    scale: float
    """Output long side over input long side."""
    detail_ratio: float
    """:func:`detail_level` of the output shrunk back over that of the input: about 1 for a
    faithful upscale, far above 1 when the model added noise ("no worse than the input")."""

    def to_dict(self) -> dict[str, float | None]:
        """JSON-safe figures: ``inf`` PSNR becomes :data:`PSNR_CAP` (99.0); ``nan`` becomes None."""
        return {key: _json_number(value) for key, value in asdict(self).items()}


def measure_edits(
    originals: Sequence[Image],
    edited: Sequence[Image],
    masks: Sequence[Mask],
    *,
    dilate: int = DEFAULT_DILATE,
) -> list[EditMetrics]:
    """Measure each edit against its original, outside and at the boundary of its mask grown by
    ``dilate`` px (use the inpainter's ``InpaintConfig.dilate``)."""
    if not len(originals) == len(edited) == len(masks):
        raise ValueError(
            f"measure_edits: got {len(originals)} originals, {len(edited)} edited images and "
            f"{len(masks)} masks; pass one of each per item."
        )
    results = []
    for i, (original, candidate, mask) in enumerate(zip(originals, edited, masks, strict=True)):
        ref = check_image(original, f"originals[{i}]")
        out = check_image(candidate, f"edited[{i}]")
        _same_shape(ref, out, f"measure_edits: edited[{i}]")
        grown = dilate_mask(check_mask(mask, ref.shape[:2], f"masks[{i}]"), dilate)
        outside = _outside(grown)
        # SSIM windows centred near the mask see the fill; keep them out, so an edit that is
        # lossless outside its mask scores exactly 1.
        window = np.ones((SSIM_WINDOW, SSIM_WINDOW), np.uint8)
        clear = _outside(np.asarray(cv2.dilate(grown, window), dtype=np.uint8))
        results.append(
            EditMetrics(
                psnr_outside=psnr(ref, out, outside),
                ssim_outside=ssim(ref, out, clear),
                seam=seam_score(out, grown),
                mask_fraction=float(np.count_nonzero(grown)) / float(grown.size),
                texture_in=texture_ratio(ref, grown),
                texture_out=texture_ratio(out, grown),
            )
        )
    return results


def measure_upscales(inputs: Sequence[Image], outputs: Sequence[Image]) -> list[UpscaleMetrics]:
    """Shrink each output back to its input's size and compare (consistency of the upscale)."""
    if len(inputs) != len(outputs):
        raise ValueError(f"measure_upscales: got {len(inputs)} inputs but {len(outputs)} outputs.")
    results = []
    for i, (source, upscaled) in enumerate(zip(inputs, outputs, strict=True)):
        small = check_image(source, f"inputs[{i}]")
        large = check_image(upscaled, f"outputs[{i}]")
        height, width = small.shape[:2]
        if large.shape[0] < height or large.shape[1] < width:
            raise ValueError(
                f"measure_upscales: outputs[{i}] {large.shape[:2]} is smaller than inputs[{i}] "
                f"{small.shape[:2]}; this measures upscales only."
            )
        back = np.asarray(
            cv2.resize(large, (width, height), interpolation=cv2.INTER_AREA), dtype=np.uint8
        )
        results.append(
            UpscaleMetrics(
                consistency_psnr=psnr(small, back),
                consistency_ssim=ssim(small, back),
                scale=max(large.shape[:2]) / max(height, width),
                detail_ratio=detail_level(back) / max(detail_level(small), TEXTURE_FLOOR),
            )
        )
    return results


def _pair(
    reference: Image, test: Image, region: Mask | None, name: str
) -> tuple[Image, Image, npt.NDArray[np.bool_] | None]:
    ref = check_image(reference, "reference")
    tst = check_image(test, "test")
    _same_shape(ref, tst, f"{name}: test")
    if region is None:
        return ref, tst, None
    return ref, tst, check_mask(region, ref.shape[:2], "region") > 0


def _same_shape(reference: Image, other: Image, what: str) -> None:
    if reference.shape != other.shape:
        raise ValueError(
            f"{what} has shape {other.shape} but its reference has {reference.shape}; compare "
            "images of the same size (resize first)."
        )


def _luma(image: Image) -> FloatArray:
    """BT.601 luminance in 0..255 (float64)."""
    rgb = image.astype(np.float64)
    return 0.299 * rgb[:, :, 0] + 0.587 * rgb[:, :, 1] + 0.114 * rgb[:, :, 2]


def _ssim_map(reference: FloatArray, test: FloatArray) -> FloatArray:
    side = min(reference.shape)
    window = min(SSIM_WINDOW, side if side % 2 else side - 1)
    if window >= 3:
        _, score_map = _structural_similarity(
            reference, test, win_size=window, data_range=255.0, full=True
        )
        return np.asarray(score_map, dtype=np.float64)
    # Too small for a sliding window: one window over the whole image.
    c1, c2 = (0.01 * 255.0) ** 2, (0.03 * 255.0) ** 2
    mu_x, mu_y = float(reference.mean()), float(test.mean())
    var_x, var_y = float(reference.var()), float(test.var())
    cov = float(((reference - mu_x) * (test - mu_y)).mean())
    value = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / (
        (mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2)
    )
    return np.full(reference.shape, value, dtype=np.float64)


def _outside(mask: Mask) -> Mask:
    return np.where(mask > 0, np.uint8(0), np.uint8(255)).astype(np.uint8)


def _disc(radius: int) -> npt.NDArray[np.uint8]:
    side = 2 * radius + 1
    return np.asarray(cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (side, side)), dtype=np.uint8)


def _json_number(value: float) -> float | None:
    if math.isnan(value):
        return None
    if math.isinf(value):
        return PSNR_CAP if value > 0 else -PSNR_CAP
    return float(value)
