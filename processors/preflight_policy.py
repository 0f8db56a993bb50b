"""What preflight accepts (:class:`PreflightPolicy`) and what it says about each input
(:class:`PreflightReport`, :class:`PreflightResult`). :mod:`processors.preflight` re-exports
them."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Final, Literal

from processors.tensors import Image, Mask
from schemas.reasons import ReasonCode

__all__ = [
    "DEFAULT_ALLOWED_FORMATS",
    "PreflightPolicy",
    "PreflightReport",
    "PreflightResult",
]

DEFAULT_ALLOWED_FORMATS: Final[frozenset[str]] = frozenset(
    {"JPEG", "PNG", "WEBP", "TIFF", "BMP", "GIF", "MPO"}
)
"""Pillow format names accepted by default."""



@dataclass(frozen=True, kw_only=True)
class PreflightPolicy:
    """What preflight accepts and how it normalizes. Per-vendor tweaks go through
    :meth:`with_overrides`. Every field is validated on construction (``ValueError``)."""

    allowed_formats: frozenset[str] = DEFAULT_ALLOWED_FORMATS
    """Pillow format names accepted after sniffing the content (upper case). Default: JPEG, PNG,
    WEBP, TIFF, BMP, GIF, MPO. Anything else Pillow recognises -> UNSUPPORTED_FORMAT."""
    max_file_bytes: int = 40 * 1024 * 1024
    """Largest accepted file, in bytes. Default 40 MiB. Larger -> FILE_TOO_LARGE."""
    max_pixels: int = 40_000_000
    """Largest width*height read from the header, before decoding. Default 40 MP. Larger ->
    DECOMPRESSION_BOMB."""
    max_side: int = 20_000
    """Largest width or height in the header. Default 20 000. Larger -> DECOMPRESSION_BOMB."""
    max_frames: int = 64
    """Most frames (GIF, APNG, WebP, TIFF pages, MPO). Default 64. More -> TOO_MANY_FRAMES;
    otherwise frame 0 is used."""
    min_side: int = 400
    """Smallest accepted shorter side, after orientation and before resizing. Default 400.
    Smaller -> TOO_SMALL."""
    max_aspect_ratio: float = 4.0
    """Largest long/short side ratio. Default 4.0. Larger -> EXTREME_ASPECT_RATIO."""
    target_max_side: int = 2048
    """Resize band: larger images are shrunk (area filter) so the long side equals this.
    Default 2048. Smaller images are never upscaled here."""
    alpha: Literal["flatten", "keep"] = "flatten"
    """``"flatten"`` (default) composites transparent images onto ``background``; ``"keep"``
    returns the RGB unchanged plus the alpha channel in ``PreflightResult.alpha``."""
    background: tuple[int, int, int] = (255, 255, 255)
    """RGB colour transparent pixels are flattened onto. Default white."""
    blank_std: float = 4.0
    """Grey-level standard deviation (0..255) below which the image is BLANK_IMAGE. Default
    4.0."""
    blur_threshold: float = 0.3
    """Edge sharpness (1/px at the 512-px scale, see :func:`edge_sharpness`) below which the
    image is TOO_BLURRY. Default 0.3, i.e. edges blurred by a Gaussian sigma above ~3.3 px on a
    512-px thumbnail (~0.65 % of the long side). Focused photos measure 0.7-2; sample photos
    blurred with sigma 8 measure 0.15-0.25. 0 disables the check."""

    def __post_init__(self) -> None:
        formats = self.allowed_formats
        if not isinstance(formats, frozenset) or not all(isinstance(f, str) for f in formats):
            raise ValueError(
                "allowed_formats: expected a frozenset of Pillow format names such as "
                f"frozenset({{'JPEG', 'PNG'}}), got {formats!r}."
            )
        if any(f != f.upper() for f in formats):
            raise ValueError(
                f"allowed_formats: Pillow format names are upper case, got {sorted(formats)}."
            )
        for name, low in (
            ("max_file_bytes", 1),
            ("max_pixels", 1),
            ("max_side", 1),
            ("max_frames", 1),
            ("min_side", 0),
            ("target_max_side", 1),
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name}: expected an integer >= {low}, got {value!r}.")
        for name, minimum in (
            ("max_aspect_ratio", 1.0),
            ("blank_std", 0.0),
            ("blur_threshold", 0.0),
        ):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or value < minimum
            ):
                raise ValueError(f"{name}: expected a finite number >= {minimum}, got {value!r}.")
        if self.alpha not in ("flatten", "keep"):
            raise ValueError(f"alpha: expected 'flatten' or 'keep', got {self.alpha!r}.")
        bg = self.background
        if (
            not isinstance(bg, tuple)
            or len(bg) != 3
            or not all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= 255 for c in bg)
        ):
            raise ValueError(
                f"background: expected an RGB tuple of three ints in 0..255, got {bg!r}."
            )

    def with_overrides(self, overrides: Mapping[str, object]) -> PreflightPolicy:
        """Return a copy with ``overrides`` applied (per-vendor settings, e.g. from YAML).

        Lists are accepted where tuples or sets are expected, format names are upper-cased and
        ints are accepted for float fields. Unknown keys or bad values raise ``ValueError``.
        """
        valid = sorted(f.name for f in fields(self))
        unknown = sorted(str(k) for k in overrides if k not in valid)
        if unknown:
            raise ValueError(
                f"unknown preflight policy key(s) {unknown}; valid keys are: {', '.join(valid)}."
            )
        changes: dict[str, object] = {}
        for key, value in overrides.items():
            if key == "allowed_formats":
                if isinstance(value, str) or not isinstance(value, list | tuple | set | frozenset):
                    raise ValueError(
                        f"allowed_formats: expected a list of format names, got {value!r}."
                    )
                changes[key] = frozenset(str(v).upper() for v in value)
            elif key == "background" and isinstance(value, list):
                changes[key] = tuple(value)
            elif (
                key in ("max_aspect_ratio", "blank_std", "blur_threshold")
                and isinstance(value, int)
                and not isinstance(value, bool)
            ):
                changes[key] = float(value)
            else:
                changes[key] = value
        return replace(self, **changes)  # type: ignore[arg-type]  # __post_init__ validates


@dataclass(frozen=True)
class PreflightReport:
    """What preflight saw and did, for one input. Fields it never reached are ``None``."""

    format: str | None
    """Format sniffed from the content (Pillow's name, e.g. ``"JPEG"``); None if unknown."""
    file_bytes: int
    """Size of the input in bytes."""
    width: int | None
    """Width from the header, before orientation."""
    height: int | None
    """Height from the header, before orientation."""
    mode: str | None
    """Pillow mode as decoded (e.g. ``"RGB"``, ``"CMYK"``, ``"I;16"``, ``"P"``)."""
    bits: int | None
    """Bits per channel of the stored data (1, 2, 4, 8, 16 or 32)."""
    frames: int | None
    """Number of frames or pages; frame 0 is the one used. Counting stops at
    ``max_frames + 1``, so a bigger figure is never reported (or paid for)."""
    dpi: tuple[float, float] | None
    """Resolution metadata (x, y) in dots per inch, when the file states it."""
    icc_profile: str | None
    """Description of the embedded ICC profile, if there is a readable one."""
    orientation: int
    """EXIF orientation (1..8) that was applied; 1 when absent or invalid."""
    had_alpha: bool
    """The input carried transparency (an alpha channel or a transparent palette/colour)."""
    alpha_policy: str
    """The policy's ``alpha`` setting: ``"flatten"`` or ``"keep"``."""
    converted: tuple[str, ...]
    """Conversions applied, in order, e.g. ``"16bit->8bit"``, ``"palette->rgb"``,
    ``"cmyk->rgb"``, ``"icc->sRGB"``, ``"gray->rgb"``, ``"orientation"``,
    ``"alpha flattened"``."""
    output_width: int | None
    """Width of the normalized image (oriented and resized); set even if it was rejected."""
    output_height: int | None
    """Height of the normalized image."""
    resized: bool
    """The image was shrunk into the resize band."""
    sharpness: float | None
    """Edge sharpness (1/px at the 512-px scale, see :func:`edge_sharpness`); None when the
    image has too few edges to measure or was not decoded."""
    std: float | None
    """Standard deviation of the normalized image's grey levels (0..255)."""
    warnings: tuple[str, ...] = ()
    """Decoder and normalizer warnings, e.g. an unusable ICC profile that was ignored."""

    def to_dict(self) -> dict[str, object]:
        """The report as JSON-serialisable built-ins (tuples become lists)."""
        out: dict[str, object] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out


@dataclass(frozen=True, eq=False)
class PreflightResult:
    """The outcome for one input. Compared by identity (it holds arrays); compare ``reasons``,
    ``report`` and the arrays themselves instead."""

    image: Image | None
    """HWC uint8 RGB (sRGB), C-contiguous, freshly allocated; None when rejected."""
    alpha: Mask | None
    """HxW uint8 alpha (255 = opaque), only when the policy keeps alpha and the input had
    some; same size as ``image``."""
    reasons: tuple[ReasonCode, ...]
    """Why the image was rejected; empty when accepted."""
    report: PreflightReport
    """What preflight saw and did."""

    @property
    def accepted(self) -> bool:
        """True when no reason was found."""
        return not self.reasons
