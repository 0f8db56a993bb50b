"""Small test scenes with known answers: photos, a smooth gradient, and overlay text drawn on
them with its exact ground truth (the processor and benchmark tests' fixtures).

Text is drawn with Pillow's bundled FreeType font (``ImageFont.load_default(size=N)``), so the
scenes are the same on every machine. Each overlay returns a :class:`Scene`: the composited
image, the clean image, the ground-truth glyph mask and every pixel the overlay touched. Photos
are read-only, so a processor that writes into its input fails loudly.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
from PIL import Image as PILImage
from PIL import ImageDraw, ImageFont
from skimage import data

from consumers.dev.overlay import PILLOW_DEFAULT, changed, load_font, rotate_layer, text_layer

__all__ = [
    "Scene",
    "bar_caption",
    "caption",
    "gradient",
    "load_photo",
    "promo",
    "recall",
    "timestamp",
    "watermark",
]

U8 = npt.NDArray[np.uint8]
"""uint8 pixels: HWC RGB images, HW masks."""
RGB = tuple[int, int, int]
"""An RGB colour, 0..255 per channel."""


class Scene(NamedTuple):
    """A composited test image and what was drawn on it."""

    image: U8
    """HWC uint8 RGB image with the overlay."""
    clean: U8
    """The same image without the overlay."""
    glyphs: U8
    """HW uint8 mask, 255 where the text fill covers at least half a pixel."""
    touched: U8
    """HW uint8 mask, 255 wherever the overlay changed a pixel (fill, outline, shadow, box)."""


@functools.cache
def load_photo(name: str) -> U8:
    """A scikit-image sample as a read-only HWC uint8 RGB array (grey ones stacked to RGB)."""
    image = np.asarray(getattr(data, name)())
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    image = np.ascontiguousarray(image[:, :, :3]).astype(np.uint8)
    image.flags.writeable = False
    return image


def gradient(height: int = 256, width: int = 384) -> U8:
    """A smooth studio-like background: a diagonal colour gradient."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    t = (xx / width + yy / height) / 2.0
    red = 200.0 - 60.0 * t
    green = 210.0 - 40.0 * t
    blue = 230.0 - 90.0 * t
    return np.stack([red, green, blue], axis=2).round().astype(np.uint8)


def _font(size: int) -> ImageFont.FreeTypeFont:
    return load_font(PILLOW_DEFAULT, size)


def _finish(base: U8, canvas: PILImage.Image, glyph_layer: PILImage.Image) -> Scene:
    image = np.asarray(canvas.convert("RGB")).copy()
    glyphs = np.where(np.asarray(glyph_layer) >= 128, 255, 0).astype(np.uint8)
    touched = np.where(changed(base, image), 255, 0).astype(np.uint8)
    return Scene(image, base.copy(), glyphs, touched)


def caption(
    base: U8,
    text: str,
    xy: tuple[int, int],
    *,
    size: int = 32,
    fill: RGB = (255, 255, 255),
    outline: RGB = (0, 0, 0),
    outline_width: int = 2,
    shadow: int = 2,
) -> Scene:
    """White (by default) text with a dark outline and a drop shadow."""
    font = _font(size)
    canvas = PILImage.fromarray(base)
    draw = ImageDraw.Draw(canvas)
    if shadow:
        shadow_xy = (xy[0] + shadow, xy[1] + shadow)
        draw.text(
            shadow_xy,
            text,
            font=font,
            fill=outline,
            stroke_width=outline_width,
            stroke_fill=outline,
        )
    draw.text(xy, text, font=font, fill=fill, stroke_width=outline_width, stroke_fill=outline)
    layer = text_layer(canvas.size, xy, text, font)
    return _finish(base, canvas, layer)


def bar_caption(
    base: U8,
    text: str,
    top: int,
    *,
    size: int = 28,
    bar: RGB = (240, 240, 235),
    fill: RGB = (20, 20, 30),
) -> Scene:
    """Dark text on a light full-width bar."""
    font = _font(size)
    canvas = PILImage.fromarray(base)
    draw = ImageDraw.Draw(canvas)
    _, y0, _, y1 = font.getbbox(text)
    height = y1 - y0
    draw.rectangle((0, top, canvas.width, top + height + 16), fill=bar)
    xy = (12, top + 8 - y0)
    draw.text(xy, text, font=font, fill=fill)
    layer = text_layer(canvas.size, xy, text, font)
    return _finish(base, canvas, layer)


def timestamp(
    base: U8,
    text: str = "2024-03-15 10:22",
    *,
    size: int = 20,
    fill: RGB = (255, 160, 20),
    margin: int = 10,
) -> Scene:
    """Orange digits in the bottom-right corner, like a camera date stamp."""
    font = _font(size)
    canvas = PILImage.fromarray(base)
    _, _, x1, y1 = font.getbbox(text)
    xy = (canvas.width - margin - x1, canvas.height - margin - y1)
    ImageDraw.Draw(canvas).text(xy, text, font=font, fill=fill)
    layer = text_layer(canvas.size, xy, text, font)
    return _finish(base, canvas, layer)


def promo(
    base: U8,
    text: str = "SALE -50%",
    xy: tuple[int, int] = (20, 20),
    *,
    size: int = 30,
    box: RGB = (210, 30, 40),
    fill: RGB = (255, 255, 255),
    radius: int | None = 10,
) -> Scene:
    """White text on a coloured rounded box (``radius=None``: a pill, round ends)."""
    font = _font(size)
    canvas = PILImage.fromarray(base)
    draw = ImageDraw.Draw(canvas)
    x0, y0, x1, y1 = font.getbbox(text)
    pad = 10
    height = int(y1 - y0) + 2 * pad
    draw.rounded_rectangle(
        (
            xy[0],
            xy[1],
            xy[0] + x1 - x0 + 2 * pad + (height if radius is None else 0),
            xy[1] + height,
        ),
        radius=height // 2 if radius is None else radius,
        fill=box,
    )
    if radius is None:
        xy = (xy[0] + height // 2, xy[1])
    text_xy = (xy[0] + pad - x0, xy[1] + pad - y0)
    draw.text(text_xy, text, font=font, fill=fill)
    layer = text_layer(canvas.size, text_xy, text, font)
    return _finish(base, canvas, layer)


def watermark(
    base: U8,
    text: str = "© SAMPLE",
    *,
    size: int = 48,
    angle: float = 35.0,
    alpha: float = 0.4,
    fill: RGB = (255, 255, 255),
) -> Scene:
    """Semi-transparent rotated text across the middle of the image."""
    font = _font(size)
    canvas = PILImage.fromarray(base).convert("RGBA")
    _, _, x1, y1 = font.getbbox(text)
    layer = rotate_layer(text_layer((int(x1) + 8, int(y1) + 8), (4, 4), text, font), angle)
    full = PILImage.new("L", canvas.size, 0)
    full.paste(layer, ((canvas.width - layer.width) // 2, (canvas.height - layer.height) // 2))
    alpha_layer = full.point(lambda v: round(v * alpha))
    ink = PILImage.new("RGBA", canvas.size, (*fill, 0))
    ink.putalpha(alpha_layer)
    out = PILImage.alpha_composite(canvas, ink)
    return _finish(base, out, full)


def recall(found: U8, truth: U8) -> float:
    """Fraction of the truth mask's pixels that ``found`` covers."""
    total = int(np.count_nonzero(truth))
    return float(np.count_nonzero((found > 0) & (truth > 0))) / total if total else 1.0
