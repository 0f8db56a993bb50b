"""Burned-in text detection with a pretrained detector (PP-OCRv4 DBNet), checked by its recognizer.

The weights ship inside the ``rapidocr-onnxruntime`` wheel (installed with ``--no-deps``; the
package itself is never imported, only its ONNX files are read). No downloads happen at run time.

Per call, for a batch of images:

1. **Working size.** Each image is resized so that its long side is at most ``work_size`` and
   its short side at least ``min_side`` (when the long side allows), then each side is rounded
   to a multiple of 32 (the network needs it). Images are resized, never padded or tiled: the
   network's response is global (squeeze-excitation blocks average over the whole image), so
   padding or tiling would change the scores. Images whose working size is equal run as one
   batch; the result of an image does not depend on the other images in the batch.
2. **Detection.** The DBNet probability map is thresholded at ``binary_threshold``; each
   connected region gives a minimum-area rotated box, kept when its mean probability reaches
   ``box_threshold``, then grown by the DB "unclip" distance (area * ``unclip_ratio`` /
   perimeter). This finds horizontal captions as well as rotated watermarks.
3. **Check.** Each box is cut out upright (rotated so that its long side is horizontal), scaled
   to height 48 and read by the PP-OCRv4 recognizer (CTC, greedy decoding). A box is text when
   at least ``min_chars`` characters are read with a mean confidence of at least
   ``min_confidence``. Textures, foliage, fabric and product edges that fire the detector read
   as nothing or as a low-confidence character or two.
4. **Second pass.** Faint overlays (grey at alpha 0.3 on a flat colour differs from it by ~10
   levels) get no response at all. The image is detected again at a short side of
   ``boost_side`` on a contrast-normalised copy (each channel minus its Gaussian blur, scaled by
   the inverse local RMS contrast, gain capped); its regions that the first pass's boxes do not
   already cover are checked like above but more strictly (``boost_min_confidence``,
   ``boost_min_chars``), since normalisation makes textures look inked.
5. **Mask.** Inside each accepted box (at the input resolution), the background is estimated by
   filling the box from a ring around it (OpenCV Telea); glyph pixels are those that differ from
   it by more than an adaptive threshold (Otsu, clamped to ``[min_ink_contrast,
   ink_contrast]`` and raised on textured backgrounds), in either polarity, so outlines and
   shadows are included; ink must also stand out from a local median (which follows background
   edges). When too little ink is found on a quiet background (faint semi-transparent
   watermarks), the DB text region of the box is used instead. With the segmenter (step 6),
   only the connected pieces of ink that come within ``ink_reach`` px of what it sees as text
   are kept, whole (a light, a tower's edge or a shadow in the box is not); a line it barely
   sees keeps all its ink. The ink is grown by
   ``dilation`` px plus a share of the glyph height for drop shadows (at most 8 px). Text on a
   bounded patch of one colour (a promo label) gets the patch masked too: its edge is where
   the colour departs from the label's by more than the label's own spread (a dark label on a
   dark coat), and a pill's round ends come with it.

6. **Segmenter pass.** Faint watermarks over *busy* photos get no DBNet response even on the
   normalised copy. A small network trained by this repo (:mod:`processors.text_seg`,
   ``bench/train_text_seg.py``) marks, per pixel, what an overlay changed; its regions are
   accepted only when their *shape* reads as text: each group of segmented glyphs (glyphs
   within a few px of each other, and separately chains of similar-sized glyphs in a line) is
   cut out upright from the probability map drawn as ink on white and read by the same
   recognizer (at least ``min_chars`` characters at ``segment_min_confidence``), at
   ``segment_threshold`` and again at each of ``segment_strict_thresholds``; one that
   continues a line the other passes read (same direction, over it, a line thickness longer)
   needs only ``segment_confirmed_confidence``, and keeps only its glyph-sized parts. Of a
   group read as text, only the glyphs on its line are kept (background edges that joined it
   beside the line are dropped). An accepted line is then followed glyph by glyph beyond its ends
   (segmented regions of its glyph size, centred on it, at most a line height on), so a word
   whose letters cross busy background is continued from the part that was read. A lone
   symbol just beyond either end of any accepted line (DBNet's too) is kept when it reads as
   one confident character, or when it is a ring of about a capital's size: the "©" that
   starts most watermarks and that the recognizer's dictionary lacks; one the segmenter did
   not draw at all is looked for in the image itself, a ring with a "c" inside just before a
   line's start (``rings``, :mod:`processors.text_ring`). Inside an accepted
   line's box, weaker regions (above ``segment_low_threshold``) join when they touch its
   glyphs or sit on its axis. The accepted pixels, grown by ``dilation``, join the mask.
   ``segmenter=False`` turns it off.
7. **Smooth backgrounds.** Where the mask lies on a smooth render (a flat or gradient backdrop,
   none of a photo's grain), the overlay pixels within ``smooth_reach`` px of it that it missed
   are added: those off the background's local colour plane by more than ``smooth_contrast``
   levels, in groups that touch the mask (:mod:`processors.text_smooth`). They are the ends of
   a semi-transparent watermark's strokes where its grey crosses the backdrop's brightness.

The CUDA path: ``device="cuda"`` uses onnxruntime's ``CUDAExecutionProvider`` when it is
available (it needs the ``onnxruntime-gpu`` build), and the CPU otherwise (the segmenter runs in
torch on CUDA when torch sees a GPU);
:attr:`TextDetector.providers` says which one is active. The result for an image is
deterministic and does not depend on the rest of the batch.

Measured on the seeded quality corpus (``bench/corpus.py``, seed 0: 50 text cases on 6 photos
and 4 renders, 20 clean images), CPU, ``text-ppocr4-8``: glyph-pixel recall (of every pixel
the overlay changed) 0.955 mean (0.87 without the segmenter, third session); by kind caption
0.97, timestamp 1.00, promo 1.00, watermark 0.89, two overlays 0.91. False-positive area (mask
outside the truth dilated by 8 px) 0.18 % of the image on average; 1 of 20 clean images gets a
mask (grace_hopper, whose name badge is real text). Seeds 1 and 2: recall 0.951 and 0.964,
false-positive area 0.15 and 0.18 % (docs/models.md). Known misses: faint watermarks over busy
photos whose segmented glyphs merge with background edges (the group's shape then does not
read as text). Cost on 2 shared CPU cores: about 0.8 s per input megapixel without the
segmenter and about 3 s with it (the segmenter runs at full resolution up to
``segment_size``).
"""

from __future__ import annotations

import enum
import importlib.util
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import numpy.typing as npt
import onnxruntime as ort
import torch
from scipy.spatial import cKDTree

from processors.tensors import Image, Mask, check_image
from processors.text_ring import Ring, find_ring
from processors.text_seg import load_text_seg, segment
from processors.text_smooth import complete_on_smooth

__all__ = [
    "TextDetector",
    "TextDetectorConfig",
    "TextModelMissingError",
    "TextResult",
    "find_model_dir",
]

Box = tuple[int, int, int, int]
FloatArray = npt.NDArray[np.float32]

_PACKAGE = "rapidocr_onnxruntime"
_DET_FILE = "ch_PP-OCRv4_det_infer.onnx"
_REC_FILE = "ch_PP-OCRv4_rec_infer.onnx"
_REC_HEIGHT = 48
_REC_WIDTH_STEP = 64
"""Recognizer crops are padded to a multiple of this width, decided by the crop alone, so that a
crop reads the same whatever else is in the batch."""
_REC_MAX_WIDTH = 1920
_MAX_REACH = 8
"""Most px the ink of a region is grown by (the benchmark forgives 8 px around the truth)."""
_LABEL_MIN_TOLERANCE = 3.0
"""Least colour tolerance (max over RGB) of a label's edge search, for a perfectly flat label."""
_MAX_OVERLAP = 0.5
"""A region of the second pass that the first pass's boxes cover more than this is skipped."""
_BOOST_LEVEL = 40.0
"""Local contrast (RMS, 0..255) that the boosted copy brings every neighbourhood to..."""
_BOOST_FLOOR = 4.0
"""... unless it is below about this much (flat areas stay flat, noise is not blown up) ..."""
_BOOST_MAX_GAIN = 6.0
"""... and never by more than this gain."""
_LEVEL = math.sin(math.radians(5.0))
"""Promo labels are looked for behind text within 5 degrees of level."""
_GROUP_REACH = 4
"""Segmented glyphs closer than twice this (in px of the segmenter's working image) are judged
as one group."""
_MIN_GLYPH_AREA = 6
"""Segmented regions smaller than this (px) are specks, not glyphs."""
_STROKE_FILL = 0.6
"""Most of its box that a segmented glyph's strokes fill (a solid blob is background)."""
_ON_LINE = 0.6
"""Segmented regions of an accepted group further than this many glyph sizes across the line
from its middle are background beside it, not text."""
_SEEN = 0.5
"""``ink_reach`` limits a line's ink only when at least this share of it is within reach of
the segmenter's text (the segmenter sees that line)."""
_CONFIRMED_SIZE = 1.5
"""Of a segmented group read as text only at ``segment_confirmed_confidence``, the parts larger
than this many times its typical glyph are letters joined to background edges: dropped."""
_ALONG_ANGLE = math.radians(10.0)
"""A segmented group continues a known line only when their directions differ by less than
this (:func:`_continues`)."""
_CENTRED = 0.25
"""The segmenter pass's hysteresis keeps a weaker region inside an accepted line's box when it
touches the line's glyphs or its centre lies within this share of the line's thickness of the
line's axis (:func:`_joined_or_centred`)."""


class _Reading(enum.Enum):
    """What the recognizer made of a region."""

    TEXT = "text"
    """At least ``min_chars`` characters, confidently."""
    SHORT = "short"
    """Fewer characters, confidently (one glyph of a line the detector split)."""
    NOTHING = "nothing"
    """No character at all."""
    DOUBTFUL = "doubtful"
    """Characters with low confidence: texture, not text."""


class TextModelMissingError(RuntimeError):
    """The PP-OCRv4 ONNX files were not found (the model package is not installed)."""

    retriable = False


def find_model_dir() -> Path:
    """The folder holding the PP-OCRv4 ONNX files, located without importing the package."""
    spec = importlib.util.find_spec(_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if locations:
        folder = Path(locations[0]) / "models"
        if (folder / _DET_FILE).is_file() and (folder / _REC_FILE).is_file():
            return folder
    raise TextModelMissingError(
        f"The text detector needs {_DET_FILE} and {_REC_FILE} from the Python package "
        f"'rapidocr-onnxruntime', which is not installed (or lacks them). Run `make`, or "
        "`pip install --no-deps -r requirements-models.txt`."
    )


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
        if self.threads < 0:
            raise ValueError(f"TextDetectorConfig: threads must be >= 0, got {self.threads}.")
        if self.work_size < 64 or self.work_size % 32:
            raise ValueError(
                "TextDetectorConfig: work_size must be a multiple of 32, >= 64, got "
                f"{self.work_size}."
            )
        if not 32 <= self.min_side <= self.work_size:
            raise ValueError(
                "TextDetectorConfig: need 32 <= min_side <= work_size, got "
                f"{self.min_side} and {self.work_size}."
            )
        for name in ("binary_threshold", "box_threshold", "min_confidence", "boost_min_confidence"):
            value = getattr(self, name)
            if not 0.0 < value < 1.0:
                raise ValueError(f"TextDetectorConfig: {name} must be in (0, 1), got {value}.")
        if self.unclip_ratio <= 0.0:
            raise ValueError(
                f"TextDetectorConfig: unclip_ratio must be > 0, got {self.unclip_ratio}."
            )
        if self.min_box_side < 1.0:
            raise ValueError(
                f"TextDetectorConfig: min_box_side must be >= 1, got {self.min_box_side}."
            )
        if self.min_chars < 1:
            raise ValueError(f"TextDetectorConfig: min_chars must be >= 1, got {self.min_chars}.")
        if self.boost_side != 0 and self.boost_side < 32:
            raise ValueError(
                f"TextDetectorConfig: boost_side must be 0 (off) or >= 32, got {self.boost_side}."
            )
        if self.boost_sigma <= 0.0:
            raise ValueError(
                f"TextDetectorConfig: boost_sigma must be > 0, got {self.boost_sigma}."
            )
        if self.boost_min_chars < 1:
            raise ValueError(
                f"TextDetectorConfig: boost_min_chars must be >= 1, got {self.boost_min_chars}."
            )
        if not 0.0 < self.min_ink_contrast <= self.ink_contrast <= 255.0:
            raise ValueError(
                "TextDetectorConfig: need 0 < min_ink_contrast <= ink_contrast <= 255, got "
                f"{self.min_ink_contrast} and {self.ink_contrast}."
            )
        if self.texture_factor < 0.0:
            raise ValueError(
                f"TextDetectorConfig: texture_factor must be >= 0, got {self.texture_factor}."
            )
        if not 0.0 <= self.min_ink_fraction < 1.0:
            raise ValueError(
                "TextDetectorConfig: min_ink_fraction must be in [0, 1), got "
                f"{self.min_ink_fraction}."
            )
        if not 0 <= self.dilation <= _MAX_REACH:
            raise ValueError(
                f"TextDetectorConfig: dilation must be in [0, {_MAX_REACH}], got {self.dilation}."
            )
        if not all(0.0 < t < 1.0 for t in self.segment_strict_thresholds):
            raise ValueError(
                "TextDetectorConfig: segment_strict_thresholds must lie in (0, 1), got "
                f"{self.segment_strict_thresholds}."
            )
        if self.segment_size < 64:
            raise ValueError(
                f"TextDetectorConfig: segment_size must be >= 64, got {self.segment_size}."
            )
        for name in (
            "segment_threshold",
            "segment_low_threshold",
            "segment_min_score",
            "segment_min_confidence",
            "segment_confirmed_confidence",
        ):
            value = getattr(self, name)
            if not 0.0 < value < 1.0:
                raise ValueError(f"TextDetectorConfig: {name} must be in (0, 1), got {value}.")
        if not 0 <= self.ink_reach <= 64:
            raise ValueError(
                f"TextDetectorConfig: ink_reach must be in [0, 64], got {self.ink_reach}."
            )
        if not 0.0 < self.ink_reach_threshold < 1.0:
            raise ValueError(
                "TextDetectorConfig: ink_reach_threshold must be in (0, 1), got "
                f"{self.ink_reach_threshold}."
            )
        if self.segment_min_area < 1:
            raise ValueError(
                f"TextDetectorConfig: segment_min_area must be >= 1, got {self.segment_min_area}."
            )
        if not 0.0 <= self.shadow_reach <= 1.0:
            raise ValueError(
                f"TextDetectorConfig: shadow_reach must be in [0, 1], got {self.shadow_reach}."
            )
        if not 0 <= self.smooth_reach <= 64:
            raise ValueError(
                f"TextDetectorConfig: smooth_reach must be in [0, 64], got {self.smooth_reach}."
            )
        if not 0.0 < self.smooth_contrast <= 255.0:
            raise ValueError(
                "TextDetectorConfig: smooth_contrast must be in (0, 255], got "
                f"{self.smooth_contrast}."
            )


@dataclass(frozen=True)
class TextResult:
    """What the detector found in one image."""

    mask: Mask
    """HxW uint8, 255 = text: glyphs, their outline and shadow, antialiasing, slightly dilated."""
    boxes: tuple[Box, ...]
    """Axis-aligned ``(x, y, w, h)`` boxes of the accepted text regions, in detection order."""
    coverage: float
    """Mask area over image area, in [0, 1]."""

    @property
    def found(self) -> bool:
        """Whether any text region was accepted."""
        return bool(self.boxes)


@dataclass(frozen=True)
class _Region:
    """A candidate text region, in working-image pixels."""

    centre: tuple[float, float]
    """Centre (x, y)."""
    along: tuple[float, float]
    """Unit vector along the long side, pointing right (x >= 0)."""
    length: float
    """Long side, px."""
    thickness: float
    """Short side, px."""
    grow: float
    """The unclip distance the box was grown by, px: glyphs lie within it of the DB region."""

    def corners(self, grow: float = 0.0, extend: float = 0.0) -> npt.NDArray[np.float64]:
        """(4, 2) corners: top-left, top-right, bottom-right, bottom-left (reading order), of
        the box grown by ``grow`` on every side and by ``extend`` more at both ends."""
        cx, cy = self.centre
        ux, uy = self.along
        vx, vy = -uy, ux  # across, pointing down for level text
        half_l, half_t = self.length / 2 + grow + extend, self.thickness / 2 + grow
        return np.array(
            [
                [cx - ux * half_l - vx * half_t, cy - uy * half_l - vy * half_t],
                [cx + ux * half_l - vx * half_t, cy + uy * half_l - vy * half_t],
                [cx + ux * half_l + vx * half_t, cy + uy * half_l + vy * half_t],
                [cx - ux * half_l + vx * half_t, cy - uy * half_l + vy * half_t],
            ]
        )


class TextDetector:
    """Find burned-in text and return a mask per image (see the module docstring)."""

    version: str = "text-ppocr4-8"
    """Goes into result events (``-2``: with the segmenter pass; ``-4``: ink limited to the
    segmenter's reach)."""

    def __init__(self, config: TextDetectorConfig | None = None) -> None:
        self.config = config if config is not None else TextDetectorConfig()
        folder = find_model_dir()
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.config.threads
        options.inter_op_num_threads = 1
        # Worker threads sleep instead of spinning between ops: on a shared or busy CPU a
        # spinning thread pool steals the cores it waits for.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        wanted = ["CPUExecutionProvider"]
        if (
            self.config.device == "cuda"
            and "CUDAExecutionProvider" in ort.get_available_providers()
        ):
            wanted = ["CUDAExecutionProvider", "CPUExecutionProvider"]
        self._det = ort.InferenceSession(str(folder / _DET_FILE), options, providers=wanted)
        self._rec = ort.InferenceSession(str(folder / _REC_FILE), options, providers=wanted)
        self.providers: tuple[str, ...] = tuple(self._det.get_providers())
        """onnxruntime providers in use, first = active (``CUDAExecutionProvider`` or CPU)."""
        charset = self._rec.get_modelmeta().custom_metadata_map["character"].splitlines()
        self._charset = ["", *charset, " "]
        use_cuda = self.config.device == "cuda" and torch.cuda.is_available()
        self._torch_device = torch.device("cuda" if use_cuda else "cpu")
        self._seg: torch.nn.Module | None = None
        if self.config.segmenter:
            self._seg = load_text_seg(self.config.segmenter_weights).to(self._torch_device)

    def __call__(self, images: Sequence[Image]) -> list[TextResult]:
        """One :class:`TextResult` per image."""
        cfg = self.config
        checked = [check_image(image, f"images[{i}]") for i, image in enumerate(images)]
        sizes = [self._work_size(image.shape[0], image.shape[1]) for image in checked]
        probs = self._detect(checked, sizes, boost=False)
        regions = [self._regions(prob) for prob in probs]
        scales = [
            (image.shape[1] / size[1], image.shape[0] / size[0])
            for image, size in zip(checked, sizes, strict=True)
        ]
        candidates = [(i, region) for i, found in enumerate(regions) for region in found]
        readings = self._read(
            [_rec_crop(checked[i], _scale(r, *scales[i])) for i, r in candidates],
            cfg.min_confidence,
            cfg.min_chars,
        )
        # Second chance: regions read as too few characters, or as nothing (the detector splits
        # faint or widely spaced text into single glyphs), are read again as one line with
        # their neighbours. Regions read with low confidence (textures) are left out.
        merged = [
            (i, group)
            for i in range(len(checked))
            for group in _merge(
                [
                    (r, reading is not _Reading.TEXT)
                    for (o, r), reading in zip(candidates, readings, strict=True)
                    if o == i and reading is not _Reading.DOUBTFUL
                ]
            )
        ]
        merged_readings = self._read(
            [_rec_crop(checked[i], _scale(r, *scales[i])) for i, r in merged],
            cfg.min_confidence,
            cfg.min_chars,
        )
        keep: list[list[tuple[_Region, FloatArray, tuple[float, float]]]] = [[] for _ in checked]
        for (i, r), reading in zip(
            [*candidates, *merged], [*readings, *merged_readings], strict=True
        ):
            if reading is _Reading.TEXT:
                keep[i].append((r, probs[i], scales[i]))
        if cfg.boost_side:
            # Faint overlays (semi-transparent watermarks on flat colour) get no response on
            # the image itself: look again on a contrast-normalised copy, and accept only
            # confident readings of several characters (the copy makes textures look inked).
            boost_sizes = [self._boost_size(image.shape[0], image.shape[1]) for image in checked]
            boost_probs = self._detect(checked, boost_sizes, boost=True)
            boost_scales = [
                (image.shape[1] / size[1], image.shape[0] / size[0])
                for image, size in zip(checked, boost_sizes, strict=True)
            ]
            # Regions the first pass already had (read as text or not) are not read again.
            extra = [
                (i, region)
                for i, prob in enumerate(boost_probs)
                for region in self._regions(prob)
                if _overlap(
                    _scale(
                        region,
                        boost_scales[i][0] / scales[i][0],
                        boost_scales[i][1] / scales[i][1],
                    ),
                    regions[i],
                    sizes[i],
                )
                < _MAX_OVERLAP
            ]
            extra_readings = self._read(
                [_rec_crop(checked[i], _scale(r, *boost_scales[i])) for i, r in extra],
                cfg.boost_min_confidence,
                cfg.boost_min_chars,
            )
            for (i, r), reading in zip(extra, extra_readings, strict=True):
                if reading is _Reading.TEXT:
                    keep[i].append((r, boost_probs[i], boost_scales[i]))
        results = []
        for image, found in zip(checked, keep, strict=True):
            if self._seg is None:
                results.append(self._result(image, found))
                continue
            small, scale = self._seg_prob(image)
            segmented = self._segment(
                image, small, scale, [_glyph_line(_scale(r, *f)) for r, _, f in found]
            )
            # The limit is for the ink of the lines found above; without any, it is not built.
            limit = self._ink_limit(small, image) if found else None
            results.append(self._result(image, found, segmented, limit))
        return results

    def _detect(
        self, images: list[Image], sizes: list[tuple[int, int]], *, boost: bool
    ) -> list[FloatArray]:
        """DBNet probability maps at the given working sizes (equal sizes run as one batch);
        with ``boost``, of contrast-normalised copies."""
        by_index: dict[int, FloatArray] = {}
        for size in sorted(set(sizes)):
            members = [i for i, s in enumerate(sizes) if s == size]
            batch = np.stack(
                [
                    _det_input(images[i], size, self.config.boost_sigma if boost else 0.0)
                    for i in members
                ]
            )
            (out,) = self._det.run(None, {self._det.get_inputs()[0].name: batch})
            for i, prob in zip(members, out[:, 0], strict=True):
                by_index[i] = np.ascontiguousarray(prob, dtype=np.float32)
        return [by_index[i] for i in range(len(images))]

    # -- stages --------------------------------------------------------------------------------

    def _work_size(self, height: int, width: int) -> tuple[int, int]:
        cfg = self.config
        scale = min(cfg.work_size / max(height, width), max(1.0, cfg.min_side / min(height, width)))
        return _rounded(height, width, scale)

    def _boost_size(self, height: int, width: int) -> tuple[int, int]:
        """Working size of the second pass: short side ``boost_side``, long side at most
        ``work_size``."""
        cfg = self.config
        scale = min(cfg.work_size / max(height, width), cfg.boost_side / min(height, width))
        return _rounded(height, width, scale)

    def _regions(self, prob: FloatArray) -> list[_Region]:
        """DB post-processing: rotated, unclipped boxes of the confident text regions."""
        cfg = self.config
        binary = (prob > cfg.binary_threshold).astype(np.uint8)
        contours, _ = cv2.findContours(binary, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
        found = []
        for contour in sorted(
            contours, key=lambda c: (int(c[:, 0, 1].min()), int(c[:, 0, 0].min()))
        ):
            if len(contour) < 3:
                continue
            _, (rw, rh), _ = cv2.minAreaRect(contour)
            if min(rw, rh) < cfg.min_box_side:
                continue
            x, y, bw, bh = cv2.boundingRect(contour)
            inside = np.zeros((bh, bw), np.uint8)
            cv2.drawContours(inside, [contour - np.array([x, y])], -1, 1, thickness=-1)
            score = float(prob[y : y + bh, x : x + bw][inside > 0].mean())
            if score < cfg.box_threshold:
                continue
            grow = rw * rh * cfg.unclip_ratio / (2.0 * (rw + rh))
            found.append(_region(cv2.minAreaRect(contour), grow))
        return found

    def _read(
        self, crops: list[FloatArray], min_confidence: float, min_chars: int
    ) -> list[_Reading]:
        """What the recognizer makes of each crop (crops of equal width run together), judged
        by the least mean confidence and the fewest characters of text."""
        readings = [_Reading.NOTHING] * len(crops)
        widths = [crop.shape[2] for crop in crops]
        for width in sorted(set(widths)):
            members = [i for i, w in enumerate(widths) if w == width]
            (out,) = self._rec.run(
                None, {self._rec.get_inputs()[0].name: np.stack([crops[i] for i in members])}
            )
            for i, steps in zip(members, out, strict=True):
                best = steps.argmax(axis=1)
                emitted = (best != 0) & np.concatenate([[True], best[1:] != best[:-1]])
                if not emitted.any():
                    continue
                confidence = float(steps[np.flatnonzero(emitted), best[emitted]].mean())
                if confidence < min_confidence:
                    readings[i] = _Reading.DOUBTFUL
                elif int(emitted.sum()) < min_chars:
                    readings[i] = _Reading.SHORT
                else:
                    readings[i] = _Reading.TEXT
        return readings

    def _seg_prob(self, image: Image) -> tuple[FloatArray, float]:
        """The segmenter's probability map of ``image``, shrunk to at most ``segment_size``
        on its long side, and the scale it was shrunk by."""
        if self._seg is None:
            raise RuntimeError("TextDetector._seg_prob needs the segmenter (segmenter=True).")
        h, w = image.shape[:2]
        scale = min(1.0, self.config.segment_size / max(h, w))
        small = image
        if scale < 1.0:
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            small = np.asarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA), np.uint8)
        return segment(self._seg, small, device=self._torch_device), scale

    def _ink_limit(self, prob: FloatArray, image: Image) -> Mask | None:
        """Where ink found in a detected box may lie (``ink_reach``), at the image's size;
        None = anywhere."""
        cfg = self.config
        if cfg.ink_reach == 0:
            return None
        h, w = image.shape[:2]
        sure = (prob >= cfg.ink_reach_threshold).astype(np.uint8)
        if sure.shape != (h, w):
            sure = np.asarray(cv2.resize(sure, (w, h), interpolation=cv2.INTER_NEAREST), np.uint8)
        return np.asarray(cv2.dilate(sure, _disc(cfg.ink_reach)), np.uint8)

    def _segment(
        self, image: Image, prob: FloatArray, scale: float, lines: Sequence[_Region] = ()
    ) -> tuple[Mask, list[Box]]:
        """The segmenter's mask (grown by ``dilation``) from its probability map ``prob`` (of
        ``image`` shrunk by ``scale``), and the boxes of its glyph groups; ``lines`` (text
        lines found by the other passes, image px) are searched for lone symbols at their ends
        too."""
        cfg = self.config
        h, w = image.shape[:2]
        chosen = np.zeros(prob.shape, np.uint8)
        paper = _paper(prob)
        accepted: list[_Region] = []
        # Each threshold's glyphs (connected regions), labelled once for every step below.
        glyphs_at: list[_Glyphs] = []
        known = [_scale(line, scale, scale) for line in lines]
        # At a stricter threshold, letters that touch background edges at the first one come
        # apart from them; each threshold's groups and lines are judged on their own.
        for threshold in (cfg.segment_threshold, *cfg.segment_strict_thresholds):
            binary = (prob > threshold).astype(np.uint8)
            # The glyphs of a line are separate regions: a group is the glyphs within a few
            # px of each other, judged together (a lone speck of texture is small, doubtful).
            groups = cv2.dilate(binary, _disc(_GROUP_REACH))
            count, found, found_stats, _ = cv2.connectedComponentsWithStats(groups, connectivity=8)
            labels = np.asarray(found, np.int32)
            stats = np.asarray(found_stats, np.int32)
            inside = binary > 0
            areas = np.bincount(labels[inside], minlength=count)
            scores = np.bincount(labels[inside], weights=prob[inside], minlength=count)
            keep = (areas >= cfg.segment_min_area) & (scores >= cfg.segment_min_score * areas)
            keep[0] = False
            kept, grouped = self._verify(paper, labels, stats, keep, inside, known)
            chosen[kept] = 255
            glyphs = _glyphs(binary)
            glyphs_at.append(glyphs)
            lined, chained = self._lines(paper, glyphs, known)
            chosen |= lined
            accepted += grouped + chained
        extended: list[_Region] = []
        for glyphs in glyphs_at:
            continued, extended = self._continued(prob, glyphs, chosen, accepted)
            chosen |= continued
            chosen |= self._symbols(paper, glyphs, chosen, extended + known)
        # Inside an accepted line, fainter strokes count too (hysteresis): where the
        # background crosses a letter the segmenter is less sure of it. Only the regions that
        # touch the line's glyphs or sit on its axis: a background edge crossing the box
        # (a neck ring, a tower) is not a fainter stroke.
        support = np.zeros(prob.shape, np.uint8)
        for region in accepted:
            cv2.fillPoly(support, [np.round(region.corners()).astype(np.int32)], 1)
        weak = (support > 0) & (prob > cfg.segment_low_threshold)
        chosen[_joined_or_centred(weak, chosen > 0, accepted)] = 255
        if scale < 1.0:
            chosen = np.asarray(cv2.resize(chosen, (w, h), interpolation=cv2.INTER_LINEAR))
            chosen = np.where(chosen >= 128, 255, 0).astype(np.uint8)
        mask = np.asarray(cv2.dilate(chosen, _disc(cfg.dilation)), np.uint8)
        if cfg.rings and (extended or lines):
            # The lines as the last threshold's glyphs continued them, and the other passes'.
            starts = [_scale(line, 1.0 / scale, 1.0 / scale) for line in extended]
            mask |= self._rings(image, [*starts, *lines], mask)
        boxes: list[Box] = []
        for region in accepted:
            x0, y0, x1, y1 = _bounds(_scale(region, 1.0 / scale, 1.0 / scale).corners(), w, h)
            if (x0, y0, x1 - x0, y1 - y0) not in boxes:
                boxes.append((x0, y0, x1 - x0, y1 - y0))
        return mask, boxes

    def _rings(self, image: Image, lines: Sequence[_Region], mask: Mask) -> Mask:
        """The "©" just before the start of each of ``lines`` (image px), found in the image
        (:func:`processors.text_ring.find_ring`) and grown by ``dilation`` like the rest of
        ``mask`` (the segmenter's mask so far), except into the hole inside its "c"."""
        dilation = _disc(self.config.dilation)
        luma = np.asarray(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), np.float32)
        # What the segmenter chose, before its growth: a ring it already has is not new.
        known = np.asarray(cv2.erode(mask, dilation), np.uint8)
        out = np.zeros(mask.shape, np.uint8)
        found: list[Ring] = []
        for line in lines:
            x, y = np.subtract(line.centre, np.multiply(line.along, line.length / 2))
            outward = (-line.along[0], -line.along[1])
            ring = find_ring(luma, (float(x), float(y)), outward, line.thickness, known)
            if ring is not None:
                out |= ring.ink(mask.shape)
                found.append(ring)
        if not found:
            return out
        out = np.asarray(cv2.dilate(out, dilation), np.uint8)
        for ring in found:
            cv2.circle(out, ring.centre, ring.hole, 0, thickness=-1)
        return out

    def _verify(
        self,
        paper: Image,
        labels: npt.NDArray[np.int32],
        stats: npt.NDArray[np.int32],
        keep: npt.NDArray[np.bool_],
        glyphs: npt.NDArray[np.bool_],
        known: Sequence[_Region] = (),
    ) -> tuple[npt.NDArray[np.bool_], list[_Region]]:
        """The ``glyphs`` pixels of the groups (``keep``) whose *shape* reads as text, and the
        upright boxes of their lines.

        Each group is cut out upright (its minimum-area rotated box) from ``paper``, the
        probability map drawn as dark ink on white (:func:`_paper`), and read by the
        recognizer: a faint watermark's contrast does not matter here, only the letter shapes
        the segmenter drew. A group read as a
        single confident glyph (the "©" a space away from "shop") is kept when it lies within
        a line height of a group read as text. A group that continues one of the ``known`` lines
        (accepted by the other passes) needs only ``segment_confirmed_confidence``.
        """
        groups = np.flatnonzero(keep)
        if len(groups) == 0:
            return np.zeros(labels.shape, np.bool_), []
        regions = []
        for k in groups:
            x, y, bw, bh = (int(v) for v in stats[k, :4])
            ys, xs = np.nonzero(labels[y : y + bh, x : x + bw] == k)
            regions.append(_points_region(xs + x, ys + y)[0])
        readings, confirmed = self._read_segmented(paper, regions, known)
        kept = np.zeros(labels.shape, np.bool_)
        near = np.zeros(labels.shape, np.uint8)
        accepted = []
        for index, (k, region, reading) in enumerate(zip(groups, regions, readings, strict=True)):
            if reading is _Reading.TEXT:
                x, y, bw, bh = (int(v) for v in stats[k, :4])
                window = (labels[y : y + bh, x : x + bw] == k) & glyphs[y : y + bh, x : x + bw]
                line = _on_line(window, region.along)
                if index in confirmed:
                    line = _glyph_sized(line, _CONFIRMED_SIZE)
                kept[y : y + bh, x : x + bw] |= line
                if index in confirmed:
                    # Its glyphs on the line count; the line itself is the other passes'
                    # (not followed further, no weaker strokes taken in its box).
                    continue
                ys, xs = np.nonzero(line)
                line_region = _points_region(xs + x, ys + y)[0] if len(xs) else region
                accepted.append(line_region)
                reach = round(line_region.thickness)
                cv2.fillPoly(near, [np.round(line_region.corners(reach)).astype(np.int32)], 1)
        for k, reading in zip(groups, readings, strict=True):
            if reading is _Reading.SHORT and near[labels == k].any():
                kept |= (labels == k) & glyphs
        return kept, accepted

    def _lines(
        self, paper: Image, glyphs: _Glyphs, known: Sequence[_Region] = ()
    ) -> tuple[Mask, list[_Region]]:
        """Segmented glyphs that line up as text, read by the recognizer (255 = kept), and
        the upright boxes of the lines read as text.

        Glyph candidates are the connected regions ``glyphs``; two are linked when their
        sizes are within 2.5x of each other and their centres within 1.3 glyph sizes: the
        letters of one line chain up, while a long background edge that the segmenter
        partly marked is much larger than the letters beside it and stays out. Each chain
        of two or more is cut out upright from ``paper`` and read like in :meth:`_verify`
        (along one of the ``known`` lines, at ``segment_confirmed_confidence``).
        """
        labels, stats, centres = glyphs.labels, glyphs.stats, glyphs.centres
        out = np.zeros(labels.shape, np.uint8)
        ids = np.flatnonzero(stats[:, cv2.CC_STAT_AREA] >= _MIN_GLYPH_AREA)
        ids = ids[ids > 0]
        if len(ids) < 2:
            return out, []
        sizes = np.maximum(stats[ids, cv2.CC_STAT_WIDTH], stats[ids, cv2.CC_STAT_HEIGHT])
        sizes = sizes.astype(np.float64)
        tree = cKDTree(centres[ids])
        links = []
        for a, b in tree.query_pairs(1.3 * float(sizes.max())):
            small, large = sorted((sizes[a], sizes[b]))
            if large > 2.5 * small:
                continue
            if np.hypot(*(centres[ids[a]] - centres[ids[b]])) <= 1.3 * large:
                links.append((a, b))
        regions = []
        chains_list = []
        members = []
        for group in _linked(len(ids), links):
            if len(group) < 2:
                continue
            member = np.isin(labels, ids[group])
            ys, xs = np.nonzero(member)
            region, short = _points_region(xs, ys)
            # One line is about one glyph thick; a chain spread over an area is not a line.
            if short > 2.0 * float(np.median(sizes[group])):
                continue
            chains_list.append([int(ids[k]) for k in group])
            members.append(member)
            regions.append(region)
        if not chains_list:
            return out, []
        readings, confirmed = self._read_segmented(paper, regions, known)
        accepted = []
        for index, (member, region, reading) in enumerate(
            zip(members, regions, readings, strict=True)
        ):
            if reading is _Reading.TEXT:
                out[member] = 255
                if index not in confirmed:
                    accepted.append(region)
        return out, accepted

    def _read_segmented(
        self, paper: Image, regions: list[_Region], known: Sequence[_Region]
    ) -> tuple[list[_Reading], set[int]]:
        """What the recognizer makes of the segmented ``regions`` cut out of ``paper`` (at
        ``segment_min_confidence``; those read as doubtful text that continue a ``known``
        line, :func:`_continues`, again at ``segment_confirmed_confidence``), and the indices
        that the second reading made text."""
        cfg = self.config
        readings = self._read(
            [_rec_crop(paper, region) for region in regions],
            cfg.segment_min_confidence,
            cfg.min_chars,
        )
        if cfg.segment_confirmed_confidence >= cfg.segment_min_confidence:
            return readings, set()
        again = [
            i
            for i, (region, reading) in enumerate(zip(regions, readings, strict=True))
            if reading is _Reading.DOUBTFUL and any(_continues(region, line) for line in known)
        ]
        if not again:
            return readings, set()
        second = self._read(
            [_rec_crop(paper, regions[i]) for i in again],
            cfg.segment_confirmed_confidence,
            cfg.min_chars,
        )
        out = list(readings)
        for i, reading in zip(again, second, strict=True):
            out[i] = reading
        return out, {
            i for i, reading in zip(again, second, strict=True) if reading is _Reading.TEXT
        }

    def _continued(
        self,
        prob: FloatArray,
        glyphs: _Glyphs,
        chosen: Mask,
        lines: list[_Region],
    ) -> tuple[Mask, list[_Region]]:
        """Glyphs that continue the accepted ``lines``: segmented regions (of ``glyphs``) not
        yet ``chosen``, of about the line's glyph size, centred on the line (within half
        ``_ON_LINE`` of its height across it), at most a line height beyond its current end,
        and segmented with a mean probability of at least ``segment_min_score``; each one
        taken moves the end, so a word the recognizer did not accept (its letters cross busy
        background) is followed letter by letter from the part that was read. Returns the
        glyphs' mask and the lines reaching as far as they now do."""
        cfg = self.config
        labels, stats, centres = glyphs.labels, glyphs.stats, glyphs.centres
        out = np.zeros(labels.shape, np.uint8)
        if not lines:
            return out, []
        count = len(stats)
        inside = labels > 0
        areas = np.bincount(labels[inside], minlength=count)
        scores = np.bincount(labels[inside], weights=prob[inside], minlength=count)
        sizes = np.maximum(stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT])
        taken_before = np.bincount(labels[inside & (chosen > 0)], minlength=count) > 0
        free = [
            k
            for k in range(1, count)
            if areas[k] >= _MIN_GLYPH_AREA
            and not taken_before[k]
            and scores[k] >= cfg.segment_min_score * areas[k]
            # Strokes fill little of their box; a solid blob is a patch of background.
            and areas[k]
            <= _STROKE_FILL * stats[k, cv2.CC_STAT_WIDTH] * stats[k, cv2.CC_STAT_HEIGHT]
        ]
        taken: set[int] = set()
        extended = []
        for line in lines:
            along = np.asarray(line.along)
            across = np.array([-along[1], along[0]])
            centre = np.asarray(line.centre)
            low, high = -line.length / 2, line.length / 2
            height = line.thickness
            grown = True
            while grown:
                grown = False
                for k in free:
                    if k in taken or not 0.3 * height <= sizes[k] <= 1.5 * height:
                        continue
                    offset = centres[k] - centre
                    t, a = float(offset @ along), float(offset @ across)
                    half = sizes[k] / 2
                    if abs(a) > _ON_LINE * height / 2:
                        continue
                    if low - height <= t + half <= low or high <= t - half <= high + height:
                        taken.add(k)
                        low, high = min(low, t - half), max(high, t + half)
                        grown = True
            middle = centre + along * (low + high) / 2
            extended.append(
                _Region(
                    (float(middle[0]), float(middle[1])), line.along, high - low, height, line.grow
                )
            )
        if taken:
            out[np.isin(labels, sorted(taken))] = 255
        return out, extended

    def _symbols(
        self,
        paper: Image,
        glyphs: _Glyphs,
        chosen: Mask,
        lines: list[_Region],
    ) -> Mask:
        """Lone symbols just beyond either end of the accepted ``lines`` (the "©" of
        "© shop", a space or two away): segmented regions not yet ``chosen``, of about the
        line's glyph size, kept when the recognizer reads them as one confident character
        within a line height of an end, or when they are a ring (:func:`_is_circle`) within
        two line heights.

        The circle test is there because the recognizer's dictionary has no "©" (it reads one
        as "@" or "c" at low confidence), and "©" is the usual first character of a watermark.
        """
        cfg = self.config
        labels, stats, centres = glyphs.labels, glyphs.stats, glyphs.centres
        out = np.zeros(labels.shape, np.uint8)
        if not lines:
            return out
        candidates: list[tuple[int, bool, bool, _Region]] = []
        for k in range(1, len(stats)):
            x, y, bw, bh, area = (int(v) for v in stats[k])
            centre = (int(centres[k][0]), int(centres[k][1]))
            glyph = max(bw, bh)
            sized = [r for r in lines if 0.3 * r.thickness <= glyph <= 1.5 * r.thickness]
            if area < _MIN_GLYPH_AREA or not any(_near_end(r, centre, 2.0) for r in sized):
                continue
            if chosen[y : y + bh, x : x + bw][labels[y : y + bh, x : x + bw] == k].any():
                continue
            close = any(_near_end(r, centre, 1.0) for r in sized)
            # A "©" is about a capital's height, some 0.6 of a line's height from ascender to
            # descender: a larger ring near the line is something else (the lettered rim of a
            # round badge).
            ring = any(_near_end(r, centre, 2.0) and glyph <= 0.7 * r.thickness for r in sized)
            box = _Region((x + bw / 2, y + bh / 2), (1.0, 0.0), bw + 4.0, bh + 4.0, 2.0)
            candidates.append((k, close, ring, box))
        if not candidates:
            return out
        # A reading counts only within a line height of an end: the others are not read.
        closer = [box for _, close, _, box in candidates if close]
        read = iter(
            self._read([_rec_crop(paper, box) for box in closer], cfg.segment_min_confidence, 1)
        )
        for k, close, ring, _ in candidates:
            x, y, bw, bh = (int(v) for v in stats[k, :4])
            window_labels = labels[y : y + bh, x : x + bw]
            blob = (window_labels == k).astype(np.uint8)
            text = close and next(read) is _Reading.TEXT
            if text or (ring and _is_circle(blob)):
                # A ring's inside (the "c" of "©") comes with it.
                filled = _filled(blob)
                window = out[y : y + bh, x : x + bw]
                window[(filled > 0) & (window_labels > 0)] = 255
        return out

    def _result(
        self,
        image: Image,
        found: list[tuple[_Region, FloatArray, tuple[float, float]]],
        segmented: tuple[Mask, list[Box]] | None = None,
        limit: Mask | None = None,
    ) -> TextResult:
        """The mask of the accepted regions, each given with the probability map it was found
        in and that map's scale to the image, joined with the segmenter's (if any), and
        completed on smooth backgrounds (:mod:`processors.text_smooth`)."""
        h, w = image.shape[:2]
        mask = np.zeros((h, w), np.uint8)
        boxes: list[Box] = []
        text_regions: dict[int, Mask] = {}
        for region, prob, (sx, sy) in found:
            if id(prob) not in text_regions:
                binary = (prob > self.config.binary_threshold).astype(np.uint8)
                text_regions[id(prob)] = np.asarray(
                    cv2.resize(binary, (w, h), interpolation=cv2.INTER_NEAREST), dtype=np.uint8
                )
            boxes.append(
                self._paint(mask, image, _scale(region, sx, sy), text_regions[id(prob)], limit)
            )
        if segmented is not None:
            extra, extra_boxes = segmented
            # A group the regions above already masked is not a new line of text.
            for x, y, bw, bh in extra_boxes:
                window = extra[y : y + bh, x : x + bw] > 0
                if np.count_nonzero(mask[y : y + bh, x : x + bw][window]) < 0.5 * window.sum():
                    boxes.append((x, y, bw, bh))
            mask |= extra
        cfg = self.config
        mask = complete_on_smooth(image, mask, cfg.smooth_reach, cfg.smooth_contrast)
        return TextResult(
            mask=mask, boxes=tuple(boxes), coverage=float(np.count_nonzero(mask)) / mask.size
        )

    def _paint(
        self,
        mask: Mask,
        image: Image,
        region: _Region,
        text_region: Mask,
        limit: Mask | None = None,
    ) -> Box:
        """Mark the ink of one region in ``mask`` (and its label, if any); return its
        axis-aligned box. Ink counts only inside ``limit`` (if given)."""
        cfg = self.config
        h, w = image.shape[:2]
        margin = max(2.0, 0.1 * region.thickness)
        ring = max(3.0, 0.2 * region.thickness)
        # Glyph height is about half the unclipped box's thickness; a drop shadow reaches about
        # a tenth of it beyond the glyphs, plus its blur.
        radius = min(_MAX_REACH, cfg.dilation + round(cfg.shadow_reach * region.thickness / 2))
        # The window reaches a glyph height or more around the box: room for a label, and for
        # a symbol at either end of the line that the detector left out (the "©" of "© shop").
        x0, y0, x1, y1 = _bounds(
            region.corners(max(margin + ring + radius, region.thickness), region.thickness), w, h
        )
        offset = np.array([x0, y0])
        crop = image[y0:y1, x0:x1]
        inner = np.zeros(crop.shape[:2], np.uint8)
        cv2.fillPoly(inner, [np.round(region.corners(margin) - offset).astype(np.int32)], 1)
        # A median over about half a glyph height follows the background's edges and drops
        # thin strokes: ink must stand out from it too (where the box crosses a busy
        # background, the fill from the ring is wrong), and the background's own departure
        # from it around the box (its texture) raises the threshold.
        size = max(5, 2 * round(region.thickness / 4) + 1)
        texture = np.abs(crop.astype(np.int16) - cv2.medianBlur(crop, size).astype(np.int16))
        texture = texture.max(axis=2)
        around = np.zeros(crop.shape[:2], np.uint8)
        cv2.fillPoly(around, [np.round(region.corners(margin + ring) - offset).astype(np.int32)], 1)
        outside = texture[(around > 0) & (inner == 0)]
        noise = float(np.percentile(outside, 90)) if outside.size else 0.0
        near = cv2.dilate(text_region[y0:y1, x0:x1], _disc(math.ceil(region.grow))) > 0
        quiet = noise < cfg.min_ink_contrast
        ink = self._ink(crop, inner > 0, near, texture, noise)
        if np.count_nonzero(ink) < cfg.min_ink_fraction * np.count_nonzero(inner) and quiet:
            ink = (text_region[y0:y1, x0:x1] > 0) & (inner > 0) & near
        # Only where the segmenter sees the line: text it was not trained on (another script,
        # an unusual face) keeps all its ink.
        allowed = None
        if limit is not None and ink.any():
            window = limit[y0:y1, x0:x1] > 0
            if np.count_nonzero(ink & window) >= _SEEN * np.count_nonzero(ink):
                allowed = window
                ink = _touching(ink, allowed)
        grown = cv2.dilate(ink.astype(np.uint8), _disc(radius))
        target = mask[y0:y1, x0:x1]
        target[grown > 0] = 255
        on_label = self._paint_label(mask, image, region, crop[(inner > 0) & near & (grown == 0)])
        if quiet and not on_label:
            # On a quiet background, look for ink along the line beyond the detected box too
            # (the detector leaves out symbols such as the "©" of "© shop").
            cv2.fillPoly(
                inner,
                [np.round(region.corners(margin, region.thickness) - offset).astype(np.int32)],
                1,
            )
            ink = self._ink(crop, inner > 0, near | (inner > 0), texture, noise)
            if allowed is not None:
                ink = _touching(ink, allowed)
            target[cv2.dilate(ink.astype(np.uint8), _disc(radius)) > 0] = 255
        bx0, by0, bx1, by1 = _bounds(region.corners(), w, h)
        return (bx0, by0, bx1 - bx0, by1 - by0)

    def _ink(
        self,
        crop: Image,
        inner: npt.NDArray[np.bool_],
        near: npt.NDArray[np.bool_],
        texture: npt.NDArray[np.int16],
        noise: float,
    ) -> npt.NDArray[np.bool_]:
        """Pixels of ``inner`` near the text region that differ from the background filled in
        from around ``inner``, and from the local median, by more than the glyph threshold."""
        cfg = self.config
        background = cv2.inpaint(crop, inner.astype(np.uint8), 3, cv2.INPAINT_TELEA)
        diff = np.abs(crop.astype(np.int16) - background.astype(np.int16)).max(axis=2)
        inside = inner & near
        values = diff[inside].astype(np.uint8)
        otsu, _ = cv2.threshold(values.reshape(1, -1), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        threshold = min(cfg.ink_contrast, max(cfg.min_ink_contrast, float(otsu)))
        threshold = max(threshold, cfg.texture_factor * noise)
        ink: npt.NDArray[np.bool_] = (diff > threshold) & (texture > threshold) & inside
        return ink

    def _paint_label(self, mask: Mask, image: Image, region: _Region, behind: Image) -> bool:
        """Mark the bounded patch of one colour the text sits on, if any (a promo label: it was
        burned in with the text); say whether there was one. ``behind`` holds the box's pixels
        that are not ink."""
        tolerance = self.config.label_tolerance
        pixels = behind.astype(np.int16)
        if len(pixels) == 0 or abs(region.along[1]) > _LEVEL:
            return False
        colour = np.median(pixels, axis=0)
        deviation = np.abs(pixels - colour).max(axis=1)
        if np.mean(deviation <= tolerance) < 0.8:
            return False
        # Where the label's edge is told from what lies around it, allow only what the label's
        # own pixels vary by (a flat fill, give or take compression noise): a dark label on a
        # dark coat differs from it by a few levels, less than ``label_tolerance``.
        tolerance = min(
            tolerance, max(_LABEL_MIN_TOLERANCE, 3.0 * float(np.percentile(deviation, 75)))
        )
        reach = math.ceil(2.0 * region.thickness)
        x0, y0, x1, y1 = _bounds(region.corners(reach), *image.shape[1::-1])
        close = np.abs(image[y0:y1, x0:x1].astype(np.int16) - colour).max(axis=2) <= tolerance
        # Grow the text's box one row or column at a time while the new edge is mostly of the
        # label's colour; a label ends well before ``reach`` on every side.
        bx0, by0, bx1, by1 = _bounds(region.corners(), *image.shape[1::-1])
        left, top, right, bottom = bx0 - x0, by0 - y0, bx1 - x0, by1 - y0
        height, width = close.shape
        moved = True
        while moved:
            moved = False
            if top > 0 and close[top - 1, left:right].mean() >= 0.6:
                top, moved = top - 1, True
            if bottom < height and close[bottom, left:right].mean() >= 0.6:
                bottom, moved = bottom + 1, True
            if left > 0 and close[top:bottom, left - 1].mean() >= 0.6:
                left, moved = left - 1, True
            if right < width and close[top:bottom, right].mean() >= 0.6:
                right, moved = right + 1, True
        if min(top, left) <= 0 or bottom >= height or right >= width:
            return False
        # A label has a margin around the text on every side and a sharp edge: the pixels just
        # outside it are not of its colour (a smooth gradient is not a label).
        if min(by0 - y0 - top, bx0 - x0 - left, bottom - (by1 - y0), right - (bx1 - x0)) < 2:
            return False
        outside = np.concatenate(
            [
                close[top - 1, left:right],
                close[bottom, left:right],
                close[top:bottom, left - 1],
                close[top:bottom, right],
            ]
        )
        if outside.mean() > 0.3:
            return False
        filled = np.zeros(close.shape, np.uint8)
        filled[top:bottom, left:right] = 1
        # The round ends of a pill: a column across them is mostly not the label's colour, so
        # the growth above stopped short. The label's pixels within half its height beyond
        # either end, in its rows, and joined to it come with it.
        reach = (bottom - top) // 2
        zone = np.zeros_like(filled)
        zone[top:bottom, max(0, left - reach) : right + reach] = 1
        _, joined = cv2.connectedComponents(((close & (zone > 0)) | (filled > 0)).astype(np.uint8))
        filled = (joined == joined[top, left]).astype(np.uint8)
        target = mask[y0:y1, x0:x1]
        target[cv2.dilate(filled, _disc(self.config.dilation)) > 0] = 255
        return True


# -- helpers -----------------------------------------------------------------------------------


def _det_input(image: Image, size: tuple[int, int], boost_sigma: float = 0.0) -> FloatArray:
    """CHW float32 BGR in [-1, 1] at the working size; with ``boost_sigma`` > 0, contrast
    normalised (see :func:`_normalise`)."""
    height, width = size
    if image.shape[:2] != (height, width):
        shrink = height * width < image.shape[0] * image.shape[1]
        interpolation = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
        image = np.asarray(
            cv2.resize(image, (width, height), interpolation=interpolation), dtype=np.uint8
        )
    if boost_sigma > 0.0:
        image = _normalise(image, boost_sigma)
    bgr = image[:, :, ::-1].astype(np.float32)
    return np.ascontiguousarray((bgr / 127.5 - 1.0).transpose(2, 0, 1))


def _paper(prob: FloatArray) -> Image:
    """The probability map drawn as dark ink on white paper (RGB), for the recognizer."""
    grey = np.clip(np.rint(255.0 - 255.0 * prob), 0, 255).astype(np.uint8)
    return np.repeat(grey[:, :, None], 3, axis=2)


def _rounded(height: int, width: int, scale: float) -> tuple[int, int]:
    """``height``, ``width`` scaled and rounded to multiples of 32 (at least 32)."""
    return (max(32, round(height * scale / 32) * 32), max(32, round(width * scale / 32) * 32))


def _normalise(image: Image, sigma: float) -> Image:
    """Local contrast normalisation: each channel minus its Gaussian blur (``sigma`` px), scaled
    by the inverse local contrast (capped at ``_BOOST_MAX_GAIN``) and centred on mid-grey. Faint
    strokes on flat colour come out as clear as printed text."""
    pixels = image.astype(np.float32)
    detail = pixels - cv2.GaussianBlur(pixels, (0, 0), sigma)
    energy = cv2.GaussianBlur(np.square(detail).mean(axis=2), (0, 0), 2.0 * sigma)
    gain = np.minimum(_BOOST_MAX_GAIN, _BOOST_LEVEL / (np.sqrt(energy) + _BOOST_FLOOR))
    boosted = detail * gain[:, :, None] + 128.0
    return np.asarray(np.clip(np.rint(boosted), 0, 255), dtype=np.uint8)


def _region(rect: tuple[Sequence[float], Sequence[float], float], grow: float) -> _Region:
    """A :class:`_Region` from an OpenCV rotated rectangle, grown by ``grow`` on every side."""
    (cx, cy), (rw, rh), angle = rect
    theta = math.radians(angle)
    ux, uy = math.cos(theta), math.sin(theta)
    if rh > rw:
        ux, uy, rw, rh = -uy, ux, rh, rw
    if rw < 1.3 * rh and abs(uy) > abs(ux):
        # Nearly square (a single glyph): read it level rather than on its side.
        ux, uy, rw, rh = -uy, ux, rh, rw
    if ux < 0 or (ux == 0 and uy > 0):
        ux, uy = -ux, -uy
    return _Region(
        centre=(float(cx), float(cy)),
        along=(ux, uy),
        length=float(rw + 2 * grow),
        thickness=float(rh + 2 * grow),
        grow=grow,
    )


def _bounds(corners: npt.NDArray[np.float64], width: int, height: int) -> tuple[int, int, int, int]:
    """``x0, y0, x1, y1`` of the pixels the corners enclose, clipped to the image (never empty)."""
    x0 = int(np.clip(math.floor(corners[:, 0].min()), 0, width - 1))
    y0 = int(np.clip(math.floor(corners[:, 1].min()), 0, height - 1))
    x1 = int(np.clip(math.ceil(corners[:, 0].max()) + 1, x0 + 1, width))
    y1 = int(np.clip(math.ceil(corners[:, 1].max()) + 1, y0 + 1, height))
    return x0, y0, x1, y1


def _disc(radius: int) -> npt.NDArray[np.uint8]:
    """An elliptic structuring element of the given radius."""
    size = (2 * radius + 1, 2 * radius + 1)
    return np.asarray(cv2.getStructuringElement(cv2.MORPH_ELLIPSE, size), dtype=np.uint8)


def _merge(entries: list[tuple[_Region, bool]]) -> list[_Region]:
    """Groups of regions that touch and are of similar thickness, with at least one member
    flagged (not yet read as text), each as one rotated region around all their corners."""
    regions = [region for region, _ in entries]
    failed = [flag for _, flag in entries]
    count = len(regions)
    if count < 2:
        return []
    links = []
    for a in range(count):
        for b in range(a + 1, count):
            ra, rb = regions[a], regions[b]
            thin, thick = sorted((ra.thickness, rb.thickness))
            if thick > 2.5 * thin:
                continue
            gap = np.subtract(rb.centre, ra.centre)
            distance = float(np.linalg.norm(gap))
            if distance == 0.0:
                links.append((a, b))
                continue
            d = gap / distance
            if distance - _extent(ra, d) - _extent(rb, d) <= 0.3 * thick:
                links.append((a, b))
    found = []
    for members in _linked(count, links):
        if len(members) < 2 or not any(failed[k] for k in members):
            continue
        points = np.concatenate([regions[k].corners() for k in members]).astype(np.float32)
        found.append(_region(cv2.minAreaRect(points), 0.0))
    return found


def _linked(count: int, links: Iterable[tuple[int, int]]) -> list[list[int]]:
    """The groups of ``0 .. count - 1`` that ``links`` join (union-find), each in ascending
    order, ordered by their first member."""
    parent = list(range(count))

    def root(k: int) -> int:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    for a, b in links:
        parent[root(b)] = root(a)
    groups: dict[int, list[int]] = {}
    for k in range(count):
        groups.setdefault(root(k), []).append(k)
    return list(groups.values())


def _points_region(xs: npt.NDArray[np.intp], ys: npt.NDArray[np.intp]) -> tuple[_Region, float]:
    """The minimum-area rotated box around pixel coordinates, grown by 15 % of its short side
    (at least 2 px) so the recognizer sees some paper around the glyphs; and that short side."""
    rect = cv2.minAreaRect(np.column_stack([xs, ys]).astype(np.float32))
    short = float(min(rect[1]))
    return _region(rect, max(2.0, 0.15 * short)), short


def _extent(region: _Region, direction: npt.NDArray[np.float64]) -> float:
    """Half the region's width along a unit direction."""
    ux, uy = region.along
    along = abs(ux * direction[0] + uy * direction[1])
    across = abs(-uy * direction[0] + ux * direction[1])
    return float(region.length / 2 * along + region.thickness / 2 * across)


def _overlap(region: _Region, others: list[_Region], size: tuple[int, int]) -> float:
    """Fraction of ``region``'s box covered by the boxes of ``others`` (all in the pixels of
    a working image of ``size``)."""
    if not others:
        return 0.0
    covered = np.zeros(size, np.uint8)
    cv2.fillPoly(covered, [np.round(r.corners()).astype(np.int32) for r in others], 1)
    own = np.zeros(size, np.uint8)
    cv2.fillPoly(own, [np.round(region.corners()).astype(np.int32)], 1)
    area = np.count_nonzero(own)
    return float(np.count_nonzero(own & covered)) / area if area else 1.0


def _scale(region: _Region, sx: float, sy: float) -> _Region:
    """The region in another image's pixels (scaled by ``sx``, ``sy``)."""
    ux, uy = region.along
    vx, vy = -uy, ux
    along = np.array([ux * sx, uy * sy])
    across = np.array([vx * sx, vy * sy])
    length = region.length * float(np.linalg.norm(along))
    thickness = region.thickness * float(np.linalg.norm(across))
    direction = along / np.linalg.norm(along)
    return _Region(
        centre=(region.centre[0] * sx, region.centre[1] * sy),
        along=(float(direction[0]), float(direction[1])),
        length=length,
        thickness=thickness,
        grow=region.grow * math.sqrt(sx * sy),
    )


@dataclass(frozen=True)
class _Glyphs:
    """The connected regions (8-connected) of a binary map, in OpenCV's layout: ``labels``
    (0 = background), ``stats`` (x, y, width, height, area per label) and ``centres``."""

    labels: npt.NDArray[np.int32]
    stats: npt.NDArray[np.int32]
    centres: npt.NDArray[np.float64]


def _glyphs(binary: npt.NDArray[np.uint8]) -> _Glyphs:
    _, labels, stats, centres = cv2.connectedComponentsWithStats(binary, connectivity=8)
    return _Glyphs(
        np.asarray(labels, np.int32), np.asarray(stats, np.int32), np.asarray(centres, np.float64)
    )


def _on_line(glyphs: npt.NDArray[np.bool_], along: tuple[float, float]) -> npt.NDArray[np.bool_]:
    """The connected regions of ``glyphs`` whose centres lie on the line through the rest (in
    direction ``along``): within ``_ON_LINE`` glyph sizes of the weighted median across the
    line, each region weighing its area up to the typical region's. Background edges that the
    segmenter marked beside a line of text, and that joined its group, lie off it."""
    count, found, stats, centres = cv2.connectedComponentsWithStats(
        glyphs.astype(np.uint8), connectivity=8
    )
    if count <= 2:
        return glyphs
    sizes, areas, _ = _part_sizes(stats)
    # Each part weighs its area up to the typical part's (the area-weighted median): one large
    # blob of background (a row of medal ribbons above a caption) does not pull the line's
    # centre and glyph size to itself.
    areas = np.minimum(areas, _weighted_median(areas, areas))
    size = _weighted_median(sizes.astype(np.float64), areas)
    offsets = centres[1:] @ np.array([-along[1], along[0]])
    centre = _weighted_median(offsets, areas)
    on = np.concatenate([[False], np.abs(offsets - centre) <= _ON_LINE * size])
    return np.asarray(on[found], np.bool_)


def _joined_or_centred(
    weak: npt.NDArray[np.bool_], strong: npt.NDArray[np.bool_], lines: list[_Region]
) -> npt.NDArray[np.bool_]:
    """The connected regions (8-connected) of ``weak`` that touch ``strong``, or whose centre
    lies on one of ``lines``: within ``_CENTRED`` of its thickness across it, and between its
    ends. A letter the segmenter was less sure of sits on its line; a piece of background edge
    inside the line's box mostly does not."""
    count, labels, _, centres = cv2.connectedComponentsWithStats(
        weak.astype(np.uint8), connectivity=8
    )
    if count <= 1:
        return weak
    keep = np.zeros(count, np.bool_)
    keep[np.unique(labels[weak & strong])] = True
    for line in lines:
        along, across = _axis_offsets(line, centres)
        keep |= (np.abs(across) <= _CENTRED * line.thickness) & (np.abs(along) <= line.length / 2)
    keep[0] = False
    return np.asarray(keep[labels], np.bool_)


def _touching(ink: npt.NDArray[np.bool_], allowed: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
    """The connected regions (8-connected) of ``ink`` that reach into ``allowed``, whole."""
    count, labels = cv2.connectedComponents(ink.astype(np.uint8), connectivity=8)
    if count <= 1:
        return ink
    hit = np.zeros(count, np.bool_)
    hit[np.unique(labels[ink & allowed])] = True
    hit[0] = False
    return np.asarray(hit[labels], np.bool_)


def _weighted_median(values: npt.NDArray[np.float64], weights: npt.NDArray[np.float64]) -> float:
    order = np.argsort(values)
    cumulative = np.cumsum(weights[order])
    return float(values[order][np.searchsorted(cumulative, cumulative[-1] / 2)])


def _glyph_line(region: _Region) -> _Region:
    """The box of the glyphs of a DBNet region: its unclipped box is about twice the glyph
    height thick, and as much longer."""
    glyph = region.thickness / 2
    return _Region(region.centre, region.along, max(glyph, region.length - glyph), glyph, 0.0)


def _part_sizes(
    stats: npt.ArrayLike,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], float]:
    """Of the connected parts in ``stats`` (OpenCV's, background first): each part's size (max
    of width and height), its area, and their area-weighted median size."""
    parts = np.asarray(stats, np.int64)[1:]
    sizes = np.maximum(parts[:, cv2.CC_STAT_WIDTH], parts[:, cv2.CC_STAT_HEIGHT])
    areas = parts[:, cv2.CC_STAT_AREA].astype(np.float64)
    return sizes, areas, _weighted_median(sizes.astype(np.float64), areas)


def _glyph_sized(mask: npt.NDArray[np.bool_], factor: float) -> npt.NDArray[np.bool_]:
    """The connected parts of ``mask`` no larger (max of width and height) than ``factor``
    times their area-weighted median size (the size of the parts that hold most of the
    ink); all of it when it has fewer than two parts."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8))
    if count <= 2:
        return mask
    sizes, _, typical = _part_sizes(stats)
    small = np.concatenate([[False], sizes <= factor * typical])
    return np.asarray(small[labels] & mask, dtype=np.bool_)


def _continues(region: _Region, line: _Region) -> bool:
    """Whether segmented ``region`` continues ``line``: within ``_ALONG_ANGLE`` of its
    direction, with ``line``'s centre inside ``region``'s box, and reaching at least a line
    thickness (``region``'s) beyond it: a group no longer than the line adds nothing to it but
    what touched it."""
    cos = abs(float(np.dot(region.along, line.along)))
    if cos < math.cos(_ALONG_ANGLE) or line.length + region.thickness > region.length:
        return False
    along, across = (abs(float(v)) for v in _axis_offsets(region, line.centre))
    return along <= region.length / 2 and across <= region.thickness / 2


def _axis_offsets(region: _Region, points: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Signed offsets of ``points`` (x, y; one or many) from ``region``'s centre, along its
    direction and across it."""
    along = np.asarray(region.along)
    offsets = np.subtract(points, region.centre)
    return offsets @ along, offsets @ np.array([-along[1], along[0]])


def _near_end(region: _Region, point: tuple[int, int], heights: float) -> bool:
    """Whether ``point`` lies beyond an end of ``region``, within ``heights`` line heights."""
    along, across = (abs(float(v)) for v in _axis_offsets(region, point))
    half = region.length / 2
    return half <= along <= half + heights * region.thickness and across <= region.thickness / 2


def _filled(blob: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """``blob`` with the holes inside its outer outline filled."""
    contours, _ = cv2.findContours(blob, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    filled = np.zeros_like(blob)
    cv2.drawContours(filled, contours, -1, 1, thickness=cv2.FILLED)
    return filled


def _is_circle(blob: npt.NDArray[np.uint8]) -> bool:
    """Whether ``blob`` (one region) is a ring: its convex hull is round and about the disc of
    its box, and the region fills little of it (a "©", even with a gap in its outline)."""
    height, width = blob.shape
    if not 0.75 <= width / height <= 1.33 or min(width, height) < 8:
        return False
    points = cv2.findNonZero(blob)
    hull = cv2.convexHull(points)
    hull_area = float(cv2.contourArea(hull))
    _, radius = cv2.minEnclosingCircle(hull)
    if hull_area <= 0.0:
        return False
    round_hull = hull_area / (math.pi * radius**2) >= 0.75
    disc = 0.8 <= hull_area / (math.pi * width * height / 4) <= 1.1
    return bool(round_hull and disc and np.count_nonzero(blob) / hull_area <= 0.8)


def _rec_crop(image: Image, region: _Region) -> FloatArray:
    """The region cut out upright at height 48, as CHW float32 BGR in [-1, 1], padded with 0
    to a multiple of 64 px wide."""
    width = int(
        min(
            _REC_MAX_WIDTH,
            max(_REC_HEIGHT // 2, round(_REC_HEIGHT * region.length / max(region.thickness, 1.0))),
        )
    )
    corners = region.corners().astype(np.float32)
    target = np.array([[0, 0], [width, 0], [width, _REC_HEIGHT]], np.float32)
    warp = cv2.getAffineTransform(corners[:3], target)
    crop = cv2.warpAffine(
        image, warp, (width, _REC_HEIGHT), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    padded = np.zeros(
        (3, _REC_HEIGHT, math.ceil(width / _REC_WIDTH_STEP) * _REC_WIDTH_STEP), np.float32
    )
    padded[:, :, :width] = (crop[:, :, ::-1].astype(np.float32) / 127.5 - 1.0).transpose(2, 0, 1)
    return padded
