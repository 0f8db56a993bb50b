"""Builders of each kind of sample upload: the file's bytes and, for text kinds, its truth mask."""

from __future__ import annotations

from collections.abc import Callable
from io import BytesIO
from typing import Final, NamedTuple

import cv2
import numpy as np
import numpy.typing as npt
from PIL import ExifTags, Image, ImageCms

from consumers.dev.encode import JPEG_EXT, bomb_png, jpeg_bytes, png16_bytes, png_bytes
from consumers.dev.icc import adobe_rgb_icc
from consumers.dev.photos import bundled, elliptical_matte, photo, photo_array, photo_float, resize
from consumers.dev.sample_text import caption_layer, promo_layer, timestamp_layer, watermark_layer

__all__ = ["BUILDERS", "Built"]

_BOMB_SIDE: Final = 30_000


class Built(NamedTuple):
    """What one kind builder produces: the file's bytes and, for text kinds, its truth mask."""

    data: bytes
    """The file's bytes, as uploaded."""
    ext: str
    """Its file name extension (``jpg``, ``png``); may lie about the content on purpose."""
    dpi: int
    """The resolution stored in its metadata; 0 where it stores none."""
    mask: npt.NDArray[np.bool_] | None = None
    """Text kinds: True where the overlay changed the pixel; ``None`` for the other kinds."""


def _with_text(rng: np.random.Generator, dpi: int, kind: str) -> Built:
    base = photo(rng)
    width, height = base.size
    if kind == "caption":
        layer = caption_layer(rng, width, height)
    elif kind == "timestamp":
        layer = timestamp_layer(rng, width, height)
    elif kind == "watermark":
        layer = watermark_layer(rng, width, height, f"VENDOR{int(rng.integers(1, 100)):02d}")
    else:
        layer = promo_layer(rng, width, height)
    mask = np.asarray(layer)[..., 3] > 0
    composed = Image.alpha_composite(base.convert("RGBA"), layer).convert("RGB")
    if rng.random() < 0.25:
        return Built(png_bytes(composed, dpi), "png", dpi, mask)
    quality = int(rng.integers(85, 96))
    return Built(jpeg_bytes(composed, dpi, quality=quality), JPEG_EXT, dpi, mask)


# --------------------------------------------------------------------------------------------
# Kind builders
# --------------------------------------------------------------------------------------------


def _clean(rng: np.random.Generator, dpi: int) -> Built:
    img = photo(rng)
    if rng.random() < 0.3:
        return Built(png_bytes(img, dpi), "png", dpi)
    return Built(jpeg_bytes(img, dpi, quality=int(rng.integers(82, 96))), JPEG_EXT, dpi)


def _alpha(rng: np.random.Generator, dpi: int) -> Built:
    if rng.random() < 0.35:
        logo = Image.fromarray(bundled("logo"), "RGBA")
        return Built(png_bytes(logo, dpi), "png", dpi)
    rgb = photo_array(rng)
    matte = elliptical_matte(rng, rgb.shape[1], rgb.shape[0])
    rgba = np.dstack([rgb, matte])
    return Built(png_bytes(Image.fromarray(rgba, "RGBA"), dpi), "png", dpi)


def _palette_alpha(rng: np.random.Generator, dpi: int) -> Built:
    rgb = photo(rng)
    matte = elliptical_matte(rng, rgb.width, rgb.height)
    pal = rgb.quantize(colors=255, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
    indices = np.asarray(pal).copy()
    indices[matte < 128] = 255
    out = Image.fromarray(indices, "L").convert("P")
    palette = (pal.getpalette() or [])[: 255 * 3]
    palette += [0] * (255 * 3 - len(palette)) + [255, 255, 255]
    out.putpalette(palette)
    return Built(png_bytes(out, dpi, transparency=255), "png", dpi)


def _cmyk(rng: np.random.Generator, dpi: int) -> Built:
    img = photo(rng).convert("CMYK")
    return Built(jpeg_bytes(img, dpi, quality=92), JPEG_EXT, dpi)


def _adobe_rgb(rng: np.random.Generator, dpi: int) -> Built:
    icc = adobe_rgb_icc()
    srgb = ImageCms.createProfile("sRGB")
    adobe = ImageCms.ImageCmsProfile(BytesIO(icc))
    img = ImageCms.profileToProfile(photo(rng), srgb, adobe, outputMode="RGB")
    if img is None:  # only when converting in place, which this call does not ask for
        msg = "ImageCms.profileToProfile returned no image"
        raise RuntimeError(msg)
    return Built(jpeg_bytes(img, dpi, quality=92, icc_profile=icc), JPEG_EXT, dpi)


def _rgb16(rng: np.random.Generator, dpi: int) -> Built:
    # Resized in float, so the low byte carries real gradations, not just v * 257.
    rgb = photo_float(rng)
    arr16 = np.clip(np.rint(rgb * 257.0), 0, 65535).astype(np.uint16)
    bgr = np.ascontiguousarray(arr16[:, :, ::-1])
    return Built(png16_bytes(bgr, dpi), "png", dpi)


def _gray16(rng: np.random.Generator, dpi: int) -> Built:
    gray = photo_float(rng, source="camera", short=(520, 760))[:, :, 0]
    arr16 = np.clip(np.rint(gray * 257.0), 0, 65535).astype(np.uint16)
    return Built(png16_bytes(arr16, dpi), "png", dpi)


def _exif_rotated(rng: np.random.Generator, dpi: int) -> Built:
    upright = photo(rng, aspect=(1.25, 1.5))  # landscape, so the stored file is portrait
    orientation = 6 if rng.random() < 0.5 else 8
    # Orientation 6: display = stored turned 90° clockwise; so store it turned counter-clockwise.
    turn = Image.Transpose.ROTATE_90 if orientation == 6 else Image.Transpose.ROTATE_270
    stored = upright.transpose(turn)
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    exif[ExifTags.Base.Make] = "Apple"
    exif[ExifTags.Base.Model] = "iPhone 12"
    return Built(jpeg_bytes(stored, dpi, exif=exif.tobytes()), JPEG_EXT, dpi)


def _gps(rng: np.random.Generator, dpi: int) -> Built:
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
    img = photo(rng)
    return Built(jpeg_bytes(img, dpi, exif=exif.tobytes()), JPEG_EXT, dpi)


def _tiny(rng: np.random.Generator, dpi: int) -> Built:
    img = Image.fromarray(np.asarray(resize(photo_array(rng), 200, 150), np.uint8), "RGB")
    return Built(jpeg_bytes(img, dpi), JPEG_EXT, dpi)


def _huge_bomb(_rng: np.random.Generator, dpi: int) -> Built:
    return Built(bomb_png(_BOMB_SIDE, dpi), "png", dpi)


def _large(rng: np.random.Generator, dpi: int) -> Built:
    rgb = photo_array(rng, short=(2000, 2250), aspect=(1.3, 1.45))
    # A real 3000 px photo has fine detail: give the upscaled one a light unsharp mask and grain.
    soft = cv2.GaussianBlur(rgb, (0, 0), 2.0)
    sharp = np.asarray(cv2.addWeighted(rgb, 1.8, soft, -0.8, 0.0), dtype=np.uint8)
    grain = rng.integers(0, 9, size=sharp.shape[:2], dtype=np.uint8)  # luminance grain, ±4
    offset = np.full_like(sharp, 4)
    noisy = np.asarray(cv2.subtract(cv2.add(sharp, cv2.merge([grain] * 3)), offset), np.uint8)
    return Built(jpeg_bytes(Image.fromarray(noisy, "RGB"), dpi, quality=88), JPEG_EXT, dpi)


def _truncated(rng: np.random.Generator, dpi: int) -> Built:
    full = jpeg_bytes(photo(rng), dpi)
    return Built(full[: int(len(full) * 0.4)], JPEG_EXT, dpi)


def _empty(_rng: np.random.Generator, _dpi: int) -> Built:
    return Built(b"", JPEG_EXT, 0)


def _not_image(rng: np.random.Generator, _dpi: int) -> Built:
    lines = ["sku,title,price,stock"]
    for i in range(int(rng.integers(20, 60))):
        price = float(rng.uniform(2, 300))
        lines.append(f"sku{i + 1:04d},Product {i + 1},{price:.2f},{int(rng.integers(0, 500))}")
    return Built(("\n".join(lines) + "\n").encode(), JPEG_EXT, 0)


def _random_bytes(rng: np.random.Generator, _dpi: int) -> Built:
    data = bytearray(rng.bytes(int(rng.integers(2048, 8192))))
    data[0] = 0x5A  # "Z": no image format (nor Pillow's weak TGA/ICO checks) starts like this
    data[2] = 0x7F
    return Built(bytes(data), "png", 0)


def _wrong_extension(rng: np.random.Generator, dpi: int) -> Built:
    return Built(png_bytes(photo(rng), dpi), JPEG_EXT, dpi)


def _extreme_aspect(rng: np.random.Generator, dpi: int) -> Built:
    # A 6:1 banner of product tiles (shorter side above the minimum, so only the ratio is wrong).
    tile = int(rng.integers(420, 470))
    tiles = [photo_array(rng, short=(tile, tile), aspect=(1.0, 1.0)) for _ in range(6)]
    banner = np.concatenate(tiles, axis=1)
    return Built(jpeg_bytes(Image.fromarray(banner, "RGB"), dpi), JPEG_EXT, dpi)


def _blank(rng: np.random.Generator, dpi: int) -> Built:
    img = Image.new("RGB", (800, 800), (255, 255, 255))
    if rng.random() < 0.5:
        return Built(png_bytes(img, dpi), "png", dpi)
    return Built(jpeg_bytes(img, dpi), JPEG_EXT, dpi)


def _blurry(rng: np.random.Generator, dpi: int) -> Built:
    rgb = photo_array(rng)
    blurred = cv2.GaussianBlur(rgb, (0, 0), float(rng.uniform(9.0, 11.0)))
    img = Image.fromarray(np.asarray(blurred, dtype=np.uint8), "RGB")
    return Built(jpeg_bytes(img, dpi), JPEG_EXT, dpi)


def _text_builder(kind: str) -> Callable[[np.random.Generator, int], Built]:
    def build(rng: np.random.Generator, dpi: int) -> Built:
        return _with_text(rng, dpi, kind)

    return build


BUILDERS: Final[dict[str, Callable[[np.random.Generator, int], Built]]] = {
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
