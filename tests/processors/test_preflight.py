"""Tests for processors/preflight.py: every input is built here, in memory."""

from __future__ import annotations

import functools
import io
import json
import random
import struct
import time
import tracemalloc
import zlib
from collections.abc import Callable

import cv2
import numpy as np
import pytest
import skimage.data
from PIL import ExifTags, ImageCms, JpegImagePlugin
from PIL import Image as PILImage

from processors.preflight import (
    DEFAULT_ALLOWED_FORMATS,
    Preflight,
    PreflightPolicy,
    PreflightReport,
    PreflightResult,
    edge_sharpness,
)
from processors.preflight_formats import claimed_format, cut_short
from schemas.reasons import ReasonCode

R = ReasonCode

# --------------------------------------------------------------------------------------------
# Builders
# --------------------------------------------------------------------------------------------


def encode(array: np.ndarray | PILImage.Image, fmt: str = "PNG", **save: object) -> bytes:
    """Encode an HWC/HW uint8 array (or a PIL image) with Pillow."""
    image = array if isinstance(array, PILImage.Image) else PILImage.fromarray(array)
    if fmt == "PNG":
        save.setdefault("compress_level", 1)  # fast; the bytes are still a valid PNG
    out = io.BytesIO()
    image.save(out, fmt, **save)
    return out.getvalue()


@functools.cache
def sample(name: str) -> np.ndarray:
    """A scikit-image sample photo as HWC uint8 RGB (read-only, cached)."""
    array = getattr(skimage.data, name)()
    if isinstance(array, tuple):  # stereo pairs
        array = array[0]
    array = np.ascontiguousarray(array[..., :3])
    array.setflags(write=False)
    return array


def photo(height: int, width: int) -> np.ndarray:
    """A sharp, textured RGB photo of the given size (the astronaut, resized)."""
    return cv2.resize(sample("astronaut"), (width, height), interpolation=cv2.INTER_AREA)


def blurred(array: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(array, (0, 0), sigma)


def quadrants(height: int = 480, width: int = 640) -> np.ndarray:
    """An asymmetric image: four flat colours plus a marker in the top-left corner."""
    image = np.empty((height, width, 3), np.uint8)
    h2, w2 = height // 2, width // 2
    image[:h2, :w2] = (220, 30, 30)
    image[:h2, w2:] = (30, 200, 40)
    image[h2:, :w2] = (40, 50, 210)
    image[h2:, w2:] = (230, 220, 40)
    image[10:60, 10:30] = (0, 0, 0)
    return image


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return (
        struct.pack(">I", len(payload))
        + kind
        + payload
        + struct.pack(">I", zlib.crc32(kind + payload))
    )


def png_claiming(width: int, height: int) -> bytes:
    """A tiny, well-formed PNG whose IHDR claims ``width`` x ``height`` RGB pixels."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", idat)
        + png_chunk(b"IEND", b"")
    )


def _s15(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def _xyz(x: float, y: float, z: float) -> bytes:
    return b"XYZ \0\0\0\0" + _s15(x) + _s15(y) + _s15(z)


def adobe_rgb_icc() -> bytes:
    """A minimal ICC v2.1 RGB matrix/TRC display profile with Adobe RGB (1998) primaries
    (adapted to D50), a D65 media white point and gamma 2.2 (563/256) curves."""
    name = b"Adobe RGB (1998) test"
    desc = (
        b"desc\0\0\0\0"
        + struct.pack(">I", len(name) + 1)
        + name
        + b"\0"  # ASCII description, NUL-terminated
        + b"\0" * 8  # no Unicode description
        + b"\0" * 3  # no ScriptCode description
        + b"\0" * 67
    )
    cprt = b"text\0\0\0\0No copyright, test profile\0"
    gamma = b"curv\0\0\0\0" + struct.pack(">IH", 1, 563) + b"\0\0"
    tags = [
        (b"desc", desc),
        (b"cprt", cprt),
        (b"wtpt", _xyz(0.95045, 1.0, 1.08905)),
        (b"rXYZ", _xyz(0.60974, 0.31111, 0.01947)),
        (b"gXYZ", _xyz(0.20528, 0.62567, 0.06087)),
        (b"bXYZ", _xyz(0.14919, 0.06322, 0.74457)),
        (b"rTRC", gamma),
        (b"gTRC", gamma),
        (b"bTRC", gamma),
    ]
    start = 128 + 4 + 12 * len(tags)
    table = struct.pack(">I", len(tags))
    body = b""
    for signature, data in tags:
        body += b"\0" * (-(start + len(body)) % 4)
        table += signature + struct.pack(">II", start + len(body), len(data))
        body += data
    body += b"\0" * (-len(body) % 4)
    header = (
        struct.pack(">I", start + len(body))  # profile size
        + b"\0" * 4  # preferred CMM
        + struct.pack(">I", 0x02100000)  # version 2.1
        + b"mntrRGB XYZ "  # display class, RGB data, XYZ PCS
        + struct.pack(">6H", 2026, 1, 1, 0, 0, 0)
        + b"acsp"
        + b"\0" * 24  # platform, flags, manufacturer, model, attributes
        + b"\0" * 4  # rendering intent: perceptual
        + _s15(0.9642)
        + _s15(1.0)
        + _s15(0.8249)  # PCS illuminant D50
        + b"\0" * 4  # creator
        + b"\0" * 44  # profile id + reserved
    )
    assert len(header) == 128
    return header + table + body


def gif_frames(count: int, size: tuple[int, int] = (480, 640)) -> bytes:
    """An animated GIF with ``count`` visibly different frames."""
    frames = []
    for i in range(count):
        image = quadrants(*size)
        image[100 + 20 * i : 140 + 20 * i, 300:340] = (255, 255, 255)
        frames.append(PILImage.fromarray(image).convert("P"))
    out = io.BytesIO()
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    return out.getvalue()


# --------------------------------------------------------------------------------------------
# Fixtures: a factory and a ready default
# --------------------------------------------------------------------------------------------


@pytest.fixture
def preflight_factory() -> Callable[..., Preflight]:
    def make(**overrides: object) -> Preflight:
        return Preflight(PreflightPolicy().with_overrides(overrides))

    return make


@pytest.fixture
def preflight() -> Preflight:
    return Preflight()


def same_pixels(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return a.shape == b.shape and bool(np.array_equal(a, b))


def run_one(preflight: Preflight, data: bytes) -> PreflightResult:
    (result,) = preflight([data])
    return result


# --------------------------------------------------------------------------------------------
# The processor suite: smoke, empty batch, bad input, one vs many, determinism
# --------------------------------------------------------------------------------------------


def test_smoke_accepts_a_photo(preflight: Preflight) -> None:
    data = encode(photo(600, 800), "JPEG", quality=92, dpi=(300, 300))
    result = run_one(preflight, data)
    assert result.accepted, result.reasons
    assert result.reasons == ()
    assert result.alpha is None
    image = result.image
    assert image is not None
    assert image.shape == (600, 800, 3)
    assert image.dtype == np.uint8
    assert image.flags.c_contiguous
    report = result.report
    assert (report.format, report.width, report.height) == ("JPEG", 800, 600)
    assert (report.mode, report.bits, report.frames) == ("RGB", 8, 1)
    assert report.dpi == (300.0, 300.0)
    assert (report.output_width, report.output_height, report.resized) == (800, 600, False)
    assert report.file_bytes == len(data)
    assert report.orientation == 1
    assert report.std is not None
    assert report.std > 20
    assert report.sharpness is not None
    assert report.sharpness > 0.5
    assert preflight.version == "preflight-1"


def test_empty_batch(preflight: Preflight) -> None:
    assert preflight([]) == []


@pytest.mark.parametrize(
    ("batch", "message"),
    [
        pytest.param(b"\x89PNG", "wrap one file in a list", id="bare-bytes"),
        pytest.param("photo.jpg", "single str", id="bare-str"),
        pytest.param(["photo.jpg"], "binary mode", id="str-item"),
        pytest.param([np.zeros((4, 4, 3), np.uint8)], "encoded file contents", id="array-item"),
        pytest.param([b"ok", 3], r"batch\[1\]", id="int-item"),
        pytest.param(42, "sequence", id="not-a-sequence"),
    ],
)
def test_bad_input_raises_helpful_type_error(
    preflight: Preflight, batch: object, message: str
) -> None:
    with pytest.raises(TypeError, match=message):
        preflight(batch)  # type: ignore[arg-type]


def test_bytes_like_items_are_accepted(preflight: Preflight) -> None:
    data = encode(photo(480, 640))
    by_bytes, by_bytearray, by_view = preflight(
        [data, bytearray(data), memoryview(data)]  # type: ignore[list-item]
    )
    for other in (by_bytearray, by_view):
        assert other.report == by_bytes.report
        assert same_pixels(other.image, by_bytes.image)


def test_batch_of_one_equals_batch_of_many(preflight: Preflight) -> None:
    inputs = [
        encode(photo(480, 640)),
        b"",
        encode(photo(300, 200), "JPEG"),
        encode(quadrants(), "WEBP", lossless=True),
        b"not an image at all",
    ]
    together = preflight(inputs)
    alone = [run_one(preflight, data) for data in inputs]
    assert len(together) == len(inputs)
    for many, one in zip(together, alone, strict=True):
        assert many.reasons == one.reasons
        assert many.report == one.report
        assert same_pixels(many.image, one.image)


def test_deterministic(preflight: Preflight) -> None:
    rgba = np.dstack([photo(500, 700), np.tile(np.arange(700, dtype=np.uint8) // 3, (500, 1))])
    inputs = [encode(photo(900, 1200), "JPEG"), encode(rgba), gif_frames(3)]
    first, second = preflight(inputs), preflight(inputs)
    for a, b in zip(first, second, strict=True):
        assert a.report == b.report
        assert a.image is not None
        assert same_pixels(a.image, b.image)


# --------------------------------------------------------------------------------------------
# Hostile inputs: one case each, exact reason codes
# --------------------------------------------------------------------------------------------


def tiff_pages(count: int) -> bytes:
    pages = [PILImage.fromarray(np.roll(photo(480, 640), 40 * i, axis=1)) for i in range(count)]
    out = io.BytesIO()
    pages[0].save(out, "TIFF", save_all=True, append_images=pages[1:])
    return out.getvalue()


def gif_of_tiny_frames(count: int) -> bytes:
    """A hand-made GIF of ``count`` 1x1 frames (15 bytes each)."""
    header = b"GIF89a" + struct.pack("<HHBBB", 1, 1, 0x80, 0, 0) + b"\0\0\0\xff\xff\xff"
    frame = b"\x2c" + struct.pack("<HHHHB", 0, 0, 1, 1, 0) + b"\x02\x02\x44\x01\x00"
    return header + frame * count + b";"


def _random_bytes() -> bytes:
    return random.Random(1234).randbytes(8192)


def _truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


def _png_with_corrupt_idat() -> bytes:
    data = bytearray(encode(photo(480, 640)))
    start = data.index(b"IDAT") + 4
    data[start + 100 : start + 400] = random.Random(7).randbytes(300)
    return bytes(data)


def _jpeg_with_garbage_header() -> bytes:
    data = bytearray(encode(photo(480, 640), "JPEG"))
    data[4:200] = random.Random(3).randbytes(196)  # keep the SOI + marker signature
    return bytes(data)


HOSTILE: list[tuple[str, Callable[[], bytes], dict[str, object], tuple[ReasonCode, ...]]] = [
    ("empty-file", lambda: b"", {}, (R.EMPTY_FILE,)),
    (
        "over-size-cap",
        lambda: encode(photo(480, 640), "JPEG"),
        {"max_file_bytes": 10_000},
        (R.FILE_TOO_LARGE,),
    ),
    ("random-bytes", _random_bytes, {}, (R.NOT_AN_IMAGE,)),
    (
        "text-named-like-an-image",
        lambda: b"front.jpg\nThis is a text file, not a photo.\n" * 40,
        {},
        (R.NOT_AN_IMAGE,),
    ),
    (
        "pdf",
        lambda: b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n%%EOF\n",
        {},
        (R.NOT_AN_IMAGE,),
    ),
    ("ico", lambda: encode(photo(64, 64), "ICO"), {}, (R.UNSUPPORTED_FORMAT,)),
    ("ppm", lambda: encode(photo(480, 640), "PPM"), {}, (R.UNSUPPORTED_FORMAT,)),
    ("tga", lambda: encode(photo(480, 640), "TGA"), {}, (R.UNSUPPORTED_FORMAT,)),
    ("eps-never-rendered", lambda: encode(photo(48, 64), "EPS"), {}, (R.UNSUPPORTED_FORMAT,)),
    (
        "png-not-on-allow-list",
        lambda: encode(photo(480, 640)),
        {"allowed_formats": ["JPEG"]},
        (R.UNSUPPORTED_FORMAT,),
    ),
    ("bomb-30000x30000", lambda: png_claiming(30_000, 30_000), {}, (R.DECOMPRESSION_BOMB,)),
    ("bomb-over-max-pixels", lambda: png_claiming(8_000, 6_000), {}, (R.DECOMPRESSION_BOMB,)),
    ("bomb-pillow-warning-zone", lambda: png_claiming(10_000, 10_000), {}, (R.DECOMPRESSION_BOMB,)),
    ("bomb-over-max-side", lambda: png_claiming(25_000, 100), {}, (R.DECOMPRESSION_BOMB,)),
    ("too-many-frames", lambda: gif_frames(5), {"max_frames": 3}, (R.TOO_MANY_FRAMES,)),
    ("too-many-tiff-pages", lambda: tiff_pages(4), {"max_frames": 3}, (R.TOO_MANY_FRAMES,)),
    ("truncated-jpeg", lambda: _truncated(encode(photo(480, 640), "JPEG")), {}, (R.TRUNCATED,)),
    ("truncated-png", lambda: _truncated(encode(photo(480, 640))), {}, (R.TRUNCATED,)),
    ("truncated-png-header", lambda: encode(photo(480, 640))[:20], {}, (R.TRUNCATED,)),
    (
        "truncated-webp",
        lambda: _truncated(encode(photo(480, 640), "WEBP")),
        {},
        (R.TRUNCATED,),
    ),
    ("truncated-gif", lambda: _truncated(gif_frames(1)), {}, (R.TRUNCATED,)),
    ("corrupt-png-data-after-valid-header", _png_with_corrupt_idat, {}, (R.CORRUPT,)),
    ("corrupt-jpeg-header", _jpeg_with_garbage_header, {}, (R.CORRUPT,)),
    ("too-small-300x200", lambda: encode(photo(200, 300)), {}, (R.TOO_SMALL,)),
    ("extreme-aspect-2400x400", lambda: encode(photo(400, 2400)), {}, (R.EXTREME_ASPECT_RATIO,)),
    ("blank-uniform", lambda: encode(np.full((600, 800, 3), 240, np.uint8)), {}, (R.BLANK_IMAGE,)),
    (
        "blank-near-uniform",
        lambda: encode(np.random.default_rng(0).integers(118, 122, (600, 800, 3), dtype=np.uint8)),
        {},
        (R.BLANK_IMAGE,),
    ),
    ("extremely-blurry", lambda: encode(blurred(photo(512, 512), 8)), {}, (R.TOO_BLURRY,)),
    (
        "tiny-and-blank",
        lambda: encode(np.zeros((100, 150, 3), np.uint8)),
        {},
        (R.TOO_SMALL, R.BLANK_IMAGE),
    ),
    (
        "tiny-thin-and-blurry",
        lambda: encode(blurred(photo(120, 600), 8)),
        {},
        (R.TOO_SMALL, R.EXTREME_ASPECT_RATIO, R.TOO_BLURRY),
    ),
]


@pytest.mark.parametrize(
    ("build", "overrides", "expected"),
    [
        pytest.param(build, overrides, expected, id=name)
        for name, build, overrides, expected in HOSTILE
    ],
)
def test_hostile_input_gets_its_reason(
    preflight_factory: Callable[..., Preflight],
    build: Callable[[], bytes],
    overrides: dict[str, object],
    expected: tuple[ReasonCode, ...],
) -> None:
    result = run_one(preflight_factory(**overrides), build())
    assert result.reasons == expected
    assert not result.accepted
    assert result.image is None
    assert result.alpha is None
    json.dumps(result.report.to_dict())


def test_decompression_bomb_is_rejected_from_the_header_without_allocating(
    preflight: Preflight,
) -> None:
    data = png_claiming(30_000, 30_000)  # 900 MP, 2.7 GB decoded; the file is ~100 bytes
    assert len(data) < 200
    tracemalloc.start()
    try:
        started = time.perf_counter()
        result = run_one(preflight, data)
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.reasons == (R.DECOMPRESSION_BOMB,)
    assert elapsed < 1.0
    assert peak < 4 * 1024 * 1024


def test_bomb_in_pillows_warning_zone_does_not_raise_and_is_reported() -> None:
    # 100 MP is above Pillow's own warning limit; pytest turns warnings into errors, so this
    # also proves the warning never escapes.
    result = run_one(Preflight(), png_claiming(10_000, 10_000))
    assert result.reasons == (R.DECOMPRESSION_BOMB,)
    assert (result.report.width, result.report.height) == (10_000, 10_000)
    assert any("DecompressionBombWarning" in w for w in result.report.warnings)


def test_frame_counting_stops_past_the_limit(preflight: Preflight) -> None:
    data = gif_of_tiny_frames(200_000)  # 3 MB; Pillow's n_frames would walk every frame
    started = time.perf_counter()
    result = run_one(preflight, data)
    assert time.perf_counter() - started < 0.5
    assert result.reasons == (R.TOO_MANY_FRAMES,)
    assert result.report.frames == preflight.policy.max_frames + 1


def test_multipage_tiff_uses_the_first_page(preflight: Preflight) -> None:
    result = run_one(preflight, tiff_pages(3))
    assert result.accepted, result.reasons
    assert result.report.frames == 3
    assert same_pixels(result.image, photo(480, 640))


def test_unsupported_format_reports_what_it_is(preflight: Preflight) -> None:
    report = run_one(preflight, encode(photo(48, 64), "EPS")).report
    assert report.format == "EPS"
    assert (report.width, report.height) == (64, 48)


def test_no_exception_escapes_for_mutated_files() -> None:
    """A small seeded fuzz: flipped bytes and cuts in every allow-listed format."""
    rng = random.Random(2026)
    base = photo(40, 48)
    seeds = [
        encode(base),
        encode(base, "JPEG"),
        encode(base, "WEBP"),
        encode(base, "GIF"),
        encode(base, "TIFF"),
        encode(base, "BMP"),
        encode(np.dstack([base, base[..., 0]])),
        gif_frames(2, (40, 48)),
    ]
    preflight = Preflight(PreflightPolicy(min_side=0, max_aspect_ratio=100.0))
    batch = []
    for seed in seeds:
        for _ in range(12):
            data = bytearray(seed)
            for _ in range(rng.randint(1, 8)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            batch.append(bytes(data))
        for _ in range(6):
            batch.append(seed[: rng.randrange(1, len(seed))])
    results = preflight(batch)
    assert len(results) == len(batch)
    for result in results:
        assert (result.image is None) == bool(result.reasons)
        json.dumps(result.report.to_dict())


# --------------------------------------------------------------------------------------------
# Orientation: all eight EXIF values
# --------------------------------------------------------------------------------------------

# How a camera stores an upright picture U for each EXIF orientation (derived from the EXIF
# definition of where row 0 and column 0 of the stored data belong), independent of Pillow.
STORED_AS: dict[int, Callable[[np.ndarray], np.ndarray]] = {
    1: lambda u: u,
    2: lambda u: u[:, ::-1],  # row 0 top, column 0 right
    3: lambda u: u[::-1, ::-1],  # row 0 bottom, column 0 right
    4: lambda u: u[::-1],  # row 0 bottom, column 0 left
    5: lambda u: u.transpose(1, 0, 2),  # row 0 left, column 0 top
    6: lambda u: np.rot90(u, 1),  # row 0 right, column 0 top
    7: lambda u: u[::-1, ::-1].transpose(1, 0, 2),  # row 0 right, column 0 bottom
    8: lambda u: np.rot90(u, -1),  # row 0 left, column 0 bottom
}


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied(preflight: Preflight, orientation: int, fmt: str) -> None:
    upright = quadrants(480, 640)
    stored = np.ascontiguousarray(STORED_AS[orientation](upright))
    exif = PILImage.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    data = encode(stored, fmt, exif=exif.tobytes(), **({"quality": 95} if fmt == "JPEG" else {}))
    result = run_one(preflight, data)
    assert result.accepted, result.reasons
    assert result.image is not None
    assert result.image.shape == upright.shape
    assert result.report.orientation == orientation
    assert ("orientation" in result.report.converted) == (orientation != 1)
    assert (result.report.width, result.report.height) == (stored.shape[1], stored.shape[0])
    error = np.abs(result.image.astype(int) - upright.astype(int))
    if fmt == "PNG":
        assert error.max() == 0
    else:
        assert error.mean() < 3


def test_invalid_orientation_is_ignored(preflight: Preflight) -> None:
    exif = PILImage.Exif()
    exif[ExifTags.Base.Orientation] = 42
    result = run_one(preflight, encode(quadrants(), exif=exif.tobytes()))
    assert result.accepted
    assert result.report.orientation == 1
    assert same_pixels(result.image, quadrants())
    assert any("orientation" in w for w in result.report.warnings)


# --------------------------------------------------------------------------------------------
# Colour: ICC, CMYK, 16-bit, palette, grey, alpha
# --------------------------------------------------------------------------------------------


def test_adobe_rgb_profile_is_converted_to_srgb(preflight: Preflight) -> None:
    icc = adobe_rgb_icc()
    profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    assert ImageCms.getProfileDescription(profile).strip() == "Adobe RGB (1998) test"
    image = photo(480, 640)
    image[:100, :100] = (200, 30, 30)  # a saturated red patch
    image[100:200, :100] = (128, 128, 128)  # a neutral grey patch
    tagged = run_one(preflight, encode(image, icc_profile=icc))
    untagged = run_one(preflight, encode(image))
    assert tagged.accepted
    assert tagged.image is not None
    assert untagged.image is not None
    assert np.array_equal(untagged.image, image)
    assert tagged.report.icc_profile == "Adobe RGB (1998) test"
    assert "icc->sRGB" in tagged.report.converted
    assert "icc->sRGB" not in untagged.report.converted
    red = tagged.image[50, 50].astype(int)
    # Adobe RGB's red primary lies outside sRGB: the same numbers mean a more saturated red,
    # so in sRGB the red channel goes up and the others do not.
    assert red[0] > 215
    assert red[1] <= 30
    assert red[2] <= 30
    grey = tagged.image[150, 50].astype(int)
    assert grey.max() - grey.min() <= 2  # neutrals stay neutral
    assert abs(int(grey[1]) - 128) <= 3


def test_srgb_profile_leaves_pixels_alone(preflight: Preflight) -> None:
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    image = photo(480, 640)
    result = run_one(preflight, encode(image, icc_profile=srgb))
    assert result.report.icc_profile is not None
    assert result.report.icc_profile.startswith("sRGB")
    assert "icc->sRGB" not in result.report.converted
    assert same_pixels(result.image, image)


def test_unreadable_profile_is_ignored_with_a_warning(preflight: Preflight) -> None:
    result = run_one(preflight, encode(photo(480, 640), icc_profile=b"not a profile" * 20))
    assert result.accepted
    assert any("ICC" in w for w in result.report.warnings)


@pytest.mark.parametrize("fmt", ["JPEG", "TIFF"])
def test_cmyk_converts_with_sane_colours(preflight: Preflight, fmt: str) -> None:
    image = photo(480, 640)
    image[:120, :120] = (255, 0, 0)
    cmyk = PILImage.fromarray(image).convert("CMYK")
    result = run_one(preflight, encode(cmyk, fmt, **({"quality": 95} if fmt == "JPEG" else {})))
    assert result.accepted, result.reasons
    assert result.report.mode == "CMYK"
    assert "cmyk->rgb" in result.report.converted
    assert result.image is not None
    r, g, b = result.image[60, 60].astype(int)
    assert r > 200
    assert g < 60
    assert b < 60


def test_16bit_grey_png_is_scaled_not_clipped(preflight: Preflight) -> None:
    grey = cv2.cvtColor(photo(480, 640), cv2.COLOR_RGB2GRAY).astype(np.uint16) * 257
    grey[:50, :50] = 32768
    grey[50:100, :50] = 65535
    result = run_one(preflight, encode(PILImage.fromarray(grey)))
    assert result.accepted, result.reasons
    assert result.report.bits == 16
    assert result.report.mode.startswith("I")  # type: ignore[union-attr]
    assert "16bit->8bit" in result.report.converted
    image = result.image
    assert image is not None
    assert image.shape == (480, 640, 3)
    assert abs(int(image[25, 25, 0]) - 128) <= 1
    assert tuple(image[75, 25]) == (255, 255, 255)
    assert np.array_equal(image[..., 0], image[..., 2])


def test_16bit_rgb_png_is_scaled_not_clipped(preflight: Preflight) -> None:
    rgb16 = photo(480, 640).astype(np.uint16) * 257
    rgb16[:50, :50] = (32768, 65535, 0)
    ok, png = cv2.imencode(".png", rgb16[..., ::-1])  # OpenCV writes BGR
    assert ok
    result = run_one(preflight, png.tobytes())
    assert result.accepted, result.reasons
    assert result.report.bits == 16
    assert "16bit->8bit" in result.report.converted
    image = result.image
    assert image is not None
    r, g, b = image[25, 25].astype(int)
    assert abs(r - 128) <= 1
    assert (g, b) == (255, 0)


def test_palette_with_transparency_is_flattened_onto_white(
    preflight_factory: Callable[..., Preflight],
) -> None:
    indices = (np.indices((480, 640)).sum(axis=0) // 20 % 6).astype(np.uint8)
    indices[:100, :100] = 6  # the transparent index
    palette = [200, 0, 0, 0, 150, 0, 0, 0, 180, 250, 200, 0, 20, 20, 20, 120, 60, 200, 9, 9, 9]
    image = PILImage.fromarray(indices, "P")
    image.putpalette(palette)
    data = encode(image, transparency=6)

    flat = run_one(preflight_factory(), data)
    assert flat.accepted, flat.reasons
    assert flat.report.had_alpha
    assert "palette->rgb" in flat.report.converted
    assert "alpha flattened" in flat.report.converted
    assert flat.image is not None
    assert tuple(flat.image[50, 50]) == (255, 255, 255)
    assert tuple(flat.image[300, 300]) == tuple(palette[3 * indices[300, 300] :][:3])

    on_black = run_one(preflight_factory(background=[0, 0, 0]), data)
    assert on_black.image is not None
    assert tuple(on_black.image[50, 50]) == (0, 0, 0)

    kept = run_one(preflight_factory(alpha="keep"), data)
    assert kept.accepted
    assert kept.image is not None
    assert kept.alpha is not None
    assert kept.image.shape == (480, 640, 3)
    assert kept.alpha.shape == (480, 640)
    assert kept.alpha.dtype == np.uint8
    assert kept.alpha[50, 50] == 0
    assert kept.alpha[300, 300] == 255
    assert kept.report.alpha_policy == "keep"
    assert "alpha flattened" not in kept.report.converted


def test_rgba_is_composited_not_just_dropped(preflight_factory: Callable[..., Preflight]) -> None:
    rgba = np.dstack([photo(480, 640), np.full((480, 640), 255, np.uint8)])
    rgba[:100, :100] = (255, 0, 0, 128)  # half-transparent red
    data = encode(rgba)
    flat = run_one(preflight_factory(), data)
    assert flat.image is not None
    r, g, b = flat.image[50, 50].astype(int)
    assert r == 255
    assert abs(g - 127) <= 1
    assert abs(b - 127) <= 1
    assert np.array_equal(flat.image[200:, 200:], rgba[200:, 200:, :3])

    kept = run_one(preflight_factory(alpha="keep"), data)
    assert kept.image is not None
    assert kept.alpha is not None
    assert tuple(kept.image[50, 50]) == (255, 0, 0)
    assert kept.alpha[50, 50] == 128


def test_kept_alpha_is_resized_with_the_image(preflight_factory: Callable[..., Preflight]) -> None:
    rgba = np.dstack([photo(600, 800), np.full((600, 800), 255, np.uint8)])
    rgba[:, :400, 3] = 0
    rgba[:, :400, :3] = (0, 255, 0)  # hidden colour must not bleed into the visible half
    result = run_one(preflight_factory(alpha="keep", target_max_side=400), encode(rgba))
    assert result.report.resized
    assert result.image is not None
    assert result.alpha is not None
    assert result.image.shape == (300, 400, 3)
    assert result.alpha.shape == (300, 400)
    assert result.alpha[:, :190].max() == 0
    assert result.alpha[:, 210:].min() == 255
    visible = result.image[:, 201:]
    assert visible[..., 1].astype(int).mean() < 200


@pytest.mark.parametrize(
    ("mode", "note"), [("L", "gray->rgb"), ("1", "bilevel->gray"), ("LA", "gray->rgb")]
)
def test_grey_modes_become_rgb(preflight: Preflight, mode: str, note: str) -> None:
    grey = PILImage.fromarray(photo(480, 640)).convert(mode)
    result = run_one(preflight, encode(grey))
    assert result.accepted, result.reasons
    assert note in result.report.converted
    assert result.image is not None
    assert result.image.shape == (480, 640, 3)
    assert np.array_equal(result.image[..., 0], result.image[..., 1])


def test_animated_gif_uses_the_first_frame(preflight: Preflight) -> None:
    result = run_one(preflight, gif_frames(3))
    assert result.accepted, result.reasons
    assert result.report.frames == 3
    assert result.image is not None
    assert tuple(result.image[150, 320]) != (255, 255, 255)  # only frame 1 has white here
    assert tuple(result.image[110, 320]) == (255, 255, 255)


def test_mpo_is_read_as_its_first_picture(preflight: Preflight) -> None:
    first, second = PILImage.fromarray(quadrants()), PILImage.fromarray(photo(480, 640))
    out = io.BytesIO()
    first.save(out, "MPO", save_all=True, append_images=[second], quality=95)
    result = run_one(preflight, out.getvalue())
    assert result.accepted, result.reasons
    assert (result.report.format, result.report.frames) == ("MPO", 2)
    assert result.image is not None
    assert np.abs(result.image.astype(int) - quadrants().astype(int)).mean() < 3


# --------------------------------------------------------------------------------------------
# Metadata never survives
# --------------------------------------------------------------------------------------------


def test_gps_exif_xmp_and_trailing_bytes_do_not_survive(preflight: Preflight) -> None:
    exif = PILImage.Exif()
    exif[ExifTags.Base.Make] = "SpyCam"
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (52.0, 22.0, 10.0)
    gps[ExifTags.GPS.GPSLongitudeRef] = "E"
    gps[ExifTags.GPS.GPSLongitude] = (4.0, 53.0, 30.0)
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><secret>vendor-internal</secret></x:xmpmeta>'
    data = encode(photo(480, 640), "JPEG", exif=exif.tobytes(), xmp=xmp) + b"TRAILING-SECRET"
    with PILImage.open(io.BytesIO(data)) as original:  # the input really carries them
        assert original.getexif().get_ifd(ExifTags.IFD.GPSInfo)
        assert "xmp" in original.info

    result = run_one(preflight, data)
    assert result.accepted, result.reasons
    image = result.image
    assert type(image) is np.ndarray
    assert image.base is None or isinstance(image.base, np.ndarray)
    for fmt in ("PNG", "JPEG"):
        reencoded = encode(image, fmt)
        assert b"SpyCam" not in reencoded
        assert b"vendor-internal" not in reencoded
        assert b"TRAILING-SECRET" not in reencoded
        with PILImage.open(io.BytesIO(reencoded)) as clean:
            assert not clean.getexif()
            assert "exif" not in clean.info
            assert "xmp" not in clean.info


# --------------------------------------------------------------------------------------------
# Resize band
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "expected", "resized"),
    [
        pytest.param((2000, 3000), (1365, 2048), True, id="3000x2000-landscape"),
        pytest.param((3000, 2000), (2048, 1365), True, id="2000x3000-portrait"),
        pytest.param((600, 800), (600, 800), False, id="800x600-untouched"),
    ],
)
def test_resize_band(
    preflight: Preflight,
    size: tuple[int, int],
    expected: tuple[int, int],
    resized: bool,
) -> None:
    height, width = size
    big = cv2.resize(sample("astronaut"), (width, height), interpolation=cv2.INTER_CUBIC)
    result = run_one(preflight, encode(big, "JPEG", quality=90))
    assert result.accepted, result.reasons
    assert result.image is not None
    assert result.image.shape == (*expected, 3)
    assert (result.report.width, result.report.height) == (width, height)
    assert (result.report.output_height, result.report.output_width) == expected
    assert result.report.resized is resized


def test_large_jpeg_shrinks_on_load_like_a_full_decode(
    preflight_factory: Callable[..., Preflight], monkeypatch: pytest.MonkeyPatch
) -> None:
    draft_sizes: list[object] = []
    original_draft = JpegImagePlugin.JpegImageFile.draft

    def spy(self: JpegImagePlugin.JpegImageFile, mode: str | None, size: object) -> object:
        draft_sizes.append(size)
        return original_draft(self, mode, size)  # type: ignore[arg-type]

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)
    big = cv2.resize(sample("coffee"), (2100, 1400), interpolation=cv2.INTER_CUBIC)
    data = encode(big, "JPEG", quality=90)
    result = run_one(preflight_factory(target_max_side=512), data)
    assert draft_sizes == [(512, 341)]  # libjpeg decodes at 1/4 scale: 525 x 350
    assert result.accepted, result.reasons
    assert result.image is not None
    assert result.image.shape == (341, 512, 3)
    with PILImage.open(io.BytesIO(data)) as full:
        reference = cv2.resize(np.asarray(full), (512, 341), interpolation=cv2.INTER_AREA)
    assert np.abs(result.image.astype(int) - reference.astype(int)).mean() < 2


# --------------------------------------------------------------------------------------------
# Blur and blank measures
# --------------------------------------------------------------------------------------------

PHOTOS = ["astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "stereo_motorcycle"]


@pytest.mark.parametrize("name", PHOTOS)
def test_sample_photos_pass_and_their_blurred_copies_fail(name: str) -> None:
    preflight = Preflight(PreflightPolicy(min_side=0))  # chelsea is 300 px tall
    sharp, soft = preflight([encode(sample(name)), encode(blurred(sample(name), 8))])
    assert sharp.accepted, (sharp.reasons, sharp.report.sharpness)
    assert soft.reasons == (R.TOO_BLURRY,), soft.report.sharpness


def test_smooth_studio_shot_passes(preflight: Preflight) -> None:
    """A product with smooth shading and a soft shadow on a graded white sweep."""
    height, width = 1200, 1600
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    image = 250.0 - 10.0 * yy / height
    radius = np.hypot((yy - 600) / 360, (xx - 800) / 320)
    coverage = np.clip((1 - radius) * 320 + 0.5, 0, 1)  # anti-aliased edge
    shade = 140 + 60 * (xx - 800) / 320
    image = image * (1 - coverage) + shade * coverage
    shadow = np.exp(-(((yy - 960) / 36) ** 2 + ((xx - 800) / 380) ** 2))
    image -= 40 * shadow * (1 - coverage)
    rgb = np.dstack([image, image * 0.95, image * 0.9]).clip(0, 255).astype(np.uint8)
    result = run_one(preflight, encode(rgb, "JPEG", quality=90))
    assert result.accepted, (result.reasons, result.report.sharpness)


def test_sharp_product_on_soft_background_passes(preflight: Preflight) -> None:
    image = np.ascontiguousarray(sample("coffee").copy())
    image[:, :400] = blurred(image, 8)[:, :400]  # two thirds out of focus
    result = run_one(preflight, encode(image))
    assert result.accepted, (result.reasons, result.report.sharpness)


def test_sharpness_does_not_depend_on_resolution() -> None:
    grey = np.asarray(cv2.cvtColor(sample("astronaut"), cv2.COLOR_RGB2GRAY), np.uint8)
    upscaled = cv2.resize(grey, (2048, 2048), interpolation=cv2.INTER_LANCZOS4)
    small = edge_sharpness(grey)
    large = edge_sharpness(np.asarray(upscaled, np.uint8))
    assert small is not None
    assert large is not None
    assert abs(large - small) / small < 0.2


def test_sharpness_is_none_without_edges() -> None:
    assert edge_sharpness(np.full((300, 300), 128, np.uint8)) is None
    with pytest.raises(ValueError, match="2-D"):
        edge_sharpness(np.zeros((4, 4, 3), np.uint8))


# --------------------------------------------------------------------------------------------
# Policy and report
# --------------------------------------------------------------------------------------------


def test_default_policy_matches_the_documented_defaults() -> None:
    policy = PreflightPolicy()
    assert policy.allowed_formats == DEFAULT_ALLOWED_FORMATS
    assert {"JPEG", "PNG", "WEBP", "TIFF", "BMP", "GIF", "MPO"} == DEFAULT_ALLOWED_FORMATS
    assert policy.max_file_bytes == 40 * 1024 * 1024
    assert (policy.max_pixels, policy.max_side, policy.max_frames) == (40_000_000, 20_000, 64)
    assert (policy.min_side, policy.max_aspect_ratio, policy.target_max_side) == (400, 4.0, 2048)
    assert (policy.alpha, policy.background, policy.blank_std) == ("flatten", (255, 255, 255), 4.0)
    assert 0 < policy.blur_threshold < 0.5


def test_with_overrides_applies_and_coerces() -> None:
    base = PreflightPolicy()
    vendor = base.with_overrides(
        {
            "min_side": 200,
            "allowed_formats": ["jpeg", "png"],
            "background": [0, 0, 0],
            "max_aspect_ratio": 6,
            "alpha": "keep",
        }
    )
    assert vendor.min_side == 200
    assert vendor.allowed_formats == frozenset({"JPEG", "PNG"})
    assert vendor.background == (0, 0, 0)
    assert vendor.max_aspect_ratio == 6.0
    assert isinstance(vendor.max_aspect_ratio, float)
    assert vendor.alpha == "keep"
    assert base == PreflightPolicy()  # the original is untouched
    assert base.with_overrides({}) == base


def test_with_overrides_rejects_unknown_keys() -> None:
    with pytest.raises(ValueError, match=r"min_sidee.*valid keys are:.*min_side"):
        PreflightPolicy().with_overrides({"min_sidee": 10})


@pytest.mark.parametrize(
    "overrides",
    [
        {"min_side": -1},
        {"max_pixels": "many"},
        {"max_frames": True},
        {"alpha": "drop"},
        {"background": (256, 0, 0)},
        {"background": "white"},
        {"allowed_formats": "JPEG"},
        {"max_aspect_ratio": 0.5},
        {"blur_threshold": float("nan")},
    ],
    ids=str,
)
def test_bad_policy_values_are_rejected(overrides: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=next(iter(overrides))):
        PreflightPolicy().with_overrides(overrides)


def test_formats_pillow_cannot_decode_are_rejected_up_front() -> None:
    with pytest.raises(ValueError, match="HEIC"):
        Preflight(PreflightPolicy(allowed_formats=frozenset({"JPEG", "HEIC"})))
    with pytest.raises(TypeError, match="PreflightPolicy"):
        Preflight({"min_side": 1})  # type: ignore[arg-type]


def test_report_is_json_serialisable(preflight: Preflight) -> None:
    result = run_one(preflight, encode(photo(480, 640), "JPEG", dpi=(72, 72)))
    report = result.report
    assert isinstance(report, PreflightReport)
    as_dict = report.to_dict()
    assert json.loads(json.dumps(as_dict)) == as_dict
    assert as_dict["dpi"] == [72.0, 72.0]
    assert set(as_dict) >= {
        "format",
        "file_bytes",
        "width",
        "height",
        "mode",
        "bits",
        "frames",
        "dpi",
        "icc_profile",
        "orientation",
        "had_alpha",
        "alpha_policy",
        "converted",
        "output_width",
        "output_height",
        "resized",
        "sharpness",
        "std",
    }


# --------------------------------------------------------------------------------------------
# Named steps on tiny inputs with known answers
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "claimed"),
    [
        (b"\xff\xd8\xff\xe0" + bytes(20), "JPEG"),
        (b"\x89PNG\r\n\x1a\n" + bytes(20), "PNG"),
        (b"GIF89a" + bytes(20), "GIF"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "WEBP"),
        (b"II*\x00" + bytes(20), "TIFF"),
        (b"MM\x00*" + bytes(20), "TIFF"),
        (b"BM" + bytes(12) + (40).to_bytes(4, "little"), "BMP"),
        (b"BM" + bytes(12) + (41).to_bytes(4, "little"), None),  # no such info header
        (b"RIFF\x00\x00\x00\x00WAVEfmt ", None),
        (b"%!PS-Adobe-3.0 EPSF-3.0", None),
        (b"", None),
    ],
)
def test_claimed_format_reads_the_magic_bytes(head: bytes, claimed: str | None) -> None:
    assert claimed_format(head) == claimed


@pytest.mark.parametrize(
    ("data", "fmt", "short"),
    [
        (b"\xff\xd8\xff\xda scan \xff\xd9", "JPEG", False),
        (b"\xff\xd8\xff\xda scan", "JPEG", True),
        (b"\xff\xd8\xff\xd9\xff\xda scan", "MPO", True),  # the end marker must follow the scan
        (b"\x89PNG IHDR IDAT IEND", "PNG", False),
        (b"\x89PNG IHDR IDAT", "PNG", True),
        (b"GIF89a ... ;\x00\x00", "GIF", False),
        (b"GIF89a ...", "GIF", True),
        (b"RIFF" + (8).to_bytes(4, "little") + b"WEBPVP8 ", "WEBP", False),
        (b"RIFF" + (100).to_bytes(4, "little") + b"WEBPVP8 ", "WEBP", True),
        (b"II*\x00", "TIFF", None),  # a TIFF cannot tell
    ],
)
def test_cut_short_reads_the_container(data: bytes, fmt: str, short: bool | None) -> None:
    assert cut_short(data, fmt) is short


@pytest.mark.parametrize("sigma", [2.0, 3.0, 5.0])
def test_sharpness_of_blurred_steps_is_one_over_their_sigma(sigma: float) -> None:
    """Step edges blurred by a Gaussian of ``sigma`` px measure ``1 / sigma`` whatever their
    contrast (a 200-level step and a 100-level one here), within the Sobel's discretisation."""
    steps = np.zeros((256, 256), np.float32)
    steps[:, 128:] = 200
    steps[64:192, 40:90] = 100
    grey = np.clip(np.rint(cv2.GaussianBlur(steps, (0, 0), sigma)), 0, 255).astype(np.uint8)
    assert edge_sharpness(grey) == pytest.approx(1 / sigma, rel=0.06)
