"""The seeded quality corpus: text overlays with exact ground truth, clean images, HR/LR pairs.

    from bench.corpus import build_corpus
    corpus = build_corpus(seed=0)

Everything comes from images shipped with our declared dependencies, so it needs no download:

- **Backgrounds** (fixed split, shared with the upscaler's "never train on" list): the photos
  astronaut, chelsea, coffee, rocket (``skimage.data``), motorcycle_right.png (read from the
  ``skimage/data`` folder) and grace_hopper.jpg (matplotlib's ``sample_data``), kept at native
  size (long side at most :data:`MAX_LONG_SIDE`); plus four seeded 768x768 "product renders":
  flat colour, linear gradient, radial gradient, and a product with a soft shadow on a studio
  gradient (smooth backgrounds are where inpainting seams show first).
- **Text cases**: one per (background, kind), kinds :data:`KINDS`:

  ``caption``    white/yellow text with a dark stroke (sometimes a drop shadow) along the bottom;
  ``timestamp``  small orange/amber digital date "2019-07-14 18:32" in a corner;
  ``promo``      text on an opaque coloured rounded label ("SALE -30%"): label and text are
                 both burned in, so both are ground truth;
  ``watermark``  large "© shopname" at alpha 0.3-0.5, rotated by 20-45 degrees either way;
  ``multi``      two of the above.

  Fonts are matplotlib's bundled DejaVu faces and Pillow's default font; cap heights lie between
  :data:`MIN_GLYPH_PX` px and 10 % of the image's short side. Each overlay is rendered as
  antialiased coverage, gathered into one premultiplied RGBA layer the size of the image and
  composited over the background once (rounded to uint8 once). The ground-truth mask is 255
  exactly where the composited image differs from the clean background in any channel: every
  pixel the overlay changed, outline, shadow and antialiasing included, and nothing else.
- **Clean cases** (no text): every background, skimage grass/gravel/brick (grey -> RGB),
  procedural fabric weave, foliage-like leaves and a gingham product pattern, and two renders
  of hard-edged products.
- **SR cases**: every background with H and W cropped (top-left anchored) to multiples of 4,
  and ``lr2``/``lr4`` made from it by Pillow's antialiased bicubic resize (like MATLAB's
  ``imresize``), the usual super-resolution benchmark degradation.

The generator is deterministic: the same seed gives the same bytes. Each case draws from its
own generator seeded by ``(seed, case index)``, so adding a case does not change the others.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import matplotlib as mpl
import numpy as np
import numpy.typing as npt
import skimage
from PIL import Image as PILImage
from PIL import ImageDraw, ImageFont
from skimage import data

from consumers.dev.overlay import (
    PILLOW_DEFAULT,
    Coverage,
    changed,
    coverage,
    load_font,
    place,
    rotate_coverage,
    text_layer,
)

__all__ = [
    "KINDS",
    "MAX_LONG_SIDE",
    "MIN_GLYPH_PX",
    "PHOTOS",
    "RENDERS",
    "RENDER_SIZE",
    "CleanCase",
    "Corpus",
    "SRCase",
    "TextCase",
    "build_corpus",
]

Image = npt.NDArray[np.uint8]
"""HWC uint8 RGB."""
Mask = npt.NDArray[np.uint8]
"""HW uint8, 255 = selected."""

KINDS = ("caption", "timestamp", "promo", "watermark", "multi")
"""Overlay kinds, one text case per (background, kind)."""
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "grace_hopper", "motorcycle_right")
"""Photo backgrounds (never used to train the upscaler)."""
RENDERS = ("render_flat", "render_linear", "render_radial", "render_product")
"""Seeded product-render backgrounds."""
MAX_LONG_SIDE = 1024
"""Photos larger than this on their long side are centre-cropped to it."""
RENDER_SIZE = 768
"""Side of the square product renders, px."""
MIN_GLYPH_PX = 14
"""Smallest cap height of any overlay text, px."""
MAX_GLYPH_FRACTION = 0.10
"""Largest cap height of any overlay text, as a fraction of the image's short side."""
TEXTURE_SIZE = 512
"""Side of the procedural textures, px."""

_FONT_FILES = (
    "DejaVuSans.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSans-Oblique.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSerif-Bold.ttf",
    "DejaVuSansMono.ttf",
    "DejaVuSansMono-Bold.ttf",
)
_MONO_FONTS = ("DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf", PILLOW_DEFAULT)
_CAPTIONS = (
    "Genuine leather, handmade",
    "Brand new - never used",
    "Limited edition 2024",
    "Ships in 24 hours",
    "Vintage style, great condition",
    "Best seller this week",
    "100% cotton",
)
_PROMOS = ("SALE -30%", "FREE SHIPPING", "NEW", "-50% TODAY", "BEST PRICE", "HOT DEAL", "2 FOR 1")
_SHOPS = ("shopname", "bestdeals.store", "MegaMart", "urban_outlet", "trendyshop")
_CORNERS = ("tl", "tr", "bl", "br")


# -- value types ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TextCase:
    """A background with a text overlay burned in, and its exact ground truth."""

    name: str
    """Unique id, ``"{background}-{kind}"``."""
    background: str
    """Name of the clean background (one of :data:`PHOTOS` or :data:`RENDERS`)."""
    kind: str
    """Overlay kind, one of :data:`KINDS`."""
    font: str
    """Font file name(s) used (``"+"``-joined for ``multi``); ``pillow-default`` is Pillow's."""
    clean: Image
    """HWC uint8 RGB background without the overlay."""
    image: Image
    """HWC uint8 RGB background with the overlay composited."""
    mask: Mask
    """HW uint8: 255 exactly where ``image`` differs from ``clean`` in any channel, else 0."""


@dataclass(frozen=True)
class CleanCase:
    """An image with no text on it: any text mask found on it is a false positive."""

    name: str
    """Unique id."""
    kind: str
    """``photo``, ``render``, ``texture`` or ``product_edges``."""
    image: Image
    """HWC uint8 RGB."""


@dataclass(frozen=True)
class SRCase:
    """A high-resolution image and its bicubic-downscaled low-resolution versions."""

    name: str
    """Background name."""
    hr: Image
    """HWC uint8 RGB, H and W multiples of 4."""
    lr2: Image
    """``hr`` shrunk by 2 with Pillow's antialiased bicubic resize."""
    lr4: Image
    """``hr`` shrunk by 4 with Pillow's antialiased bicubic resize."""


@dataclass(frozen=True)
class Corpus:
    """Everything the quality benchmark measures on."""

    seed: int
    """Seed the corpus was generated with."""
    text_cases: list[TextCase]
    """One case per (background, kind)."""
    clean_cases: list[CleanCase]
    """Images without text."""
    sr_cases: list[SRCase]
    """HR/LR pairs, one per background."""


# -- the corpus ----------------------------------------------------------------------------------


def build_corpus(seed: int = 0) -> Corpus:
    """Build the whole corpus; the same ``seed`` gives the same bytes."""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"build_corpus: seed must be a non-negative int, got {seed!r}.")
    backgrounds = _backgrounds(seed)
    text_cases = []
    for b_index, (background, clean) in enumerate(backgrounds.items()):
        for k_index, kind in enumerate(KINDS):
            rng = _rng(seed, 100 + b_index * len(KINDS) + k_index)
            image, font = _overlay(clean, kind, rng)
            mask = _changed(clean, image)
            text_cases.append(
                TextCase(
                    name=f"{background}-{kind}",
                    background=background,
                    kind=kind,
                    font=font,
                    clean=clean,
                    image=image,
                    mask=mask.astype(np.uint8),
                )
            )
    clean_cases = [
        CleanCase(name=name, kind="photo" if name in PHOTOS else "render", image=image)
        for name, image in backgrounds.items()
    ]
    for name in ("grass", "gravel", "brick"):
        clean_cases.append(CleanCase(name=name, kind="texture", image=_skimage(name)))
    textures: dict[str, Callable[[np.random.Generator], Image]] = {
        "fabric": _fabric,
        "foliage": _foliage,
        "gingham": _gingham,
        "stripes": _stripes,
    }
    for index, (name, make) in enumerate(textures.items()):
        clean_cases.append(CleanCase(name=name, kind="texture", image=make(_rng(seed, 20 + index))))
    clean_cases.append(
        CleanCase(name="render_product_2", kind="render", image=_render_product(_rng(seed, 29)))
    )
    for index, name in enumerate(("edges_phone", "edges_box")):
        image = _hard_product(_rng(seed, 30 + index), phone=name == "edges_phone")
        clean_cases.append(CleanCase(name=name, kind="product_edges", image=image))
    sr_cases = [_sr_case(name, image) for name, image in backgrounds.items()]
    return Corpus(seed=seed, text_cases=text_cases, clean_cases=clean_cases, sr_cases=sr_cases)


def _changed(clean: Image, image: Image) -> Mask:
    """255 where ``image`` differs from ``clean`` in any channel, else 0."""
    return np.where(changed(clean, image), np.uint8(255), np.uint8(0)).astype(np.uint8)


def _rng(seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, stream])


def _sr_case(name: str, image: Image) -> SRCase:
    height, width = (image.shape[0] // 4) * 4, (image.shape[1] // 4) * 4
    hr = np.ascontiguousarray(image[:height, :width])
    pil = PILImage.fromarray(hr)
    lr2 = pil.resize((width // 2, height // 2), PILImage.Resampling.BICUBIC)
    lr4 = pil.resize((width // 4, height // 4), PILImage.Resampling.BICUBIC)
    return SRCase(name=name, hr=hr, lr2=np.asarray(lr2).copy(), lr4=np.asarray(lr4).copy())


# -- backgrounds ---------------------------------------------------------------------------------


def _backgrounds(seed: int) -> dict[str, Image]:
    photos: dict[str, Image] = {
        "astronaut": _skimage("astronaut"),
        "chelsea": _skimage("chelsea"),
        "coffee": _skimage("coffee"),
        "rocket": _skimage("rocket"),
        "grace_hopper": _read_rgb(Path(mpl.get_data_path()) / "sample_data" / "grace_hopper.jpg"),
        "motorcycle_right": _read_rgb(
            Path(skimage.__file__).parent / "data" / "motorcycle_right.png"
        ),
    }
    out = {name: _cap_size(photos[name]) for name in PHOTOS}
    makers: dict[str, Callable[[np.random.Generator], Image]] = {
        "render_flat": _render_flat,
        "render_linear": _render_linear,
        "render_radial": _render_radial,
        "render_product": _render_product,
    }
    for index, name in enumerate(RENDERS):
        out[name] = makers[name](_rng(seed, 10 + index))
    return out


def _skimage(name: str) -> Image:
    """An image from ``skimage.data`` (the ones used here ship with the wheel), as RGB."""
    image = np.asarray(getattr(data, name)(), dtype=np.uint8)
    return image if image.ndim == 3 else _grey_to_rgb(image)


def _read_rgb(path: Path) -> Image:
    with PILImage.open(path) as opened:
        return np.asarray(opened.convert("RGB")).copy()


def _cap_size(image: Image) -> Image:
    height, width = image.shape[:2]
    top = max(0, (height - MAX_LONG_SIDE) // 2)
    left = max(0, (width - MAX_LONG_SIDE) // 2)
    crop = image[top : top + MAX_LONG_SIDE, left : left + MAX_LONG_SIDE, :3]
    return np.ascontiguousarray(crop, dtype=np.uint8)


def _grey_to_rgb(grey: npt.NDArray[np.uint8]) -> Image:
    return np.ascontiguousarray(np.repeat(grey[:, :, None], 3, axis=2), dtype=np.uint8)


def _colour(rng: np.random.Generator, low: float, high: float) -> npt.NDArray[np.float64]:
    return rng.uniform(low, high, size=3)


def _to_u8(image: npt.NDArray[np.floating]) -> Image:
    return np.ascontiguousarray(np.clip(np.rint(image), 0, 255).astype(np.uint8))


def _grid(size: int) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    axis = (np.arange(size, dtype=np.float64) + 0.5) / size
    yy, xx = np.meshgrid(axis, axis, indexing="ij")
    return yy, xx


def _blend(
    t: npt.NDArray[np.float64], c0: npt.NDArray[np.float64], c1: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    return c0 * (1.0 - t[..., None]) + c1 * t[..., None]


def _render_flat(rng: np.random.Generator) -> Image:
    colour = _colour(rng, 60, 250)
    return _to_u8(np.broadcast_to(colour, (RENDER_SIZE, RENDER_SIZE, 3)).copy())


def _render_linear(rng: np.random.Generator) -> Image:
    yy, xx = _grid(RENDER_SIZE)
    angle = rng.uniform(0, 2 * math.pi)
    t = (xx - 0.5) * math.cos(angle) + (yy - 0.5) * math.sin(angle)
    t = (t - t.min()) / (t.max() - t.min())
    return _to_u8(_blend(t, _colour(rng, 30, 255), _colour(rng, 30, 255)))


def _render_radial(rng: np.random.Generator) -> Image:
    yy, xx = _grid(RENDER_SIZE)
    cy, cx = rng.uniform(0.3, 0.7, size=2)
    t = np.clip(np.hypot(yy - cy, xx - cx) / rng.uniform(0.6, 0.9), 0.0, 1.0)
    return _to_u8(_blend(t, _colour(rng, 170, 255), _colour(rng, 20, 140)))


def _studio(rng: np.random.Generator, size: int) -> npt.NDArray[np.float64]:
    yy, xx = _grid(size)
    t = np.clip(0.6 * yy + 0.4 * np.hypot(yy - 0.35, xx - 0.5), 0.0, 1.0)
    return _blend(t, _colour(rng, 215, 255), _colour(rng, 150, 205))


def _shape_coverage(size: int, draw: Callable[[npt.NDArray[np.uint8], int], None]) -> Coverage:
    """Antialiased coverage of a shape drawn by ``draw(canvas, factor)`` at 4x, area-reduced."""
    factor = 4
    canvas = np.zeros((size * factor, size * factor), np.uint8)
    draw(canvas, factor)
    small = cv2.resize(canvas, (size, size), interpolation=cv2.INTER_AREA)
    return small.astype(np.float64) / 255.0


def _render_product(rng: np.random.Generator) -> Image:
    size = RENDER_SIZE
    background = _studio(rng, size)
    cx = int(size * rng.uniform(0.4, 0.6))
    half_w = int(size * rng.uniform(0.12, 0.18))
    top, bottom = int(size * rng.uniform(0.18, 0.3)), int(size * 0.78)

    def bottle(canvas: npt.NDArray[np.uint8], f: int) -> None:
        neck = half_w // 3
        cv2.rectangle(
            canvas,
            ((cx - half_w) * f, (top + 2 * neck) * f),
            ((cx + half_w) * f, bottom * f),
            255,
            -1,
        )
        cv2.ellipse(
            canvas, (cx * f, (top + 2 * neck) * f), (half_w * f, neck * f), 0, 180, 360, 255, -1
        )
        cv2.rectangle(
            canvas,
            ((cx - neck) * f, (top - neck) * f),
            ((cx + neck) * f, (top + neck) * f),
            255,
            -1,
        )
        cv2.ellipse(
            canvas, (cx * f, bottom * f), (half_w * f, max(1, half_w // 5) * f), 0, 0, 180, 255, -1
        )

    def shadow(canvas: npt.NDArray[np.uint8], f: int) -> None:
        cv2.ellipse(
            canvas,
            ((cx + half_w // 3) * f, bottom * f),
            (int(half_w * 1.6) * f, max(2, half_w // 3) * f),
            0,
            0,
            360,
            255,
            -1,
        )

    shade = cv2.GaussianBlur(_shape_coverage(size, shadow), (0, 0), sigmaX=size * 0.02)
    background = background * (1.0 - 0.55 * shade[..., None])
    body = _shape_coverage(size, bottle)
    _, xx = _grid(size)
    light = 0.55 + 0.45 * np.cos(np.clip((xx * size - cx) / (half_w * 1.2), -1.5, 1.5))
    product = _colour(rng, 40, 230)[None, None, :] * light[..., None]
    return _to_u8(background * (1.0 - body[..., None]) + product * body[..., None])


def _hard_product(rng: np.random.Generator, *, phone: bool) -> Image:
    """A dark, hard-edged product (phone with a bright screen, or a box) on a white sweep."""
    size = RENDER_SIZE
    background = _studio(rng, size) * 0.2 + 204.0
    dark = _colour(rng, 5, 45)
    image = background.copy()
    if phone:
        x0, y0 = int(size * rng.uniform(0.3, 0.36)), int(size * rng.uniform(0.1, 0.16))
        x1, y1 = size - x0, size - y0
        cv2.rectangle(image, (x0, y0), (x1, y1), tuple(float(c) for c in dark), -1)
        screen = _colour(rng, 120, 250)
        cv2.rectangle(
            image, (x0 + 14, y0 + 40), (x1 - 14, y1 - 40), tuple(float(c) for c in screen), -1
        )
        cv2.rectangle(
            image,
            (x0 + 14, y0 + 40),
            ((x0 + x1) // 2, (y0 + y1) // 2),
            tuple(float(c) * 0.6 for c in screen),
            -1,
        )
    else:
        pts = np.array(
            [[0.25, 0.4], [0.55, 0.3], [0.78, 0.4], [0.78, 0.75], [0.5, 0.88], [0.25, 0.75]]
        )
        cv2.fillPoly(
            image, [(pts * size).astype(np.int32)], tuple(float(c) for c in dark), cv2.LINE_AA
        )
        top = np.array([[0.25, 0.4], [0.55, 0.3], [0.78, 0.4], [0.5, 0.5]])
        cv2.fillPoly(
            image,
            [(top * size).astype(np.int32)],
            tuple(float(c) + 60.0 for c in dark),
            cv2.LINE_AA,
        )
        cv2.line(
            image,
            (int(0.5 * size), int(0.5 * size)),
            (int(0.5 * size), int(0.88 * size)),
            (250.0, 250.0, 250.0),
            3,
            cv2.LINE_AA,
        )
    return _to_u8(image)


# -- textures ------------------------------------------------------------------------------------


def _smooth_noise(rng: np.random.Generator, size: int, sigma: float) -> npt.NDArray[np.float64]:
    """Unit-variance Gaussian-blurred white noise; wide blurs are done at a lower resolution."""
    factor = max(1, int(sigma // 4))
    small = -(-size // factor)
    white = rng.standard_normal((small, small)).astype(np.float32)
    blurred = cv2.GaussianBlur(white, (0, 0), sigmaX=sigma / factor)
    if factor > 1:
        blurred = cv2.resize(blurred, (small * factor,) * 2, interpolation=cv2.INTER_CUBIC)
    noise = np.asarray(blurred[:size, :size], dtype=np.float64)
    return np.asarray(noise / (noise.std() + 1e-9), dtype=np.float64)


def _fabric(rng: np.random.Generator) -> Image:
    size = TEXTURE_SIZE
    period = int(rng.integers(6, 11))
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    warp = 0.5 + 0.5 * np.cos(2 * math.pi * (xx % period) / period - math.pi)
    weft = 0.5 + 0.5 * np.cos(2 * math.pi * (yy % period) / period - math.pi)
    over = ((xx // period + yy // period) % 2).astype(bool)
    thread = np.where(over, 1.0 - 0.5 * warp, 1.0 - 0.5 * weft)
    thread_tone = np.where(
        over,
        rng.normal(1.0, 0.06, size)[(xx // period).astype(int) % size],
        rng.normal(1.0, 0.06, size)[(yy // period).astype(int) % size],
    )
    shade = 1.0 + 0.05 * _smooth_noise(rng, size, 40.0)
    level = thread * thread_tone * shade
    return _to_u8(_colour(rng, 60, 230)[None, None, :] * level[..., None])


def _foliage(rng: np.random.Generator) -> Image:
    size = TEXTURE_SIZE
    base = 0.5 + 0.15 * _smooth_noise(rng, size, 30.0) + 0.08 * _smooth_noise(rng, size, 6.0)
    image = _blend(
        np.clip(base, 0, 1), np.array([20.0, 45.0, 15.0]), np.array([110.0, 170.0, 70.0])
    )
    for _ in range(420):
        centre = (int(rng.integers(0, size)), int(rng.integers(0, size)))
        axes = (int(rng.integers(8, 26)), int(rng.integers(3, 9)))
        green = np.array([rng.uniform(20, 90), rng.uniform(70, 190), rng.uniform(10, 70)])
        angle = float(rng.uniform(0, 180))
        cv2.ellipse(
            image, centre, axes, angle, 0, 360, tuple(float(c) for c in green), -1, cv2.LINE_AA
        )
        cv2.ellipse(
            image, centre, axes, angle, 0, 360, tuple(float(c) * 0.6 for c in green), 1, cv2.LINE_AA
        )
    image = np.asarray(cv2.GaussianBlur(image, (0, 0), sigmaX=0.8), np.float64)
    return _to_u8(image)


def _stripes(rng: np.random.Generator) -> Image:
    """A striped shirt fabric: bands of random widths and colours with a fine weave."""
    size = TEXTURE_SIZE
    widths = rng.integers(4, 40, size=64)
    edges = np.cumsum(widths)
    band = np.searchsorted(edges, np.arange(size), side="right") % 64
    palette = rng.uniform(30, 245, size=(64, 3))
    row = palette[band]
    image = np.broadcast_to(row[None, :, :], (size, size, 3)).copy()
    weave = 1.0 + 0.04 * np.cos(np.arange(size) * math.pi / 1.5)
    image *= (weave[:, None] * (1.0 + 0.02 * _smooth_noise(rng, size, 1.0)))[..., None]
    return _to_u8(image)


def _gingham(rng: np.random.Generator) -> Image:
    size = TEXTURE_SIZE
    period = int(rng.integers(24, 48))
    yy, xx = np.mgrid[0:size, 0:size]
    stripe_x = ((xx // (period // 2)) % 2).astype(np.float64)
    stripe_y = ((yy // (period // 2)) % 2).astype(np.float64)
    ink = _colour(rng, 20, 200)
    paper = np.array([245.0, 242.0, 236.0])
    density = 0.45 * stripe_x + 0.45 * stripe_y
    image = _blend(density, paper, ink) * (1.0 + 0.03 * _smooth_noise(rng, size, 1.0))[..., None]
    return _to_u8(image)


# -- overlays ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Element:
    """One piece of an overlay: antialiased coverage in a colour, at an opacity."""

    patch: Coverage
    """Coverage of the element's own rectangle."""
    x: int
    """Column of the patch's left edge in the image (may lie outside it: the patch is clipped)."""
    y: int
    """Row of the patch's top edge in the image."""
    colour: tuple[float, float, float]
    """RGB 0..255."""
    opacity: float
    """Alpha multiplier in (0, 1]."""


def _overlay(clean: Image, kind: str, rng: np.random.Generator) -> tuple[Image, str]:
    """``clean`` with an overlay of ``kind`` composited, and the font name(s) used."""
    if kind == "multi":
        first, second = rng.choice(np.array(KINDS[:4]), size=2, replace=False)
        parts = sorted((str(first), str(second)), key=KINDS.index)
    else:
        parts = [kind]
    taken: set[str] = set()
    if "caption" in parts:
        taken |= {"bl", "br"}
    elements: list[_Element] = []
    fonts: list[str] = []
    for part in parts:
        corner = str(rng.choice(np.array([c for c in _CORNERS if c not in taken])))
        taken.add(corner)
        part_elements, font = _RENDERERS[part](clean.shape[:2], rng, corner)
        elements += part_elements
        fonts.append(font)
    return _composite(clean, elements), "+".join(fonts)


def _composite(clean: Image, elements: list[_Element]) -> Image:
    """Gather ``elements`` into one premultiplied RGBA layer, then put it over ``clean``.

    Only the bounding box of the elements is computed; outside it the layer is empty.
    """
    height, width = clean.shape[:2]
    out = clean.copy()
    x0 = max(0, min(e.x for e in elements))
    y0 = max(0, min(e.y for e in elements))
    x1 = min(width, max(e.x + e.patch.shape[1] for e in elements))
    y1 = min(height, max(e.y + e.patch.shape[0] for e in elements))
    if x1 <= x0 or y1 <= y0:
        return out
    shape = (y1 - y0, x1 - x0)
    layer_rgb = np.zeros((*shape, 3), np.float32)
    layer_a = np.zeros((*shape, 1), np.float32)
    for element in elements:
        placed = place(element.patch, shape, element.x - x0, element.y - y0)
        alpha = (placed * element.opacity).astype(np.float32)[..., None]
        colour = np.asarray(element.colour, np.float32)
        layer_rgb = colour * alpha + layer_rgb * (1.0 - alpha)
        layer_a = alpha + layer_a * (1.0 - alpha)
    box = out[y0:y1, x0:x1].astype(np.float32)
    out[y0:y1, x0:x1] = _to_u8(box * (1.0 - layer_a) + layer_rgb)
    return out


def _font(name: str, size: int) -> ImageFont.FreeTypeFont:
    return load_font(name, size, layout=ImageFont.Layout.BASIC)


def _sized_font(name: str, cap_px: float) -> ImageFont.FreeTypeFont:
    """``name`` at the size whose capital "H" is ``cap_px`` tall."""
    _, top, _, bottom = _font(name, 100).getbbox("H")
    return _font(name, max(6, round(cap_px * 100 / max(1, bottom - top))))


def _cap_range(shape: tuple[int, int], low: float, high: float) -> tuple[float, float]:
    """Cap heights between fractions ``low`` and ``high`` of the short side, within the limits."""
    short = min(shape)
    ceiling = MAX_GLYPH_FRACTION * short
    lo = min(max(MIN_GLYPH_PX, low * short), ceiling)
    return lo, max(lo, min(high * short, ceiling))


def _fit_font(
    name: str,
    text: str,
    cap: tuple[float, float],
    rng: np.random.Generator,
    max_width: float,
    stroke: int = 0,
) -> ImageFont.FreeTypeFont:
    """A font at a random cap height in ``cap``, shrunk (not below the low end) to fit the width."""
    cap_px = rng.uniform(*cap)
    font = _sized_font(name, cap_px)
    while cap_px > cap[0] and _text_width(font, text, stroke) > max_width:
        cap_px = max(cap[0], cap_px * 0.9)
        font = _sized_font(name, cap_px)
    return font


def _text_width(font: ImageFont.FreeTypeFont, text: str, stroke: int) -> float:
    left, _, right, _ = font.getbbox(text, stroke_width=stroke)
    return float(right - left)


def _text_patch(font: ImageFont.FreeTypeFont, text: str, stroke: int = 0) -> Coverage:
    """Tight coverage of ``text`` (grown by ``stroke`` px outline when > 0)."""
    left, top, right, bottom = font.getbbox(text, stroke_width=stroke)
    pad = 2
    size = (int(right - left) + 2 * pad, int(bottom - top) + 2 * pad)
    layer = text_layer(size, (pad - left, pad - top), text, font, stroke=stroke, stroke_fill=255)
    return coverage(layer)


def _corner_xy(
    shape: tuple[int, int], size: tuple[int, int], corner: str, margin: int
) -> tuple[int, int]:
    height, width = shape
    patch_h, patch_w = size
    x = margin if corner[1] == "l" else width - margin - patch_w
    y = margin if corner[0] == "t" else height - margin - patch_h
    return x, y


def _caption(
    shape: tuple[int, int], rng: np.random.Generator, _corner: str
) -> tuple[list[_Element], str]:
    name = str(rng.choice(np.array([*_FONT_FILES, PILLOW_DEFAULT])))
    text = str(rng.choice(np.array(_CAPTIONS)))
    height, width = shape
    stroke = int(rng.integers(1, 4))
    font = _fit_font(name, text, _cap_range(shape, 0.045, 0.08), rng, 0.9 * width, stroke)
    outline = _text_patch(font, text, stroke)
    fill = _text_patch(font, text, 0)
    fill = np.pad(fill, stroke)[: outline.shape[0], : outline.shape[1]]
    x = (width - outline.shape[1]) // 2 + int(rng.integers(-width // 20, width // 20 + 1))
    y = height - outline.shape[0] - int(height * rng.uniform(0.03, 0.07))
    colour = (255.0, 255.0, 255.0) if rng.random() < 0.5 else (255.0, 225.0, 40.0)
    elements = []
    if rng.random() < 0.5:
        shadow = np.asarray(cv2.GaussianBlur(outline, (0, 0), sigmaX=1.5), np.float64)
        offset = max(2, font.size // 12)
        elements.append(_Element(shadow, x + offset, y + offset, (0.0, 0.0, 0.0), 0.6))
    elements.append(_Element(outline, x, y, (15.0, 15.0, 20.0), 1.0))
    elements.append(_Element(fill, x, y, colour, 1.0))
    return elements, name


def _timestamp(
    shape: tuple[int, int], rng: np.random.Generator, corner: str
) -> tuple[list[_Element], str]:
    name = str(rng.choice(np.array(_MONO_FONTS)))
    year, month, day = (
        int(rng.integers(2005, 2025)),
        int(rng.integers(1, 13)),
        int(rng.integers(1, 29)),
    )
    hour, minute = int(rng.integers(0, 24)), int(rng.integers(0, 60))
    text = f"{year}-{month:02d}-{day:02d} {hour:02d}:{minute:02d}"
    font = _fit_font(name, text, _cap_range(shape, 0.0, 0.035), rng, 0.45 * shape[1])
    patch = _text_patch(font, text)
    x, y = _corner_xy(shape, patch.shape, corner, int(min(shape) * rng.uniform(0.02, 0.05)))
    colour = (255.0, 140.0, 0.0) if rng.random() < 0.5 else (255.0, 191.0, 0.0)
    return [_Element(patch, x, y, colour, 1.0)], name


def _promo(
    shape: tuple[int, int], rng: np.random.Generator, corner: str
) -> tuple[list[_Element], str]:
    name = str(
        rng.choice(
            np.array(
                [
                    "DejaVuSans-Bold.ttf",
                    "DejaVuSerif-Bold.ttf",
                    "DejaVuSansMono-Bold.ttf",
                    PILLOW_DEFAULT,
                ]
            )
        )
    )
    text = str(rng.choice(np.array(_PROMOS)))
    font = _fit_font(name, text, _cap_range(shape, 0.05, 0.09), rng, 0.4 * shape[1])
    glyphs = _text_patch(font, text)
    pad_x, pad_y = int(font.size * 0.5), int(font.size * 0.35)
    label_h, label_w = glyphs.shape[0] + 2 * pad_y, glyphs.shape[1] + 2 * pad_x
    radius = int(min(label_h, label_w) * rng.uniform(0.15, 0.5))
    factor = 4
    big = PILImage.new("L", (label_w * factor, label_h * factor), 0)
    ImageDraw.Draw(big).rounded_rectangle(
        (0, 0, label_w * factor - 1, label_h * factor - 1), radius=radius * factor, fill=255
    )
    label = np.asarray(big.resize((label_w, label_h), PILImage.Resampling.BOX), np.float64) / 255.0
    x, y = _corner_xy(shape, label.shape, corner, int(min(shape) * rng.uniform(0.03, 0.06)))
    palette = (
        (220.0, 30.0, 40.0),
        (20.0, 150.0, 60.0),
        (30.0, 80.0, 200.0),
        (15.0, 15.0, 15.0),
        (250.0, 200.0, 0.0),
    )
    label_colour = palette[int(rng.integers(0, len(palette)))]
    text_colour = (20.0, 20.0, 20.0) if label_colour[1] > 180 else (255.0, 255.0, 255.0)
    return [
        _Element(label, x, y, label_colour, 1.0),
        _Element(glyphs, x + pad_x, y + pad_y, text_colour, 1.0),
    ], name


def _watermark(
    shape: tuple[int, int], rng: np.random.Generator, _corner: str
) -> tuple[list[_Element], str]:
    name = str(rng.choice(np.array([*_FONT_FILES, PILLOW_DEFAULT])))
    text = f"© {rng.choice(np.array(_SHOPS))}"
    height, width = shape
    font = _fit_font(name, text, _cap_range(shape, 0.07, 0.10), rng, 0.8 * min(shape))
    patch = _text_patch(font, text)
    angle = float(rng.uniform(20, 45) * rng.choice(np.array([-1.0, 1.0])))
    rotated = rotate_coverage(patch, angle)
    x = (width - rotated.shape[1]) // 2 + int(rng.integers(-width // 10, width // 10 + 1))
    y = (height - rotated.shape[0]) // 2 + int(rng.integers(-height // 10, height // 10 + 1))
    colour = (255.0, 255.0, 255.0) if rng.random() < 0.6 else (128.0, 128.0, 128.0)
    return [_Element(rotated, x, y, colour, float(rng.uniform(0.3, 0.5)))], name


_RENDERERS: dict[
    str, Callable[[tuple[int, int], np.random.Generator, str], tuple[list[_Element], str]]
] = {"caption": _caption, "timestamp": _timestamp, "promo": _promo, "watermark": _watermark}
