"""Inpainting: fill masked regions (text, caller-masked objects) so that the seams do not show.

Methods (``InpaintConfig.method``):

- ``patch`` (default): our own coarse-to-fine synthesis in torch, on the configured device.
  Structure: a smooth fill (push-pull pyramid with Jacobi relaxation of Laplace's equation,
  then conjugate-gradient steps towards the biharmonic, thin-plate solution, which continues
  gradients and shading across the hole). Texture: multi-scale PatchMatch (random init,
  jump-flood propagation, random search; vectorised with gathers, compared on the patches'
  leading principal components) with similarity-weighted voting; the matched sources' detail
  (what a blur does not explain) is added onto the smooth fill with gain ``texture``. The work
  is bounded to a crop around the mask's bounding box, the smooth solver touches only the
  hole's pixels, and the pyramid is only as deep as the hole is thick. Thin holes on a
  textured background (``InpaintConfig.thin``, ``thin_texture``) are filled instead by
  OpenCV's frequency-selective reconstruction (``cv2.xphoto.inpaint``, ``INPAINT_FSR_FAST``,
  from ``opencv-contrib-python-headless``; on the CPU), which carries a photo's texture and
  edges across a stroke-wide gap with less error (docs/models.md, "Inpainting: patch").
- ``telea`` / ``ns``: OpenCV's fast-marching (Telea 2004) and Navier-Stokes (Bertalmio et al.
  2001) fills, kept as baselines.
- ``torchscript``: a user-supplied TorchScript model, LaMa-style: ``forward(image, mask)`` with
  ``image`` float32 ``[B, 3, H, W]`` in ``[0, 1]`` (hole pixels zeroed), ``mask`` float32
  ``[B, 1, H, W]`` (1 = fill), returning float32 ``[B, 3, H, W]``. Loaded once from
  ``InpaintConfig.model``; ``H`` and ``W`` are padded to a multiple of ``pad_multiple``.

Every method first grows the mask (255 = remove) by ``InpaintConfig.dilate`` px, so the fill
starts from clean pixels rather than from the antialiased fringe of what is being removed, and
then composes the result so that only pixels inside the grown mask can differ from the input:
everything outside is byte-identical, which the quality gate checks
(``processors.quality.measure_edits`` uses the same :func:`dilate_mask`).

Text masks from ``processors.text.TextDetector`` are already grown over the glyphs' outline,
shadow and antialiasing (``TextDetectorConfig.dilation``); growing them again only fills clean
pixels (about 0.8 dB of removal PSNR lost on the quality corpus). :func:`edit_region` builds
what an edit should fill, the text mask as it is and the caller's object mask grown, for an
inpainter with ``dilate=0``; the pipeline's inpaint stage uses it, and ``pixelgate
remove-text`` fills the text mask with ``dilate=0`` too.

Errors: bad inputs and configs raise ``ValueError`` (``TypeError`` for a non-array);
a TorchScript model that breaks its contract raises :class:`InpaintModelError`.
"""

from __future__ import annotations

import hashlib
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F  # noqa: N812 - the conventional name

from processors.tensors import Image, Mask, check_image, check_mask

__all__ = [
    "DEFAULT_DILATE",
    "InpaintConfig",
    "InpaintModelError",
    "Inpainter",
    "box_around",
    "dilate_mask",
    "edit_region",
    "load_torchscript_inpainter",
    "texture_level",
    "trim_text_mask",
]

DEFAULT_DILATE = 3
"""Pixels a mask is grown by before filling (and before measuring what lies outside it)."""

Method = Literal["patch", "telea", "ns", "torchscript"]

_FLAGS = {"telea": cv2.INPAINT_TELEA, "ns": cv2.INPAINT_NS}
_METHODS = ("patch", "telea", "ns", "torchscript")
_MAX_LEVELS = 6
"""Deepest pyramid the patch method builds (a 64x coarser level is plenty for any hole)."""
_PCA_DIMS = 16
"""Principal components of the patches that PatchMatch compares."""
_PCA_SAMPLE = 4096
"""Known patches sampled to find those components."""
_ANCHOR_FLOOR = 0.05
"""Least vote weight of a patch with no known pixels (votes scale with the known share)."""
_BIHARMONIC = 200
"""Most conjugate-gradient steps that take the membrane fill towards the biharmonic one."""
_CG_TOLERANCE = 1e-4
"""The solver stops once the squared residual has shrunk by this factor."""
_TRIM_PASSES = 4
"""Most px :func:`trim_text_mask` peels off a text mask's edge (it is grown by about 3-5)."""
_TRIM_GAIN = 2.0
"""A pixel is peeled when it is within this many times the local texture level of a known
neighbour (the level is what a clean pixel differs from its nearest known neighbours by)."""
_TRIM_FLOOR = 0.5
"""Least peel threshold, in levels: on a flat background only an exact match is peeled."""
_TRIM_WINDOW = 9
"""Side of the window the texture level is averaged over (reaches ``_TRIM_PASSES`` px in)."""
_NEIGHBOURS = tuple((dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0))
_SIDES = (
    ((-1, -1), (-1, 0), (-1, 1)),
    ((1, -1), (1, 0), (1, 1)),
    ((-1, -1), (0, -1), (1, -1)),
    ((-1, 1), (0, 1), (1, 1)),
)
"""The four one-sided neighbourhoods: a pixel on a mask's straight edge has one of them known."""


_jit_load: Callable[..., Any] = torch.jit.load
"""torch ships ``jit.load`` unannotated; this typed handle keeps strict mypy honest."""


class InpaintModelError(ValueError):
    """A TorchScript inpainting model returned something that breaks the contract
    (wrong type, shape or dtype, or non-finite values). Not retriable: the model is wrong."""

    retriable = False


@dataclass(frozen=True, kw_only=True)
class InpaintConfig:
    """Knobs of the inpainter."""

    method: Method = "patch"
    """``patch`` (our patch synthesis), ``telea`` / ``ns`` (OpenCV baselines) or
    ``torchscript`` (a user-supplied model at ``model``)."""
    model: Path | None = None
    """TorchScript file for ``method="torchscript"``; must be None for the other methods."""
    device: str = "cpu"
    """torch device for ``patch`` and ``torchscript``: ``cpu``, ``cuda`` or ``cuda:N``."""
    dilate: int = DEFAULT_DILATE
    """Pixels the mask is grown by (elliptical element) before filling; 0 keeps it as is."""
    radius: int = 5
    """Neighbourhood radius, in px, that ``telea`` / ``ns`` estimate each filled pixel from."""
    patch_size: int = 7
    """Side of the square patches ``patch`` matches and votes with (odd, >= 3)."""
    iterations: int = 2
    """PatchMatch sweeps (propagation + random search) per EM step of ``patch``."""
    em_steps: int = 2
    """Match-then-vote rounds per pyramid level of ``patch`` (the finest level gets one less)."""
    margin: int = 48
    """Context, in px, kept around the grown mask's bounding box for ``patch`` to copy from
    (at least this much; more for big holes)."""
    texture: float = 0.6
    """``patch``: gain of the patch-synthesised detail added onto the membrane fill in the
    hole. 1 adds the matched texture at full strength; lower trades texture for a smoother
    (higher-PSNR, blurrier) fill; 0 is the membrane alone (exact on gradients, flat on
    texture)."""
    seed: int = 0
    """Seed of ``patch``'s random search; the same inputs and seed give the same output."""
    thin: float = 6.0
    """``patch``: holes (connected parts of the grown mask) no more than this many px from
    their edge to their middle, on a textured background (their edge's median
    :func:`texture_level` at least ``thin_texture``), are filled by OpenCV's
    frequency-selective reconstruction (``cv2.xphoto.inpaint``, ``INPAINT_FSR_FAST``, on the
    CPU) instead; 0 = never. It models the known pixels around each block as a sparse sum of
    Fourier bases, which carries a photo's texture and edges across a stroke-wide hole with
    less error than our patch synthesis (whose texture is matched, not aligned). On wide holes
    (a promo label) and smooth backgrounds (the membrane fill is exact on gradients) ours is
    better, so they keep it."""
    thin_texture: float = 1.0
    """Least median texture level (levels) around a thin hole for ``thin`` to apply: 0 on a
    flat or gradient render."""
    pad_multiple: int = 8
    """``torchscript``: H and W are padded (edge-replicated) to a multiple of this."""

    def __post_init__(self) -> None:
        if self.method not in _METHODS:
            raise ValueError(
                f"InpaintConfig: method must be one of {list(_METHODS)}, got {self.method!r}."
            )
        if self.method == "torchscript" and self.model is None:
            raise ValueError(
                "InpaintConfig: method='torchscript' needs model=Path('...pt') (a TorchScript "
                "file saved with torch.jit.save)."
            )
        if self.method != "torchscript" and self.model is not None:
            raise ValueError(
                f"InpaintConfig: model is only used by method='torchscript', got method="
                f"{self.method!r} with model={self.model}."
            )
        try:
            torch.device(self.device)
        except RuntimeError as error:
            raise ValueError(
                f"InpaintConfig: device must be a torch device like 'cpu' or 'cuda:0', got "
                f"{self.device!r}."
            ) from error
        if self.radius < 1:
            raise ValueError(f"InpaintConfig: radius must be >= 1 px, got {self.radius}.")
        if self.dilate < 0:
            raise ValueError(f"InpaintConfig: dilate must be >= 0 px, got {self.dilate}.")
        if self.patch_size < 3 or self.patch_size % 2 == 0:
            raise ValueError(
                f"InpaintConfig: patch_size must be odd and >= 3, got {self.patch_size}."
            )
        if self.iterations < 1:
            raise ValueError(f"InpaintConfig: iterations must be >= 1, got {self.iterations}.")
        if self.em_steps < 1:
            raise ValueError(f"InpaintConfig: em_steps must be >= 1, got {self.em_steps}.")
        if not 0.0 <= self.texture <= 1.0:
            raise ValueError(f"InpaintConfig: texture must be in [0, 1], got {self.texture}.")
        if self.margin < self.patch_size:
            raise ValueError(
                f"InpaintConfig: margin must be >= patch_size ({self.patch_size}) px, got "
                f"{self.margin}."
            )
        if self.thin < 0:
            raise ValueError(f"InpaintConfig: thin must be >= 0 px, got {self.thin}.")
        if self.thin_texture < 0:
            raise ValueError(
                f"InpaintConfig: thin_texture must be >= 0 levels, got {self.thin_texture}."
            )
        if self.method == "patch" and self.thin > 0 and not hasattr(cv2, "xphoto"):
            raise ValueError(
                "InpaintConfig: thin > 0 needs OpenCV's contrib modules (cv2.xphoto): install "
                "opencv-contrib-python-headless in place of opencv-python-headless, or set "
                "thin=0."
            )
        if self.pad_multiple < 1:
            raise ValueError(f"InpaintConfig: pad_multiple must be >= 1, got {self.pad_multiple}.")


def dilate_mask(mask: Mask, pixels: int) -> Mask:
    """``mask`` (HW, 255 = selected) grown by ``pixels`` with an elliptical element.

    The one definition of "the dilated mask" shared by the inpainter and the quality gate.
    """
    if pixels < 0:
        raise ValueError(f"dilate_mask: pixels must be >= 0, got {pixels}.")
    binary = np.where(mask > 127, np.uint8(255), np.uint8(0)).astype(np.uint8)
    if pixels == 0:
        return binary
    side = 2 * pixels + 1
    element = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (side, side))
    return np.asarray(cv2.dilate(binary, element), dtype=np.uint8)


def edit_region(
    shape: tuple[int, int],
    text: Mask | None = None,
    objects: Mask | None = None,
    dilate: int = DEFAULT_DILATE,
    image: Image | None = None,
) -> Mask:
    """The pixels an edit fills (HW uint8, 255 = fill), for an inpainter with ``dilate=0``.

    ``text`` is a text detector's mask, not grown again (it already covers the outline, shadow
    and antialiasing) and, when the ``image`` it was found in is given, trimmed of the clean
    pixels on its edge (:func:`trim_text_mask`); ``objects`` is a caller's object mask, grown
    by ``dilate`` px because a hand-drawn or segmented mask rarely covers the object's soft
    edge. Either may be None.
    """
    region = np.zeros(shape, dtype=np.uint8)
    if text is not None:
        text = check_mask(text, shape, "text")
        if image is not None:
            text = trim_text_mask(image, text)
        region |= text
    if objects is not None:
        region |= dilate_mask(check_mask(objects, shape, "objects"), dilate)
    return region


def trim_text_mask(image: Image, mask: Mask) -> Mask:
    """``mask`` less the clean background pixels on its edge: a new HW uint8 mask (255 = fill).

    A text detector grows its masks a few px beyond the ink it found, so that they take in the
    antialiased fringe and the shadow; on thin text that growth also joins the glyphs into one
    solid band, and filling the band (rather than the strokes) loses the background between
    them. This peels the band back, one px ring per pass for up to ``_TRIM_PASSES`` passes: a
    mask pixel next to a known (unmasked) pixel is dropped from the mask when its colour is
    within ``_TRIM_GAIN`` times the local texture level of some known 8-neighbour (the largest
    channel difference). The texture level is what known pixels near it differ from their
    nearest known neighbours by, on one side (the side a pixel on a mask's edge has known): on a
    flat render it is 0, so only exact matches are peeled; on a busy photo it follows the
    grain. Ink, outlines and shadows differ from the background beside them by more, so peeling
    stops at them; a faint fringe pixel may be peeled, which costs less than filling clean
    pixels. Only the edge is peeled (a pixel is judged against its unmasked neighbours, never
    against the fill), so the mask never grows and its inside is kept.

    On the seeded quality corpus this lifts removal PSNR in the text region from 33.84 to
    34.55 dB and SSIM from 0.9841 to 0.9868 (``bench/quality.py``; see docs/models.md). It is
    hand-written because no library peels a mask by local colour support; it is vectorised
    over the mask's bounding box with numpy and OpenCV's box filter (about 0.15 s per 0.25 MP
    image with text on 2 CPU cores).
    """
    checked = check_image(image, "image")
    binary = check_mask(mask, checked.shape[:2], "mask") > 127
    if not binary.any():
        return np.zeros(binary.shape, np.uint8)
    box = box_around(binary, _TRIM_PASSES + _TRIM_WINDOW // 2 + 1)
    crop = checked[box].astype(np.int16)
    masked = binary[box].copy()
    threshold = np.maximum(_TRIM_FLOOR, _TRIM_GAIN * texture_level(crop, ~masked))
    for _ in range(_TRIM_PASSES):
        known = ~masked
        closest = np.full(masked.shape, np.inf, np.float32)
        for dy, dx in _NEIGHBOURS:
            difference = np.abs(crop - _neighbour(crop, dy, dx, 0)).max(axis=2)
            closest = np.where(_neighbour(known, dy, dx, False), np.minimum(closest, difference),
                               closest)
        peeled = masked & (closest <= threshold)
        if not peeled.any():
            break
        masked &= ~peeled
    out = binary.copy()
    out[box] = masked
    return np.where(out, np.uint8(255), np.uint8(0)).astype(np.uint8)


def box_around(mask: npt.NDArray[np.bool_], reach: int) -> tuple[slice, slice]:
    """Rows and columns of ``mask``'s bounding box grown by ``reach`` px on every side, clipped
    to the image: ``array[box]`` is the crop that work on the mask needs. ``mask`` must have a
    selected pixel."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    height, width = mask.shape
    return (
        slice(max(int(rows[0]) - reach, 0), min(int(rows[-1]) + reach + 1, height)),
        slice(max(int(cols[0]) - reach, 0), min(int(cols[-1]) + reach + 1, width)),
    )


def texture_level(
    crop: npt.NDArray[np.int16], known: npt.NDArray[np.bool_]
) -> npt.NDArray[np.float32]:
    """Per pixel, the mean over the known pixels in a ``_TRIM_WINDOW`` square around it of how
    far each is from its closest neighbour on one side (averaged over the sides all known): the
    colour difference that the local grain explains (0 on a flat render). Shared with
    :mod:`processors.unblend`, which judges its ink fit against it."""
    total = np.zeros(known.shape, np.float32)
    sides = np.zeros(known.shape, np.float32)
    for side in _SIDES:
        closest = np.full(known.shape, np.inf, np.float32)
        whole = known.copy()
        for dy, dx in side:
            whole &= _neighbour(known, dy, dx, False)
            closest = np.minimum(closest, np.abs(crop - _neighbour(crop, dy, dx, 0)).max(axis=2))
        total += np.where(whole, closest, 0.0)
        sides += whole
    level = total / np.maximum(sides, 1.0)
    valid = (sides > 0).astype(np.float32)
    window = (_TRIM_WINDOW, _TRIM_WINDOW)
    summed = cv2.boxFilter(level * valid, -1, window, normalize=False)
    count = cv2.boxFilter(valid, -1, window, normalize=False)
    return np.asarray(summed / np.maximum(count, 1e-3), dtype=np.float32)


def _neighbour(values: npt.NDArray[Any], dy: int, dx: int, fill: Any) -> npt.NDArray[Any]:
    """``values[y + dy, x + dx]`` at each ``(y, x)`` (dy, dx in -1..1), ``fill`` beyond the edge."""
    pad = ((1, 1), (1, 1)) + ((0, 0),) * (values.ndim - 2)
    padded = np.pad(values, pad, constant_values=fill)
    height, width = values.shape[:2]
    return padded[1 + dy : 1 + dy + height, 1 + dx : 1 + dx + width]


def load_torchscript_inpainter(
    path: Path, device: str = "cpu"
) -> tuple[torch.jit.ScriptModule, str]:
    """Load a TorchScript inpainting model once, in eval mode, on ``device``.

    Returns the module and its version, ``inpaint-torchscript-<first 12 hex of sha256>``.
    """
    file = Path(path)
    if not file.is_file():
        raise ValueError(
            f"load_torchscript_inpainter: no model file at {file}; pass the path of a module "
            "saved with torch.jit.save."
        )
    digest = hashlib.sha256(file.read_bytes()).hexdigest()
    with warnings.catch_warnings():
        # torch 2.9+ marks TorchScript deprecated in favour of torch.export; TorchScript files
        # are still what LaMa-style exports ship as, and what this backend's contract names.
        warnings.filterwarnings("ignore", r".*torch\.jit.*deprecated", DeprecationWarning)
        module: torch.jit.ScriptModule = _jit_load(str(file), map_location=torch.device(device))
    module.eval()
    return module, f"inpaint-torchscript-{digest[:12]}"


class Inpainter:
    """Fill masked regions, changing nothing outside the grown mask."""

    version: str = "inpaint-patch-2"
    """Goes into result events; names the method (``inpaint-telea-1``, ``inpaint-ns-1``,
    ``inpaint-torchscript-<sha256 prefix of the model file>``)."""

    def __init__(self, config: InpaintConfig | None = None) -> None:
        self.config = config if config is not None else InpaintConfig()
        self.device = torch.device(self.config.device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(
                f"Inpainter: device {self.config.device!r} was asked for but CUDA is not "
                "available; use device='cpu'."
            )
        self.model: torch.jit.ScriptModule | None = None
        if self.config.method == "torchscript" and self.config.model is not None:
            self.model, self.version = load_torchscript_inpainter(
                self.config.model, self.config.device
            )
        else:
            # patch-2: thin holes on a textured background take the frequency-selective fill.
            revision = 2 if self.config.method == "patch" and self.config.thin > 0 else 1
            self.version = f"inpaint-{self.config.method}-{revision}"

    def __call__(self, images: Sequence[Image], masks: Sequence[Mask]) -> list[Image]:
        """Inpaint each image where its mask is 255; returns new arrays, inputs are untouched."""
        if len(images) != len(masks):
            raise ValueError(
                f"Inpainter: got {len(images)} images but {len(masks)} masks; pass one HxW mask "
                "per image."
            )
        pairs = []
        for i, (image, mask) in enumerate(zip(images, masks, strict=True)):
            checked = check_image(image, f"images[{i}]")
            grown = dilate_mask(
                check_mask(mask, checked.shape[:2], f"masks[{i}]"), self.config.dilate
            )
            pairs.append((checked, grown))
        if self.config.method == "torchscript":
            filled = self._torchscript(pairs)
        else:
            filled = [self._fill_one(image, grown) for image, grown in pairs]
        return [
            _compose(image, grown, fill) for (image, grown), fill in zip(pairs, filled, strict=True)
        ]

    def _fill_one(self, image: Image, grown: Mask) -> Image:
        if not grown.any():
            return image
        if self.config.method == "patch":
            filled = _patch_inpaint(image, grown, self.config, self.device)
            thin = _thin_holes(image, grown, self.config)
            if thin.any():
                _fill_thin(filled, image, grown, thin)
            return filled
        return np.asarray(
            cv2.inpaint(image, grown, float(self.config.radius), _FLAGS[self.config.method]),
            dtype=np.uint8,
        )

    def _torchscript(self, pairs: list[tuple[Image, Mask]]) -> list[Image]:
        """Run the model once per group of same-sized images."""
        out: list[Image] = [image for image, _ in pairs]
        groups: dict[tuple[int, int], list[int]] = {}
        for i, (image, grown) in enumerate(pairs):
            if grown.any():
                groups.setdefault((image.shape[0], image.shape[1]), []).append(i)
        for indices in groups.values():
            filled = self._run_model([pairs[i][0] for i in indices], [pairs[i][1] for i in indices])
            for i, result in zip(indices, filled, strict=True):
                out[i] = result
        return out

    def _run_model(self, images: list[Image], masks: list[Mask]) -> list[Image]:
        if self.model is None:  # pragma: no cover - __init__ loads it for this method
            raise ValueError("Inpainter: method='torchscript' but no model is loaded.")
        height, width = images[0].shape[:2]
        multiple = self.config.pad_multiple
        pad_h, pad_w = (-height) % multiple, (-width) % multiple
        batch = torch.from_numpy(np.stack(images).transpose(0, 3, 1, 2).copy())
        hole = torch.from_numpy(np.stack(masks)[:, None] > 0)
        image = batch.to(self.device).float().div_(255.0)
        mask = hole.to(self.device).float()
        image = image * (1.0 - mask)
        if pad_h or pad_w:
            image = F.pad(image, (0, pad_w, 0, pad_h), mode="replicate")
            mask = F.pad(mask, (0, pad_w, 0, pad_h), value=0.0)
        with torch.inference_mode():
            result = self.model(image, mask)
        expected = (len(images), 3, height + pad_h, width + pad_w)
        name = f"Inpainter: TorchScript model {self.config.model}"
        if not isinstance(result, torch.Tensor):
            raise InpaintModelError(
                f"{name} returned {type(result).__name__}; expected a float32 tensor of shape "
                f"{expected} (B, 3, H, W)."
            )
        if tuple(result.shape) != expected:
            raise InpaintModelError(
                f"{name} returned shape {tuple(result.shape)}; expected {expected} (B, 3, H, W), "
                "the input image's shape."
            )
        if not result.is_floating_point():
            raise InpaintModelError(
                f"{name} returned dtype {result.dtype}; expected float32 in [0, 1]."
            )
        if not bool(torch.isfinite(result).all()):
            raise InpaintModelError(f"{name} returned NaN or infinite values.")
        result = result[:, :, :height, :width].float().clamp(0.0, 1.0)
        array = result.mul(255.0).round().to(torch.uint8).cpu().numpy().transpose(0, 2, 3, 1)
        return [np.ascontiguousarray(a) for a in array]


def _compose(image: Image, grown: Mask, filled: Image) -> Image:
    """``image`` with the pixels inside ``grown`` taken from ``filled``: a new array."""
    out = image.copy()
    inside = grown > 0
    out[inside] = filled[inside]
    return out


# -- the patch method ---------------------------------------------------------------------------


_FSR_MARGIN = 32
"""Known context, px, kept around the thin holes for the frequency-selective fill."""
_THIN_RING = 4
"""Px around a thin hole whose texture level says whether its background is textured."""


def _thin_holes(image: Image, grown: Mask, config: InpaintConfig) -> npt.NDArray[np.bool_]:
    """The pixels of the holes in ``grown`` that ``config.thin`` sends to the FSR fill."""
    selected = np.zeros(grown.shape, dtype=bool)
    if config.thin <= 0:
        return selected
    hole = (grown > 0).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(hole)
    depth = cv2.distanceTransform(hole, cv2.DIST_L2, 3)
    reach = _THIN_RING + 1
    windows = []
    for label in range(1, count):
        x, y, w, h = (int(v) for v in stats[label, :4])
        window = (slice(max(0, y - reach), y + h + reach), slice(max(0, x - reach), x + w + reach))
        part = labels[window] == label
        if float(depth[window][part].max()) <= config.thin:
            windows.append((window, part))
    if not windows:
        return selected
    # The texture level once, over the box all the holes' rings lie in.
    box = box_around(hole > 0, reach + _TRIM_WINDOW // 2)
    level = np.zeros(grown.shape, np.float32)
    level[box] = texture_level(image[box].astype(np.int16), hole[box] == 0)
    element = np.ones((2 * _THIN_RING + 1, 2 * _THIN_RING + 1), np.uint8)
    for window, part in windows:
        ring = (cv2.dilate(part.astype(np.uint8), element) > 0) & (hole[window] == 0)
        if ring.any() and float(np.median(level[window][ring])) >= config.thin_texture:
            selected[window] |= part
    return selected


def _fill_thin(filled: Image, image: Image, grown: Mask, thin: npt.NDArray[np.bool_]) -> None:
    """Put into ``filled`` (in place) the pixels of ``thin`` as OpenCV's frequency-selective
    reconstruction fills the holes of ``grown`` in ``image``, on a crop reaching
    ``_FSR_MARGIN`` px beyond them."""
    box = box_around(thin, _FSR_MARGIN)
    crop = np.ascontiguousarray(image[box])
    known = np.where(grown[box] > 0, np.uint8(0), np.uint8(255)).astype(np.uint8)
    reconstructed = np.zeros_like(crop)
    cv2.xphoto.inpaint(crop, known, reconstructed, cv2.xphoto.INPAINT_FSR_FAST)
    inside = thin[box]
    filled[box][inside] = reconstructed[inside]


def _patch_inpaint(image: Image, grown: Mask, config: InpaintConfig, device: torch.device) -> Image:
    """Fill ``grown`` in ``image`` by membrane fill + multi-scale PatchMatch, on a crop."""
    height, width = grown.shape
    rows = np.flatnonzero(grown.any(axis=1))
    cols = np.flatnonzero(grown.any(axis=0))
    extent = max(int(rows[-1] - rows[0]), int(cols[-1] - cols[0])) + 1
    margin = max(config.margin, extent // 2)
    top, bottom = max(0, int(rows[0]) - margin), min(height, int(rows[-1]) + margin + 1)
    left, right = max(0, int(cols[0]) - margin), min(width, int(cols[-1]) + margin + 1)
    crop_hole = grown[top:bottom, left:right] > 0
    thickness = float(cv2.distanceTransform(crop_hole.astype(np.uint8), cv2.DIST_L2, 3).max())
    crop = image[top:bottom, left:right]
    x = torch.from_numpy(np.ascontiguousarray(crop.transpose(2, 0, 1))).to(device).float() / 255.0
    hole = torch.from_numpy(np.ascontiguousarray(crop_hole)).to(device)
    filled = _synthesise(x, hole, thickness, config)
    out = image.copy()
    patch = filled.clamp(0.0, 1.0).mul(255.0).round().to(torch.uint8).cpu().numpy()
    out[top:bottom, left:right] = patch.transpose(1, 2, 0)
    return out


def _synthesise(
    x: torch.Tensor, hole: torch.Tensor, thickness: float, config: InpaintConfig
) -> torch.Tensor:
    """Fill ``hole`` (HW bool) in ``x`` (3HW float): membrane fill, then coarse-to-fine
    PatchMatch with voting. Returns the whole crop (known pixels unchanged)."""
    generator = torch.Generator().manual_seed(config.seed)
    radius = config.patch_size // 2
    smooth = _membrane_fill(x, hole)
    if _BIHARMONIC > 0:
        smooth = _biharmonic_fill(smooth, hole, _BIHARMONIC)
    # As deep as needed for the hole to be about a patch thick, while a level still holds a
    # few patches of context.
    levels = 0
    while (
        levels < _MAX_LEVELS
        and thickness / 2**levels > 2 * radius
        and min(x.shape[1:]) / 2 ** (levels + 1) >= 4 * config.patch_size
    ):
        levels += 1
    images = [smooth]
    holes = [hole]
    for _ in range(levels):
        images.append(_down(images[-1]))
        holes.append(_down_mask(holes[-1]))
    nnf: torch.Tensor | None = None
    matcher: _Matcher | None = None
    for level in range(levels, -1, -1):
        current = images[level]
        matcher = _Matcher(current, holes[level], config.patch_size, generator)
        if not matcher.usable:
            nnf = None
            continue
        coarse = nnf is not None
        nnf = matcher.initial(nnf)
        if coarse:
            # Start the hole from what the coarser level's matches say, not the membrane.
            current = matcher.vote(nnf)
            matcher.update(current, nnf)
        steps = config.em_steps - 1 if level == 0 and levels > 0 else config.em_steps
        for _ in range(max(1, steps)):
            for _ in range(config.iterations):
                nnf = matcher.sweep(nnf)
            current = matcher.vote(nnf)
            matcher.update(current, nnf)
        if level > 0:
            # The finer level starts from its membrane fill; its NNF from this one's.
            nnf = _up_nnf(nnf, tuple(holes[level - 1].shape))
    if matcher is None or nnf is None or config.texture == 0.0:
        return smooth
    # Structure from the membrane, texture from the patches: the matched sources' detail
    # (what a blur of the filled crop does not explain) is voted into the hole and added on.
    detail = smooth - _blur(smooth, config.patch_size / 3.0)
    return smooth + config.texture * matcher.vote(nnf, detail)


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of a 3HW image (edges replicated)."""
    reach = max(1, math.ceil(3 * sigma))
    taps = torch.arange(-reach, reach + 1, device=x.device, dtype=x.dtype)
    kernel = torch.exp(-(taps * taps) / (2 * sigma * sigma))
    kernel = kernel / kernel.sum()
    rows = F.pad(x[None], (0, 0, reach, reach), mode="replicate")
    rows = F.conv2d(rows, kernel.view(1, 1, -1, 1).expand(3, 1, -1, 1), groups=3)
    cols = F.pad(rows, (reach, reach, 0, 0), mode="replicate")
    return F.conv2d(cols, kernel.view(1, 1, 1, -1).expand(3, 1, 1, -1), groups=3)[0]


def _biharmonic_fill(x: torch.Tensor, hole: torch.Tensor, iterations: int) -> torch.Tensor:
    """Refine the fill of ``hole`` in ``x`` (3HW, hole pre-filled) towards the biharmonic
    (thin-plate) solution: minimise the sum of squared 5-point Laplacians over the pixels whose
    Laplacian touches the hole, by conjugate gradients on the hole pixels only (sparse
    stencils, so the cost follows the hole's area, not the crop's). Unlike the membrane it
    continues gradients across the hole, not just values."""
    height, width = hole.shape
    unknown = torch.nonzero(hole.flatten()).flatten()
    interior = torch.zeros_like(hole)
    interior[1:-1, 1:-1] = True
    touched = F.max_pool2d(hole[None, None].float(), 3, stride=1, padding=1)[0, 0] > 0
    centres = torch.nonzero((touched & interior).flatten()).flatten()
    if len(unknown) == 0 or len(centres) == 0:
        return x
    steps = torch.tensor([0, -1, 1, -width, width], device=x.device)
    weights = torch.tensor([-4.0, 1.0, 1.0, 1.0, 1.0], device=x.device, dtype=x.dtype)
    # Work on the band of pixels the stencils reach, indexed compactly.
    reach = F.max_pool2d(hole[None, None].float(), 5, stride=1, padding=2)[0, 0] > 0
    band = torch.nonzero(reach.flatten()).flatten()
    lookup = torch.full((height * width,), -1, dtype=torch.long, device=x.device)
    lookup[band] = torch.arange(len(band), device=x.device)
    stencil = lookup[centres[:, None] + steps[None, :]]
    unknown = lookup[unknown]
    size = len(band)

    def gradient(values: torch.Tensor) -> torch.Tensor:
        laplacians = (values[:, stencil] * weights).sum(dim=2)
        back = torch.zeros(3, size, device=x.device, dtype=x.dtype)
        back.index_add_(1, stencil.flatten(), (laplacians[:, :, None] * weights).reshape(3, -1))
        return back[:, unknown]

    def apply(direction: torch.Tensor) -> torch.Tensor:
        values = torch.zeros(3, size, device=x.device, dtype=x.dtype)
        values[:, unknown] = direction
        return gradient(values)

    flat = x.reshape(3, -1).clone()
    current = flat[:, band]
    residual = -gradient(current)
    direction = residual.clone()
    rr = (residual * residual).sum(dim=1, keepdim=True)
    target = rr.max() * _CG_TOLERANCE
    for step in range(iterations):
        if step % 16 == 0 and bool(rr.max() <= target):
            break
        ad = apply(direction)
        alpha = rr / (direction * ad).sum(dim=1, keepdim=True).clamp_min(1e-20)
        current[:, unknown] += alpha * direction
        residual = residual - alpha * ad
        new_rr = (residual * residual).sum(dim=1, keepdim=True)
        direction = residual + new_rr / rr.clamp_min(1e-20) * direction
        rr = new_rr
    flat[:, band] = current
    return flat.reshape(x.shape)


def _down(x: torch.Tensor) -> torch.Tensor:
    """Halve a 3HW image (2x2 box average, odd sides edge-replicated)."""
    h, w = x.shape[1:]
    padded = F.pad(x[None], (0, w % 2, 0, h % 2), mode="replicate")
    return F.avg_pool2d(padded, 2)[0]


def _down_mask(hole: torch.Tensor) -> torch.Tensor:
    """Halve a HW bool hole: a coarse pixel is in the hole if any of its children is."""
    return F.max_pool2d(hole[None, None].float(), 2, ceil_mode=True)[0, 0] > 0


def _up_nnf(nnf: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """Double a (2, h, w) field of source coordinates to ``shape`` (H, W)."""
    height, width = shape[0], shape[1]
    ys = torch.arange(height, device=nnf.device)
    xs = torch.arange(width, device=nnf.device)
    coarse = nnf[:, (ys // 2)[:, None], (xs // 2)[None, :]]
    fine_y = (coarse[0] * 2 + (ys % 2)[:, None]).clamp(0, height - 1)
    fine_x = (coarse[1] * 2 + (xs % 2)[None, :]).clamp(0, width - 1)
    return torch.stack([fine_y, fine_x])


def _membrane_fill(x: torch.Tensor, hole: torch.Tensor, relax: int = 24) -> torch.Tensor:
    """Smooth fill of ``hole``: push-pull over a pyramid, then Jacobi relaxation of Laplace's
    equation at each level on the way up (a membrane: continues gradients exactly)."""
    known = (~hole).float()[None]
    values = [x * known]
    weights = [known]
    while min(values[-1].shape[1:]) > 2 and bool((weights[-1] == 0).any()):
        v, k = values[-1], weights[-1]
        h, w = v.shape[1:]
        pad = (0, w % 2, 0, h % 2)
        num = F.avg_pool2d(F.pad(v[None], pad, mode="replicate"), 2)[0]
        den = F.avg_pool2d(F.pad(k[None], pad, mode="replicate"), 2)[0]
        values.append(torch.where(den > 0, num / den.clamp_min(1e-8), torch.zeros_like(num)))
        weights.append((den > 0).float())
    coarsest, cover = values[-1], weights[-1]
    if bool((cover == 0).any()):
        total = cover.sum()
        mean = (coarsest * cover).sum(dim=(1, 2), keepdim=True) / total.clamp_min(1.0)
        fill = mean if bool(total > 0) else torch.full_like(mean, 0.5)
        coarsest = torch.where(cover > 0, coarsest, fill.expand_as(coarsest))
    result = coarsest
    for v, k in zip(reversed(values[:-1]), reversed(weights[:-1]), strict=True):
        up = F.interpolate(
            result[None], size=tuple(v.shape[1:]), mode="bilinear", align_corners=False
        )[0]
        free = k == 0
        result = torch.where(free, up, v)
        for _ in range(relax):
            p = F.pad(result[None], (1, 1, 1, 1), mode="replicate")[0]
            neighbours = (p[:, :-2, 1:-1] + p[:, 2:, 1:-1] + p[:, 1:-1, :-2] + p[:, 1:-1, 2:]) / 4
            result = torch.where(free, neighbours, v)
    return result


class _Matcher:
    """PatchMatch over one pyramid level: targets are the pixels whose patch touches the hole,
    sources the pixels whose whole patch lies in known pixels inside the crop."""

    def __init__(
        self, x: torch.Tensor, hole: torch.Tensor, patch: int, generator: torch.Generator
    ) -> None:
        self.device = x.device
        self.generator = generator
        self.radius = patch // 2
        self.hole = hole
        r = self.radius
        self.height, self.width = hole.shape
        self.padded_width = self.width + 2 * r
        holef = hole[None, None].float()
        touched = F.max_pool2d(F.pad(holef, (r, r, r, r), value=1.0), patch, stride=1)[0, 0]
        self.valid = touched == 0
        self.usable = bool(self.valid.any()) and bool(hole.any())
        near = F.max_pool2d(holef, patch, stride=1, padding=r)[0, 0] > 0
        self.targets = torch.nonzero(near.flatten()).flatten()
        self.ty = self.targets // self.width
        self.tx = self.targets % self.width
        self.sources = torch.nonzero(self.valid.flatten()).flatten()
        dy, dx = torch.meshgrid(
            torch.arange(patch, device=self.device),
            torch.arange(patch, device=self.device),
            indexing="ij",
        )
        self.offsets = (dy * self.padded_width + dx).flatten()
        self.basis: torch.Tensor | None = None
        known = F.pad((~hole)[None, None].float(), (r, r, r, r), value=0.0)
        self.anchored = F.avg_pool2d(known, patch, stride=1)[0, 0].flatten()[self.targets]
        self.update(x)
        if self.usable:
            self._project(patch)

    def update(self, x: torch.Tensor, grid: torch.Tensor | None = None) -> None:
        """Use ``x`` (with the hole's current estimate) for the next matches; with ``grid``,
        re-measure its matches against it."""
        self.x = x
        r = self.radius
        self.flat = F.pad(x[None], (r, r, r, r), mode="replicate")[0].reshape(3, -1)
        self.target_patches = self._patches(self.ty, self.tx)
        if self.basis is not None:
            self.target_codes = self._codes(self.target_patches)
        if grid is not None:
            sy, sx = grid[0].view(-1)[self.targets], grid[1].view(-1)[self.targets]
            self.cost = self._distance(sy, sx, torch.arange(len(self.targets), device=self.device))

    def _patches(self, ys: torch.Tensor, xs: torch.Tensor) -> torch.Tensor:
        """(3, N, patch²) values of the patches whose top-left padded pixel is (ys, xs)."""
        start = ys * self.padded_width + xs
        return self.flat[:, start[:, None] + self.offsets[None, :]]

    def _codes(self, patches: torch.Tensor) -> torch.Tensor:
        """(N, D) principal-component codes of (3, N, patch²) patches."""
        rows: torch.Tensor = patches.permute(1, 0, 2).reshape(patches.shape[1], -1)
        if self.basis is None:  # pragma: no cover - only called once the basis exists
            raise ValueError("_Matcher: no PCA basis yet.")
        return rows @ self.basis

    def _project(self, patch: int) -> None:
        """Match on the leading principal components of the known patches (PCA-accelerated
        PatchMatch): the source codes are computed once per level with one convolution."""
        sample = min(len(self.sources), _PCA_SAMPLE)
        sy, sx = self._random_sources(sample)
        rows = self._patches(sy, sx).permute(1, 0, 2).reshape(sample, -1)
        rows = rows - rows.mean(dim=0, keepdim=True)
        _, vectors = torch.linalg.eigh(rows.T @ rows)
        self.basis = vectors[:, -_PCA_DIMS:].contiguous()
        r = self.radius
        weight = self.basis.T.reshape(-1, 3, patch, patch)
        padded = F.pad(self.x[None], (r, r, r, r), mode="replicate")
        codes = F.conv2d(padded, weight)[0]
        self.source_codes = codes.reshape(codes.shape[0], -1).T.contiguous()
        self.target_codes = self._codes(self.target_patches)

    def _distance(self, sy: torch.Tensor, sx: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        if self.basis is None:
            diff = self._patches(sy, sx) - self.target_patches[:, idx]
            return (diff * diff).sum(dim=(0, 2))
        codes = self.source_codes[sy * self.width + sx] - self.target_codes[idx]
        return (codes * codes).sum(dim=1)

    def _random_sources(self, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        pick = torch.randint(len(self.sources), (count,), generator=self.generator)
        flat = self.sources[pick.to(self.device)]
        return flat // self.width, flat % self.width

    def initial(self, nnf: torch.Tensor | None) -> torch.Tensor:
        """A (2, N) field of source coordinates per target: from the coarser level where its
        entries are valid sources, random elsewhere; distances are cached."""
        if nnf is None:
            sy, sx = self._random_sources(len(self.targets))
        else:
            sy, sx = nnf[0][self.ty, self.tx], nnf[1][self.ty, self.tx]
            bad = ~self.valid[sy, sx]
            if bool(bad.any()):
                ry, rx = self._random_sources(int(bad.sum()))
                sy, sx = sy.clone(), sx.clone()
                sy[bad], sx[bad] = ry, rx
        field = torch.stack([sy, sx])
        self.cost = self._distance(sy, sx, torch.arange(len(self.targets), device=self.device))
        return self._grid(field)

    def _grid(self, field: torch.Tensor) -> torch.Tensor:
        """Scatter a (2, N) target field into a (2, H, W) grid (non-targets point at
        themselves, which is never a valid source for a target)."""
        ys = torch.arange(self.height, device=self.device)[:, None].expand(self.height, self.width)
        xs = torch.arange(self.width, device=self.device)[None, :].expand(self.height, self.width)
        grid = torch.stack([ys, xs]).clone()
        grid[0].view(-1)[self.targets] = field[0]
        grid[1].view(-1)[self.targets] = field[1]
        return grid

    def _try(self, grid: torch.Tensor, cy: torch.Tensor, cx: torch.Tensor) -> None:
        """Adopt candidate sources (one per target) that are valid and closer."""
        inside = (cy >= 0) & (cy < self.height) & (cx >= 0) & (cx < self.width)
        cy, cx = cy.clamp(0, self.height - 1), cx.clamp(0, self.width - 1)
        ok = inside & self.valid.view(-1)[cy * self.width + cx]
        idx = torch.nonzero(ok).flatten()
        if len(idx) == 0:
            return
        cost = self._distance(cy[idx], cx[idx], idx)
        better = cost < self.cost[idx]
        idx, cost = idx[better], cost[better]
        self.cost[idx] = cost
        flat = self.targets[idx]
        grid[0].view(-1)[flat] = cy[idx]
        grid[1].view(-1)[flat] = cx[idx]

    def sweep(self, grid: torch.Tensor) -> torch.Tensor:
        """One PatchMatch iteration: jump-flood propagation (steps 4, 2, 1 in the four
        directions), then random search in shrinking windows."""
        for step in (4, 2, 1):
            for dy, dx in ((0, step), (0, -step), (step, 0), (-step, 0)):
                ny = (self.ty + dy).clamp(0, self.height - 1)
                nx = (self.tx + dx).clamp(0, self.width - 1)
                self._try(grid, grid[0][ny, nx] - dy, grid[1][ny, nx] - dx)
        count = len(self.targets)
        window = max(self.height, self.width)
        while window >= 1:
            jitter = torch.randint(-window, window + 1, (2, count), generator=self.generator)
            jitter = jitter.to(self.device)
            sy, sx = grid[0].view(-1)[self.targets], grid[1].view(-1)[self.targets]
            self._try(grid, sy + jitter[0], sx + jitter[1])
            window //= 4
        return grid

    def vote(self, grid: torch.Tensor, source: torch.Tensor | None = None) -> torch.Tensor:
        """Each hole pixel becomes the similarity-weighted mean of what the matched source
        patches covering it say it is. With ``source`` (3HW), the values are read from it
        instead of the image and only the hole's votes are returned (0 elsewhere)."""
        sy, sx = grid[0].view(-1)[self.targets], grid[1].view(-1)[self.targets]
        if source is None:
            values = self._patches(sy, sx)
        else:
            r = self.radius
            flat = F.pad(source[None], (r, r, r, r), mode="replicate")[0].reshape(3, -1)
            start = sy * self.padded_width + sx
            values = flat[:, start[:, None] + self.offsets[None, :]]
        area = values.shape[0] * values.shape[2]
        cost = self.cost / area
        scale = (
            torch.quantile(cost, 0.75).clamp_min(1e-6) if len(cost) > 1 else cost.clamp_min(1e-6)
        )
        weight = torch.exp(-cost / (2.0 * scale)) * (self.anchored + _ANCHOR_FLOOR)
        destination = (self.ty * self.padded_width + self.tx)[:, None] + self.offsets[None, :]
        size = self.flat.shape[1]
        total = torch.zeros(3, size, device=self.device)
        norm = torch.zeros(size, device=self.device)
        weighted = values * weight[None, :, None]
        total.index_add_(1, destination.flatten(), weighted.reshape(3, -1))
        norm.index_add_(0, destination.flatten(), weight[:, None].expand_as(destination).flatten())
        r = self.radius
        shape = (self.height + 2 * r, self.padded_width)
        total = total.reshape(3, *shape)[:, r:-r, r:-r]
        norm = norm.reshape(shape)[r:-r, r:-r]
        estimate = total / norm.clamp_min(1e-12)
        fill = self.hole & (norm > 0)
        return torch.where(fill[None], estimate, self.x if source is None else 0.0)
