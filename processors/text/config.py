"""The text detector's knobs (:class:`TextDetectorConfig`) and the ranges each accepts.

The ranges are declared in one table (:data:`RANGES`) and checked by one helper
(:func:`processors.tensors.check_range`), whose error names the knob, the value it got and the
range it accepts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from processors.tensors import check_range

__all__ = ["MAX_REACH", "RANGES", "Bound", "TextDetectorConfig"]

MAX_REACH = 8
"""Most px the ink of a region is grown by: the quality benchmark counts a mask pixel within
8 px of the overlay as a hit, so growth beyond that only adds false-positive area."""

Bound = float | str | None
"""One end of a knob's range: a number, the name of another knob whose value is the bound, or
``None`` (unbounded)."""

RANGES: tuple[tuple[str, Bound, Bound, str], ...] = (
    ("threads", 0, None, "[]"),
    ("work_size", 64, None, "[]"),
    ("min_side", 32, "work_size", "[]"),
    ("binary_threshold", 0.0, 1.0, "()"),
    ("box_threshold", 0.0, 1.0, "()"),
    ("min_confidence", 0.0, 1.0, "()"),
    ("boost_min_confidence", 0.0, 1.0, "()"),
    ("unclip_ratio", 0.0, None, "()"),
    ("min_box_side", 1.0, None, "[]"),
    ("min_chars", 1, None, "[]"),
    ("boost_sigma", 0.0, None, "()"),
    ("boost_min_chars", 1, None, "[]"),
    ("min_ink_contrast", 0.0, "ink_contrast", "(]"),
    ("ink_contrast", "min_ink_contrast", 255.0, "[]"),
    ("texture_factor", 0.0, None, "[]"),
    ("min_ink_fraction", 0.0, 1.0, "[)"),
    ("dilation", 0, MAX_REACH, "[]"),
    ("segment_size", 64, None, "[]"),
    ("segment_threshold", 0.0, 1.0, "()"),
    ("segment_low_threshold", 0.0, 1.0, "()"),
    ("segment_min_score", 0.0, 1.0, "()"),
    ("segment_min_confidence", 0.0, 1.0, "()"),
    ("segment_confirmed_confidence", 0.0, 1.0, "()"),
    ("ink_reach", 0, 64, "[]"),
    ("ink_reach_threshold", 0.0, 1.0, "()"),
    ("segment_min_area", 1, None, "[]"),
    ("shadow_reach", 0.0, 1.0, "[]"),
    ("smooth_reach", 0, 64, "[]"),
    ("smooth_contrast", 0.0, 255.0, "(]"),
)
"""Each numeric knob's accepted range: ``(name, low, high, ends)``, where ``ends`` says which
ends are included, in interval notation (``"[]"``, ``"[)"``, ``"(]"`` or ``"()"``)."""


@dataclass(frozen=True, kw_only=True)
class TextDetectorConfig:
    """Knobs of the learned text detector. Probabilities are in [0, 1], contrasts in 0..255."""

    device: Literal["cpu", "cuda"] = "cpu"
    """Where onnxruntime runs: ``cuda`` uses the CUDA provider when available, else the CPU."""
    threads: int = 2
    """onnxruntime intra-op threads on the CPU (0 = onnxruntime's default, all cores)."""
    work_size: int = 1280
    """Long side, in px, that larger images are shrunk to for detection; the mask is mapped back
    to the input size. Bounds the cost (about 0.5 s per working megapixel on 2 CPU cores)."""
    min_side: int = 640
    """Short side, in px, that smaller images are enlarged to (without the long side passing
    ``work_size``): the detector finds small text better at this scale."""
    binary_threshold: float = 0.3
    """Probability above which a pixel belongs to a text region (DB ``thresh``)."""
    box_threshold: float = 0.5
    """Least mean probability inside a region for it to become a candidate box."""
    unclip_ratio: float = 1.6
    """DB unclip: a region is grown by its area * ratio / perimeter."""
    min_box_side: float = 3.0
    """Candidate boxes whose short side (in working px) is below this are dropped."""
    min_confidence: float = 0.7
    """Least mean recognizer confidence of the characters read in a box for it to be text."""
    min_chars: int = 2
    """Fewest characters the recognizer must read in a box for it to be text."""
    boost_side: int = 384
    """Short side, in px, of the second detection pass on a contrast-normalised copy of the
    image (finds faint semi-transparent watermarks); 0 = no second pass. Bounded by
    ``work_size`` on the long side."""
    boost_sigma: float = 8.0
    """Scale, in px of the second pass's working image, of the contrast normalisation (the
    Gaussian blur subtracted as background)."""
    boost_min_confidence: float = 0.9
    """Least mean recognizer confidence for a region of the second pass to be text (stricter
    than ``min_confidence``: normalised textures look inked)."""
    boost_min_chars: int = 4
    """Fewest characters the recognizer must read in a region of the second pass."""
    ink_contrast: float = 40.0
    """Upper clamp of the glyph threshold: pixels this far from the estimated background (max
    over RGB channels) are always ink."""
    min_ink_contrast: float = 12.0
    """Lower clamp of the glyph threshold (faint, semi-transparent text)."""
    min_ink_fraction: float = 0.04
    """When less than this fraction of a box is ink, its DB text region is masked instead."""
    texture_factor: float = 0.75
    """The glyph threshold is at least this times the background's texture level (90th
    percentile of its difference from a local median, around the box)."""
    label_tolerance: float = 14.0
    """Largest colour difference (max over RGB channels) within a promo label behind text: when
    the ring around a text box is this uniform and the patch of that colour is bounded close
    around the text, the patch is masked with it."""
    dilation: int = 3
    """Pixels (of the input image) the mask is grown by, to cover antialiasing."""
    shadow_reach: float = 0.15
    """Extra growth of the mask, as a fraction of the glyph height, to cover drop shadows and
    their blur (the total growth is capped at 8 px)."""
    segmenter: bool = True
    """Run the learned text segmenter (:mod:`processors.text_seg`) as a third pass: it finds
    the faint, rotated watermarks over busy photos that the DBNet does not see."""
    segmenter_weights: Path | None = None
    """Weights file for the segmenter (``None`` = the packaged ``text_seg.pt``)."""
    segment_size: int = 1280
    """Long side, in px, that larger images are shrunk to for the segmenter."""
    segment_threshold: float = 0.6
    """Probability above which a pixel is text for the segmenter."""
    segment_strict_thresholds: tuple[float, ...] = (0.8,)
    """Further thresholds at which the segmenter's groups and lines are judged again (letters
    that touch background edges at ``segment_threshold`` come apart from them); ``()`` = none."""
    segment_low_threshold: float = 0.6
    """Inside a segmented line accepted as text, pixels above this probability count too."""
    segment_min_area: int = 150
    """Fewest pixels (at the segmenter's working size) of a group of segmented glyphs for it to
    count; smaller groups are dropped."""
    segment_min_score: float = 0.75
    """Least mean probability over a group of segmented glyphs for it to count."""
    segment_min_confidence: float = 0.8
    """Least mean recognizer confidence of the characters read in a segmented group's shape
    for it to be text (the check that keeps textures out)."""
    ink_reach: int = 3
    """With the segmenter on: of the ink found in a detected box (pixels that differ from the
    background filled in around it), only the connected pieces that come within this many px
    of a pixel the segmenter gives at least ``ink_reach_threshold`` count, whole; 0 = no
    limit. Lines the segmenter barely sees (under half their ink within reach: a script or
    face it was not trained on) keep all their ink, and a promo label's patch is not
    limited."""
    ink_reach_threshold: float = 0.3
    """Segmenter probability that marks the text which ``ink_reach`` measures from."""
    segment_confirmed_confidence: float = 0.7
    """Least mean recognizer confidence for a segmented group or chain that continues a line
    the other passes already accepted (same direction, over its centre, reaching a line
    thickness beyond it): the recognizer read part of that line from the image itself, so the
    segmenter's drawing of the rest needs less. At ``segment_min_confidence`` or above: off."""
    rings: bool = True
    """With the segmenter on: look in the image itself, just before the start of each accepted
    line, for the "©" that starts most watermarks (a ring with a "c" inside,
    :mod:`processors.text_ring`), which the segmenter often does not draw."""
    smooth_reach: int = 8
    """Px around the mask in which, where the background is a smooth render (a flat or
    gradient backdrop), the overlay pixels it missed are added: those off the background's
    local plane by more than ``smooth_contrast`` (:mod:`processors.text_smooth`); 0 = off."""
    smooth_contrast: float = 3.0
    """Least difference (levels, largest channel) from the smooth background's plane of a
    pixel that ``smooth_reach`` adds."""

    def __post_init__(self) -> None:
        if self.device not in ("cpu", "cuda"):
            raise ValueError(
                f"TextDetectorConfig: device must be 'cpu' or 'cuda', got {self.device!r}."
            )
        if self.work_size % 32:
            raise ValueError(
                f"TextDetectorConfig: work_size must be a multiple of 32, got {self.work_size}."
            )
        if self.boost_side != 0:
            check_range("TextDetectorConfig: boost_side (0 = off)", self.boost_side, 32, None)
        for name, low, high, ends in RANGES:
            check_range(
                f"TextDetectorConfig: {name}",
                getattr(self, name),
                self._bound(low),
                self._bound(high),
                ends,
                bound_names=(
                    low if isinstance(low, str) else None,
                    high if isinstance(high, str) else None,
                ),
            )
        for threshold in self.segment_strict_thresholds:
            check_range(
                "TextDetectorConfig: each of segment_strict_thresholds", threshold, 0.0, 1.0, "()"
            )

    def _bound(self, bound: Bound) -> float | None:
        """A range's end: a number as is, a knob's name as that knob's value."""
        if isinstance(bound, str):
            value: float = getattr(self, bound)
            return value
        return bound
