"""Upscaler, plan_scale and resize_long_side: the processor suite and quality by metrics."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from processors.quality import measure_upscales, psnr
from processors.upscale import UpscaleConfig, Upscaler, plan_scale, resize_long_side


@pytest.fixture(scope="module")
def upscaler() -> Upscaler:
    return Upscaler()


@pytest.fixture(scope="module")
def natural(astronaut) -> np.ndarray:
    """A 96 x 128 natural crop (face, hair, suit)."""
    return astronaut[40:136, 150:278]


# -- the processor suite -----------------------------------------------------------------------


@pytest.mark.parametrize("scale", [2, 4])
def test_smoke_shapes(upscaler, natural, scale):
    (out,) = upscaler([natural], scale=scale)
    assert out.shape == (96 * scale, 128 * scale, 3)
    assert out.dtype == np.uint8
    assert out.flags.c_contiguous
    assert upscaler.version == "upscale-lanczos-1"


def test_empty_batch(upscaler):
    assert upscaler([], scale=2) == []


@pytest.mark.parametrize("scale", [1, 3, 8, 2.0, True, "2", None])
def test_bad_scale(upscaler, natural, scale):
    with pytest.raises(ValueError, match="scale must be the integer 2 or 4"):
        upscaler([natural], scale=scale)


def test_numpy_integer_scale(upscaler, natural):
    assert upscaler([natural], scale=np.int64(2))[0].shape == (192, 256, 3)


def test_bad_input(upscaler, natural):
    with pytest.raises(TypeError, match=r"images\[1\]"):
        upscaler([natural, "pixels"], scale=2)
    with pytest.raises(ValueError, match="uint8"):
        upscaler([natural.astype(np.uint16)], scale=2)
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        upscaler([natural[:, :, 0]], scale=2)


def test_bad_config():
    with pytest.raises(ValueError, match="UpscaleConfig"):
        UpscaleConfig(method="bicubic")


def test_batch_of_one_equals_batch_of_many(upscaler, natural, smooth):
    images = [natural, smooth, natural[:10, :7]]
    together = upscaler(images, scale=2)
    alone = [upscaler([image], scale=2)[0] for image in images]
    assert all(np.array_equal(a, b) for a, b in zip(together, alone, strict=True))


@pytest.mark.parametrize("view", ["flipped", "transposed"])
def test_non_contiguous_input(upscaler, natural, view):
    image = natural[:, ::-1] if view == "flipped" else natural.transpose(1, 0, 2)
    (strided,) = upscaler([image], scale=4)
    (contiguous,) = upscaler([np.ascontiguousarray(image)], scale=4)
    assert np.array_equal(strided, contiguous)


def test_deterministic(upscaler, natural):
    assert np.array_equal(upscaler([natural], scale=4)[0], upscaler([natural], scale=4)[0])


def test_one_pixel_image(upscaler):
    (out,) = upscaler([np.full((1, 1, 3), 77, np.uint8)], scale=4)
    assert out.shape == (4, 4, 3)
    assert np.all(out == 77)


# -- quality (by metrics) ----------------------------------------------------------------------


@pytest.mark.parametrize("scale", [2, 4])
def test_downscaled_output_matches_input(upscaler, natural, scale):
    (out,) = upscaler([natural], scale=scale)
    (metrics,) = measure_upscales([natural], [out])
    assert metrics.scale == scale
    assert metrics.consistency_psnr > 30.0
    assert metrics.consistency_ssim > 0.95


def test_lanczos_beats_nearest_neighbour(upscaler, astronaut):
    hr = astronaut[100:356, 100:356]
    lr = cv2.resize(hr, (128, 128), interpolation=cv2.INTER_CUBIC)
    (lanczos,) = upscaler([lr], scale=2)
    nearest = cv2.resize(lr, (256, 256), interpolation=cv2.INTER_NEAREST)
    assert psnr(hr, lanczos) > psnr(hr, nearest) + 1.0


# -- plan_scale --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("height", "width", "target", "expected"),
    [
        (100, 200, 201, 2),
        (100, 200, 400, 2),  # x2 reaches it exactly
        (200, 100, 401, 4),  # portrait: the long side is the height
        (100, 200, 800, 4),
        (100, 200, 5000, 4),  # neither reaches it: the largest factor
    ],
)
def test_plan_scale(height, width, target, expected):
    assert plan_scale(height, width, target) == expected


@pytest.mark.parametrize(
    ("height", "width", "target", "words"),
    [
        (100, 200, 200, "not larger"),
        (100, 200, 150, "not larger"),
        (0, 200, 400, "height"),
        (100, -1, 400, "width"),
        (100, 200, 400.0, "target_long_side"),
        (True, 200, 400, "height"),
    ],
)
def test_plan_scale_rejects(height, width, target, words):
    with pytest.raises(ValueError, match=words):
        plan_scale(height, width, target)


# -- resize_long_side --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("long_side", "expected"),
    [(256, (192, 256, 3)), (64, (48, 64, 3)), (128, (96, 128, 3)), (5, (4, 5, 3))],
)
def test_resize_long_side_landscape(natural, long_side, expected):
    out = resize_long_side(natural, long_side)
    assert out.shape == expected
    assert out.dtype == np.uint8


def test_resize_long_side_portrait_and_thin(natural):
    assert resize_long_side(natural.transpose(1, 0, 2), 512).shape == (512, 384, 3)
    assert resize_long_side(natural[:1], 10).shape == (1, 10, 3)  # short side stays >= 1
    assert resize_long_side(natural[:1, :50], 5).shape == (1, 5, 3)


def test_resize_long_side_same_size_is_a_copy(natural):
    out = resize_long_side(natural, 128)
    assert np.array_equal(out, natural)
    assert not np.shares_memory(out, natural)


def test_resize_long_side_quality(natural):
    # Down with area averaging, then back up with Lanczos: close to the original.
    round_trip = resize_long_side(resize_long_side(natural, 64), 128)
    assert psnr(natural, round_trip) > 25.0


@pytest.mark.parametrize("long_side", [0, -5, 64.0, None])
def test_resize_long_side_rejects(natural, long_side):
    with pytest.raises(ValueError, match="long_side"):
        resize_long_side(natural, long_side)
