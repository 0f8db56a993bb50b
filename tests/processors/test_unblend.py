"""processors.unblend: semi-transparent overlays recovered instead of filled.

Judged by metrics against the clean image, never by exact pixels (STYLE.md), plus the
processor suite: empty batch, bad input, batch of one equals batch of many, non-contiguous
input, determinism.
"""

from __future__ import annotations

import numpy as np
import pytest

from processors.inpaint import InpaintConfig, Inpainter, dilate_mask
from processors.quality import psnr
from processors.unblend import UnblendConfig, Unblender, estimate_overlay

GAIN = 3.0
"""dB by which un-blending must beat the fill inside a watermark's mask on a photo (measured:
+5.5 on the rocket crop, +8 on the coffee crop)."""


@pytest.fixture(scope="module")
def fill():
    return Inpainter(InpaintConfig(dilate=0))


@pytest.fixture(scope="module")
def unblender():
    return Unblender()


def _filled(fill, scene, grow=2):
    region = dilate_mask(scene.touched, grow)
    return region, fill([scene.image], [region])[0]


@pytest.fixture(scope="module")
def coffee_mark(photo, overlay, fill):
    scene = overlay.watermark(photo("coffee")[50:350, 100:500].copy())
    return (scene, *_filled(fill, scene))


@pytest.mark.parametrize(
    ("name", "colour", "alpha"),
    [("rocket", (255, 255, 255), 0.4), ("coffee", (128, 128, 128), 0.35)],
)
def test_recovers_a_watermark_on_a_photo_better_than_the_fill(
    photo, overlay, fill, unblender, name, colour, alpha
):
    scene = overlay.watermark(photo(name)[50:350, 100:500].copy(), fill=colour, alpha=alpha)
    region, filled = _filled(fill, scene)
    (out,) = unblender([scene.image], [region], [filled])
    assert psnr(scene.clean, out, region) > psnr(scene.clean, filled, region) + GAIN
    # Outside the region the result is the fill, byte for byte.
    assert np.array_equal(out[region == 0], filled[region == 0])


@pytest.mark.parametrize(("colour", "alpha"), [((255, 255, 255), 0.4), ((128, 128, 128), 0.35)])
def test_estimates_a_watermark_on_a_smooth_background(smooth, overlay, fill, colour, alpha):
    scene = overlay.watermark(smooth.copy(), fill=colour, alpha=alpha)
    region, filled = _filled(fill, scene)
    found = estimate_overlay(
        scene.image.astype(np.float64), filled.astype(np.float64), region > 0
    )
    assert found is not None
    assert abs(found.colour - colour[0]) < 3
    assert abs(found.alpha - alpha) < 0.02
    assert found.peak > 0.5
    (out,) = Unblender()([scene.image], [region], [filled])
    # The fill is already near exact here; un-blending stays within rounding of it.
    assert psnr(scene.clean, out, region) > 50


@pytest.mark.parametrize("kind", ["timestamp", "caption"])
def test_opaque_text_is_left_to_the_fill(photo, overlay, fill, unblender, kind):
    base = photo("astronaut")[:256, :384].copy()
    scene = (
        overlay.timestamp(base) if kind == "timestamp"
        else overlay.caption(base, "SALE today", (40, 150), size=30)
    )
    region, filled = _filled(fill, scene)
    (out,) = unblender([scene.image], [region], [filled])
    assert np.array_equal(out, filled)


def test_empty_batch_and_empty_region(unblender, coffee_mark):
    assert unblender([], [], []) == []
    scene, region, filled = coffee_mark
    (out,) = unblender([scene.image], [np.zeros_like(region)], [filled])
    assert np.array_equal(out, filled)
    assert out is not filled


def test_batch_of_one_equals_batch_of_many_and_non_contiguous_input(unblender, coffee_mark):
    scene, region, filled = coffee_mark
    (alone,) = unblender([scene.image], [region], [filled])
    many = unblender([filled, scene.image], [region, region], [filled, filled])
    assert np.array_equal(many[1], alone)
    assert np.array_equal(many[0], filled)  # nothing changed from the fill: nothing to find
    # A non-contiguous view (every other column of an image twice as wide) gives the same.
    wide = np.repeat(scene.image, 2, axis=1)
    strided = wide[:, ::2]
    assert not strided.flags.c_contiguous
    (again,) = unblender([strided], [np.asfortranarray(region)], [filled])
    assert np.array_equal(again, alone)


def test_bad_input(unblender, coffee_mark):
    scene, region, filled = coffee_mark
    with pytest.raises(ValueError, match="one region and one fill"):
        unblender([scene.image], [region], [])
    with pytest.raises(ValueError, match="fill has shape"):
        unblender([scene.image], [region], [filled[:10]])
    with pytest.raises(ValueError, match="region"):
        unblender([scene.image], [region[:10]], [filled])
    with pytest.raises((TypeError, ValueError)):
        unblender([scene.image[..., 0]], [region], [filled])


@pytest.mark.parametrize(
    "knobs",
    [{"min_area": 0}, {"min_alpha": 0.9}, {"max_alpha": 1.0}, {"min_peak": 1.5},
     {"max_line_distance": 0}, {"iterations": 0}, {"max_texture": 0}],
)
def test_bad_config(knobs):
    with pytest.raises(ValueError, match="UnblendConfig"):
        UnblendConfig(**knobs)


def test_a_stricter_gate_leaves_the_fill(coffee_mark):
    scene, region, filled = coffee_mark
    (out,) = Unblender(UnblendConfig(min_peak=0.99))([scene.image], [region], [filled])
    assert np.array_equal(out, filled)
