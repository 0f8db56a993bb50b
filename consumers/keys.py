"""The object-key layout of every stage's outputs: ``<prefix>/<image id>/<name>``.

Keys are deterministic, so a replayed record rewrites identical objects. The names each stage
writes are listed here, once.
"""

from __future__ import annotations

from dataclasses import dataclass

from consumers.settings import Settings
from schemas.events import ImageRef

__all__ = [
    "ALPHA",
    "FINAL",
    "INPAINT_IMAGE",
    "INPAINT_MASK",
    "PREFLIGHT_IMAGE",
    "TEXT_MASK",
    "UPSCALE_IMAGE",
    "ObjectKeys",
]

PREFLIGHT_IMAGE = "preflight.png"
"""The normalized image (preflight)."""
ALPHA = "alpha.png"
"""The kept alpha channel (preflight)."""
TEXT_MASK = "text-mask.png"
"""The text detector's mask (route)."""
INPAINT_IMAGE = "inpaint.png"
"""The edited image (inpaint)."""
INPAINT_MASK = "inpaint-mask.png"
"""The mask that was filled (inpaint)."""
UPSCALE_IMAGE = "upscale.png"
"""The upscaled image (upscale)."""
FINAL = "final.png"
"""The result (finalize)."""


@dataclass(frozen=True)
class ObjectKeys:
    """Where the stages store an image's objects."""

    bucket: str
    """The output bucket."""
    prefix: str
    """The key prefix, without leading or trailing ``/``."""

    @classmethod
    def from_settings(cls, settings: Settings) -> ObjectKeys:
        """The layout ``settings`` ask for (``output_bucket``, ``output_prefix``)."""
        return cls(settings.output_bucket, settings.output_prefix.strip("/"))

    def ref(self, image_id: str, name: str) -> ImageRef:
        """The object ``name`` (one of this module's names) of image ``image_id``."""
        return ImageRef(bucket=self.bucket, key=f"{self.prefix}/{image_id}/{name}")
