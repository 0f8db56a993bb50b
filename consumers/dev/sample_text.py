"""Text overlays of the sample files: one RGBA layer per overlay; its alpha > 0 is the truth."""

from __future__ import annotations

from typing import Final

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from consumers.dev.overlay import PILLOW_DEFAULT, load_font, rotate_layer, text_layer

__all__ = ["caption_layer", "promo_layer", "timestamp_layer", "watermark_layer"]

_CAPTIONS: Final = (
    "Premium Quality",
    "FREE SHIPPING",
    "100% Cotton",
    "NEW ARRIVAL",
    "Best Seller",
    "Handmade",
    "Limited Edition",
    "Buy 2 Get 1",
)
_PROMOS: Final = ("SALE -50%", "-30% OFF", "HOT DEAL", "SALE -20%", "NEW", "BLACK FRIDAY")


def _font(size: int) -> ImageFont.FreeTypeFont:
    return load_font(PILLOW_DEFAULT, max(8, size))


def _fit_font(
    text: str, size: int, max_width: float, stroke: int = 0
) -> tuple[ImageFont.FreeTypeFont, tuple[int, int, int, int]]:
    """The largest font up to ``size`` whose rendering of ``text`` fits ``max_width``."""
    probe = ImageDraw.Draw(Image.new("L", (1, 1)))
    while True:
        font = _font(size)
        bbox = tuple(int(v) for v in probe.textbbox((0, 0), text, font=font, stroke_width=stroke))
        box = (bbox[0], bbox[1], bbox[2], bbox[3])
        if box[2] - box[0] <= max_width or size <= 8:
            return font, box
        size = max(8, int(size * max_width / (box[2] - box[0])) - 1)


def _draw_text_layer(
    size: tuple[int, int],
    text: str,
    *,
    font: ImageFont.FreeTypeFont,
    bbox: tuple[int, int, int, int],
    xy: tuple[int, int],
    fill: tuple[int, int, int, int],
    stroke: int = 0,
    stroke_fill: tuple[int, int, int, int] | None = None,
) -> Image.Image:
    """An RGBA layer of ``size`` with ``text`` drawn so that its ``bbox`` starts at ``xy``."""
    return text_layer(
        size,
        (xy[0] - bbox[0], xy[1] - bbox[1]),
        text,
        font,
        mode="RGBA",
        fill=fill,
        stroke=stroke,
        stroke_fill=stroke_fill,
    )


def caption_layer(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    text = _CAPTIONS[int(rng.integers(len(_CAPTIONS)))]
    size = int(height * rng.uniform(0.06, 0.10))
    stroke = max(2, size // 14)
    font, bbox = _fit_font(text, size, width * 0.85, stroke)
    text_w, text_h = bbox[2] - bbox[0], bbox[3] - bbox[1]
    x = int(rng.integers(width // 30, max(width // 30 + 1, width - text_w - width // 30)))
    top = bool(rng.random() < 0.35)
    band = (
        (height // 20, height // 6)
        if top
        else (height - height // 6 - text_h, height - height // 20 - text_h)
    )
    y = int(rng.integers(band[0], max(band[0] + 1, band[1])))
    shade = int(rng.integers(235, 256))
    fill = (shade, shade, int(rng.integers(200, 256)) if rng.random() < 0.3 else shade, 255)
    dark = int(rng.integers(0, 50))
    return _draw_text_layer(
        (width, height),
        text,
        font=font,
        bbox=bbox,
        xy=(x, y),
        fill=fill,
        stroke=stroke,
        stroke_fill=(dark, dark, dark, 255),
    )


def timestamp_layer(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    year, month, day = (
        int(rng.integers(2009, 2026)),
        int(rng.integers(1, 13)),
        int(rng.integers(1, 29)),
    )
    hour, minute = int(rng.integers(0, 24)), int(rng.integers(0, 60))
    if rng.random() < 0.5:
        text = f"{year}/{month:02d}/{day:02d} {hour:02d}:{minute:02d}"
    else:
        text = f"'{year % 100:02d} {month:2d} {day:2d}"
    size = int(height * rng.uniform(0.035, 0.055))
    font, bbox = _fit_font(text, size, width * 0.6)
    text_w, text_h = bbox[2] - bbox[0], bbox[3] - bbox[1]
    margin_x, margin_y = int(width * rng.uniform(0.02, 0.05)), int(height * rng.uniform(0.02, 0.05))
    corner = int(rng.choice([0, 0, 0, 1, 2, 3]))  # mostly bottom-right, like a camera date stamp
    x = width - margin_x - text_w if corner in (0, 2) else margin_x
    y = height - margin_y - text_h if corner in (0, 1) else margin_y
    fill = (255, int(rng.integers(110, 170)), int(rng.integers(0, 50)), 255)
    return _draw_text_layer((width, height), text, font=font, bbox=bbox, xy=(x, y), fill=fill)


def watermark_layer(rng: np.random.Generator, width: int, height: int, vendor: str) -> Image.Image:
    text = f"© {vendor}"
    size = int(min(width, height) * rng.uniform(0.10, 0.15))
    font, bbox = _fit_font(text, size, width * 0.8)
    text_w, text_h = bbox[2] - bbox[0], bbox[3] - bbox[1]
    shade = 255 if rng.random() < 0.7 else int(rng.integers(0, 60))
    stamp = _draw_text_layer(
        (text_w + 4, text_h + 4),
        text,
        font=font,
        bbox=bbox,
        xy=(2, 2),
        fill=(shade, shade, shade, 255),
    )
    angle = float(rng.uniform(30.0, 45.0)) * (1 if rng.random() < 0.6 else -1)
    stamp = rotate_layer(stamp, angle)
    opacity = float(rng.uniform(0.35, 0.5))
    rgba = np.asarray(stamp).copy()
    rgba[..., 3] = np.rint(rgba[..., 3].astype(np.float32) * opacity).astype(np.uint8)
    stamp = Image.fromarray(rgba, "RGBA")
    layer = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    cx = width // 2 + int(rng.integers(-width // 8, width // 8 + 1))
    cy = height // 2 + int(rng.integers(-height // 8, height // 8 + 1))
    layer.paste(stamp, (cx - stamp.width // 2, cy - stamp.height // 2))
    return layer


def promo_layer(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    text = _PROMOS[int(rng.integers(len(_PROMOS)))]
    red = bool(rng.random() < 0.5)
    box_fill = (
        int(rng.integers(200, 236)),
        int(rng.integers(0, 40)),
        int(rng.integers(20, 50)),
        255,
    )
    text_fill = (255, 255, 255, 255)
    if not red:
        box_fill = (255, int(rng.integers(200, 226)), 0, 255)
        text_fill = (200, 0, 0, 255) if rng.random() < 0.5 else (20, 20, 20, 255)
    size = int(min(width, height) * rng.uniform(0.06, 0.09))
    font, bbox = _fit_font(text, size, width * 0.5)
    text_w, text_h = bbox[2] - bbox[0], bbox[3] - bbox[1]
    pad = max(6, text_h // 2)
    box_w, box_h = text_w + 2 * pad, text_h + 2 * pad
    margin = int(min(width, height) * rng.uniform(0.03, 0.06))
    corner = int(rng.integers(4))
    x = margin if corner in (0, 2) else width - margin - box_w
    y = margin if corner in (0, 1) else height - margin - box_h
    layer = _draw_text_layer(
        (width, height), text, font=font, bbox=bbox, xy=(x + pad, y + pad), fill=text_fill
    )
    box = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    ImageDraw.Draw(box).rounded_rectangle(
        (x, y, x + box_w, y + box_h), radius=pad // 2, fill=box_fill
    )
    return Image.alpha_composite(box, layer)
