"""The one boundary between decoded images and tensors, and the input-check helpers.

Decoded images are HWC ``uint8`` RGB numpy arrays. Tensors are ``float32`` BCHW in ``[0, 1]``.
Colour order and dtype are enforced here, in code, so no processor re-checks them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import torch

__all__ = [
    "Image",
    "Mask",
    "check_image",
    "check_mask",
    "check_range",
    "check_tensor",
    "from_tensor",
    "to_tensor",
]

Image = npt.NDArray[np.uint8]
"""HWC uint8 RGB image."""
Mask = npt.NDArray[np.uint8]
"""HW uint8 mask: 255 where pixels are selected, 0 elsewhere."""


def check_image(image: object, name: str = "image") -> Image:
    """Return ``image`` as a C-contiguous HWC uint8 RGB array, or raise a ValueError that says
    what was received, what was expected and how to fix it."""
    if not isinstance(image, np.ndarray):
        raise TypeError(
            f"{name}: expected a numpy array of shape (H, W, 3) and dtype uint8, "
            f"got {type(image).__name__}. Decode the file first (e.g. PIL.Image.open(...).convert"
            "('RGB') and np.asarray)."
        )
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(
            f"{name}: expected shape (H, W, 3) RGB, got {image.shape}. Convert grayscale or RGBA "
            "images to RGB before calling this processor (preflight does this)."
        )
    if image.dtype != np.uint8:
        raise ValueError(
            f"{name}: expected dtype uint8, got {image.dtype}. Scale to 0..255 and cast with "
            "np.clip(x, 0, 255).astype(np.uint8)."
        )
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"{name}: image has an empty side: shape {image.shape}.")
    return np.ascontiguousarray(image)


def check_mask(mask: object, shape: tuple[int, int], name: str = "mask") -> Mask:
    """Return ``mask`` as a contiguous HW uint8 array of values {0, 255} matching ``shape``."""
    if not isinstance(mask, np.ndarray):
        raise TypeError(f"{name}: expected a numpy array of shape {shape}, got {type(mask)}.")
    if mask.ndim == 3 and mask.shape[2] == 1:
        mask = mask[:, :, 0]
    if mask.ndim != 2 or mask.shape != shape:
        raise ValueError(
            f"{name}: expected shape {shape} (H, W) to match its image, got {mask.shape}. Resize "
            "the mask with nearest-neighbour interpolation to the image size."
        )
    if mask.dtype == np.bool_:
        mask = mask.astype(np.uint8) * 255
    if mask.dtype != np.uint8:
        raise ValueError(f"{name}: expected dtype uint8 or bool, got {mask.dtype}.")
    return np.where(mask > 127, np.uint8(255), np.uint8(0)).astype(np.uint8)


def check_range(
    name: str,
    value: float,
    low: float | None,
    high: float | None = None,
    ends: str = "[]",
    *,
    unit: str = "",
    bound_names: tuple[str | None, str | None] = (None, None),
) -> None:
    """Raise :class:`ValueError` naming ``name``, ``value`` and the range unless ``value`` lies
    between ``low`` and ``high`` (``None``: unbounded), each end included where ``ends`` (in
    interval notation: ``"[]"``, ``"[)"``, ``"(]"``, ``"()"``) says so. NaN is never in range.
    ``unit`` (e.g. ``" px"``) follows the range in the message; ``bound_names`` names the knobs
    that the ends come from, if any.

    The one range check of the processors' configs: each config declares its knobs' ranges in
    a table and runs this over it, instead of a ladder of ``if``s."""
    closed_low, closed_high = ends[0] == "[", ends[1] == "]"
    above = low is None or (value >= low if closed_low else value > low)
    below = high is None or (value <= high if closed_high else value < high)
    if above and below:
        return
    low_text, high_text = (
        _bound_text(bound) if knob is None else f"{knob} = {_bound_text(bound)}"
        for bound, knob in zip((low, high), bound_names, strict=True)
    )
    if high is None:
        accepted = f"{'>=' if closed_low else '>'} {low_text}"
    elif low is None:
        accepted = f"{'<=' if closed_high else '<'} {high_text}"
    else:
        accepted = f"in {ends[0]}{low_text}, {high_text}{ends[1]}"
    raise ValueError(f"{name} must be {accepted}{unit}, got {value}.")


def _bound_text(bound: float | None) -> str:
    """A range's end as the message shows it (``0.0`` as ``0``)."""
    return "" if bound is None else f"{bound:g}"


def check_tensor(tensor: object, channels: int = 3, name: str = "tensor") -> torch.Tensor:
    """Check a float BCHW tensor with ``channels`` channels."""
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(
            f"{name}: expected a torch.Tensor (B, {channels}, H, W), got {type(tensor)}."
        )
    if tensor.ndim != 4 or tensor.shape[1] != channels:
        raise ValueError(
            f"{name}: expected shape (B, {channels}, H, W), got {tuple(tensor.shape)}. Use "
            "processors.tensors.to_tensor to build batches."
        )
    if not tensor.is_floating_point():
        raise ValueError(f"{name}: expected a floating-point tensor in [0, 1], got {tensor.dtype}.")
    return tensor


def to_tensor(images: Sequence[Image], device: torch.device | str = "cpu") -> torch.Tensor:
    """Stack same-sized HWC uint8 RGB images into a float32 BCHW tensor in [0, 1]."""
    if not images:
        raise ValueError("to_tensor: got an empty batch; callers handle empty batches first.")
    checked = [check_image(im, f"images[{i}]") for i, im in enumerate(images)]
    shapes = {im.shape for im in checked}
    if len(shapes) != 1:
        raise ValueError(
            f"to_tensor: images differ in size {sorted(shapes)}; bucket or pad them first."
        )
    array = np.stack(checked).transpose(0, 3, 1, 2)
    return torch.from_numpy(np.ascontiguousarray(array)).to(device).float().div_(255.0)


def from_tensor(tensor: torch.Tensor) -> list[Image]:
    """Turn a BCHW float tensor in [0, 1] back into HWC uint8 RGB arrays (rounded, clipped)."""
    check_tensor(tensor)
    array = (
        tensor.detach().float().clamp(0.0, 1.0).mul(255.0).round().to(torch.uint8).cpu().numpy()
    )
    return [np.ascontiguousarray(a.transpose(1, 2, 0)) for a in array]
