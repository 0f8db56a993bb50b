"""processors.text_ring: the "©" before a line's start, told from rings, discs and targets."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from processors import text_ring
from processors.text_ring import Ring, find_ring

SIZE = 160
THICKNESS = 40.0
"""The line's short side: a "©" of radius about 0.35 of it is a capital's size."""
START = (120.0, 80.0)
"""The line starts here and runs to the right; the sign is looked for to the left."""
OUTWARD = (-1.0, 0.0)


def _coverage(draw) -> np.ndarray:
    """Antialiased coverage (0..1) of what ``draw`` paints, drawn 4x larger and shrunk."""
    big = np.zeros((SIZE * 4, SIZE * 4), np.uint8)
    draw(big, 4)
    return cv2.resize(big, (SIZE, SIZE), interpolation=cv2.INTER_AREA).astype(np.float32) / 255


def _sign(centre=(80, 80), radius=14.0, stroke=3.0, inner=True, closed=False):
    """A "©" (ring and "c"), or an "o" (``inner=False``), or a target (``closed=True``)."""

    def draw(canvas: np.ndarray, k: int) -> None:
        c = (int(centre[0] * k), int(centre[1] * k))
        cv2.circle(canvas, c, int(radius * k), 255, int(stroke * k))
        if inner:
            axes = (int(0.55 * radius * k), int(0.55 * radius * k))
            start, end = (0, 360) if closed else (50, 310)  # a "c" opens to the right
            cv2.ellipse(canvas, c, axes, 0, start, end, 255, int(stroke * k))

    return _coverage(draw)


def _disc(centre=(80, 80), radius=15.0):
    return _coverage(
        lambda canvas, k: cv2.circle(
            canvas, (centre[0] * k, centre[1] * k), int(radius * k), 255, -1
        )
    )


def _scene(coverage: np.ndarray, *, level: float = 110.0, alpha: float = 0.4, ink: float = 255.0):
    """Luma of a textured background (seeded noise, blurred: wood-like grain) with the
    overlay blended in at ``alpha``."""
    rng = np.random.default_rng(0)
    noise = cv2.GaussianBlur(rng.normal(0, 18, (SIZE, SIZE)).astype(np.float32), (0, 0), 1.2)
    background = np.clip(level + noise, 0, 255)
    a = alpha * coverage
    return ((1 - a) * background + a * ink).astype(np.float32)


def _none_known() -> np.ndarray:
    return np.zeros((SIZE, SIZE), np.uint8)


def test_finds_a_semi_transparent_copyright_sign_before_the_line():
    coverage = _sign()
    ring = find_ring(_scene(coverage), START, OUTWARD, THICKNESS, _none_known())
    assert isinstance(ring, Ring)
    assert abs(ring.centre[0] - 80) <= 2
    assert abs(ring.centre[1] - 80) <= 2
    assert ring.radius == pytest.approx(14.0, rel=0.15)
    assert ring.contrast > text_ring.MIN_CONTRAST  # white on grey: a bright sign
    ink = ring.ink((SIZE, SIZE)) > 0
    drawn = coverage > 0.5
    assert (ink & drawn).sum() >= 0.9 * drawn.sum()
    # The hole inside the "c" is not in the mask.
    assert ring.hole > 0
    assert not ink[80, 80 - ring.hole + 1 : 80 + ring.hole].any()


def test_finds_a_dark_sign_on_a_light_ground():
    ring = find_ring(
        _scene(_sign(), level=200.0, ink=30.0), START, OUTWARD, THICKNESS, _none_known()
    )
    assert ring is not None
    assert ring.contrast < -text_ring.MIN_CONTRAST


@pytest.mark.parametrize(
    ("what", "coverage"),
    [
        ("an o: nothing inside", _sign(inner=False)),
        ("a target: a closed ring inside", _sign(closed=True)),
        ("a disc", _disc()),
        ("the grain alone", np.zeros((SIZE, SIZE), np.float32)),
    ],
)
def test_leaves_what_is_not_a_copyright_sign(what, coverage):
    assert find_ring(_scene(coverage), START, OUTWARD, THICKNESS, _none_known()) is None, what


def test_a_faint_sign_is_left():
    # At alpha 0.05 the strokes differ from the grey by about 7 levels: below MIN_CONTRAST.
    assert find_ring(_scene(_sign(), alpha=0.05), START, OUTWARD, THICKNESS, _none_known()) is None


@pytest.mark.parametrize(
    ("centre", "why"),
    [((80, 96), "off the line's axis"), ((150, 80), "after the start, not before it")],
)
def test_only_just_before_the_line_on_its_axis(centre, why):
    image = _scene(_sign(centre=centre))
    assert find_ring(image, START, OUTWARD, THICKNESS, _none_known()) is None, why


def test_a_sign_already_in_the_mask_is_not_found_again():
    coverage = _sign()
    known = np.where(cv2.dilate((coverage > 0.3).astype(np.uint8), np.ones((3, 3))) > 0, 255, 0)
    assert find_ring(_scene(coverage), START, OUTWARD, THICKNESS, known.astype(np.uint8)) is None


def test_a_sign_at_the_image_border_is_searched_without_error():
    # The search stays inside the image: a line starting at the left edge has no room.
    image = _scene(_sign())
    assert find_ring(image, (5.0, 80.0), OUTWARD, THICKNESS, _none_known()) is None
