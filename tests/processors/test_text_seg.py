"""The text segmenter (processors.text_seg): weights, tiling, determinism, and what it adds to the
detector (faint rotated watermarks over busy photos, which the DBNet does not see)."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from processors.text import TextDetector, TextDetectorConfig
from processors.text_seg import STRIDE, WEIGHTS_FORMAT, TextSegNet, load_text_seg, segment


@pytest.fixture(scope="module")
def net() -> TextSegNet:
    return load_text_seg()


@pytest.fixture(scope="module")
def detector() -> TextDetector:
    return TextDetector()


def test_packaged_weights_load_in_eval_mode(net):
    assert isinstance(net, TextSegNet)
    assert not net.training
    assert sum(p.numel() for p in net.parameters()) < 500_000


def test_weights_file_errors_name_the_file(tmp_path):
    with pytest.raises(ValueError, match="not found; train them"):
        load_text_seg(tmp_path / "missing.pt")
    wrong = tmp_path / "wrong.pt"
    buffer = io.BytesIO()
    torch.save({"format": "something-else"}, buffer)
    wrong.write_bytes(buffer.getvalue())
    with pytest.raises(ValueError, match=f"not a {WEIGHTS_FORMAT} weights file"):
        load_text_seg(wrong)


def test_saved_weights_round_trip(tmp_path, net):
    path = tmp_path / "text_seg.pt"
    torch.save(
        {"format": WEIGHTS_FORMAT, "widths": list(net.widths), "state_dict": net.state_dict()},
        path,
    )
    again = load_text_seg(path)
    x = torch.rand(1, 3, 2 * STRIDE, 3 * STRIDE, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        assert torch.equal(net(x), again(x))


@pytest.mark.parametrize(("height", "width"), [(37, 53), (16, 16), (200, 131)])
def test_any_size_gives_a_probability_per_pixel(net, photo, height, width):
    image = np.ascontiguousarray(photo("coffee")[:height, :width])
    prob = segment(net, image)
    assert prob.shape == (height, width)
    assert prob.dtype == np.float32
    assert 0.0 <= float(prob.min()) <= float(prob.max()) <= 1.0


def test_deterministic(net, photo):
    image = photo("astronaut")[:160, :224]
    assert np.array_equal(segment(net, image), segment(net, image))


def test_tiled_equals_untiled_where_the_overlap_covers_the_context(net, photo, overlay):
    scene = overlay.watermark(photo("chelsea"), "© SAMPLE", size=60, angle=-30, alpha=0.4)
    whole = segment(net, scene.image, tile=1024)
    tiled = segment(net, scene.image, tile=160, overlap=128)
    assert np.mean(np.abs(whole - tiled)) < 0.01
    assert np.mean((whole > 0.5) == (tiled > 0.5)) > 0.995


@pytest.mark.slow
def test_segmenter_finds_faint_watermark_over_a_busy_photo(detector, photo, overlay):
    # White at alpha 0.35, rotated 30 degrees, over the coffee photo's cup and saucer: the
    # DBNet gives it no response, on the image or on the contrast-normalised copy.
    scene = overlay.watermark(photo("coffee"), "© urbanshop", size=44, angle=30, alpha=0.35)
    touched = np.count_nonzero(scene.touched) / scene.touched.size
    (bare,) = TextDetector(TextDetectorConfig(segmenter=False))([scene.image])
    (found,) = detector([scene.image])
    # Measured: 0.52 without the segmenter, 0.84 with it.
    assert overlay.recall(found.mask, scene.glyphs) >= overlay.recall(bare.mask, scene.glyphs) + 0.2
    assert overlay.recall(found.mask, scene.glyphs) >= 0.75
    assert found.coverage <= 4.0 * touched


@pytest.mark.parametrize("name", ["grass", "gravel", "brick", "chelsea", "rocket"])
def test_segmenter_leaves_textures_and_clean_photos_alone(detector, photo, name):
    (result,) = detector([photo(name)])
    assert result.coverage == 0.0


def test_segmenter_knobs_are_checked():
    for knobs in (
        {"segment_threshold": 1.0},
        {"segment_min_score": 0.0},
        {"segment_min_confidence": 1.5},
        {"segment_min_area": 0},
        {"segment_size": 32},
        {"segment_strict_thresholds": (0.8, 1.0)},
        {"segment_low_threshold": 0.0},
    ):
        with pytest.raises(ValueError, match="TextDetectorConfig"):
            TextDetectorConfig(**knobs)
