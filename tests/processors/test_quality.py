"""Quality metrics: PSNR/SSIM against known values, region handling, seams, measure_* records."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest

from processors.inpaint import Inpainter, dilate_mask
from processors.quality import (
    PSNR_CAP,
    EditMetrics,
    UpscaleMetrics,
    measure_edits,
    measure_upscales,
    psnr,
    seam_score,
    ssim,
)
from processors.upscale import Upscaler


@pytest.fixture(scope="module")
def grey() -> np.ndarray:
    """Mid-grey, so that +-k noise never clips."""
    return np.full((64, 96, 3), 128, np.uint8)


def _noisy(image: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).integers(-k, k + 1, size=image.shape)
    return np.clip(image.astype(np.int64) + noise, 0, 255).astype(np.uint8)


def _left_half(shape: tuple[int, ...]) -> np.ndarray:
    region = np.zeros(shape[:2], np.uint8)
    region[:, : shape[1] // 2] = 255
    return region


# -- psnr ----------------------------------------------------------------------------------------


def test_psnr_identical_is_inf(astronaut):
    assert psnr(astronaut, astronaut) == math.inf


@pytest.mark.parametrize("k", [2, 5, 20])
def test_psnr_of_uniform_noise_is_near_the_analytic_value(grey, k):
    # Integers uniform in [-k, k] have variance k (k + 1) / 3.
    expected = 10 * math.log10(255**2 / (k * (k + 1) / 3))
    assert psnr(grey, _noisy(grey, k)) == pytest.approx(expected, abs=0.1)


def test_psnr_region(grey):
    noisy = grey.copy()
    noisy[:, 48:] = _noisy(grey[:, 48:], 5)  # noise on the right half only
    left = _left_half(grey.shape)
    assert psnr(grey, noisy, left) == math.inf
    right = 255 - left
    assert psnr(grey, noisy, right) == pytest.approx(psnr(grey[:, 48:], noisy[:, 48:]))
    assert psnr(grey, noisy, right > 0) == psnr(grey, noisy, right)  # bool regions work too
    assert math.isnan(psnr(grey, noisy, np.zeros(grey.shape[:2], np.uint8)))


def test_psnr_is_symmetric(astronaut):
    other = _noisy(astronaut, 10)
    assert psnr(astronaut, other) == psnr(other, astronaut)


# -- ssim ----------------------------------------------------------------------------------------


def test_ssim_identical_is_one(astronaut):
    assert ssim(astronaut, astronaut) == pytest.approx(1.0, abs=1e-12)


def test_ssim_outside_an_edit_is_never_above_one(astronaut):
    # Unclamped, float rounding in the SSIM map can make the mean over the pixels an edit left
    # alone, beside the windows it changed, a hair above 1 (1.0000000000000009); the result
    # events must never report more than 1.
    rng = np.random.default_rng(7)
    scores = []
    for _ in range(8):
        y, x = (int(v) for v in rng.integers(0, 400, 2))
        edited = astronaut.copy()
        edited[y : y + 30, x : x + 50] = rng.integers(0, 256, (30, 50, 3), dtype=np.uint8)
        outside = np.full(astronaut.shape[:2], 255, np.uint8)
        outside[max(0, y - 5) : y + 35, max(0, x - 5) : x + 55] = 0
        scores.append(ssim(astronaut, edited, outside))
    assert max(scores) <= 1.0
    assert min(scores) > 0.999


def test_ssim_drops_with_noise(astronaut):
    mild, strong = ssim(astronaut, _noisy(astronaut, 5)), ssim(astronaut, _noisy(astronaut, 40))
    assert 1.0 > mild > strong > 0.0


def test_ssim_region(astronaut):
    noisy = astronaut.copy()
    noisy[:, 256:] = _noisy(astronaut[:, 256:], 40)
    left = _left_half(astronaut.shape)
    left[:, 250:] = 0  # keep clear of windows that straddle the noisy half
    assert ssim(astronaut, noisy, left) == pytest.approx(1.0, abs=1e-12)
    assert ssim(astronaut, noisy, 255 - _left_half(astronaut.shape)) < 0.9
    assert math.isnan(ssim(astronaut, noisy, np.zeros(astronaut.shape[:2], np.uint8)))


@pytest.mark.parametrize("shape", [(1, 1, 3), (2, 5, 3), (5, 5, 3), (6, 40, 3)])
def test_ssim_small_images(shape):
    image = np.arange(np.prod(shape), dtype=np.int64).reshape(shape).astype(np.uint8)
    assert ssim(image, image) == pytest.approx(1.0, abs=1e-12)
    assert ssim(image, 255 - image) < 1.0


def test_ssim_is_on_luminance(grey):
    base = _noisy(grey, 20)
    chroma = base.astype(np.int64)
    chroma[:, :, 0] += 20
    chroma[:, :, 2] -= 52  # 0.299 * 20 == 0.114 * 52.4: luminance kept
    brighter = base.astype(np.int64) + 20
    kept = ssim(base, chroma.astype(np.uint8))
    assert kept > 0.999
    assert ssim(base, brighter.astype(np.uint8)) < kept - 0.005


# -- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize("metric", [psnr, ssim])
def test_metrics_reject_bad_input(metric, astronaut):
    with pytest.raises(TypeError, match="reference"):
        metric("image", astronaut)
    with pytest.raises(ValueError, match="shape"):
        metric(astronaut, astronaut[:-1])
    with pytest.raises(ValueError, match="uint8"):
        metric(astronaut, astronaut.astype(np.float64))
    with pytest.raises(ValueError, match=r"region.*expected shape"):
        metric(astronaut, astronaut, np.zeros((3, 3), np.uint8))


# -- seams ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["smooth", "photo"])
def damaged(request, smooth, photo, overlay):
    if request.param == "smooth":
        return overlay.caption(smooth, "Model X200 Pro", (40, 100), size=36)
    return overlay.caption(photo("chelsea")[:, 151:].copy(), "Original", (150, 60), size=28)


def test_seam_is_higher_for_a_flat_wrong_fill_than_for_an_inpaint(damaged):
    (inpainted,) = Inpainter()([damaged.image], [damaged.touched])
    grown = dilate_mask(damaged.touched, 3)
    flat = damaged.image.copy()
    flat[grown > 0] = (20, 200, 40)
    good, bad = measure_edits([damaged.image] * 2, [inpainted, flat], [damaged.touched] * 2)
    assert good.seam < 0.5
    assert bad.seam > 1.0
    assert bad.seam > good.seam + 1.0


def test_seam_score_edges(smooth):
    empty = np.zeros(smooth.shape[:2], np.uint8)
    assert seam_score(smooth, empty) == 0.0
    assert seam_score(smooth, empty + 255) == 0.0
    square = empty.copy()
    square[100:140, 100:160] = 255
    assert seam_score(smooth, square) == pytest.approx(0.0, abs=0.05)  # untouched: no seam


# -- measure_edits -------------------------------------------------------------------------------


def test_measure_edits_of_an_inpaint(captioned):
    (restored,) = Inpainter()([captioned.image], [captioned.touched])
    (metrics,) = measure_edits([captioned.image], [restored], [captioned.touched])
    assert isinstance(metrics, EditMetrics)
    assert metrics.psnr_outside == math.inf  # lossless outside the dilated mask
    assert metrics.ssim_outside == pytest.approx(1.0, abs=1e-12)
    grown = dilate_mask(captioned.touched, 3)
    assert metrics.mask_fraction == pytest.approx(np.count_nonzero(grown) / grown.size)
    record = metrics.to_dict()
    assert record["psnr_outside"] == PSNR_CAP
    assert json.loads(json.dumps(record, allow_nan=False)) == record


def test_measure_edits_lossy_outside_and_whole_mask(captioned):
    lossy = _noisy(captioned.image, 3)
    everything = np.full(captioned.image.shape[:2], 255, np.uint8)
    noisy, whole = measure_edits(
        [captioned.image] * 2, [lossy, lossy], [captioned.touched, everything]
    )
    assert 35.0 < noisy.psnr_outside < 60.0
    assert math.isnan(whole.psnr_outside)
    assert whole.mask_fraction == 1.0
    record = whole.to_dict()
    assert record["psnr_outside"] is None
    assert record["ssim_outside"] is None
    json.dumps([noisy.to_dict(), record], allow_nan=False)


def test_measure_edits_batch_and_views(captioned, smooth):
    (restored,) = Inpainter()([captioned.image], [captioned.touched])
    mask = np.zeros(smooth.shape[:2], np.uint8)
    mask[10:30, 10:50] = 255
    originals, edits, masks = (
        [captioned.image, smooth],
        [restored, smooth],
        [captioned.touched, mask],
    )
    together = measure_edits(originals, edits, masks)
    alone = [
        measure_edits([o], [e], [m])[0] for o, e, m in zip(originals, edits, masks, strict=True)
    ]
    assert together == alone
    assert measure_edits([], [], []) == []
    flipped = measure_edits(
        [captioned.image[:, ::-1]], [restored[:, ::-1]], [captioned.touched[:, ::-1]]
    )
    contiguous = measure_edits(
        [np.ascontiguousarray(captioned.image[:, ::-1])],
        [np.ascontiguousarray(restored[:, ::-1])],
        [np.ascontiguousarray(captioned.touched[:, ::-1])],
    )
    assert flipped == contiguous
    assert measure_edits(originals, edits, masks) == together  # deterministic


def test_measure_edits_rejects_bad_input(captioned):
    image, mask = captioned.image, captioned.touched
    with pytest.raises(ValueError, match="2 originals, 1 edited"):
        measure_edits([image, image], [image], [mask])
    with pytest.raises(ValueError, match=r"edited\[0\].*shape"):
        measure_edits([image], [image[:, :-1]], [mask])
    with pytest.raises(ValueError, match=r"masks\[0\].*expected shape"):
        measure_edits([image], [image], [mask[:-1]])


# -- measure_upscales ----------------------------------------------------------------------------


def test_measure_upscales(astronaut):
    small = astronaut[::4, ::4][:64, :96]
    outputs = [Upscaler()([small], scale=s)[0] for s in (2, 4)]
    metrics = measure_upscales([small, small], outputs)
    assert [m.scale for m in metrics] == [2.0, 4.0]
    assert all(isinstance(m, UpscaleMetrics) for m in metrics)
    assert all(m.consistency_psnr > 25.0 and m.consistency_ssim > 0.9 for m in metrics)
    records = [m.to_dict() for m in metrics]
    assert json.loads(json.dumps(records, allow_nan=False)) == records
    # Exact 2x replication shrinks back to the input exactly: inf, written as the cap.
    replicated = cv2.resize(small, (192, 128), interpolation=cv2.INTER_NEAREST)
    (exact,) = measure_upscales([small], [replicated])
    assert exact.consistency_psnr == math.inf
    assert exact.to_dict()["consistency_psnr"] == PSNR_CAP
    assert measure_upscales([], []) == []
    assert measure_upscales([small], [outputs[0]]) == metrics[:1]  # batch of one == many
    strided = measure_upscales([small[:, ::-1]], [outputs[0][:, ::-1]])
    contiguous = measure_upscales(
        [np.ascontiguousarray(small[:, ::-1])], [np.ascontiguousarray(outputs[0][:, ::-1])]
    )
    assert strided == contiguous


def test_measure_upscales_rejects_bad_input(astronaut):
    small = astronaut[:32, :32]
    with pytest.raises(ValueError, match="1 inputs but 2 outputs"):
        measure_upscales([small], [small, small])
    with pytest.raises(ValueError, match="smaller"):
        measure_upscales([small], [small[:16]])
    with pytest.raises(TypeError, match=r"outputs\[0\]"):
        measure_upscales([small], [[1, 2, 3]])
