"""The overlay pixels next to a text mask that it missed, where the background is smooth.

On a flat or gradient render (a studio backdrop, a product shot's sweep) a semi-transparent
watermark's grey crosses the background's own brightness somewhere: its strokes fade to nothing
there and come back with the other polarity, and the detector's ink step and the segmenter lose
the pieces around the crossing and the thin ends of strokes. The removal would leave them on
the picture, and its trim (:func:`processors.inpaint.trim_text_mask`) peels further into the
overlay through them (a missed stroke pixel is "background" that the masked pixel beside it
matches). On such a background what an overlay changed can be read off directly, because the
background is locally a plane in colour. :func:`complete_on_smooth`:

1. **Smooth parts.** A connected part of the mask is on a smooth background when at least
   ``SMOOTH_SHARE`` of the pixels within ``reach`` px of it have a texture level
   (:func:`processors.inpaint.texture_level`: how far a pixel is from its closest neighbour,
   averaged over a small window) of at most ``SMOOTH_LEVEL``. A gradient's 8-bit steps give
   0.1-0.4; a photo's grain is at least 1 almost everywhere, so photos are left as they are.
   The test is per part, not per pixel: the edges of a missed stroke read as texture.
2. **Background.** Per channel, a plane fitted around each pixel by least squares, weighted by
   a Gaussian of ``SIGMA`` px, to the pixels outside the mask grown by a pixel (normalised
   convolution of the first order: the weighted moments are Gaussian blurs); fitted again
   twice without the pixels more than ``INLIER`` levels off the last fit (the missed overlay
   itself pulls the first fit towards it).
3. **Outliers.** Smooth pixels outside the mask that differ from the plane by more than
   ``contrast`` levels in some channel, unless a background pixel (an inlier of the fit)
   within ``MATCH`` px has their colour within ``INLIER`` levels: that is the background
   changing faster than a plane (the gap between a label and a product's edge), not ink.
4. **Added.** Connected groups of outliers that touch the mask and lie wholly within
   ``reach`` px of it (a group running further is an edge of the background), grown by
   ``GROW`` px for the antialiased fringe.

Hand-written: no library in the project's dependencies fits a local polynomial to the known
pixels of a masked image (OpenCV's and scikit-image's inpainting fill the mask, they do not
test the pixels outside it), and the weighted moments are six Gaussian blurs per pass. On the
quality corpus (``bench/quality.py``) it adds pixels on the renders only: every photo's grain
fails the smoothness test of step 1, so photos keep the mask they had.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from processors.inpaint import box_around, dilate_mask, texture_level
from processors.tensors import Image, Mask

__all__ = ["complete_on_smooth"]

FloatArray = npt.NDArray[np.float64]

SMOOTH_LEVEL = 1.0
"""Most texture level (levels) of a smooth pixel."""
SMOOTH_SHARE = 0.9
"""Least share of smooth pixels around a mask part for it to be completed."""
SIGMA = 6.0
"""Gaussian weight (px) of the local plane fit."""
FIT_PASSES = 3
"""Plane fits: the first over every pixel outside the mask, the others over its inliers."""
INLIER = 2.0
"""Most difference (levels, largest channel) of a background pixel from the plane."""
MATCH = 3
"""Radius (px) within which an inlier of the same colour makes an outlier background."""
GROW = 2
"""Pixels the added groups are grown by."""
_MIN_WEIGHT = 0.05
"""Least share of a pixel's Gaussian window that must be fitted pixels for its plane to count."""
TILE = 512
"""Side (px) of the tiles the fit runs in, so that memory stays bounded on large renders."""
_HALO = FIT_PASSES * (int(4 * SIGMA) + 1) + MATCH
"""Px around a tile that its result depends on: OpenCV's float64 Gaussian reaches 4 sigma,
once per pass of the fit, and the inlier match reaches ``MATCH``."""


def complete_on_smooth(image: Image, mask: Mask, reach: int, contrast: float) -> Mask:
    """``mask`` (HW uint8, 255 = text) with the overlay pixels within ``reach`` px of it that
    it missed on a smooth background (see the module docstring); ``mask`` itself when there
    are none. ``contrast`` is the least difference (levels) from the background plane."""
    selected = mask > 0
    if reach <= 0 or not selected.any():
        return mask
    margin = int(3 * SIGMA) + MATCH
    box = box_around(selected, reach + margin)
    masked = selected[box]
    crop = image[box]
    outside = ~masked
    distance = cv2.distanceTransform(outside.astype(np.uint8), cv2.DIST_L2, 5)
    band = outside & (distance <= reach)
    smooth = _smooth_parts(crop, masked, band)
    if not (smooth & band).any():
        return mask
    # The plane fit on the box around the smooth band only, with room for the Gaussian.
    fit_box = box_around(smooth & band, margin)
    sub = crop[fit_box]
    near = _grown(masked[fit_box], 1)
    fitted = outside[fit_box] & ~near
    allowed = smooth[fit_box] & outside[fit_box]
    outliers = np.zeros(fitted.shape, dtype=bool)
    # In tiles (with a halo that every pass of the fit reads) so that memory stays bounded.
    height, width = fitted.shape
    for y in range(0, height, TILE):
        for x in range(0, width, TILE):
            rows = slice(max(0, y - _HALO), min(height, y + TILE + _HALO))
            cols = slice(max(0, x - _HALO), min(width, x + TILE + _HALO))
            found = _outliers(sub[rows, cols], fitted[rows, cols], allowed[rows, cols], contrast)
            core = (
                slice(y - rows.start, y - rows.start + TILE),
                slice(x - cols.start, x - cols.start + TILE),
            )
            outliers[y : y + TILE, x : x + TILE] = found[core]
    added = _touching_within(outliers, near, distance[fit_box] <= reach)
    if not added.any():
        return mask
    out = mask.copy()
    window = out[box][fit_box]
    window[_grown(added, GROW) & ~masked[fit_box]] = 255
    return out


def _outliers(
    crop: Image, fitted: npt.NDArray[np.bool_], allowed: npt.NDArray[np.bool_], contrast: float
) -> npt.NDArray[np.bool_]:
    """The ``allowed`` pixels more than ``contrast`` levels off the robust plane fitted to the
    ``fitted`` pixels, less those an inlier nearby matches (steps 2 and 3)."""
    values = crop.astype(np.float64)
    known = fitted
    difference = np.zeros(fitted.shape)
    usable = np.zeros(fitted.shape, dtype=bool)
    for _ in range(FIT_PASSES):
        plane, weight = _plane_fit(values, known)
        difference = np.abs(values - plane).max(axis=2)
        usable = weight >= _MIN_WEIGHT
        known = fitted & usable & (difference <= INLIER)
    outliers = allowed & usable & (difference > contrast)
    outliers &= ~_matched(values, known, outliers)
    return outliers


def _smooth_parts(
    crop: Image, masked: npt.NDArray[np.bool_], band: npt.NDArray[np.bool_]
) -> npt.NDArray[np.bool_]:
    """The unmasked pixels whose nearest mask part has a smooth band around it."""
    level = texture_level(crop.astype(np.int16), ~masked)
    flat = level <= SMOOTH_LEVEL
    count, parts = cv2.connectedComponents(masked.astype(np.uint8), connectivity=8)
    # Each unmasked pixel's nearest mask pixel (its index in scan order), then that pixel's part.
    _, nearest = cv2.distanceTransformWithLabels(
        (~masked).astype(np.uint8), cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL
    )
    owner = parts[masked][nearest - 1]
    total = np.bincount(owner[band], minlength=count)
    calm = np.bincount(owner[band & flat], minlength=count)
    part_smooth = calm >= SMOOTH_SHARE * np.maximum(total, 1)
    smooth: npt.NDArray[np.bool_] = part_smooth[owner] & ~masked
    return smooth


def _plane_fit(values: FloatArray, known: npt.NDArray[np.bool_]) -> tuple[FloatArray, FloatArray]:
    """Per pixel and channel, the value at that pixel of the plane fitted to ``known`` pixels
    under a Gaussian weight of ``SIGMA`` px around it; and the window's share of known pixels."""
    height, width = known.shape
    # Coordinates in units of SIGMA about the middle keep the 3x3 systems well conditioned.
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    xs = (xs - width / 2) / SIGMA
    ys = (ys - height / 2) / SIGMA
    weight = known.astype(np.float64)
    # The symmetric normal matrix [[s, sx, sy], [sx, sxx, sxy], [sy, sxy, syy]] of the
    # weighted moments, inverted in closed form (its adjugate over its determinant): one
    # batched LAPACK solve per pixel costs about five times as much.
    s, sx, sy = _blur(weight), _blur(weight * xs), _blur(weight * ys)
    sxx, sxy, syy = _blur(weight * xs * xs), _blur(weight * xs * ys), _blur(weight * ys * ys)
    a00 = sxx * syy - sxy * sxy
    a01 = sy * sxy - sx * syy
    a02 = sx * sxy - sy * sxx
    a11 = s * syy - sy * sy
    a12 = sx * sy - s * sxy
    a22 = s * sxx - sx * sx
    det = s * a00 + sx * a01 + sy * a02
    det = np.where(np.abs(det) > 1e-12, det, np.inf)
    # The plane's value at the pixel is [1, x, y] M^-1 [sum w v, sum w x v, sum w y v].
    k0 = (a00 + a01 * xs + a02 * ys) / det
    k1 = (a01 + a11 * xs + a12 * ys) / det
    k2 = (a02 + a12 * xs + a22 * ys) / det
    plane = np.empty(values.shape)
    for c in range(values.shape[2]):
        v = weight * values[..., c]
        plane[..., c] = k0 * _blur(v) + k1 * _blur(v * xs) + k2 * _blur(v * ys)
    return plane, s


def _blur(values: FloatArray) -> FloatArray:
    return np.asarray(
        cv2.GaussianBlur(values, (0, 0), sigmaX=SIGMA, borderType=cv2.BORDER_REFLECT),
        dtype=np.float64,
    )


def _matched(
    values: FloatArray, inliers: npt.NDArray[np.bool_], candidates: npt.NDArray[np.bool_]
) -> npt.NDArray[np.bool_]:
    """The ``candidates`` that some inlier within ``MATCH`` px matches within ``INLIER``
    levels (looked up for the candidates only: they are few)."""
    height, width = inliers.shape
    ys, xs = np.nonzero(candidates)
    own = values[ys, xs]
    hit = np.zeros(ys.shape, dtype=bool)
    for dy in range(-MATCH, MATCH + 1):
        for dx in range(-MATCH, MATCH + 1):
            if dy * dy + dx * dx > MATCH * MATCH:
                continue
            oy = np.clip(ys + dy, 0, height - 1)
            ox = np.clip(xs + dx, 0, width - 1)
            close = np.abs(own - values[oy, ox]).max(axis=1) <= INLIER
            hit |= inliers[oy, ox] & close
    matched = np.zeros(candidates.shape, dtype=bool)
    matched[ys[hit], xs[hit]] = True
    return matched


def _touching_within(
    outliers: npt.NDArray[np.bool_], near: npt.NDArray[np.bool_], within: npt.NDArray[np.bool_]
) -> npt.NDArray[np.bool_]:
    """The 8-connected groups of ``outliers`` that reach ``near`` (the mask grown by a pixel:
    they touch it) and lie inside ``within``."""
    count, groups = cv2.connectedComponents(outliers.astype(np.uint8), connectivity=8)
    touching = np.zeros(count, dtype=bool)
    touching[np.unique(groups[near & outliers])] = True
    beyond = np.zeros(count, dtype=bool)
    beyond[np.unique(groups[outliers & ~within])] = True
    keep = touching & ~beyond
    keep[0] = False
    added: npt.NDArray[np.bool_] = keep[groups]
    return added


def _grown(selected: npt.NDArray[np.bool_], radius: int) -> npt.NDArray[np.bool_]:
    """``selected`` grown by ``radius`` px: :func:`processors.inpaint.dilate_mask` on booleans."""
    grown: npt.NDArray[np.bool_] = (
        dilate_mask(np.where(selected, np.uint8(255), np.uint8(0)), radius) > 0
    )
    return grown
