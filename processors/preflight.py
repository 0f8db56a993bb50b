"""Preflight: the cheap gate that checks and normalizes every upload before any model sees it.

Bytes in, arrays out. No file or network I/O, no state between calls, deterministic: the same
bytes always give the same reasons and bit-identical arrays.

Decision ladder
---------------
The byte stage stops at the first failing rung and reports exactly one reason. The pixel
stage reports every reason that applies (an image can be both tiny and blank)::

    bytes
     1. len == 0                                       -> EMPTY_FILE
     2. len > max_file_bytes                           -> FILE_TOO_LARGE
     3. sniff the format from the content (Pillow reads the header only; names never count)
          an allow-listed decoder accepts it           -> go on
          an allow-listed signature, broken header     -> TRUNCATED (file ends early) or CORRUPT
          a real image format, not on the allow-list   -> UNSUPPORTED_FORMAT (pixels never read,
                                                          so EPS never reaches Ghostscript)
          nothing recognises it                        -> NOT_AN_IMAGE
     4. header w*h > max_pixels or a side > max_side   -> DECOMPRESSION_BOMB (nothing allocated;
                                                          Pillow's own bomb guard maps here too)
     5. frames > max_frames                            -> TOO_MANY_FRAMES (else frame 0 is used;
                                                          GIF frames and TIFF pages are counted
                                                          from headers, stopping at max + 1)
     6. decode frame 0                                 -> TRUNCATED (data ends early), CORRUPT
                                                          (anything else), DECOMPRESSION_BOMB
                                                          (decoder runs out of memory)
        (JPEG shrinks on load: libjpeg decodes at 1/2, 1/4 or 1/8 scale when that still
        covers the output size)
    pixels
     7. normalize: EXIF orientation (1-8); ICC -> sRGB (CMYK included, plain conversion when
        there is no profile; sRGB-tagged pixels are left as they are); 16-bit and float ->
        8-bit by scaling (65535 -> 255); palette, grey and bilevel -> RGB; alpha flattened
        onto ``background`` (or kept apart); resized so the long side <= target_max_side
        (area filter, never upscaled). The result is a fresh array, so no EXIF, GPS, XMP, ICC
        or trailing bytes survive.
     8. validate, all that apply:
          oriented short side < min_side               -> TOO_SMALL
          long / short > max_aspect_ratio              -> EXTREME_ASPECT_RATIO
          grey std < blank_std                         -> BLANK_IMAGE
          edge sharpness < blur_threshold              -> TOO_BLURRY (not reported for blanks)

Blur measure
------------
:func:`edge_sharpness` estimates how blurred the image's sharper edges are, on a grey copy
shrunk so its long side is at most 512 px (so the figure does not depend on resolution). It
re-blurs the image with a Gaussian of sigma ``s = 3`` and compares gradient magnitudes at the
re-blurred image's edge maxima. For a step edge already blurred by sigma ``b`` that ratio is
``R = sqrt(b**2 + s**2) / b``, independent of the edge's contrast, so
``sharpness = sqrt(R**2 - 1) / s = 1 / b`` (in 1/px at the 512-px scale). The 75th percentile
over edges is used, so a photo with a sharp product and a soft background passes.

Warnings
--------
Pillow reports some oddities as warnings (a bomb-sized header, corrupt EXIF). Each image is
processed inside ``warnings.catch_warnings(record=True)`` so results never depend on the
process's warning filters; what was caught is listed in ``PreflightReport.warnings``.
``catch_warnings`` swaps process-wide state on Python < 3.14: call a :class:`Preflight` from one
thread at a time (or from worker processes).
"""

from __future__ import annotations

import io
import math
import struct
import warnings
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Final, Literal

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image as PILImage
from PIL import ImageCms, UnidentifiedImageError
from PIL.ImageFile import ImageFile

from processors.tensors import Image, Mask
from schemas.reasons import ReasonCode

__all__ = [
    "DEFAULT_ALLOWED_FORMATS",
    "Preflight",
    "PreflightPolicy",
    "PreflightReport",
    "PreflightResult",
    "edge_sharpness",
]

DEFAULT_ALLOWED_FORMATS: Final[frozenset[str]] = frozenset(
    {"JPEG", "PNG", "WEBP", "TIFF", "BMP", "GIF", "MPO"}
)
"""Pillow format names accepted by default."""

_ORIENTATION_TAG: Final = 0x0112
_TRANSPOSE: Final[dict[int, PILImage.Transpose]] = {
    # The table ImageOps.exif_transpose uses.
    2: PILImage.Transpose.FLIP_LEFT_RIGHT,
    3: PILImage.Transpose.ROTATE_180,
    4: PILImage.Transpose.FLIP_TOP_BOTTOM,
    5: PILImage.Transpose.TRANSPOSE,
    6: PILImage.Transpose.ROTATE_270,
    7: PILImage.Transpose.TRANSVERSE,
    8: PILImage.Transpose.ROTATE_90,
}
_DECODED_BY: Final = {"MPO": "JPEG"}
"""Formats Pillow produces from another format's decoder rather than registering their own."""
_SRGB: Final = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
_ICC_SPACE_FOR_MODE: Final = {"RGB": "RGB", "L": "GRAY", "CMYK": "CMYK"}
_SIXTEEN_BIT_MODES: Final = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})
_MODE_BITS: Final = {"1": 1, "I": 32, "F": 32} | dict.fromkeys(_SIXTEEN_BIT_MODES, 16)

# Everything Pillow's decoders are known to raise on hostile bytes. Kept to the calls that run
# Pillow code, so a bug in this module still surfaces.
_DECODE_ERRORS: Final = (
    OSError,  # includes UnidentifiedImageError, "image file is truncated", zlib/libjpeg errors
    ValueError,
    SyntaxError,
    EOFError,
    struct.error,
    zlib.error,
    IndexError,
    KeyError,
    TypeError,
    AttributeError,
    AssertionError,
    ArithmeticError,  # ZeroDivisionError, OverflowError
    RuntimeError,  # RecursionError, NotImplementedError
    MemoryError,
    PILImage.DecompressionBombError,
    ImageCms.PyCMSError,
)
_ICC_ERRORS: Final = (ImageCms.PyCMSError, OSError, ValueError, TypeError)

# Blur measure (see the module docstring).
_BLUR_SCALE: Final = 512
_BLUR_PROBE_SIGMA: Final = 3.0
_EDGE_FRACTION: Final = 0.25
_EDGE_FLOOR: Final = 0.5
_EDGE_PERCENTILE: Final = 75.0
_MIN_EDGE_PIXELS: Final = 16

_FloatArray = npt.NDArray[np.float32]
_BoolArray = npt.NDArray[np.bool_]


# --------------------------------------------------------------------------------------------
# Policy, report, result
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# The processor
# --------------------------------------------------------------------------------------------


class Preflight:
    """Check and normalize a batch of uploaded files.

    ``Preflight(policy)(batch)`` takes a sequence of ``bytes`` and returns one
    :class:`PreflightResult` per input, in order. It never raises for any byte string; it
    raises ``TypeError`` only when the batch itself is not a sequence of bytes-like objects.
    """

    version: str = "preflight-1"
    """Changes whenever the same bytes could give a different result."""

    def __init__(self, policy: PreflightPolicy | None = None) -> None:
        if policy is not None and not isinstance(policy, PreflightPolicy):
            raise TypeError(
                f"policy: expected a PreflightPolicy or None, got {type(policy).__name__}."
            )
        self.policy: PreflightPolicy = policy if policy is not None else PreflightPolicy()
        self._decoders = _decoders_for(self.policy.allowed_formats)

    def __repr__(self) -> str:
        return f"Preflight(version={self.version!r}, policy={self.policy!r})"

    def __call__(self, batch: Sequence[bytes]) -> list[PreflightResult]:
        items = _check_batch(batch)
        results: list[PreflightResult] = []
        for data in items:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                result = _Run(data, self.policy, self._decoders).result()
            if caught:
                seen = dict.fromkeys(f"{w.category.__name__}: {w.message}" for w in caught)
                report = replace(result.report, warnings=result.report.warnings + tuple(seen))
                result = replace(result, report=report)
            results.append(result)
        return results


def _check_batch(batch: object) -> list[bytes]:
    if isinstance(batch, bytes | bytearray | memoryview | str):
        raise TypeError(
            f"Preflight expects a sequence of files as bytes, got a single {type(batch).__name__}"
            "; wrap one file in a list: preflight([data])."
        )
    if not isinstance(batch, Sequence):
        raise TypeError(
            f"Preflight expects a sequence (e.g. a list) of bytes, got {type(batch).__name__}."
        )
    items: list[bytes] = []
    for i, item in enumerate(batch):
        if isinstance(item, bytes):
            items.append(item)
        elif isinstance(item, bytearray | memoryview):
            items.append(bytes(item) if isinstance(item, bytearray) else item.tobytes())
        else:
            hint = (
                " Read files in binary mode (open(path, 'rb').read()), not text mode."
                if isinstance(item, str)
                else " Pass the encoded file contents, not a decoded image."
            )
            raise TypeError(
                f"batch[{i}]: expected bytes (the file contents), got {type(item).__name__}." + hint
            )
    return items


class _RejectError(Exception):
    """One byte-stage reason; stops the ladder."""

    def __init__(self, reason: ReasonCode) -> None:
        super().__init__(reason.value)
        self.reason = reason


class _Run:
    """One input going down the ladder; collects the report's facts as it goes."""

    def __init__(self, data: bytes, policy: PreflightPolicy, decoders: tuple[str, ...]) -> None:
        self.data = data
        self.policy = policy
        self.decoders = decoders
        self.format: str | None = None
        self.width: int | None = None
        self.height: int | None = None
        self.mode: str | None = None
        self.bits: int | None = None
        self.frames: int | None = None
        self.dpi: tuple[float, float] | None = None
        self.icc_profile: str | None = None
        self.orientation = 1
        self.had_alpha = False
        self.converted: list[str] = []
        self.output_width: int | None = None
        self.output_height: int | None = None
        self.resized = False
        self.sharpness: float | None = None
        self.std: float | None = None
        self.notes: list[str] = []
        self.oriented_size = (0, 0)

    # -- entry -----------------------------------------------------------------------------

    def result(self) -> PreflightResult:
        try:
            rgb, alpha = self._decode_and_normalize()
        except _RejectError as reject:
            return self._finish(None, None, (reject.reason,))
        reasons = self._validate(rgb, alpha)
        if reasons:
            return self._finish(None, None, reasons)
        keep = alpha if self.policy.alpha == "keep" else None
        return self._finish(rgb, keep, ())

    def _finish(
        self, image: Image | None, alpha: Mask | None, reasons: tuple[ReasonCode, ...]
    ) -> PreflightResult:
        report = PreflightReport(
            format=self.format,
            file_bytes=len(self.data),
            width=self.width,
            height=self.height,
            mode=self.mode,
            bits=self.bits,
            frames=self.frames,
            dpi=self.dpi,
            icc_profile=self.icc_profile,
            orientation=self.orientation,
            had_alpha=self.had_alpha,
            alpha_policy=self.policy.alpha,
            converted=tuple(self.converted),
            output_width=self.output_width,
            output_height=self.output_height,
            resized=self.resized,
            sharpness=self.sharpness,
            std=self.std,
            warnings=tuple(self.notes),
        )
        return PreflightResult(image=image, alpha=alpha, reasons=reasons, report=report)

    # -- byte stage ------------------------------------------------------------------------

    def _decode_and_normalize(self) -> tuple[Image, Mask | None]:
        data, policy = self.data, self.policy
        if not data:
            raise _RejectError(ReasonCode.EMPTY_FILE)
        if len(data) > policy.max_file_bytes:
            raise _RejectError(ReasonCode.FILE_TOO_LARGE)
        with self._open() as im:
            self.format = im.format
            self.width, self.height = im.size
            self.mode = im.mode
            self.bits = _bits(im)
            self.dpi = _dpi(im.info.get("dpi"))
            width, height = im.size
            if width > policy.max_side or height > policy.max_side:
                raise _RejectError(ReasonCode.DECOMPRESSION_BOMB)
            if width * height > policy.max_pixels:
                raise _RejectError(ReasonCode.DECOMPRESSION_BOMB)
            try:
                self.frames = _count_frames(im, self.data, policy.max_frames)
            except _DECODE_ERRORS as exc:
                raise _RejectError(self._decode_failure(exc)) from None
            if self.frames > policy.max_frames:
                raise _RejectError(ReasonCode.TOO_MANY_FRAMES)
            try:
                im.seek(0)
                if im.format in ("JPEG", "MPO"):
                    # Shrink on load: libjpeg decodes at 1/2, 1/4 or 1/8 scale when the result
                    # still covers the output size; the area filter does the rest.
                    im.draft(im.mode, _fit(width, height, policy.target_max_side))
                im.load()
            except _DECODE_ERRORS as exc:
                raise _RejectError(self._decode_failure(exc)) from None
            self.mode = im.mode
            self.orientation = self._orientation(im)
            turned = self.orientation in (5, 6, 7, 8)
            self.oriented_size = (height, width) if turned else (width, height)
            try:
                return self._normalize(im)
            except (ValueError, OSError) as exc:
                # A mode Pillow decodes but cannot convert to RGB (rare exotic TIFFs).
                self.notes.append(f"cannot convert mode {im.mode}: {exc}")
                raise _RejectError(ReasonCode.UNSUPPORTED_FORMAT) from None
            except MemoryError:
                self.notes.append("ran out of memory while normalizing")
                raise _RejectError(ReasonCode.DECOMPRESSION_BOMB) from None

    def _open(self) -> ImageFile:
        """Identify the content (header only) or raise the byte-stage reason."""
        try:
            im = PILImage.open(io.BytesIO(self.data), formats=self.decoders)
        except UnidentifiedImageError:
            pass  # no allow-listed decoder took it: find out what it is below
        except (MemoryError, PILImage.DecompressionBombError):
            raise _RejectError(ReasonCode.DECOMPRESSION_BOMB) from None
        except _DECODE_ERRORS as exc:
            raise _RejectError(self._decode_failure(exc)) from None
        else:
            if im.format in self.policy.allowed_formats:
                return im
            # e.g. JPEG allowed but the file is a multi-picture MPO and MPO is not
            self.format = im.format
            im.close()
            raise _RejectError(ReasonCode.UNSUPPORTED_FORMAT)

        signature = _signature(self.data)
        if signature is not None:
            self.format = signature
            if signature in self.policy.allowed_formats or (
                signature == "JPEG" and "MPO" in self.policy.allowed_formats
            ):
                # Looks like an allow-listed format, but its header does not parse.
                raise _RejectError(self._broken(signature, truncated_by_decoder=False))
            raise _RejectError(ReasonCode.UNSUPPORTED_FORMAT)
        try:
            # Any decoder at all? Header only: pixels are never read, so no EPS/Ghostscript.
            with PILImage.open(io.BytesIO(self.data)) as other:
                self.format = other.format
                self.width, self.height = other.size
                self.mode = other.mode
        except PILImage.DecompressionBombError:
            pass  # some decoder recognised it (and found it huge): still a format we refuse
        except _DECODE_ERRORS:
            raise _RejectError(ReasonCode.NOT_AN_IMAGE) from None
        raise _RejectError(ReasonCode.UNSUPPORTED_FORMAT)

    def _decode_failure(self, exc: BaseException) -> ReasonCode:
        if isinstance(exc, MemoryError | PILImage.DecompressionBombError):
            return ReasonCode.DECOMPRESSION_BOMB
        message = str(exc)
        if "Decompressed data too large" in message:  # PNG text/ICC chunk zip bomb
            return ReasonCode.DECOMPRESSION_BOMB
        says_truncated = isinstance(exc, EOFError) or "truncat" in message.lower()
        fmt = self.format or _signature(self.data)
        return self._broken(fmt, truncated_by_decoder=says_truncated)

    def _broken(self, fmt: str | None, *, truncated_by_decoder: bool) -> ReasonCode:
        """TRUNCATED when the container shows the file ends early (or, for containers that
        cannot tell, when the decoder says so); CORRUPT otherwise."""
        ends_early = _ends_early(self.data, fmt)
        if ends_early is None:
            ends_early = truncated_by_decoder
        return ReasonCode.TRUNCATED if ends_early else ReasonCode.CORRUPT

    # -- normalize -------------------------------------------------------------------------

    def _orientation(self, im: ImageFile) -> int:
        try:
            value = im.getexif().get(_ORIENTATION_TAG, 1)
        except _DECODE_ERRORS as exc:
            self.notes.append(f"unreadable EXIF ignored: {exc}")
            return 1
        if isinstance(value, int) and 1 <= value <= 8:
            return value
        self.notes.append(f"invalid EXIF orientation {value!r} ignored")
        return 1

    def _normalize(self, im: PILImage.Image) -> tuple[Image, Mask | None]:
        icc = im.info.get("icc_profile")
        self.had_alpha = im.has_transparency_data
        colour, alpha = self._to_8bit_colour_and_alpha(im)
        rgb = self._to_srgb(colour, icc if isinstance(icc, bytes) and icc else None)
        method = _TRANSPOSE.get(self.orientation)
        if method is not None:
            rgb = rgb.transpose(method)
            alpha = alpha.transpose(method) if alpha is not None else None
            self.converted.append("orientation")
        array = np.array(rgb, dtype=np.uint8, copy=True)
        mask = np.array(alpha, dtype=np.uint8, copy=True) if alpha is not None else None
        if mask is not None and self.policy.alpha == "flatten":
            array = _flatten(array, mask, self.policy.background)
            mask = None
            self.converted.append("alpha flattened")
        array, mask = self._resize(
            array, mask, _fit(*self.oriented_size, self.policy.target_max_side)
        )
        self.output_height, self.output_width = array.shape[:2]
        return np.ascontiguousarray(array), (
            np.ascontiguousarray(mask) if mask is not None else None
        )

    def _to_8bit_colour_and_alpha(
        self, im: PILImage.Image
    ) -> tuple[PILImage.Image, PILImage.Image | None]:
        """Return an 8-bit ``L``, ``RGB`` or ``CMYK`` image and an ``L`` alpha (or None)."""
        mode = im.mode
        if mode in _SIXTEEN_BIT_MODES or mode in ("I", "F"):
            values = np.asarray(im)
            grey, note = _scale_to_8bit(values, mode)
            self.converted.append(note)
            alpha = None
            transparent = im.info.get("transparency")
            if isinstance(transparent, int) and not isinstance(transparent, bool):
                alpha = PILImage.fromarray(
                    np.where(values == transparent, np.uint8(0), np.uint8(255)).astype(np.uint8)
                )
            return PILImage.fromarray(grey), alpha
        if self.bits == 16:
            self.converted.append("16bit->8bit")  # Pillow already reduced RGB;16 and friends
        if mode == "1":
            self.converted.append("bilevel->gray")
            return im.convert("L"), None
        if mode in ("P", "PA"):
            self.converted.append("palette->rgb")
            if not self.had_alpha:
                return im.convert("RGB"), None
            rgba = im.convert("RGBA")
            return rgba.convert("RGB"), rgba.getchannel("A")
        if mode in ("RGBA", "RGBa", "LA", "La"):
            if mode == "RGBa":
                im = im.convert("RGBA")
            elif mode == "La":
                im = im.convert("RGBA").convert("LA")
            colour = im.convert("RGB" if im.mode == "RGBA" else "L")
            return colour, im.getchannel("A")
        if mode in ("L", "RGB", "CMYK"):
            if self.had_alpha:  # a transparent colour (PNG tRNS) on L or RGB
                alpha = im.convert("RGBA").getchannel("A")
                colour = im.copy()
                colour.info.pop("transparency", None)
                return colour, alpha
            return im, None
        if mode == "RGBX":
            return im.convert("RGB"), None
        self.converted.append(f"{mode.lower()}->rgb")  # YCbCr, LAB, HSV
        return im.convert("RGB"), None

    def _to_srgb(self, colour: PILImage.Image, icc: bytes | None) -> PILImage.Image:
        """Return ``colour`` (L, RGB or CMYK) as sRGB RGB, through its ICC profile if usable."""
        managed = self._apply_icc(colour, icc) if icc is not None else None
        if colour.mode == "CMYK":
            self.converted.append("cmyk->rgb")
        elif colour.mode == "L":
            self.converted.append("gray->rgb")
        if managed is not None:
            self.converted.append("icc->sRGB")
            return managed
        return colour.convert("RGB") if colour.mode != "RGB" else colour

    def _apply_icc(self, colour: PILImage.Image, icc: bytes) -> PILImage.Image | None:
        """``colour`` converted from its embedded profile to sRGB; None (with a note) when the
        profile is unusable, does not fit the mode, or is already sRGB."""
        try:
            profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            description = ImageCms.getProfileDescription(profile).strip()
            space = str(profile.profile.xcolor_space).strip()
        except _ICC_ERRORS as exc:
            self.notes.append(f"unreadable ICC profile ignored: {exc}")
            return None
        self.icc_profile = description or None
        if space != _ICC_SPACE_FOR_MODE.get(colour.mode):
            self.notes.append(
                f"ICC profile colour space {space!r} does not match mode {colour.mode}; ignored"
            )
            return None
        if colour.mode == "RGB" and description.startswith("sRGB"):
            return None  # already sRGB: leave the pixels untouched
        try:
            return ImageCms.profileToProfile(
                colour,
                profile,
                _SRGB,
                renderingIntent=ImageCms.Intent.PERCEPTUAL,
                outputMode="RGB",
            )
        except _ICC_ERRORS as exc:
            self.notes.append(f"ICC conversion failed, profile ignored: {exc}")
            return None

    def _resize(
        self, rgb: Image, alpha: Mask | None, size: tuple[int, int]
    ) -> tuple[Image, Mask | None]:
        """Shrink to ``size`` (width, height) with the area filter; never enlarge the band."""
        self.resized = size != self.oriented_size
        if (rgb.shape[1], rgb.shape[0]) == size:
            return rgb, alpha
        if alpha is None:
            return _as_uint8(cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)), None
        # Resize premultiplied colour so hidden colours do not bleed into visible edges.
        # rgb * alpha and alpha * 255 both fit uint16 exactly (<= 65025).
        weight = alpha.astype(np.uint16) * np.uint16(255)
        premultiplied = rgb.astype(np.uint16) * alpha.astype(np.uint16)[:, :, None]
        small = cv2.resize(premultiplied, size, interpolation=cv2.INTER_AREA).astype(np.float64)
        small_weight = cv2.resize(weight, size, interpolation=cv2.INTER_AREA).astype(np.float64)
        safe = np.maximum(small_weight, 1.0)[:, :, None]
        colour = np.where(small_weight[:, :, None] > 0, small * 255.0 / safe, 0.0)
        out = np.clip(np.rint(colour), 0, 255).astype(np.uint8)
        small_alpha = np.clip(np.rint(small_weight / 255.0), 0, 255).astype(np.uint8)
        return out, small_alpha

    # -- validate --------------------------------------------------------------------------

    def _validate(self, rgb: Image, alpha: Mask | None) -> tuple[ReasonCode, ...]:
        policy = self.policy
        width, height = self.oriented_size
        reasons: list[ReasonCode] = []
        if min(width, height) < policy.min_side:
            reasons.append(ReasonCode.TOO_SMALL)
        if max(width, height) / max(1, min(width, height)) > policy.max_aspect_ratio:
            reasons.append(ReasonCode.EXTREME_ASPECT_RATIO)
        visible = _flatten(rgb, alpha, policy.background) if alpha is not None else rgb
        grey = _as_uint8(cv2.cvtColor(visible, cv2.COLOR_RGB2GRAY))
        self.std = float(grey.std(dtype=np.float64))
        self.sharpness = edge_sharpness(grey)
        blank = self.std < policy.blank_std
        if blank:
            reasons.append(ReasonCode.BLANK_IMAGE)
        elif self.sharpness is not None and self.sharpness < policy.blur_threshold:
            reasons.append(ReasonCode.TOO_BLURRY)
        return tuple(reasons)


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def _decoders_for(allowed: frozenset[str]) -> tuple[str, ...]:
    """The Pillow decoders to try for an allow-list (MPO comes out of the JPEG decoder)."""
    PILImage.init()  # register every plugin once, so the check below sees them all
    wanted = {_DECODED_BY.get(name, name) for name in allowed}
    unknown = sorted(name for name in allowed if _DECODED_BY.get(name, name) not in PILImage.OPEN)
    if unknown:
        raise ValueError(
            f"allowed_formats: Pillow cannot decode {unknown}; decodable formats are "
            f"{', '.join(sorted(set(PILImage.OPEN) | set(_DECODED_BY)))}."
        )
    return tuple(sorted(wanted))


def _count_frames(im: ImageFile, data: bytes, limit: int) -> int:
    """Frames in ``im``, counted from headers only and at most ``limit + 1``.

    Pillow's ``n_frames`` walks every GIF frame and TIFF page, which a hostile file can make
    millions; here the walk stops one past the limit.
    """
    if im.format == "GIF":
        return _gif_frame_count(data, stop=limit + 1)
    if im.format == "TIFF":
        count = 1
        try:
            while count <= limit:
                im.seek(count)  # one IFD further; page headers only, no pixel data
                count += 1
        except _DECODE_ERRORS:  # EOFError: no more pages; anything else: page 0 decides
            pass
        finally:
            im.seek(0)
        return count
    return int(getattr(im, "n_frames", 1))


def _gif_frame_count(data: bytes, *, stop: int) -> int:
    """Count image descriptors in a GIF by skipping its blocks, up to ``stop``. Malformed
    structure just ends the count: decoding frame 0 judges the file."""
    end = len(data)
    if end < 13:
        return 0
    flags = data[10]
    pos = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)  # global colour table
    count = 0
    while pos < end and count < stop:
        block = data[pos]
        if block == 0x21:  # extension: introducer, label, sub-blocks
            pos = _skip_sub_blocks(data, pos + 2)
        elif block == 0x2C:  # image: descriptor, local colour table, LZW size, sub-blocks
            if pos + 10 > end:
                break
            packed = data[pos + 9]
            pos += 10 + (3 << ((packed & 7) + 1) if packed & 0x80 else 0)
            pos = _skip_sub_blocks(data, pos + 1)
            count += 1
        else:  # 0x3B trailer, or garbage
            break
    return count


def _skip_sub_blocks(data: bytes, pos: int) -> int:
    end = len(data)
    while pos < end:
        size = data[pos]
        pos += 1 + size
        if size == 0:
            break
    return pos


def _signature(data: bytes) -> str | None:
    """The allow-list format a file claims by its magic bytes (used only to classify files
    whose header Pillow cannot parse)."""
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "GIF"
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return "WEBP"
    if data.startswith((b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")):
        return "TIFF"
    if (
        data.startswith(b"BM")
        and len(data) >= 18
        and struct.unpack_from("<I", data, 14)[0] in (12, 16, 40, 52, 56, 64, 108, 124)
    ):
        return "BMP"
    return None


def _ends_early(data: bytes, fmt: str | None) -> bool | None:
    """Whether the container shows the file was cut off; None when it cannot tell."""
    if fmt in ("JPEG", "MPO"):
        last_scan = data.rfind(b"\xff\xda")
        return data.find(b"\xff\xd9", max(last_scan, 0)) < 0
    if fmt == "PNG":
        return data.rfind(b"IEND") < 0
    if fmt == "GIF":
        return not data.rstrip(b"\x00").endswith(b";")
    if fmt == "WEBP" and len(data) >= 8:
        return bool(struct.unpack_from("<I", data, 4)[0] + 8 > len(data))
    if fmt == "BMP" and len(data) >= 6:
        return bool(struct.unpack_from("<I", data, 2)[0] > len(data))
    return None


def _bits(im: PILImage.Image) -> int:
    """Bits per channel of the stored data, from the mode and the decoder's raw mode."""
    if im.mode in _MODE_BITS:
        return _MODE_BITS[im.mode]
    tile = getattr(im, "tile", None)
    if tile:
        args = tile[0].args
        raw = args if isinstance(args, str) else args[0] if isinstance(args, tuple) and args else ""
        if isinstance(raw, str) and ";" in raw:
            base, _, suffix = raw.partition(";")
            digits = "".join(ch for ch in suffix if ch.isdigit())
            if digits == "16" and base in ("RGB", "RGBA", "RGBX", "LA", "CMYK"):
                return 16
            if digits in ("1", "2", "4") and base in ("P", "L", "1"):
                return int(digits)
    return 8


def _dpi(value: object) -> tuple[float, float] | None:
    if not isinstance(value, tuple) or len(value) != 2:
        return None
    try:
        x, y = float(value[0]), float(value[1])
    except (TypeError, ValueError, ZeroDivisionError, OverflowError):
        return None
    if not (math.isfinite(x) and math.isfinite(y) and x > 0 and y > 0):
        return None
    return (x, y)


def _scale_to_8bit(values: npt.NDArray[np.generic], mode: str) -> tuple[Image, str]:
    """Scale 16-bit, 32-bit integer or float grey to uint8 (65535 -> 255, 32768 -> 128)."""
    if mode == "F":
        data = np.nan_to_num(values.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        if data.size and float(data.max()) <= 1.0:
            data = data * 255.0
        return np.clip(np.rint(data), 0, 255).astype(np.uint8), "float->8bit"
    wide = np.clip(values.astype(np.int64), 0, 65535)
    return ((wide * 255 + 32767) // 65535).astype(np.uint8), "16bit->8bit"


def _flatten(rgb: Image, alpha: Mask, background: tuple[int, int, int]) -> Image:
    """Composite ``rgb`` over ``background`` with ``alpha`` (integer, exact, deterministic).
    uint16 holds every intermediate: 255 * 255 + 127 < 65536."""
    a = alpha.astype(np.uint16)[:, :, None]
    bg = np.asarray(background, dtype=np.uint16)[None, None, :]
    out = (rgb.astype(np.uint16) * a + bg * (255 - a) + 127) // 255
    return out.astype(np.uint8)


def _fit(width: int, height: int, target: int) -> tuple[int, int]:
    """(width, height) scaled so the long side is at most ``target``; never enlarged."""
    long_side = max(width, height)
    if long_side <= target:
        return (width, height)
    scale = target / long_side
    return (max(1, round(width * scale)), max(1, round(height * scale)))


def edge_sharpness(grey: npt.NDArray[np.uint8]) -> float | None:
    """Edge sharpness of a grey image, ``1 / sigma`` in 1/px at the 512-px scale.

    ``sigma`` is the Gaussian blur of the sharper quarter of the image's edges, measured on a
    copy shrunk (area filter) so its long side is at most 512 px; contrast does not matter.
    Focused photos measure about 0.7-2, a photo blurred by sigma 8 at that scale about 0.15.
    Returns None when there are too few edges to measure (flat or nearly flat images).
    """
    if grey.ndim != 2 or grey.size == 0:
        raise ValueError(f"edge_sharpness: expected a 2-D grey image, got shape {grey.shape}.")
    height, width = grey.shape
    small: npt.NDArray[np.uint8] = grey
    if max(height, width) > _BLUR_SCALE:
        scale = _BLUR_SCALE / max(height, width)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        small = _as_uint8(cv2.resize(grey, size, interpolation=cv2.INTER_AREA))
    values = small.astype(np.float32)
    gx, gy = _gradients(values)
    magnitude = np.hypot(gx, gy)
    blurred = np.asarray(
        cv2.GaussianBlur(values, (0, 0), _BLUR_PROBE_SIGMA, borderType=cv2.BORDER_REFLECT),
        dtype=np.float32,
    )
    bx, by = _gradients(blurred)
    blurred_magnitude = np.hypot(bx, by)
    strongest = float(np.percentile(blurred_magnitude, 99.9))
    floor = max(_EDGE_FLOOR, _EDGE_FRACTION * strongest)
    edges = _edge_maxima(blurred_magnitude, bx, by) & (blurred_magnitude >= floor)
    if int(edges.sum()) < _MIN_EDGE_PIXELS:
        return None
    ratio = magnitude[edges] / blurred_magnitude[edges]
    r = float(np.percentile(ratio, _EDGE_PERCENTILE))
    return math.sqrt(max(r * r - 1.0, 0.0)) / _BLUR_PROBE_SIGMA


def _as_uint8(array: object) -> Image:
    """OpenCV's results are untyped; this is where they become uint8 arrays again."""
    return np.asarray(array, dtype=np.uint8)


def _gradients(values: _FloatArray) -> tuple[_FloatArray, _FloatArray]:
    """Sobel derivatives in grey levels per pixel."""
    gx = cv2.Sobel(values, cv2.CV_32F, 1, 0, ksize=3, borderType=cv2.BORDER_REFLECT)
    gy = cv2.Sobel(values, cv2.CV_32F, 0, 1, ksize=3, borderType=cv2.BORDER_REFLECT)
    return np.asarray(gx, dtype=np.float32) / 8.0, np.asarray(gy, dtype=np.float32) / 8.0


def _edge_maxima(magnitude: _FloatArray, gx: _FloatArray, gy: _FloatArray) -> _BoolArray:
    """Non-maximum suppression along the gradient direction (4 direction bins)."""
    height, width = magnitude.shape
    padded = np.pad(magnitude, 1, mode="edge")

    def shifted(dy: int, dx: int) -> _FloatArray:
        return padded[1 + dy : 1 + dy + height, 1 + dx : 1 + dx + width]

    direction = (np.rint(np.arctan2(gy, gx) / (np.pi / 4)) % 4).astype(np.intp)
    ahead = np.choose(direction, [shifted(0, 1), shifted(1, 1), shifted(1, 0), shifted(1, -1)])
    behind = np.choose(direction, [shifted(0, -1), shifted(-1, -1), shifted(-1, 0), shifted(-1, 1)])
    return (magnitude >= ahead) & (magnitude > behind)
