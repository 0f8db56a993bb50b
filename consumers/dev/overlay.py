"""Text-overlay rendering shared by the sample generator, the benchmark corpus, segmenter training
and the processor test fixtures.

The four differ in what they draw (captions, stamps, labels, random strings) and in how they
composite (Pillow's ``alpha_composite`` on RGBA layers for the samples and the fixtures' watermark;
one premultiplied float32 layer for the corpus; float64 layer-by-layer blending for training),
and each keeps its own way so that its bytes stay as they are. What they share lives here:

- :func:`load_font`: Pillow's bundled FreeType font or one of matplotlib's DejaVu faces;
- :func:`text_layer`: text drawn on an empty layer of any mode (coverage ``L`` or ``RGBA``);
- :func:`coverage`, :func:`rotate_layer`, :func:`rotate_coverage`: coverage as float64 in
  [0, 1], and rotation with expansion by Pillow's bicubic filter;
- :func:`place`: a coverage patch pasted into an empty image, clipped to it;
- :func:`changed`: the ground truth every generator uses, every pixel the overlay changed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageFont

from consumers.errors import ConfigError

__all__ = [
    "PILLOW_DEFAULT",
    "Coverage",
    "changed",
    "coverage",
    "load_font",
    "place",
    "rotate_coverage",
    "rotate_layer",
    "text_layer",
]

Coverage = npt.NDArray[np.float64]
"""HW float64 in [0, 1]: how much of each pixel an overlay element covers."""
Ink = int | tuple[int, ...]
"""A Pillow fill: an int for ``L`` layers, an RGBA tuple for ``RGBA`` layers."""

PILLOW_DEFAULT: Final = "pillow-default"
"""Font name of Pillow's bundled FreeType font (``ImageFont.load_default``)."""


def load_font(
    name: str, size: int, *, layout: ImageFont.Layout | None = None
) -> ImageFont.FreeTypeFont:
    """``name`` at ``size`` px: :data:`PILLOW_DEFAULT`, or the file name of one of matplotlib's
    bundled DejaVu faces (``DejaVuSans.ttf``, ``DejaVuSerif-Bold.ttf``, ...).

    ``layout`` picks the layout engine of the DejaVu faces (``None``: Pillow's default, Raqm
    where it is installed). matplotlib is a development dependency, imported only here.
    """
    if name == PILLOW_DEFAULT:
        font = ImageFont.load_default(size=size)
        if not isinstance(font, ImageFont.FreeTypeFont):
            raise ConfigError("Pillow was built without FreeType; it cannot size fonts.")
        return font
    import matplotlib as mpl  # noqa: PLC0415 - a development dependency, fonts only

    path = Path(mpl.get_data_path()) / "fonts" / "ttf" / name
    return ImageFont.truetype(str(path), size=size, layout_engine=layout)


def text_layer(
    size: tuple[int, int],
    xy: tuple[float, float],
    text: str,
    font: ImageFont.FreeTypeFont,
    *,
    mode: str = "L",
    fill: Ink = 255,
    stroke: int = 0,
    stroke_fill: Ink | None = None,
) -> Image.Image:
    """An empty (all-zero) ``mode`` layer of ``size`` (width, height) with ``text`` drawn at
    ``xy``, in ``fill``, outlined by ``stroke`` px in ``stroke_fill`` when ``stroke`` > 0."""
    layer = Image.new(mode, size, 0)
    ImageDraw.Draw(layer).text(
        xy, text, font=font, fill=fill, stroke_width=stroke, stroke_fill=stroke_fill
    )
    return layer


def coverage(layer: Image.Image) -> Coverage:
    """An ``L`` layer as coverage: float64 in [0, 1]."""
    return np.asarray(layer, dtype=np.float64) / 255.0


def rotate_layer(layer: Image.Image, angle: float) -> Image.Image:
    """``layer`` turned by ``angle`` degrees counter-clockwise, bicubic, grown to hold it all."""
    return layer.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True)


def rotate_coverage(patch: Coverage, angle: float) -> Coverage:
    """:func:`rotate_layer` on coverage (rounded to 8 bits first, as an ``L`` layer)."""
    layer = Image.fromarray(np.rint(patch * 255).astype(np.uint8))
    return coverage(rotate_layer(layer, angle))


def place(patch: Coverage, shape: tuple[int, int], x: int, y: int) -> Coverage:
    """``patch`` pasted with its top-left at (x, y) into an empty image, clipped to it."""
    out = np.zeros(shape, np.float64)
    height, width = shape
    x0, y0 = max(0, x), max(0, y)
    x1, y1 = min(width, x + patch.shape[1]), min(height, y + patch.shape[0])
    if x1 > x0 and y1 > y0:
        out[y0:y1, x0:x1] = patch[y0 - y : y1 - y, x0 - x : x1 - x]
    return out


def changed(clean: npt.NDArray[np.uint8], image: npt.NDArray[np.uint8]) -> npt.NDArray[np.bool_]:
    """HW bool: True where ``image`` differs from ``clean`` in any channel."""
    return np.asarray(np.any(image != clean, axis=2), dtype=np.bool_)
