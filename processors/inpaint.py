"""Inpainting: fill masked regions (text, caller-masked objects) so that the seams do not show.

Methods (``InpaintConfig.method``):

- ``patch`` (default, :mod:`processors.inpaint_patch`): our own coarse-to-fine synthesis in
  torch, on the configured device.
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
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 - the conventional name

from processors.inpaint_patch import fill_thin, patch_inpaint, thin_holes
from processors.tensors import Image, Mask, check_image, check_mask, check_range
from processors.trim import box_around, texture_level, trim_text_mask

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
        self._check_method()
        for name, low, high, unit in _BOUNDS:
            check_range(f"InpaintConfig: {name}", getattr(self, name), low, high, unit=unit)
        if self.patch_size < 3 or self.patch_size % 2 == 0:
            raise ValueError(
                f"InpaintConfig: patch_size must be odd and >= 3, got {self.patch_size}."
            )
        if self.margin < self.patch_size:
            raise ValueError(
                f"InpaintConfig: margin must be >= patch_size ({self.patch_size}) px, got "
                f"{self.margin}."
            )
        if self.method == "patch" and self.thin > 0 and not hasattr(cv2, "xphoto"):
            raise ValueError(
                "InpaintConfig: thin > 0 needs OpenCV's contrib modules (cv2.xphoto): install "
                "opencv-contrib-python-headless in place of opencv-python-headless, or set "
                "thin=0."
            )

    def _check_method(self) -> None:
        """The method is known, has its model file exactly when it needs one, and the device
        is a torch device."""
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


_BOUNDS: tuple[tuple[str, float, float | None, str], ...] = (
    # (knob, least, most or None, unit)
    ("radius", 1, None, " px"),
    ("dilate", 0, None, " px"),
    ("iterations", 1, None, ""),
    ("em_steps", 1, None, ""),
    ("texture", 0.0, 1.0, ""),
    ("thin", 0, None, " px"),
    ("thin_texture", 0, None, " levels"),
    ("pad_multiple", 1, None, ""),
)
"""The ranges of :class:`InpaintConfig`'s numeric knobs."""


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
    """Goes into result events; names the method and its variant (``inpaint-patch-2``,
    ``inpaint-patch-1`` with ``thin=0``, ``inpaint-telea-1``, ``inpaint-ns-1``,
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
            # The patch method with the frequency-selective fill of thin holes is ``-2``; every
            # other method, and patch with ``thin=0``, is ``-1``.
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
            filled = patch_inpaint(image, grown, self.config, self.device)
            thin = thin_holes(image, grown, self.config)
            if thin.any():
                fill_thin(filled, image, grown, thin)
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


