"""One input down preflight's decision ladder (:mod:`processors.preflight` draws it): the byte
stage (size, format, header, frames, decode), normalization (8 bits, sRGB, orientation, alpha,
resize) and the pixel checks, collecting the report's facts as it goes."""

from __future__ import annotations

import io
from typing import Final

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image as PILImage
from PIL import ImageCms, UnidentifiedImageError
from PIL.ImageFile import ImageFile

from processors.preflight_formats import (
    DECODE_ERRORS,
    SIXTEEN_BIT_MODES,
    channel_bits,
    claimed_format,
    count_frames,
    cut_short,
    parse_dpi,
)
from processors.preflight_policy import PreflightPolicy, PreflightReport, PreflightResult
from processors.preflight_sharpness import edge_sharpness
from processors.tensors import Image, Mask
from schemas.reasons import ReasonCode

__all__ = ["PreflightRun", "RejectError"]

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
_SRGB: Final = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
_ICC_SPACE_FOR_MODE: Final = {"RGB": "RGB", "L": "GRAY", "CMYK": "CMYK"}
_ICC_ERRORS: Final = (ImageCms.PyCMSError, OSError, ValueError, TypeError)


class RejectError(Exception):
    """One byte-stage reason; stops the ladder."""

    def __init__(self, reason: ReasonCode) -> None:
        super().__init__(reason.value)
        self.reason = reason


class PreflightRun:
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
        except RejectError as reject:
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
        """Rungs 1-7: the byte stage, then normalization; a failing rung raises its reason."""
        if not self.data:
            raise RejectError(ReasonCode.EMPTY_FILE)
        if len(self.data) > self.policy.max_file_bytes:
            raise RejectError(ReasonCode.FILE_TOO_LARGE)
        with self._open() as im:
            size = self._read_header(im)
            self._count_frames(im)
            self._decode(im, size)
            return self._normalize_or_reject(im)

    def _read_header(self, im: ImageFile) -> tuple[int, int]:
        """Note the header's facts; refuse a bomb by its header. Returns (width, height)."""
        policy = self.policy
        self.format = im.format
        self.width, self.height = im.size
        self.mode = im.mode
        self.bits = channel_bits(im)
        self.dpi = parse_dpi(im.info.get("dpi"))
        width, height = im.size
        if width > policy.max_side or height > policy.max_side:
            raise RejectError(ReasonCode.DECOMPRESSION_BOMB)
        if width * height > policy.max_pixels:
            raise RejectError(ReasonCode.DECOMPRESSION_BOMB)
        return width, height

    def _count_frames(self, im: ImageFile) -> None:
        """Count the frames (from headers, up to one past the limit); refuse too many."""
        try:
            self.frames = count_frames(im, self.data, self.policy.max_frames)
        except DECODE_ERRORS as exc:
            raise RejectError(self._decode_failure(exc)) from None
        if self.frames > self.policy.max_frames:
            raise RejectError(ReasonCode.TOO_MANY_FRAMES)

    def _decode(self, im: ImageFile, size: tuple[int, int]) -> None:
        """Decode frame 0 of the image whose header gave ``size``, and read its orientation."""
        width, height = size
        try:
            im.seek(0)
            if im.format in ("JPEG", "MPO"):
                # Shrink on load: libjpeg decodes at 1/2, 1/4 or 1/8 scale when the result
                # still covers the output size; the area filter does the rest.
                im.draft(im.mode, _fit(width, height, self.policy.target_max_side))
            im.load()
        except DECODE_ERRORS as exc:
            raise RejectError(self._decode_failure(exc)) from None
        self.mode = im.mode
        self.orientation = self._orientation(im)
        turned = self.orientation in (5, 6, 7, 8)
        self.oriented_size = (height, width) if turned else (width, height)

    def _normalize_or_reject(self, im: ImageFile) -> tuple[Image, Mask | None]:
        """:meth:`_normalize`, with a mode Pillow cannot convert refused as unsupported and
        running out of memory as a bomb."""
        try:
            return self._normalize(im)
        except (ValueError, OSError) as exc:
            # A mode Pillow decodes but cannot convert to RGB (rare exotic TIFFs).
            self.notes.append(f"cannot convert mode {im.mode}: {exc}")
            raise RejectError(ReasonCode.UNSUPPORTED_FORMAT) from None
        except MemoryError:
            self.notes.append("ran out of memory while normalizing")
            raise RejectError(ReasonCode.DECOMPRESSION_BOMB) from None

    def _open(self) -> ImageFile:
        """Identify the content (header only) or raise the byte-stage reason."""
        try:
            im = PILImage.open(io.BytesIO(self.data), formats=self.decoders)
        except UnidentifiedImageError:
            pass  # no allow-listed decoder took it: find out what it is below
        except (MemoryError, PILImage.DecompressionBombError):
            raise RejectError(ReasonCode.DECOMPRESSION_BOMB) from None
        except DECODE_ERRORS as exc:
            raise RejectError(self._decode_failure(exc)) from None
        else:
            if im.format in self.policy.allowed_formats:
                return im
            # e.g. JPEG allowed but the file is a multi-picture MPO and MPO is not
            self.format = im.format
            im.close()
            raise RejectError(ReasonCode.UNSUPPORTED_FORMAT)

        signature = claimed_format(self.data)
        if signature is not None:
            self.format = signature
            if signature in self.policy.allowed_formats or (
                signature == "JPEG" and "MPO" in self.policy.allowed_formats
            ):
                # Looks like an allow-listed format, but its header does not parse.
                raise RejectError(self._broken(signature, truncated_by_decoder=False))
            raise RejectError(ReasonCode.UNSUPPORTED_FORMAT)
        try:
            # Any decoder at all? Header only: pixels are never read, so no EPS/Ghostscript.
            with PILImage.open(io.BytesIO(self.data)) as other:
                self.format = other.format
                self.width, self.height = other.size
                self.mode = other.mode
        except PILImage.DecompressionBombError:
            pass  # some decoder recognised it (and found it huge): still a format we refuse
        except DECODE_ERRORS:
            raise RejectError(ReasonCode.NOT_AN_IMAGE) from None
        raise RejectError(ReasonCode.UNSUPPORTED_FORMAT)

    def _decode_failure(self, exc: BaseException) -> ReasonCode:
        if isinstance(exc, MemoryError | PILImage.DecompressionBombError):
            return ReasonCode.DECOMPRESSION_BOMB
        message = str(exc)
        if "Decompressed data too large" in message:  # PNG text/ICC chunk zip bomb
            return ReasonCode.DECOMPRESSION_BOMB
        says_truncated = isinstance(exc, EOFError) or "truncat" in message.lower()
        fmt = self.format or claimed_format(self.data)
        return self._broken(fmt, truncated_by_decoder=says_truncated)

    def _broken(self, fmt: str | None, *, truncated_by_decoder: bool) -> ReasonCode:
        """TRUNCATED when the container shows the file ends early (or, for containers that
        cannot tell, when the decoder says so); CORRUPT otherwise."""
        ends_early = cut_short(self.data, fmt)
        if ends_early is None:
            ends_early = truncated_by_decoder
        return ReasonCode.TRUNCATED if ends_early else ReasonCode.CORRUPT

    # -- normalize -------------------------------------------------------------------------

    def _orientation(self, im: ImageFile) -> int:
        try:
            value = im.getexif().get(_ORIENTATION_TAG, 1)
        except DECODE_ERRORS as exc:
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
        if mode in SIXTEEN_BIT_MODES or mode in ("I", "F"):
            return self._wide_grey_to_8bit(im)
        if self.bits == 16:
            self.converted.append("16bit->8bit")  # Pillow already reduced RGB;16 and friends
        converters = {
            "1": self._bilevel,
            "P": self._palette,
            "PA": self._palette,
            "RGBA": _split_alpha,
            "RGBa": _split_alpha,
            "LA": _split_alpha,
            "La": _split_alpha,
            "L": self._transparent_colour,
            "RGB": self._transparent_colour,
            "CMYK": self._transparent_colour,
        }
        convert = converters.get(mode)
        if convert is not None:
            return convert(im)
        if mode != "RGBX":
            self.converted.append(f"{mode.lower()}->rgb")  # YCbCr, LAB, HSV
        return im.convert("RGB"), None

    def _wide_grey_to_8bit(
        self, im: PILImage.Image
    ) -> tuple[PILImage.Image, PILImage.Image | None]:
        """16-bit, 32-bit integer or float grey scaled to 8 bits; a transparent grey value
        (PNG tRNS) becomes an alpha."""
        values = np.asarray(im)
        grey, note = _scale_to_8bit(values, im.mode)
        self.converted.append(note)
        alpha = None
        transparent = im.info.get("transparency")
        if isinstance(transparent, int) and not isinstance(transparent, bool):
            alpha = PILImage.fromarray(
                np.where(values == transparent, np.uint8(0), np.uint8(255)).astype(np.uint8)
            )
        return PILImage.fromarray(grey), alpha

    def _bilevel(self, im: PILImage.Image) -> tuple[PILImage.Image, PILImage.Image | None]:
        self.converted.append("bilevel->gray")
        return im.convert("L"), None

    def _palette(self, im: PILImage.Image) -> tuple[PILImage.Image, PILImage.Image | None]:
        self.converted.append("palette->rgb")
        if not self.had_alpha:
            return im.convert("RGB"), None
        rgba = im.convert("RGBA")
        return rgba.convert("RGB"), rgba.getchannel("A")

    def _transparent_colour(
        self, im: PILImage.Image
    ) -> tuple[PILImage.Image, PILImage.Image | None]:
        """``L``, ``RGB`` or ``CMYK`` as it is, with the alpha of a transparent colour (PNG
        tRNS) split off."""
        if not self.had_alpha:
            return im, None
        alpha = im.convert("RGBA").getchannel("A")
        colour = im.copy()
        colour.info.pop("transparency", None)
        return colour, alpha

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



def _as_uint8(array: object) -> Image:
    """OpenCV's results are untyped; this is where they become uint8 arrays again."""
    return np.asarray(array, dtype=np.uint8)


def _split_alpha(im: PILImage.Image) -> tuple[PILImage.Image, PILImage.Image | None]:
    """An image with an alpha channel (``RGBA``, ``RGBa``, ``LA``, ``La``) as its colour
    (``RGB`` or ``L``) and its alpha."""
    if im.mode == "RGBa":
        im = im.convert("RGBA")
    elif im.mode == "La":
        im = im.convert("RGBA").convert("LA")
    colour = im.convert("RGB" if im.mode == "RGBA" else "L")
    return colour, im.getchannel("A")
