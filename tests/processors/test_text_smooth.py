"""processors.text_smooth: the overlay pixels a text mask missed on a smooth background."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from processors import text_smooth
from processors.text_smooth import complete_on_smooth

HEIGHT, WIDTH = 120, 220
REACH, CONTRAST = 8, 3.0


def _backdrop() -> np.ndarray:
    """A studio sweep: light on the left, dark on the right (it crosses a mid grey)."""
    t = np.mgrid[0:HEIGHT, 0:WIDTH][1].astype(np.float64) / WIDTH
    return np.stack([215 - 150 * t, 200 - 150 * t, 225 - 140 * t], axis=2).round().astype(np.uint8)


def _grain(seed: int = 0) -> np.ndarray:
    """A photo-like background: the sweep plus seeded grain of a few levels."""
    noise = np.random.default_rng(seed).normal(0.0, 6.0, (HEIGHT, WIDTH, 1))
    grain = cv2.GaussianBlur(noise, (0, 0), 0.8)[..., None]
    return np.clip(_backdrop() + grain, 0, 255).round().astype(np.uint8)


def _watermark(base: np.ndarray, alpha: float = 0.35) -> tuple[np.ndarray, np.ndarray]:
    """Grey strokes (a ring and a bar, antialiased) blended over ``base``; the image and the
    truth (every pixel the overlay changed)."""
    big = np.zeros((HEIGHT * 4, WIDTH * 4), np.uint8)
    cv2.circle(big, (4 * 70, 4 * 60), 4 * 30, 255, 4 * 5)
    cv2.line(big, (4 * 120, 4 * 30), (4 * 190, 4 * 90), 255, 4 * 5)
    coverage = cv2.resize(big, (WIDTH, HEIGHT), interpolation=cv2.INTER_AREA) / 255.0
    weight = alpha * coverage[..., None]
    image = ((1 - weight) * base + weight * 128.0).round().astype(np.uint8)
    return image, np.any(image != base, axis=2)


def _missing(truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A detector's mask (the truth grown 1 px) with three pieces of stroke left out; and the
    left-out pixels of the truth."""
    mask = cv2.dilate(truth.astype(np.uint8) * 255, np.ones((3, 3), np.uint8))
    holes = np.zeros(truth.shape, bool)
    for x, y in ((40, 60), (100, 60), (155, 60)):
        holes[y - 4 : y + 4, x - 4 : x + 4] = True
    mask[holes] = 0
    return mask, truth & holes


def test_missed_pieces_on_a_gradient_are_added():
    image, truth = _watermark(_backdrop())
    mask, missed = _missing(truth)
    # Pieces an overlay changes by more than the contrast (the fringe is the growth's).
    visible = missed & (np.abs(image.astype(int) - _backdrop()).max(axis=2) > CONTRAST)
    assert visible.sum() > 30
    before = mask.copy()
    out = complete_on_smooth(image, mask, REACH, CONTRAST)
    assert np.array_equal(mask, before)  # the input is not changed
    assert out.dtype == np.uint8
    assert set(np.unique(out)) <= {0, 255}
    assert np.all(out[mask > 0] == 255)  # it only adds
    assert np.count_nonzero(out[visible]) >= 0.9 * visible.sum()
    added = (out > 0) & (mask == 0)
    near_truth = cv2.dilate(truth.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
    assert not np.any(added & ~near_truth)


def test_a_photo_grain_is_left_alone():
    image, truth = _watermark(_grain())
    mask, _ = _missing(truth)
    assert np.array_equal(complete_on_smooth(image, mask, REACH, CONTRAST), mask)


def test_a_background_edge_beside_the_mask_is_not_added():
    # A dark product's edge runs 4 px from the mask and on far beyond it: not ink.
    image = np.full((HEIGHT, WIDTH, 3), (200, 190, 210), np.uint8)
    image[:, 120:] = (60, 40, 50)
    mask = np.zeros((HEIGHT, WIDTH), np.uint8)
    mask[40:80, 60:116] = 255
    image[45:75, 65:111] = (250, 250, 250)
    assert np.array_equal(complete_on_smooth(image, mask, REACH, CONTRAST), mask)


def test_nothing_to_do():
    image = _backdrop()
    empty = np.zeros((HEIGHT, WIDTH), np.uint8)
    assert np.array_equal(complete_on_smooth(image, empty, REACH, CONTRAST), empty)
    _, truth = _watermark(image)
    mask, _ = _missing(truth)
    assert complete_on_smooth(image, mask, 0, CONTRAST) is mask


@pytest.mark.parametrize("view", ["flipped", "transposed"])
def test_non_contiguous_input(view):
    image, truth = _watermark(_backdrop())
    mask, _ = _missing(truth)

    def change(a: np.ndarray) -> np.ndarray:
        return a[:, ::-1] if view == "flipped" else a.swapaxes(0, 1)

    out = complete_on_smooth(change(image), change(mask), REACH, CONTRAST)
    expected = complete_on_smooth(
        np.ascontiguousarray(change(image)), np.ascontiguousarray(change(mask)), REACH, CONTRAST
    )
    assert np.array_equal(out, expected)
    assert np.count_nonzero(out) > np.count_nonzero(mask)


def test_tiles_give_the_whole_result(monkeypatch):
    image, truth = _watermark(_backdrop())
    mask, _ = _missing(truth)
    whole = complete_on_smooth(image, mask, REACH, CONTRAST)
    monkeypatch.setattr(text_smooth, "TILE", 40)  # 6 x 3 tiles over the fit's box
    assert np.array_equal(complete_on_smooth(image, mask, REACH, CONTRAST), whole)
    assert np.count_nonzero(whole) > np.count_nonzero(mask)


def test_module_exports():
    assert text_smooth.__all__ == ["complete_on_smooth"]
