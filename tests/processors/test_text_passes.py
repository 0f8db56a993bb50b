"""The text detector's passes on small synthetic inputs with known answers: the segmenter pass
(with a stand-in recognizer, so what is read is fixed), mask painting under the segmenter's ink
limit, promo labels, the recognizer's decoding, DBNet's working sizes and the line geometry.
None of these tests loads the ONNX models."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from processors.text.config import TextDetectorConfig
from processors.text.dbnet import boost_size, normalise, rounded, work_size
from processors.text.geometry import (
    Region,
    bounds,
    disc,
    merge_touching,
    overlap,
    rescaled,
    rotated_region,
)
from processors.text.label import paint_label
from processors.text.paint import paint_region
from processors.text.recognizer import Reading, _judge, rec_crop
from processors.text.segmented import SegmenterPass


class _Reads:
    """A stand-in recognizer that reads every crop as several characters at ``confidence``."""

    def __init__(self, confidence: float) -> None:
        self.confidence = confidence
        self.calls: list[tuple[int, float]] = []

    def __call__(self, crops, min_confidence, min_chars):
        self.calls.append((len(crops), min_confidence))
        reading = Reading.TEXT if self.confidence >= min_confidence else Reading.DOUBTFUL
        return [reading] * len(crops)


def _letters(shape, x0, count, *, top=90, width=14, height=20, step=20, prob=0.9):
    """A probability map with ``count`` letter-sized blocks on a level line, and their mask."""
    blocks = np.zeros(shape, np.bool_)
    for k in range(count):
        blocks[top : top + height, x0 + k * step : x0 + k * step + width] = True
    return np.where(blocks, prob, 0.0).astype(np.float32), blocks


def _grown(blocks: np.ndarray, radius: int) -> np.ndarray:
    return cv2.dilate(blocks.astype(np.uint8), disc(radius)) > 0


# -- the segmenter pass ------------------------------------------------------------------------


def test_a_group_that_continues_a_known_line_needs_only_the_confirmed_confidence():
    # The segmenter draws eight letters; the other passes read a line over the middle of them.
    # Its drawing reads at 0.75: under segment_min_confidence (0.8), over the confirmed 0.7.
    prob, blocks = _letters((200, 260), 40, 8)
    image = np.full((200, 260, 3), 128, np.uint8)
    known = Region((117.0, 100.0), (1.0, 0.0), 60.0, 20.0, 0.0)
    confirmed = SegmenterPass(TextDetectorConfig(rings=False), _Reads(0.75))
    mask, boxes = confirmed(image, prob, 1.0, [known])
    # Its glyphs are kept, grown by ``dilation``; the line is the other passes' (no new box).
    assert_array_equal(mask > 0, _grown(blocks, 3))
    assert boxes == []
    off = TextDetectorConfig(rings=False, segment_confirmed_confidence=0.8)
    assert not SegmenterPass(off, _Reads(0.75))(image, prob, 1.0, [known])[0].any()
    # Without a known line it continues, the same drawing is not text.
    assert not confirmed(image, prob, 1.0, [])[0].any()


def test_a_group_read_as_text_is_masked_with_its_box():
    prob, blocks = _letters((200, 260), 40, 8)
    image = np.full((200, 260, 3), 128, np.uint8)
    mask, boxes = SegmenterPass(TextDetectorConfig(rings=False), _Reads(0.95))(image, prob, 1.0)
    assert_array_equal(mask > 0, _grown(blocks, 3))
    ((x, y, w, h),) = boxes
    ys, xs = np.nonzero(blocks)
    assert x <= xs.min()
    assert x + w > xs.max()
    assert y <= ys.min()
    assert y + h > ys.max()
    # Read as texture (low confidence), nothing is kept.
    assert not SegmenterPass(TextDetectorConfig(), _Reads(0.5))(image, prob, 1.0)[0].any()


def test_the_copyright_sign_before_a_segmented_line_is_found_in_the_image():
    # A faint "©" on grain just before a line that the segmenter drew: the segmenter's map has
    # nothing there, the ring search finds it in the image; nothing else changes.
    rng = np.random.default_rng(0)
    grain = cv2.GaussianBlur(rng.normal(0, 12, (200, 300)).astype(np.float32), (0, 0), 1.2)
    big = np.zeros((800, 1200), np.uint8)
    cv2.circle(big, (320, 400), 56, 255, 12)
    cv2.ellipse(big, (320, 400), (30, 30), 0, 50, 310, 255, 12)
    sign = cv2.resize(big, (300, 200), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    luma = (1 - 0.45 * sign) * (120 + grain) + 0.45 * sign * 255
    image = np.repeat(np.clip(luma, 0, 255).astype(np.uint8)[..., None], 3, axis=2)
    prob, blocks = _letters((200, 300), 120, 8, top=85, width=12, height=30, step=16)
    read = _Reads(0.95)
    (found, _) = SegmenterPass(TextDetectorConfig(), read)(image, prob, 1.0)
    (without, _) = SegmenterPass(TextDetectorConfig(rings=False), read)(image, prob, 1.0)
    assert_array_equal(without > 0, _grown(blocks, 3))
    drawn = sign > 0.5
    assert np.count_nonzero(found[drawn]) >= 0.95 * np.count_nonzero(drawn)
    assert found[100, 80] == 0  # the hole inside the "c" stays open
    added = (found > 0) & (without == 0)
    assert not added[:, 105:].any()  # only around the sign
    assert_array_equal(found[:, 105:], without[:, 105:])


# -- mask painting -----------------------------------------------------------------------------


@pytest.fixture
def two_strokes():
    """Two groups of dark 3 px strokes in a level box on flat grey (five 40 px long on the
    left, three 20 px long on the right), and the box's region."""
    image = np.full((120, 300, 3), 128, np.uint8)
    left = np.zeros((120, 300), np.bool_)
    right = np.zeros_like(left)
    for x in range(60, 110, 10):
        left[40:80, x : x + 3] = True
    for x in range(190, 220, 10):
        right[50:70, x : x + 3] = True
    image[left | right] = 20
    return image, left, right, Region((150.0, 60.0), (1.0, 0.0), 200.0, 40.0, 0.0)


def _painted(image, region, limit):
    cfg = TextDetectorConfig()
    mask = np.zeros(image.shape[:2], np.uint8)
    box = paint_region(cfg, mask, image, region, np.ones(image.shape[:2], np.uint8), limit)
    return mask > 0, box


def test_ink_beyond_the_segmenters_reach_is_dropped_whole(two_strokes):
    image, left, right, region = two_strokes
    free, box = _painted(image, region, None)
    assert box == (50, 40, 201, 41)
    assert free[left].all()
    assert free[right].all()
    # The segmenter sees most of the left strokes (over half the ink): the right group goes,
    # the left strokes stay whole, although the limit leaves out their bottom.
    limit = np.zeros(image.shape[:2], np.uint8)
    limit[30:72, 50:110] = 1
    limited, _ = _painted(image, region, limit)
    assert limited[left].all()
    assert not limited[right].any()
    assert not (limited & ~free).any()
    # Grown by dilation (3) and the shadow's share of the glyph height (0.15 * 40 / 2 = 3).
    assert not (limited & ~_grown(left, 6)).any()


def test_ink_of_a_line_the_segmenter_barely_sees_is_not_limited(two_strokes):
    image, left, right, region = two_strokes
    limit = np.zeros(image.shape[:2], np.uint8)
    assert np.count_nonzero(left[70:80]) < 0.5 * np.count_nonzero(left | right)
    limit[70:80, 50:110] = 1  # the bottom of the left strokes: under half the ink
    limited, _ = _painted(image, region, limit)
    free, _ = _painted(image, region, None)
    assert_array_equal(limited, free)


def test_a_flat_label_behind_text_is_masked_to_its_edge():
    image = np.full((160, 400, 3), (40, 90, 160), np.uint8)
    image[50:110, 100:300] = (230, 40, 40)  # the label
    image[70:90, 130:270:10] = 255  # its text
    region = Region((200.0, 80.0), (1.0, 0.0), 150.0, 30.0, 0.0)
    behind = image[68:92, 126:274].reshape(-1, 3)
    behind = behind[(behind != 255).any(axis=1)]
    mask = np.zeros((160, 400), np.uint8)
    assert paint_label(mask, image, region, behind, 14.0, 0)
    label = np.zeros((160, 400), np.uint8)
    label[50:110, 100:300] = 255
    assert_array_equal(mask, label)
    # On a gradient there is no edge to stop at: no label.
    sweep = np.repeat(np.linspace(0, 255, 400, dtype=np.uint8)[None, :, None], 160, 0)
    sweep = np.repeat(sweep, 3, axis=2)
    flat = np.zeros((160, 400), np.uint8)
    assert not paint_label(flat, sweep, region, sweep[70:90, 130:270].reshape(-1, 3), 14.0, 0)
    assert not flat.any()


# -- the recognizer, DBNet's sizes, geometry ---------------------------------------------------


def _steps(classes, confidence, count=6):
    steps = np.full((len(classes), count), (1 - confidence) / (count - 1), np.float32)
    steps[np.arange(len(classes)), classes] = confidence
    return steps


@pytest.mark.parametrize(
    ("classes", "confidence", "expected"),
    [
        ([0, 3, 3, 0, 4, 0], 0.9, Reading.TEXT),  # "3 4": repeats collapse, blanks split
        ([0, 3, 3, 3, 0, 0], 0.9, Reading.SHORT),  # one character
        ([0, 0, 0, 0, 0, 0], 0.9, Reading.NOTHING),
        ([0, 3, 0, 4, 0, 5], 0.5, Reading.DOUBTFUL),
    ],
)
def test_ctc_greedy_decoding_judges_each_crop(classes, confidence, expected):
    assert _judge(_steps(classes, confidence), 0.7, 2) is expected


def test_recognizer_crops_are_upright_and_padded_to_a_width_step():
    image = np.zeros((100, 300, 3), np.uint8)
    image[40:60, 50:250] = 255
    crop = rec_crop(image, Region((150.0, 50.0), (1.0, 0.0), 200.0, 20.0, 0.0))
    assert crop.shape == (3, 48, 512)  # 48 * 200 / 20 = 480 px, padded to 512
    assert_allclose(crop[:, 4:44, 10:470], 1.0)  # the white bar, in [-1, 1]
    assert_allclose(crop[:, :, 480:], 0.0)


@pytest.mark.parametrize(
    ("shape", "first", "second"),
    [
        ((1000, 3000), (416, 1280), (384, 1152)),  # long side capped at work_size
        ((300, 400), (640, 864), (384, 512)),  # short side enlarged to min_side
        ((1, 1), (640, 640), (384, 384)),  # a tiny image is enlarged
    ],
)
def test_working_sizes_are_multiples_of_32(shape, first, second):
    cfg = TextDetectorConfig()
    assert work_size(cfg, *shape) == first
    assert boost_size(cfg, *shape) == second
    assert rounded(100, 50, 1.0) == (96, 64)
    assert rounded(100, 10, 1.0) == (96, 32)  # at least 32


def test_normalisation_leaves_flat_colour_mid_grey_and_lifts_faint_strokes():
    flat = np.full((64, 64, 3), (157, 99, 177), np.uint8)
    assert_array_equal(normalise(flat, 8.0), np.full_like(flat, 128))
    faint = flat.copy()
    faint[30:34, 10:54] += 10  # ten levels brighter
    boosted = normalise(faint, 8.0).astype(int)
    assert boosted[32, 32].min() - 128 >= 30


def test_rotated_region_is_level_reading_order_and_rescales():
    region = rotated_region(((50.0, 20.0), (10.0, 40.0), 90.0), 2.0)
    assert_allclose(region.along, (1.0, 0.0), atol=1e-9)
    assert (region.length, region.thickness, region.grow) == (44.0, 14.0, 2.0)
    assert_allclose(
        region.corners(), [[28, 13], [72, 13], [72, 27], [28, 27]], atol=1e-9
    )  # top-left first, clockwise
    double = rescaled(region, 2.0, 2.0)
    assert (double.centre, double.length, double.thickness, double.grow) == (
        (100.0, 40.0),
        88.0,
        28.0,
        4.0,
    )
    assert bounds(region.corners(), 60, 100) == (28, 13, 60, 28)  # clipped to the image


def test_overlap_and_merging_of_touching_boxes():
    a = Region((30.0, 20.0), (1.0, 0.0), 40.0, 10.0, 0.0)
    b = Region((70.0, 20.0), (1.0, 0.0), 40.0, 10.0, 0.0)
    far = Region((200.0, 20.0), (1.0, 0.0), 40.0, 10.0, 0.0)
    assert overlap(a, [], (40, 300)) == 0.0
    half = Region((50.0, 20.0), (1.0, 0.0), 40.0, 10.0, 0.0)
    assert overlap(half, [a], (40, 300)) == pytest.approx(0.5, abs=0.05)
    # Touching, one not yet read as text: one region around both. Both read: nothing to merge.
    (merged,) = merge_touching([(a, True), (b, False), (far, True)])
    assert merged.centre == pytest.approx((50.0, 20.0), abs=0.5)
    assert merged.length == pytest.approx(80.0, abs=1.0)
    assert merge_touching([(a, False), (b, False)]) == []
    assert math.isclose(merged.along[1], 0.0, abs_tol=1e-6)
