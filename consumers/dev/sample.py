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

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Final, Literal

import numpy as np
import orjson
from PIL import Image

from consumers.dev.encode import png_bytes
from consumers.dev.icc import adobe_rgb_icc
from consumers.dev.kinds import BUILDERS
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
        built = BUILDERS[kind](rng, dpi)
        rel = PurePosixPath(vendor_id, sku, f"{view}.{built.ext}")
        _write(out / "upload" / rel, built.data)
        truth: str | None = None
        if built.mask is not None:
            truth_rel = PurePosixPath("truth", vendor_id, sku, f"{view}.png")
            mask_img = Image.fromarray(built.mask.astype(np.uint8) * np.uint8(255), "L")
            _write(out / truth_rel, png_bytes(mask_img))
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
