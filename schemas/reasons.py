"""Reason codes: why an image was rejected, sent to review, or failed.

Codes are machine-readable and stable (downstream services switch on them); each carries one
human sentence a vendor can act on. ``ReasonCode.X.text`` gives the sentence.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["REASON_TEXT", "ReasonCode"]


class ReasonCode(StrEnum):
    """Every reason pixelgate can attach to a rejected, reviewed or failed image."""

    # --- preflight: the bytes ---
    EMPTY_FILE = "EMPTY_FILE"
    FILE_TOO_LARGE = "FILE_TOO_LARGE"
    UNSUPPORTED_FORMAT = "UNSUPPORTED_FORMAT"
    NOT_AN_IMAGE = "NOT_AN_IMAGE"
    TRUNCATED = "TRUNCATED"
    CORRUPT = "CORRUPT"
    DECOMPRESSION_BOMB = "DECOMPRESSION_BOMB"
    TOO_MANY_FRAMES = "TOO_MANY_FRAMES"
    # --- preflight: the pixels ---
    TOO_SMALL = "TOO_SMALL"
    EXTREME_ASPECT_RATIO = "EXTREME_ASPECT_RATIO"
    BLANK_IMAGE = "BLANK_IMAGE"
    TOO_BLURRY = "TOO_BLURRY"
    # --- gates and runtime ---
    PRESERVATION_FAILED = "PRESERVATION_FAILED"
    SEAM_VISIBLE = "SEAM_VISIBLE"
    UPSCALE_INCONSISTENT = "UPSCALE_INCONSISTENT"
    WORSE_THAN_INPUT = "WORSE_THAN_INPUT"
    TEXT_REMAINS = "TEXT_REMAINS"
    BREAKER_OPEN = "BREAKER_OPEN"
    SOURCE_MISSING = "SOURCE_MISSING"
    INVALID_EVENT = "INVALID_EVENT"
    PROCESSING_FAILED = "PROCESSING_FAILED"
    RESOURCE_EXHAUSTED = "RESOURCE_EXHAUSTED"

    @property
    def text(self) -> str:
        """The human sentence for this code."""
        return REASON_TEXT[self]


REASON_TEXT: dict[ReasonCode, str] = {
    ReasonCode.EMPTY_FILE: "The file is empty (0 bytes). Please upload the image again.",
    ReasonCode.FILE_TOO_LARGE: (
        "The file is larger than the upload limit. Please export it at a smaller size or higher "
        "compression."
    ),
    ReasonCode.UNSUPPORTED_FORMAT: (
        "This image format is not accepted. Please upload a JPEG, PNG, WebP, TIFF, BMP or GIF."
    ),
    ReasonCode.NOT_AN_IMAGE: (
        "The file is not an image (it may be a document or another file type)."
    ),
    ReasonCode.TRUNCATED: (
        "The image file is cut off or incomplete; the upload was probably interrupted. Please "
        "upload it again."
    ),
    ReasonCode.CORRUPT: "The image file is damaged and cannot be read.",
    ReasonCode.DECOMPRESSION_BOMB: (
        "The image declares far more pixels than we accept; it looks like a decompression bomb "
        "or an extreme export setting."
    ),
    ReasonCode.TOO_MANY_FRAMES: "The file has too many frames; please upload a single still image.",
    ReasonCode.TOO_SMALL: (
        "The image is too small. Please upload a photo whose shorter side is at least the "
        "minimum size."
    ),
    ReasonCode.EXTREME_ASPECT_RATIO: (
        "The image is extremely wide or tall. Please crop it closer to the product."
    ),
    ReasonCode.BLANK_IMAGE: "The image is blank or nearly one flat colour; no product is visible.",
    ReasonCode.TOO_BLURRY: "The image is too blurry to show the product clearly.",
    ReasonCode.PRESERVATION_FAILED: (
        "The edit changed pixels outside the area it was asked to clean; a person will check it."
    ),
    ReasonCode.SEAM_VISIBLE: "The cleaned area leaves a visible seam; a person will check it.",
    ReasonCode.UPSCALE_INCONSISTENT: (
        "The enlarged image does not match the original closely enough; a person will check it."
    ),
    ReasonCode.WORSE_THAN_INPUT: "The edit would make the image worse; a person will check it.",
    ReasonCode.TEXT_REMAINS: "Text is still visible after cleaning; a person will check it.",
    ReasonCode.BREAKER_OPEN: (
        "Automatic editing is paused for this stage; a person will check the image."
    ),
    ReasonCode.SOURCE_MISSING: "The uploaded file could not be found in storage.",
    ReasonCode.INVALID_EVENT: "The upload event does not follow the documented contract.",
    ReasonCode.PROCESSING_FAILED: "Processing failed repeatedly; operators have been alerted.",
    ReasonCode.RESOURCE_EXHAUSTED: (
        "The image is too large to edit with the memory available; a person will check it."
    ),
}
