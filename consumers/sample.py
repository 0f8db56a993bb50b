"""A messy vendor upload, generated: the files a marketplace really receives, with ground truth.

``generate_sample(out, count)`` writes::

    out/upload/<vendor>/<sku>/<view>.<ext>  the uploaded files (what ``pixelgate run`` reads)
    out/truth/<vendor>/<sku>/<view>.png     text kinds: ground-truth masks (255 = text, 0 = not)
    out/manifest.jsonl                      one ``SampleItem`` as JSON per line, generation order

Each item is one *kind* of upload (see ``KINDS``): clean photos, photos with burned-in text
(captions, date stamps, watermarks, promo labels), awkward but valid files (CMYK, Adobe RGB,
16-bit, alpha, palette, EXIF-rotated, GPS-tagged, oversized) and hostile or broken ones
(decompression bomb, truncated, empty, not an image, random bytes, extreme aspect ratio, blank,
blurry, too small). Kinds are taken in the fixed order of ``KINDS``, cycling, so any
``count >= len(KINDS)`` covers every kind and a smaller count takes the first ones.

Everything is deterministic for a given ``(seed, count)``: the same files, byte for byte, on every
run (fixed encoder settings, no timestamps). Pixels come from scikit-image's bundled photos, so
nothing is downloaded. Text is rendered with Pillow's built-in FreeType font.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from io import BytesIO
from pathlib import Path, PurePosixPath
from typing import Any, Final, Literal, NamedTuple

import cv2
import numpy as np
import numpy.typing as npt
import orjson
from PIL import ExifTags, Image, ImageCms, ImageDraw, ImageFont
from skimage import data as skdata

from schemas.reasons import ReasonCode

__all__ = [
    "EXPECTED_REASON",
    "KINDS",
    "TEXT_KINDS",
    "SampleItem",
    "adobe_rgb_icc",
    "generate_sample",
]

KINDS: Final[tuple[str, ...]] = (
    "clean",
    "caption",
    "truncated",
    "timestamp",
    "huge_bomb",
    "watermark",
    "empty",
    "promo",
    "not_image",
    "cmyk",
    "alpha",
    "tiny",
    "exif_rotated",
    "adobe_rgb",
    "random_bytes",
    "rgb16",
    "blank",
    "gps",
    "extreme_aspect",
    "palette_alpha",
    "blurry",
    "gray16",
    "wrong_extension",
    "large",
)
"""Every kind of upload, in the order ``generate_sample`` produces them (then it cycles)."""

TEXT_KINDS: Final[frozenset[str]] = frozenset({"caption", "timestamp", "watermark", "promo"})
"""Kinds with text burned into the pixels; only these have a ground-truth mask."""

EXPECTED_REASON: Final[dict[str, ReasonCode]] = {
    "huge_bomb": ReasonCode.DECOMPRESSION_BOMB,
    "truncated": ReasonCode.TRUNCATED,
    "empty": ReasonCode.EMPTY_FILE,
    "not_image": ReasonCode.NOT_AN_IMAGE,
    "random_bytes": ReasonCode.NOT_AN_IMAGE,
    "tiny": ReasonCode.TOO_SMALL,
    "extreme_aspect": ReasonCode.EXTREME_ASPECT_RATIO,
    "blank": ReasonCode.BLANK_IMAGE,
    "blurry": ReasonCode.TOO_BLURRY,
}
"""The reason preflight must reject each hostile kind with; every other kind is accepted."""

_DPIS: Final = (72, 96, 150, 180, 200, 240, 300)
_VIEWS: Final = ("front", "side", "back", "detail", "main", "packshot", "top", "angle")
# Sharp, textured colour photos: safe for "accepted" kinds (no flat or smooth sources that a
# blank or blur check could mistake for a bad upload).
_PHOTOS: Final = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry")
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
_BOMB_SIDE: Final = 30_000
_JPEG_EXT: Final = "jpg"
_PNG_LEVEL: Final = 1  # fast zlib level: sample files favour generation speed over size

U8 = npt.NDArray[np.uint8]
F32 = npt.NDArray[np.float32]


@dataclass(frozen=True)
class SampleItem:
    """One generated upload file and what pixelgate should make of it."""

    file: str
    """Path of the uploaded file, relative to ``out/upload`` (``vendor07/sku0003/front.jpg``)."""
    kind: str
    """Which kind of upload this is: one of ``KINDS``."""
    expected_status: Literal["ok", "rejected"]
    """``ok``: preflight must accept it; ``rejected``: preflight must reject it."""
    expected_reason: str | None
    """The ``ReasonCode`` value preflight must reject it with; ``None`` for accepted kinds."""
    truth_mask: str | None
    """Ground-truth text mask (PNG, 255 = text pixels including outline, 0 = not), relative to
    the sample root ``out`` (``truth/vendor07/sku0003/front.png``); ``None`` without text."""
    vendor_id: str
    """The vendor that uploaded it (also the first folder of ``file``)."""
    sku: str
    """The product it belongs to (also the second folder of ``file``)."""
    dpi: int
    """The resolution stored in the file's metadata; 0 where the file stores none."""


class _Built(NamedTuple):
    """What one kind builder produces: the file's bytes and, for text kinds, its truth mask."""

    data: bytes
    ext: str
    dpi: int
    mask: npt.NDArray[np.bool_] | None = None


def generate_sample(
    out: Path,
    count: int,
    *,
    seed: int = 0,
    on_item: Callable[[SampleItem], None] | None = None,
) -> list[SampleItem]:
    """Write ``count`` vendor uploads with ground truth under ``out`` and return their manifest.

    Files already under ``out`` with the same names are overwritten; others are left alone.
    ``on_item`` is called with each item once its files are on disk (for progress reporting).
    """
    if count < 0:
        msg = f"count must be >= 0, got {count}; pass the number of files to generate"
        raise ValueError(msg)
    if seed < 0:
        msg = f"seed must be >= 0, got {seed}; pass a non-negative integer"
        raise ValueError(msg)
    out.mkdir(parents=True, exist_ok=True)
    items: list[SampleItem] = []
    for index in range(count):
        kind = KINDS[index % len(KINDS)]
        rng = np.random.default_rng([seed, index])
        vendor_id = f"vendor{int(rng.integers(1, 13)):02d}"
        sku = f"sku{index + 1:04d}"
        view = _VIEWS[int(rng.integers(len(_VIEWS)))]
        dpi = _DPIS[int(rng.integers(len(_DPIS)))]
        built = _BUILDERS[kind](rng, dpi)
        rel = PurePosixPath(vendor_id, sku, f"{view}.{built.ext}")
        _write(out / "upload" / rel, built.data)
        truth: str | None = None
        if built.mask is not None:
            truth_rel = PurePosixPath("truth", vendor_id, sku, f"{view}.png")
            mask_img = Image.fromarray(built.mask.astype(np.uint8) * np.uint8(255), "L")
            _write(out / truth_rel, _png_bytes(mask_img))
            truth = truth_rel.as_posix()
        reason = EXPECTED_REASON.get(kind)
        item = SampleItem(
            file=rel.as_posix(),
            kind=kind,
            expected_status="rejected" if reason is not None else "ok",
            expected_reason=reason.value if reason is not None else None,
            truth_mask=truth,
            vendor_id=vendor_id,
            sku=sku,
            dpi=built.dpi,
        )
        items.append(item)
        if on_item is not None:
            on_item(item)
    manifest = b"".join(orjson.dumps(item) + b"\n" for item in items)
    _write(out / "manifest.jsonl", manifest)
    return items


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


# --------------------------------------------------------------------------------------------
# Adobe RGB (1998) ICC profile, built by hand (Pillow/littlecms cannot create one)
# --------------------------------------------------------------------------------------------

_D50: Final = (0.9642, 1.0, 0.8249)
_BRADFORD: Final = np.array(
    [[0.8951, 0.2664, -0.1614], [-0.7502, 1.7135, 0.0367], [0.0389, -0.0685, 1.0296]],
)


def _xy_to_xyz(x: float, y: float) -> npt.NDArray[np.float64]:
    return np.array([x / y, 1.0, (1.0 - x - y) / y])


def _adobe_rgb_colorants() -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """D65 white and the Adobe RGB primaries as XYZ columns, Bradford-adapted to D50."""
    white = _xy_to_xyz(0.3127, 0.3290)
    primaries = np.stack(
        [_xy_to_xyz(0.64, 0.33), _xy_to_xyz(0.21, 0.71), _xy_to_xyz(0.15, 0.06)], axis=1
    )
    rgb_to_xyz = primaries * np.linalg.solve(primaries, white)
    cone_gain = (_BRADFORD @ np.array(_D50)) / (_BRADFORD @ white)
    adapt = np.linalg.inv(_BRADFORD) @ np.diag(cone_gain) @ _BRADFORD
    return white, adapt @ rgb_to_xyz


def _s15f16(values: npt.ArrayLike) -> bytes:
    return b"".join(struct.pack(">i", round(float(v) * 65536)) for v in np.ravel(values))


def _xyz_tag(xyz: npt.ArrayLike) -> bytes:
    return b"XYZ \0\0\0\0" + _s15f16(xyz)


def _desc_tag(text: str) -> bytes:
    ascii_text = text.encode("ascii") + b"\0"
    return (
        b"desc\0\0\0\0"
        + struct.pack(">I", len(ascii_text))
        + ascii_text
        + struct.pack(">II", 0, 0)  # Unicode language code and count: none
        + struct.pack(">HB", 0, 0)  # ScriptCode code and count: none
        + b"\0" * 67
    )


def _text_tag(text: str) -> bytes:
    return b"text\0\0\0\0" + text.encode("ascii") + b"\0"


@cache
def adobe_rgb_icc() -> bytes:
    """A minimal, valid ICC v2.1 display profile for Adobe RGB (1998).

    Matrix/TRC form: ``desc``, ``cprt``, ``wtpt`` (D65), ``rXYZ``/``gXYZ``/``bXYZ`` (the Adobe RGB
    primaries Bradford-adapted to the D50 PCS) and ``rTRC``/``gTRC``/``bTRC`` (``curv``, gamma
    563/256). Embed it in a JPEG with ``icc_profile=adobe_rgb_icc()``.
    """
    white, colorants = _adobe_rgb_colorants()
    trc = b"curv\0\0\0\0" + struct.pack(">IH", 1, 563)
    tags: list[tuple[bytes, bytes]] = [
        (b"desc", _desc_tag("Adobe RGB (1998) compatible - pixelgate sample")),
        (b"cprt", _text_tag("No copyright, use freely")),
        (b"wtpt", _xyz_tag(white)),
        (b"rXYZ", _xyz_tag(colorants[:, 0])),
        (b"gXYZ", _xyz_tag(colorants[:, 1])),
        (b"bXYZ", _xyz_tag(colorants[:, 2])),
        (b"rTRC", trc),
        (b"gTRC", trc),
        (b"bTRC", trc),
    ]
    offset = 128 + 4 + 12 * len(tags)
    table = [struct.pack(">I", len(tags))]
    body: list[bytes] = []
    for signature, payload in tags:
        table.append(signature + struct.pack(">II", offset, len(payload)))
        padded = payload + b"\0" * (-len(payload) % 4)
        body.append(padded)
        offset += len(padded)
    header = (
        struct.pack(">I", offset)  # profile size
        + b"\0\0\0\0"  # preferred CMM: none
        + struct.pack(">I", 0x02100000)  # version 2.1
        + b"mntr"
        + b"RGB "
        + b"XYZ "
        + struct.pack(">6H", 2024, 1, 1, 0, 0, 0)  # fixed creation date: reproducible bytes
        + b"acsp"
        + b"\0" * 4  # primary platform
        + struct.pack(">I", 0)  # flags
        + b"\0" * 8  # device manufacturer and model
        + b"\0" * 8  # device attributes
        + struct.pack(">I", 0)  # rendering intent: perceptual
        + _s15f16(_D50)  # PCS illuminant
        + b"\0" * 4  # creator
    )
    header += b"\0" * (128 - len(header))
    return header + b"".join(table) + b"".join(body)


# --------------------------------------------------------------------------------------------
# Pixels: sources, encoders
# --------------------------------------------------------------------------------------------


def _bundled(name: str) -> U8:
    """A scikit-image bundled picture, as stored (gray, RGB or RGBA uint8)."""
    return np.asarray(getattr(skdata, name)(), dtype=np.uint8)


@cache
def _source(name: str) -> U8:
    """A bundled picture as uint8 RGB (cached, read-only)."""
    raw = _bundled(name)
    if raw.ndim == 2:
        raw = np.repeat(raw[:, :, None], 3, axis=2)
    arr = np.ascontiguousarray(raw[:, :, :3])
    arr.setflags(write=False)
    return arr


def _resize(arr: npt.NDArray[Any], width: int, height: int) -> npt.NDArray[Any]:
    shrinking = width * height < arr.shape[0] * arr.shape[1]
    interp = cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC
    return np.asarray(cv2.resize(arr, (width, height), interpolation=interp))


def _photo_crop(
    rng: np.random.Generator,
    short: tuple[int, int],
    aspect: tuple[float, float],
    source: str | None,
) -> tuple[U8, int, int]:
    """A random crop of a bundled photo, and a random output size for it (width, height)."""
    name = source if source is not None else _PHOTOS[int(rng.integers(len(_PHOTOS)))]
    src = _source(name)
    ratio = float(rng.uniform(*aspect))  # width / height
    side = int(rng.integers(short[0], short[1] + 1))
    width, height = (round(side * ratio), side) if ratio >= 1 else (side, round(side / ratio))
    src_h, src_w = src.shape[:2]
    crop_w = min(src_w, round(src_h * ratio))
    crop_h = min(src_h, round(crop_w / ratio))
    scale = float(rng.uniform(0.8, 1.0))
    crop_w, crop_h = max(8, round(crop_w * scale)), max(8, round(crop_h * scale))
    x0 = int(rng.integers(0, src_w - crop_w + 1))
    y0 = int(rng.integers(0, src_h - crop_h + 1))
    return src[y0 : y0 + crop_h, x0 : x0 + crop_w], width, height


def _photo_array(
    rng: np.random.Generator,
    *,
    short: tuple[int, int] = (520, 900),
    aspect: tuple[float, float] = (0.75, 1.45),
    source: str | None = None,
) -> U8:
    """A random crop of a bundled photo resized to a random size: uint8 RGB."""
    crop, width, height = _photo_crop(rng, short, aspect, source)
    return np.asarray(_resize(crop, width, height), dtype=np.uint8)


def _photo_float(
    rng: np.random.Generator,
    *,
    short: tuple[int, int] = (520, 900),
    source: str | None = None,
) -> F32:
    """Like ``_photo_array`` but resized in float32: values in [0, 255] with real fractional
    gradations (for 16-bit files, whose low byte should carry information)."""
    crop, width, height = _photo_crop(rng, short, (0.75, 1.45), source)
    return np.asarray(_resize(crop.astype(np.float32), width, height), dtype=np.float32)


def _photo(
    rng: np.random.Generator,
    *,
    short: tuple[int, int] = (520, 900),
    aspect: tuple[float, float] = (0.75, 1.45),
) -> Image.Image:
    return Image.fromarray(_photo_array(rng, short=short, aspect=aspect), "RGB")


def _jpeg_bytes(img: Image.Image, dpi: int, *, quality: int = 90, **extra: object) -> bytes:
    buf = BytesIO()
    img.save(
        buf,
        "JPEG",
        quality=quality,
        optimize=False,
        progressive=False,
        subsampling="4:2:0",
        dpi=(dpi, dpi),
        **extra,
    )
    return buf.getvalue()


def _png_bytes(img: Image.Image, dpi: int | None = None, **extra: object) -> bytes:
    buf = BytesIO()
    if dpi is not None:
        extra["dpi"] = (dpi, dpi)
    img.save(buf, "PNG", compress_level=_PNG_LEVEL, optimize=False, **extra)
    return buf.getvalue()


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload)
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def _phys_chunk(dpi: int) -> bytes:
    ppm = round(dpi / 0.0254)
    return _png_chunk(b"pHYs", struct.pack(">IIB", ppm, ppm, 1))


def _cv2_png16(arr: npt.NDArray[np.uint16], dpi: int) -> bytes:
    """Encode a 16-bit gray or BGR array as PNG with OpenCV, then add a pHYs (DPI) chunk."""
    ok, encoded = cv2.imencode(".png", arr, [cv2.IMWRITE_PNG_COMPRESSION, _PNG_LEVEL])
    if not ok:
        msg = f"OpenCV could not encode a {arr.dtype} array of shape {arr.shape} as PNG"
        raise RuntimeError(msg)
    raw = encoded.tobytes()
    ihdr_end = 8 + 4 + 4 + 13 + 4  # signature, IHDR length, type, data, CRC
    return raw[:ihdr_end] + _phys_chunk(dpi) + raw[ihdr_end:]


def _elliptical_matte(rng: np.random.Generator, width: int, height: int) -> U8:
    matte = np.zeros((height, width), np.uint8)
    center = (width // 2 + int(rng.integers(-width // 20, width // 20 + 1)), height // 2)
    axes = (int(width * rng.uniform(0.32, 0.45)), int(height * rng.uniform(0.32, 0.45)))
    cv2.ellipse(matte, center, axes, 0.0, 0.0, 360.0, 255, -1, cv2.LINE_AA)
    return np.asarray(cv2.GaussianBlur(matte, (0, 0), 2.0), dtype=np.uint8)


# --------------------------------------------------------------------------------------------
# Text overlays: an RGBA layer per overlay; its alpha > 0 is the ground truth
# --------------------------------------------------------------------------------------------


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=max(8, size))


def _fit_font(
    text: str, size: int, max_width: float, stroke: int = 0
) -> tuple[ImageFont.FreeTypeFont | ImageFont.ImageFont, tuple[int, int, int, int]]:
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
    font: ImageFont.FreeTypeFont | ImageFont.ImageFont,
    bbox: tuple[int, int, int, int],
    xy: tuple[int, int],
    fill: tuple[int, int, int, int],
    stroke: int = 0,
    stroke_fill: tuple[int, int, int, int] | None = None,
) -> Image.Image:
    layer = Image.new("RGBA", size, (0, 0, 0, 0))
    ImageDraw.Draw(layer).text(
        (xy[0] - bbox[0], xy[1] - bbox[1]),
        text,
        font=font,
        fill=fill,
        stroke_width=stroke,
        stroke_fill=stroke_fill,
    )
    return layer


def _caption_layer(rng: np.random.Generator, width: int, height: int) -> Image.Image:
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


def _timestamp_layer(rng: np.random.Generator, width: int, height: int) -> Image.Image:
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


def _watermark_layer(rng: np.random.Generator, width: int, height: int, vendor: str) -> Image.Image:
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
    stamp = stamp.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True)
    opacity = float(rng.uniform(0.35, 0.5))
    rgba = np.asarray(stamp).copy()
    rgba[..., 3] = np.rint(rgba[..., 3].astype(np.float32) * opacity).astype(np.uint8)
    stamp = Image.fromarray(rgba, "RGBA")
    layer = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    cx = width // 2 + int(rng.integers(-width // 8, width // 8 + 1))
    cy = height // 2 + int(rng.integers(-height // 8, height // 8 + 1))
    layer.paste(stamp, (cx - stamp.width // 2, cy - stamp.height // 2))
    return layer


def _promo_layer(rng: np.random.Generator, width: int, height: int) -> Image.Image:
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


def _with_text(rng: np.random.Generator, dpi: int, kind: str) -> _Built:
    base = _photo(rng)
    width, height = base.size
    if kind == "caption":
        layer = _caption_layer(rng, width, height)
    elif kind == "timestamp":
        layer = _timestamp_layer(rng, width, height)
    elif kind == "watermark":
        layer = _watermark_layer(rng, width, height, f"VENDOR{int(rng.integers(1, 100)):02d}")
    else:
        layer = _promo_layer(rng, width, height)
    mask = np.asarray(layer)[..., 3] > 0
    composed = Image.alpha_composite(base.convert("RGBA"), layer).convert("RGB")
    if rng.random() < 0.25:
        return _Built(_png_bytes(composed, dpi), "png", dpi, mask)
    quality = int(rng.integers(85, 96))
    return _Built(_jpeg_bytes(composed, dpi, quality=quality), _JPEG_EXT, dpi, mask)


# --------------------------------------------------------------------------------------------
# Kind builders
# --------------------------------------------------------------------------------------------


def _clean(rng: np.random.Generator, dpi: int) -> _Built:
    img = _photo(rng)
    if rng.random() < 0.3:
        return _Built(_png_bytes(img, dpi), "png", dpi)
    return _Built(_jpeg_bytes(img, dpi, quality=int(rng.integers(82, 96))), _JPEG_EXT, dpi)


def _alpha(rng: np.random.Generator, dpi: int) -> _Built:
    if rng.random() < 0.35:
        logo = Image.fromarray(_bundled("logo"), "RGBA")
        return _Built(_png_bytes(logo, dpi), "png", dpi)
    rgb = _photo_array(rng)
    matte = _elliptical_matte(rng, rgb.shape[1], rgb.shape[0])
    rgba = np.dstack([rgb, matte])
    return _Built(_png_bytes(Image.fromarray(rgba, "RGBA"), dpi), "png", dpi)


def _palette_alpha(rng: np.random.Generator, dpi: int) -> _Built:
    rgb = _photo(rng)
    matte = _elliptical_matte(rng, rgb.width, rgb.height)
    pal = rgb.quantize(colors=255, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
    indices = np.asarray(pal).copy()
    indices[matte < 128] = 255
    out = Image.fromarray(indices, "L").convert("P")
    palette = (pal.getpalette() or [])[: 255 * 3]
    palette += [0] * (255 * 3 - len(palette)) + [255, 255, 255]
    out.putpalette(palette)
    return _Built(_png_bytes(out, dpi, transparency=255), "png", dpi)


def _cmyk(rng: np.random.Generator, dpi: int) -> _Built:
    img = _photo(rng).convert("CMYK")
    return _Built(_jpeg_bytes(img, dpi, quality=92), _JPEG_EXT, dpi)


def _adobe_rgb(rng: np.random.Generator, dpi: int) -> _Built:
    icc = adobe_rgb_icc()
    srgb = ImageCms.createProfile("sRGB")
    adobe = ImageCms.ImageCmsProfile(BytesIO(icc))
    img = ImageCms.profileToProfile(_photo(rng), srgb, adobe, outputMode="RGB")
    if img is None:  # only when converting in place, which this call does not ask for
        msg = "ImageCms.profileToProfile returned no image"
        raise RuntimeError(msg)
    return _Built(_jpeg_bytes(img, dpi, quality=92, icc_profile=icc), _JPEG_EXT, dpi)


def _rgb16(rng: np.random.Generator, dpi: int) -> _Built:
    # Resized in float, so the low byte carries real gradations, not just v * 257.
    rgb = _photo_float(rng)
    arr16 = np.clip(np.rint(rgb * 257.0), 0, 65535).astype(np.uint16)
    bgr = np.ascontiguousarray(arr16[:, :, ::-1])
    return _Built(_cv2_png16(bgr, dpi), "png", dpi)


def _gray16(rng: np.random.Generator, dpi: int) -> _Built:
    gray = _photo_float(rng, source="camera", short=(520, 760))[:, :, 0]
    arr16 = np.clip(np.rint(gray * 257.0), 0, 65535).astype(np.uint16)
    return _Built(_cv2_png16(arr16, dpi), "png", dpi)


def _exif_rotated(rng: np.random.Generator, dpi: int) -> _Built:
    upright = _photo(rng, aspect=(1.25, 1.5))  # landscape, so the stored file is portrait
    orientation = 6 if rng.random() < 0.5 else 8
    # Orientation 6: display = stored turned 90° clockwise; so store it turned counter-clockwise.
    turn = Image.Transpose.ROTATE_90 if orientation == 6 else Image.Transpose.ROTATE_270
    stored = upright.transpose(turn)
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    exif[ExifTags.Base.Make] = "Apple"
    exif[ExifTags.Base.Model] = "iPhone 12"
    return _Built(_jpeg_bytes(stored, dpi, exif=exif.tobytes()), _JPEG_EXT, dpi)


def _gps(rng: np.random.Generator, dpi: int) -> _Built:
    lat, lon = float(rng.uniform(-60, 70)), float(rng.uniform(-170, 170))

    def dms(value: float) -> tuple[float, float, float]:
        value = abs(value)
        degrees, rest = divmod(value, 1.0)
        minutes, rest = divmod(rest * 60, 1.0)
        return float(degrees), float(minutes), round(rest * 60, 2)

    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "Canon" if rng.random() < 0.5 else "NIKON CORPORATION"
    exif[ExifTags.Base.Model] = (
        "Canon EOS 5D Mark IV" if exif[ExifTags.Base.Make] == "Canon" else "NIKON D750"
    )
    exif[ExifTags.Base.DateTime] = "2024:05:17 10:22:31"
    exif[ExifTags.Base.GPSInfo] = {
        ExifTags.GPS.GPSLatitudeRef: "N" if lat >= 0 else "S",
        ExifTags.GPS.GPSLatitude: dms(lat),
        ExifTags.GPS.GPSLongitudeRef: "E" if lon >= 0 else "W",
        ExifTags.GPS.GPSLongitude: dms(lon),
    }
    img = _photo(rng)
    return _Built(_jpeg_bytes(img, dpi, exif=exif.tobytes()), _JPEG_EXT, dpi)


def _tiny(rng: np.random.Generator, dpi: int) -> _Built:
    img = Image.fromarray(np.asarray(_resize(_photo_array(rng), 200, 150), np.uint8), "RGB")
    return _Built(_jpeg_bytes(img, dpi), _JPEG_EXT, dpi)


@cache
def _bomb_png(side: int, dpi: int) -> bytes:
    """A valid 1-bit PNG of ``side`` x ``side`` black pixels, ~110 kB on disk for 30000².

    Hand-crafted so nothing ever allocates the image: each run of rows is deflated once after
    a full flush (which resets the compressor, so every run compresses to the same bytes) and
    the block is repeated.
    """
    row = b"\0" * (1 + (side + 7) // 8)  # filter byte "None" + packed bits
    per_block = 256
    full, rest = divmod(side, per_block)
    block_co = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = block_co.compress(row * per_block) + block_co.flush(zlib.Z_FULL_FLUSH)
    tail_co = zlib.compressobj(9, zlib.DEFLATED, -15)
    tail = tail_co.compress(row * rest) + tail_co.flush()
    checksum = 1
    chunk = row * per_block
    for _ in range(full):
        checksum = zlib.adler32(chunk, checksum)
    checksum = zlib.adler32(row * rest, checksum)
    stream = b"\x78\xda" + block * full + tail + struct.pack(">I", checksum)
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)  # 1-bit grayscale
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _phys_chunk(dpi)
        + _png_chunk(b"IDAT", stream)
        + _png_chunk(b"IEND", b"")
    )


def _huge_bomb(_rng: np.random.Generator, dpi: int) -> _Built:
    return _Built(_bomb_png(_BOMB_SIDE, dpi), "png", dpi)


def _large(rng: np.random.Generator, dpi: int) -> _Built:
    rgb = _photo_array(rng, short=(2000, 2250), aspect=(1.3, 1.45))
    # A real 3000 px photo has fine detail: give the upscaled one a light unsharp mask and grain.
    soft = cv2.GaussianBlur(rgb, (0, 0), 2.0)
    sharp = np.asarray(cv2.addWeighted(rgb, 1.8, soft, -0.8, 0.0), dtype=np.uint8)
    grain = rng.integers(0, 9, size=sharp.shape[:2], dtype=np.uint8)  # luminance grain, ±4
    offset = np.full_like(sharp, 4)
    noisy = np.asarray(cv2.subtract(cv2.add(sharp, cv2.merge([grain] * 3)), offset), np.uint8)
    return _Built(_jpeg_bytes(Image.fromarray(noisy, "RGB"), dpi, quality=88), _JPEG_EXT, dpi)


def _truncated(rng: np.random.Generator, dpi: int) -> _Built:
    full = _jpeg_bytes(_photo(rng), dpi)
    return _Built(full[: int(len(full) * 0.4)], _JPEG_EXT, dpi)


def _empty(_rng: np.random.Generator, _dpi: int) -> _Built:
    return _Built(b"", _JPEG_EXT, 0)


def _not_image(rng: np.random.Generator, _dpi: int) -> _Built:
    lines = ["sku,title,price,stock"]
    for i in range(int(rng.integers(20, 60))):
        price = float(rng.uniform(2, 300))
        lines.append(f"sku{i + 1:04d},Product {i + 1},{price:.2f},{int(rng.integers(0, 500))}")
    return _Built(("\n".join(lines) + "\n").encode(), _JPEG_EXT, 0)


def _random_bytes(rng: np.random.Generator, _dpi: int) -> _Built:
    data = bytearray(rng.bytes(int(rng.integers(2048, 8192))))
    data[0] = 0x5A  # "Z": no image format (nor Pillow's weak TGA/ICO checks) starts like this
    data[2] = 0x7F
    return _Built(bytes(data), "png", 0)


def _wrong_extension(rng: np.random.Generator, dpi: int) -> _Built:
    return _Built(_png_bytes(_photo(rng), dpi), _JPEG_EXT, dpi)


def _extreme_aspect(rng: np.random.Generator, dpi: int) -> _Built:
    # A 6:1 banner of product tiles (shorter side above the minimum, so only the ratio is wrong).
    tile = int(rng.integers(420, 470))
    tiles = [_photo_array(rng, short=(tile, tile), aspect=(1.0, 1.0)) for _ in range(6)]
    banner = np.concatenate(tiles, axis=1)
    return _Built(_jpeg_bytes(Image.fromarray(banner, "RGB"), dpi), _JPEG_EXT, dpi)


def _blank(rng: np.random.Generator, dpi: int) -> _Built:
    img = Image.new("RGB", (800, 800), (255, 255, 255))
    if rng.random() < 0.5:
        return _Built(_png_bytes(img, dpi), "png", dpi)
    return _Built(_jpeg_bytes(img, dpi), _JPEG_EXT, dpi)


def _blurry(rng: np.random.Generator, dpi: int) -> _Built:
    rgb = _photo_array(rng)
    blurred = cv2.GaussianBlur(rgb, (0, 0), float(rng.uniform(9.0, 11.0)))
    img = Image.fromarray(np.asarray(blurred, dtype=np.uint8), "RGB")
    return _Built(_jpeg_bytes(img, dpi), _JPEG_EXT, dpi)


def _text_builder(kind: str) -> Callable[[np.random.Generator, int], _Built]:
    def build(rng: np.random.Generator, dpi: int) -> _Built:
        return _with_text(rng, dpi, kind)

    return build


_BUILDERS: Final[dict[str, Callable[[np.random.Generator, int], _Built]]] = {
    "clean": _clean,
    "caption": _text_builder("caption"),
    "timestamp": _text_builder("timestamp"),
    "watermark": _text_builder("watermark"),
    "promo": _text_builder("promo"),
    "alpha": _alpha,
    "cmyk": _cmyk,
    "adobe_rgb": _adobe_rgb,
    "rgb16": _rgb16,
    "gray16": _gray16,
    "palette_alpha": _palette_alpha,
    "exif_rotated": _exif_rotated,
    "gps": _gps,
    "tiny": _tiny,
    "huge_bomb": _huge_bomb,
    "large": _large,
    "truncated": _truncated,
    "empty": _empty,
    "not_image": _not_image,
    "random_bytes": _random_bytes,
    "wrong_extension": _wrong_extension,
    "extreme_aspect": _extreme_aspect,
    "blank": _blank,
    "blurry": _blurry,
}
