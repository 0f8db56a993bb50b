"""Inpainter: the processor suite, preservation outside the mask, and restoration quality."""

from __future__ import annotations

import numpy as np
import pytest

from processors.inpaint import DEFAULT_DILATE, InpaintConfig, Inpainter, dilate_mask
from processors.quality import psnr
from processors.text import TextDetector


@pytest.fixture(scope="module")
def inpainter() -> Inpainter:
    return Inpainter()


@pytest.fixture(scope="module")
def text_on_smooth(smooth, overlay):
    return overlay.caption(smooth, "Model X200 Pro", (40, 100), size=36)


# -- the processor suite -----------------------------------------------------------------------


def test_smoke(inpainter, captioned):
    (out,) = inpainter([captioned.image], [captioned.touched])
    assert out.shape == captioned.image.shape
    assert out.dtype == np.uint8
    assert out.flags.c_contiguous
    assert not np.array_equal(out, captioned.image)
    assert inpainter.version == "inpaint-telea-1"
    assert Inpainter(InpaintConfig(method="ns")).version == "inpaint-ns-1"


def test_empty_batch(inpainter):
    assert inpainter([], []) == []


def test_bad_input(inpainter, captioned):
    image, mask = captioned.image, captioned.touched
    with pytest.raises(ValueError, match="2 images but 1 masks"):
        inpainter([image, image], [mask])
    with pytest.raises(TypeError, match=r"images\[0\]"):
        inpainter([image.tolist()], [mask])
    with pytest.raises(ValueError, match="uint8"):
        inpainter([image.astype(np.float32)], [mask])
    with pytest.raises(ValueError, match=r"masks\[0\].*expected shape"):
        inpainter([image], [mask[:-1]])
    with pytest.raises(ValueError, match=r"masks\[0\]"):
        inpainter([image], [np.stack([mask] * 3, axis=2)])
    with pytest.raises(ValueError, match=r"masks\[0\].*dtype"):
        inpainter([image], [mask.astype(np.float32)])
    with pytest.raises(TypeError, match=r"masks\[0\]"):
        inpainter([image], [None])


@pytest.mark.parametrize(
    "knobs", [{"method": "fast"}, {"radius": 0}, {"dilate": -1}], ids=["method", "radius", "dilate"]
)
def test_bad_config(knobs):
    with pytest.raises(ValueError, match="InpaintConfig"):
        InpaintConfig(**knobs)


def test_bool_mask_is_accepted(inpainter, captioned):
    (from_bool,) = inpainter([captioned.image], [captioned.touched > 0])
    (from_uint8,) = inpainter([captioned.image], [captioned.touched])
    assert np.array_equal(from_bool, from_uint8)


def test_batch_of_one_equals_batch_of_many(inpainter, captioned, text_on_smooth):
    images = [captioned.image, text_on_smooth.image, captioned.clean]
    masks = [captioned.touched, text_on_smooth.touched, np.zeros_like(captioned.touched)]
    together = inpainter(images, masks)
    alone = [inpainter([im], [m])[0] for im, m in zip(images, masks, strict=True)]
    assert all(np.array_equal(a, b) for a, b in zip(together, alone, strict=True))


@pytest.mark.parametrize("view", ["flipped", "transposed"])
def test_non_contiguous_input(inpainter, captioned, view):
    if view == "flipped":
        image, mask = captioned.image[:, ::-1], captioned.touched[:, ::-1]
    else:
        image, mask = captioned.image.transpose(1, 0, 2), captioned.touched.T
    (strided,) = inpainter([image], [mask])
    (contiguous,) = inpainter([np.ascontiguousarray(image)], [np.ascontiguousarray(mask)])
    assert np.array_equal(strided, contiguous)


def test_deterministic(inpainter, captioned):
    first = inpainter([captioned.image], [captioned.touched])[0]
    second = inpainter([captioned.image], [captioned.touched])[0]
    assert np.array_equal(first, second)


# -- preservation ------------------------------------------------------------------------------


def test_empty_mask_returns_an_identical_copy(inpainter, captioned):
    (out,) = inpainter([captioned.image], [np.zeros(captioned.image.shape[:2], np.uint8)])
    assert np.array_equal(out, captioned.image)
    assert out is not captioned.image
    assert not np.shares_memory(out, captioned.image)


@pytest.mark.parametrize("method", ["telea", "ns"])
@pytest.mark.parametrize("dilate", [0, DEFAULT_DILATE, 6])
def test_pixels_outside_the_dilated_mask_are_identical(captioned, method, dilate):
    inpainter = Inpainter(InpaintConfig(method=method, dilate=dilate))
    (out,) = inpainter([captioned.image], [captioned.touched])
    outside = dilate_mask(captioned.touched, dilate) == 0
    assert np.array_equal(out[outside], captioned.image[outside])
    assert not np.array_equal(out[~outside], captioned.image[~outside])


def test_dilate_mask():
    mask = np.zeros((9, 9), np.uint8)
    mask[4, 4] = 255
    assert np.array_equal(dilate_mask(mask, 0), mask)
    grown = dilate_mask(mask, 2)
    assert grown[4, 2] == grown[2, 4] == grown[4, 6] == 255  # 2 px along the axes
    assert grown[2, 2] == grown[6, 6] == 0  # an ellipse, not a square
    assert np.count_nonzero(grown[:, :2]) == np.count_nonzero(grown[:2, :]) == 0
    with pytest.raises(ValueError, match="pixels"):
        dilate_mask(mask, -1)


# -- restoration quality (by metrics, never exact pixels) ----------------------------------------


@pytest.mark.parametrize("method", ["telea", "ns"])
def test_restores_text_on_smooth_gradient(text_on_smooth, method):
    scene = text_on_smooth
    (restored,) = Inpainter(InpaintConfig(method=method))([scene.image], [scene.touched])
    region = scene.touched
    assert psnr(scene.clean, restored, region) > psnr(scene.clean, scene.image, region) + 10


@pytest.mark.parametrize("method", ["telea", "ns"])
def test_restores_text_on_photo(photo, overlay, method):
    scene = overlay.caption(photo("chelsea")[:, 151:].copy(), "Original", (150, 60), size=28)
    (restored,) = Inpainter(InpaintConfig(method=method))([scene.image], [scene.touched])
    region = scene.touched
    assert psnr(scene.clean, restored, region) > psnr(scene.clean, scene.image, region) + 10


def test_removes_detected_text(photo, overlay, inpainter):
    # The remove-text flow: the detector's mask (glyphs, outline, shadow) is what gets filled.
    scene = overlay.caption(photo("rocket")[:256, 128:512].copy(), "Free shipping", (40, 40))
    (found,) = TextDetector()([scene.image])
    (restored,) = inpainter([scene.image], [found.mask])
    region = scene.touched
    assert psnr(scene.clean, restored, region) > psnr(scene.clean, scene.image, region) + 10
