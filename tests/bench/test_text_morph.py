"""MorphTextDetector (classical): the processor suite, then detection quality by pixel recall."""

from __future__ import annotations

import numpy as np
import pytest

from bench.text_morph import MorphTextDetector, MorphTextDetectorConfig
from processors.text import TextResult


@pytest.fixture(scope="module")
def detector() -> MorphTextDetector:
    return MorphTextDetector()


def _same(first: TextResult, second: TextResult) -> bool:
    return (
        np.array_equal(first.mask, second.mask)
        and first.boxes == second.boxes
        and first.coverage == second.coverage
    )


# -- the processor suite -----------------------------------------------------------------------


def test_smoke(detector, captioned):
    (result,) = detector([captioned.image])
    assert isinstance(result, TextResult)
    assert result.mask.shape == captioned.image.shape[:2]
    assert result.mask.dtype == np.uint8
    assert set(np.unique(result.mask)) <= {0, 255}
    assert result.found
    assert all(len(box) == 4 and all(isinstance(v, int) for v in box) for box in result.boxes)
    assert result.coverage == pytest.approx(np.count_nonzero(result.mask) / result.mask.size)
    assert isinstance(MorphTextDetector.version, str)
    assert MorphTextDetector.version


def test_empty_batch(detector):
    assert detector([]) == []


@pytest.mark.parametrize(
    ("bad", "error", "words"),
    [
        ("not an image", TypeError, "numpy array"),
        (np.zeros((32, 32), np.uint8), ValueError, "(H, W, 3)"),
        (np.zeros((32, 32, 4), np.uint8), ValueError, "(H, W, 3)"),
        (np.zeros((32, 32, 3), np.float32), ValueError, "uint8"),
        (np.zeros((0, 32, 3), np.uint8), ValueError, "empty side"),
    ],
)
def test_bad_input(detector, astronaut, bad, error, words):
    with pytest.raises(error, match=r"images\[1\]") as info:
        detector([astronaut, bad])
    assert words in str(info.value)


@pytest.mark.parametrize(
    "knobs",
    [
        {"min_glyph_height": 0.3, "max_glyph_height": 0.2},
        {"min_glyph_px": 2},
        {"min_contrast": 0.0},
        {"min_glyphs": 7, "strong_glyphs": 6},
        {"max_colour_spread": -1.0},
        {"angles": ()},
        {"angles": (120.0,)},
        {"dilation": -1},
        {"work_size": 16},
    ],
)
def test_bad_config(knobs):
    with pytest.raises(ValueError, match="MorphTextDetectorConfig"):
        MorphTextDetectorConfig(**knobs)


def test_batch_of_one_equals_batch_of_many(detector, captioned, photo):
    images = [captioned.image, photo("chelsea"), captioned.clean]
    together = detector(images)
    alone = [detector([image])[0] for image in images]
    assert len(together) == len(images)
    assert all(_same(a, b) for a, b in zip(together, alone, strict=True))


@pytest.mark.parametrize("view", ["flipped", "transposed"])
def test_non_contiguous_input(detector, captioned, view):
    image = captioned.image[:, ::-1] if view == "flipped" else captioned.image.transpose(1, 0, 2)
    assert not image.flags.c_contiguous
    (strided,) = detector([image])
    (contiguous,) = detector([np.ascontiguousarray(image)])
    assert _same(strided, contiguous)


def test_deterministic(detector, captioned):
    assert _same(detector([captioned.image])[0], detector([captioned.image])[0])


def test_tiny_images_are_handled(detector):
    results = detector([np.zeros((1, 1, 3), np.uint8), np.full((5, 3, 3), 200, np.uint8)])
    assert [r.found for r in results] == [False, False]
    assert results[1].mask.shape == (5, 3)


# -- detection quality -------------------------------------------------------------------------


def test_finds_outlined_caption(detector, captioned, overlay):
    (result,) = detector([captioned.image])
    assert overlay.recall(result.mask, captioned.glyphs) >= 0.9
    # The mask also covers the outline and shadow, which inpainting must remove too.
    assert overlay.recall(result.mask, captioned.touched) >= 0.9
    assert len(result.boxes) == 1
    # ... without spreading over the photo: a few px of dilation around what was drawn.
    assert result.coverage < 2.0 * np.count_nonzero(captioned.touched) / captioned.touched.size


def test_finds_timestamp(detector, photo, overlay):
    scene = overlay.timestamp(photo("chelsea"))  # orange digits on a beige blur
    (result,) = detector([scene.image])
    assert overlay.recall(result.mask, scene.glyphs) >= 0.9
    x, y, _, _ = result.boxes[0]
    assert x > scene.image.shape[1] // 2
    assert y > scene.image.shape[0] // 2


def test_finds_dark_text_on_light_bar(detector, photo, overlay):
    scene = overlay.bar_caption(photo("coffee"), "Handmade ceramic cup, 250 ml", 340, size=26)
    (result,) = detector([scene.image])
    assert overlay.recall(result.mask, scene.glyphs) >= 0.9


def test_finds_promo_label(detector, photo, overlay):
    scene = overlay.promo(photo("coffee"), "SALE -50%", (30, 30))
    (result,) = detector([scene.image])
    assert overlay.recall(result.mask, scene.glyphs) >= 0.9


def test_finds_watermark_on_plain_background(detector, smooth, overlay):
    # Best effort: semi-transparent rotated text is found on studio backgrounds, not on busy
    # photos (see the module docstring).
    scene = overlay.watermark(smooth, "© SAMPLE", size=40, angle=30, alpha=0.35, fill=(0, 0, 0))
    (result,) = detector([scene.image])
    assert overlay.recall(result.mask, scene.glyphs) >= 0.9


def test_large_image_is_detected_at_work_size(captioned, overlay):
    small = MorphTextDetector(MorphTextDetectorConfig(work_size=256))
    (result,) = small([captioned.image])  # 384 px wide: detected at 256, mask scaled back
    assert result.mask.shape == captioned.image.shape[:2]
    assert overlay.recall(result.mask, captioned.glyphs) >= 0.9
    x, y, w, h = result.boxes[0]
    assert x >= 0
    assert y >= 0
    assert x + w <= captioned.image.shape[1]
    assert y + h <= captioned.image.shape[0]


@pytest.mark.parametrize(
    "name", ["grass", "gravel", "brick", "astronaut", "coffee", "chelsea", "rocket"]
)
def test_leaves_clean_images_alone(detector, photo, name):
    (result,) = detector([photo(name)])
    assert result.coverage < 0.005


def test_leaves_clean_astronaut_crop_alone(detector, captioned):
    (result,) = detector([captioned.clean])
    assert result.coverage < 0.005
