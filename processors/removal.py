"""Text removal: trim the detector's mask, fill it, un-blend overlays, fill the ink cores again.

One assembly of :mod:`processors.inpaint` and :mod:`processors.unblend`, shared by the
pipeline's inpaint stage, ``pixelgate remove-text`` and ``bench/quality.py``:

1. :meth:`TextRemoval.regions`: the detector's mask is not grown again (it already covers the
   outline and antialiasing), only trimmed of the clean pixels on its edge; a caller's object
   mask is grown (:func:`processors.inpaint.edit_region`).
2. The inpainter (``dilate=0``: the regions are final) fills their union.
3. Semi-transparent overlays in the text part are replaced by the background solved from under
   them, the antialiased edges of single-colour ink un-mixed, and the parts so solved filled
   again by the same inpainter with the solved pixels known (:class:`processors.unblend.Unblender`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from processors.inpaint import InpaintConfig, Inpainter, edit_region
from processors.tensors import Image, Mask
from processors.unblend import Unblender

__all__ = ["Regions", "TextRemoval"]


@dataclass(frozen=True)
class Regions:
    """The pixels one image's removal works on."""

    fill: Mask
    """HW uint8, 255 = fill: the trimmed text mask and the grown object mask, merged."""
    overlays: Mask
    """The text part of ``fill`` outside the caller's objects: where the fill may be replaced
    by the background un-blended from under a semi-transparent overlay."""


class TextRemoval:
    """``removal(images, fills, overlays=None) -> images``: fill, then un-blend and refill.

    ``inpainter`` must not grow the masks (``dilate=0``): :meth:`regions` already made them
    what is to be filled. With ``unblend=False`` the fill is the result. ``version`` names both
    steps (it goes into the event trail's ``models``).
    """

    def __init__(self, inpainter: Inpainter, *, unblend: bool = True) -> None:
        if inpainter.config.dilate != 0:
            raise ValueError(
                f"TextRemoval: the inpainter grows masks by {inpainter.config.dilate} px; build"
                " it with InpaintConfig(dilate=0) (or use TextRemoval.from_config)."
            )
        self.inpainter = inpainter
        self.unblender = Unblender(refill=inpainter) if unblend else None
        self.version = inpainter.version + (
            f"+{self.unblender.version}" if self.unblender is not None else ""
        )

    @classmethod
    def from_config(cls, config: InpaintConfig, *, unblend: bool = True) -> TextRemoval:
        """A removal filling with an inpainter built from ``config`` (its ``dilate`` set to 0)."""
        return cls(Inpainter(replace(config, dilate=0)), unblend=unblend)

    @staticmethod
    def regions(image: Image, text: Mask | None, objects: Mask | None = None) -> Regions:
        """What to fill in ``image``: ``text`` (a detector's mask) trimmed, ``objects`` grown."""
        shape = (image.shape[0], image.shape[1])
        text_region = edit_region(shape, text, image=image)
        object_region = edit_region(shape, objects=objects)
        return Regions(text_region | object_region, text_region & ~object_region)

    def __call__(
        self,
        images: Sequence[Image],
        fills: Sequence[Mask],
        overlays: Sequence[Mask] | None = None,
    ) -> list[Image]:
        """Fill ``fills`` in ``images``; then un-blend within ``overlays`` (default: ``fills``)."""
        filled = self.inpainter(images, fills)
        if self.unblender is None:
            return filled
        return self.unblender(images, fills if overlays is None else overlays, filled)
