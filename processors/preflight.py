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

Modules
-------
:mod:`processors.preflight_policy` holds the policy and the report,
:mod:`processors.preflight_formats` what a container says before decoding,
:mod:`processors.preflight_run` the ladder for one input and
:mod:`processors.preflight_sharpness` the blur measure (:func:`edge_sharpness`: ``1 / sigma``
of the sharper edges' Gaussian blur, at a 512-px scale). This module re-exports their public
names.

Warnings
--------
Pillow reports some oddities as warnings (a bomb-sized header, corrupt EXIF). Each image is
processed inside ``warnings.catch_warnings(record=True)`` so results never depend on the
process's warning filters; what was caught is listed in ``PreflightReport.warnings``.
``catch_warnings`` swaps process-wide state on Python < 3.14: call a :class:`Preflight` from one
thread at a time (or from worker processes).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import replace

from processors.preflight_formats import decoders_for
from processors.preflight_policy import (
    DEFAULT_ALLOWED_FORMATS,
    PreflightPolicy,
    PreflightReport,
    PreflightResult,
)
from processors.preflight_run import PreflightRun
from processors.preflight_sharpness import edge_sharpness

__all__ = [
    "DEFAULT_ALLOWED_FORMATS",
    "Preflight",
    "PreflightPolicy",
    "PreflightReport",
    "PreflightResult",
    "edge_sharpness",
]


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
        self._decoders = decoders_for(self.policy.allowed_formats)

    def __repr__(self) -> str:
        return f"Preflight(version={self.version!r}, policy={self.policy!r})"

    def __call__(self, batch: Sequence[bytes]) -> list[PreflightResult]:
        items = _check_batch(batch)
        results: list[PreflightResult] = []
        for data in items:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                result = PreflightRun(data, self.policy, self._decoders).result()
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
