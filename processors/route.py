"""The routing policy: which editing stages an image needs, in which order, and why.

:func:`plan_route` is a pure function of what the caller asked for (:class:`Operations`), what the
text detector found and the image's size; it does no I/O. The editing stages run in the order of
:data:`EDIT_STAGES`; after the last one routed, an image goes to ``finalize``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from processors.upscale import plan_scale
from schemas.events import EDIT_STAGES, EditStage, NextStage, Operations, RouteDecision

__all__ = ["TextFound", "next_stage", "plan_route"]



class TextFound(Protocol):
    """What routing reads of a text detection (:class:`processors.text.TextResult`)."""

    @property
    def found(self) -> bool:
        """Whether any text region was accepted."""
        ...

    @property
    def boxes(self) -> Sequence[tuple[int, int, int, int]]:
        """``(x, y, w, h)`` boxes of the text regions."""
        ...

    @property
    def coverage(self) -> float:
        """Mask area over image area, in [0, 1]."""
        ...


def plan_route(
    operations: Operations, detection: TextFound | None, shape: tuple[int, int]
) -> RouteDecision:
    """The stages an image of ``shape`` (height, width) needs, each with its reason.

    ``detection`` is the text detector's result, or None when text removal is off. Text is
    removed when it was detected (unless the caller turned removal off); a caller's object mask
    always sends the image to ``inpaint``; the image is upscaled when its long side is shorter
    than the requested ``upscale_to``.
    """
    stages: list[EditStage] = []
    why: list[str] = []
    found = bool(detection is not None and detection.found)
    if operations.remove_text == "off":
        why.append("text removal off by request")
    elif detection is not None and detection.found:
        stages.append("inpaint")
        why.append(
            f"text detected: {len(detection.boxes)} line(s), "
            f"{detection.coverage:.2%} of the image"
        )
    else:
        why.append("no text detected")
    if operations.object_mask is not None:
        if "inpaint" not in stages:
            stages.append("inpaint")
        why.append("object mask supplied")
    height, width = shape
    scale = None
    target = operations.upscale_to
    if target is not None and target > max(height, width):
        scale = plan_scale(height, width, target)
        stages.append("upscale")
        why.append(f"long side {max(height, width)} px < requested {target} px")
    elif target is not None:
        why.append(f"already {max(height, width)} px >= requested {target} px")
    return RouteDecision(
        stages=stages,
        why=why,
        text_found=found,
        text_coverage=round(detection.coverage, 6) if detection is not None else 0.0,
        text_boxes=list(detection.boxes) if detection is not None else [],
        upscale_scale=scale,
        upscale_to=target if scale else None,
    )


def next_stage(stages: Sequence[str], after: str | None) -> NextStage:
    """The stage after ``after`` (None: the first) among the routed ``stages``, else finalize."""
    order = [s for s in EDIT_STAGES if s in stages]
    rest = order if after is None else order[order.index(after) + 1 :] if after in order else []
    return rest[0] if rest else "finalize"
