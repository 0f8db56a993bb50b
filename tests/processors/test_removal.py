"""Text removal (processors.removal): the regions it fills, and that it is the fill followed by
the un-blending with a refill by the same inpainter."""

from __future__ import annotations

import numpy as np
import pytest

from processors.inpaint import InpaintConfig, Inpainter, dilate_mask, trim_text_mask
from processors.removal import TextRemoval
from processors.unblend import Unblender


def _caption():
    """A flat grey image with a semi-transparent white bar, and a mask a little wider than it."""
    rng = np.random.default_rng(0)
    image = np.clip(rng.normal(110, 6, (48, 64, 3)), 0, 255).astype(np.uint8)
    image[20:28, 12:52] = (0.5 * image[20:28, 12:52] + 0.5 * 255).astype(np.uint8)
    mask = np.zeros((48, 64), np.uint8)
    mask[18:30, 10:54] = 255
    return image, mask


def test_regions_trim_the_text_and_grow_the_objects():
    image, text = _caption()
    objects = np.zeros_like(text)
    objects[2:6, 2:6] = 255
    regions = TextRemoval.regions(image, text, objects)
    trimmed = trim_text_mask(image, text)
    grown = dilate_mask(objects, 3)
    np.testing.assert_array_equal(regions.fill, trimmed | grown)
    np.testing.assert_array_equal(regions.overlays, trimmed & ~grown)


def test_regions_without_objects_are_the_trimmed_text():
    image, text = _caption()
    regions = TextRemoval.regions(image, text)
    np.testing.assert_array_equal(regions.fill, trim_text_mask(image, text))
    np.testing.assert_array_equal(regions.overlays, regions.fill)


@pytest.mark.parametrize("unblend", [True, False])
def test_removal_is_the_fill_then_the_unblending(unblend):
    image, text = _caption()
    fill = TextRemoval.regions(image, text).fill
    inpainter = Inpainter(InpaintConfig(dilate=0))
    expected = inpainter([image], [fill])
    if unblend:
        expected = Unblender(refill=inpainter)([image], [fill], expected)
    removal = TextRemoval.from_config(InpaintConfig(), unblend=unblend)
    np.testing.assert_array_equal(removal([image], [fill])[0], expected[0])
    assert removal.version == inpainter.version + (f"+{Unblender.version}" if unblend else "")


def test_an_inpainter_that_grows_masks_is_refused():
    with pytest.raises(ValueError, match="dilate=0"):
        TextRemoval(Inpainter(InpaintConfig()))
