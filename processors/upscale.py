"""Upscaling at exactly x2 or x4: a small learned network (default), Lanczos, or user TorchScript.

``Upscaler`` is the stage processor. :func:`plan_scale` picks the factor for an ``upscale_to``
target and :func:`resize_long_side` lands an image on an exact long side afterwards.

Methods (``UpscaleConfig.method``):

- ``"learned"``: :class:`UpscaleNet`, an ESPCN-class network (about 40k parameters per scale)
  that predicts a *luma* residual on top of bicubic upsampling. The residual is added equally to
  R, G and B, which changes BT.601 luma and leaves the chroma (Cb, Cr) of the bicubic result as it
  is. The network has no biases and sees only the high-pass of its input, so a flat colour stays
  exactly flat and an untrained network is plain bicubic. Weights for x2 and x4 ship in
  :mod:`processors.weights` (``upscale_x2.pt``, ``upscale_x4.pt``) and are reproduced by
  ``bench/train_upscaler.py``.
- ``"lanczos"``: OpenCV Lanczos-4 (8x8 taps), values clipped to 0..255.
- ``"torchscript"``: a user model saved with ``torch.jit.save``. Contract:
  ``forward(x: float32 [B, 3, h, w] in [0, 1]) -> [B, 3, h * s, w * s]`` with ``s`` 2 or 4; the
  factor is read from a probe at load time. A x4 model serves x2 requests (its output is area
  averaged by 2) and a x2 model serves x4 requests (two passes).

Networks run on overlapping tiles (cores of at most ``tile`` pixels, plus ``overlap`` context
pixels on each side, in input pixels), ``tile_batch`` tiles at a time, so memory stays bounded
for any image size.
Each tile contributes only its core to the output; with ``overlap`` at least the network's
receptive-field radius (7 px for :class:`UpscaleNet`) tiled output equals untiled output, with no
seams. On CUDA the networks run under ``torch.autocast`` (fp16 or bf16, ``autocast``).
"""

from __future__ import annotations

import hashlib
import io
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal, Protocol, cast

import cv2
import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 - the conventional name
from torch import nn

from processors.tensors import Image, check_image, from_tensor, to_tensor

__all__ = [
    "SCALES",
    "WEIGHTS_FORMAT",
    "UpscaleConfig",
    "UpscaleNet",
    "Upscaler",
    "load_learned_weights",
    "plan_scale",
    "resize_long_side",
]

SCALES = (2, 4)
"""The factors the upscaler supports."""
WEIGHTS_FORMAT = "pixelgate-upscale-net-1"
"""The ``format`` field of a weights file written by ``bench/train_upscaler.py``."""
DEFAULT_TILE = 512
"""Default largest tile core side, in input pixels."""
DEFAULT_OVERLAP = 16
"""Default context around each tile, in input pixels (>= the receptive-field radius)."""

_jit_load: Callable[..., Any] = torch.jit.load
"""torch.jit.load is unannotated; this typed handle keeps strict mypy honest at the call."""

Method = Literal["learned", "lanczos", "torchscript"]
Autocast = Literal["fp16", "bf16", "off"]

@dataclass(frozen=True, kw_only=True)
class UpscaleConfig:
    """Knobs of the upscaler."""

    method: Method = "learned"
    """``"learned"`` (packaged network), ``"lanczos"`` (OpenCV Lanczos-4) or ``"torchscript"``
    (a user model at ``model``)."""
    model: Path | None = None
    """``"torchscript"``: the ``.pt`` file (required). ``"learned"``: None for the packaged
    weights, or a folder holding ``upscale_x2.pt`` and ``upscale_x4.pt`` written by
    ``bench/train_upscaler.py``. ``"lanczos"``: must be None."""
    device: str = "cpu"
    """Torch device the network runs on (``"cpu"``, ``"cuda"``, ``"cuda:1"``)."""
    tile: int = DEFAULT_TILE
    """Largest side of a tile's core, in input pixels (each axis is split evenly); bounds memory
    together with ``tile_batch``."""
    overlap: int = DEFAULT_OVERLAP
    """Context added on every side of a tile, in input pixels, and cropped from its output."""
    tile_batch: int = 4
    """How many tiles one forward pass takes."""
    autocast: Autocast = "fp16"
    """Reduced precision on CUDA (ignored on CPU, which always runs float32)."""

    def __post_init__(self) -> None:
        if self.method not in ("learned", "lanczos", "torchscript"):
            raise ValueError(
                "UpscaleConfig: method must be 'learned', 'lanczos' or 'torchscript', "
                f"got {self.method!r}."
            )
        if self.model is not None and not isinstance(self.model, Path):
            raise ValueError(
                f"UpscaleConfig: model must be a pathlib.Path or None, got {self.model!r}."
            )
        if self.method == "torchscript" and self.model is None:
            raise ValueError(
                "UpscaleConfig: method='torchscript' needs model=Path('your_model.pt') "
                "(saved with torch.jit.save)."
            )
        if self.method == "lanczos" and self.model is not None:
            raise ValueError("UpscaleConfig: method='lanczos' takes no model; leave it None.")
        try:
            torch.device(self.device)
        except (RuntimeError, TypeError) as error:
            raise ValueError(
                f"UpscaleConfig: device must be a torch device string such as 'cpu' or 'cuda:0', "
                f"got {self.device!r}."
            ) from error
        for name, value, least in (
            ("tile", self.tile, 8),
            ("overlap", self.overlap, 0),
            ("tile_batch", self.tile_batch, 1),
        ):
            if not _is_int(value) or value < least:
                raise ValueError(
                    f"UpscaleConfig: {name} must be an integer >= {least}, got {value!r}."
                )
        if self.autocast not in ("fp16", "bf16", "off"):
            raise ValueError(
                f"UpscaleConfig: autocast must be 'fp16', 'bf16' or 'off', got {self.autocast!r}."
            )


class UpscaleNet(nn.Module):
    """Luma-residual ESPCN: bicubic upsampling plus a learned high-frequency luma correction.

    Input and output are float32 ``[B, 3, H, W]`` in [0, 1] (output ``[B, 3, sH, sW]``, not
    clipped). Bias-free convolutions (replicate padding) on the input's high-pass, ReLU, a global
    feature skip, and a PixelShuffle tail that writes one luma residual channel.
    """

    def __init__(self, scale: int, *, channels: int = 32, layers: int = 4) -> None:
        super().__init__()
        self.scale = scale
        self.channels = channels
        self.layers = layers
        self.head = _conv(3, channels)
        self.body = nn.Sequential(
            *[module for _ in range(layers) for module in (_conv(channels, channels), nn.ReLU())]
        )
        self.tail = _conv(channels, scale * scale)
        self.shuffle = nn.PixelShuffle(scale)

    @property
    def radius(self) -> int:
        """Receptive-field radius in input pixels: the 3x3 box, head, body and tail convolutions
        (bicubic reaches 2 px, fewer)."""
        return self.layers + 3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        base = F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False)
        local_mean = F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
        features = F.relu(self.head(x - local_mean))
        features = features + self.body(features)
        residual: torch.Tensor = self.shuffle(self.tail(features))
        return base + residual


def load_learned_weights(scale: int, folder: Path | None = None) -> UpscaleNet:
    """The :class:`UpscaleNet` for ``scale`` with its trained weights (packaged ones when
    ``folder`` is None), in eval mode on the CPU."""
    _check_scale(scale)
    name = f"upscale_x{scale}.pt"
    if folder is None:
        blob = resources.files("processors.weights").joinpath(name).read_bytes()
        where = f"processors.weights/{name}"
    else:
        path = folder / name
        if not path.is_file():
            raise ValueError(f"UpscaleConfig.model: {path} not found; train it with "
                             f"bench/train_upscaler.py --scale {scale} --out {folder}.")
        blob = path.read_bytes()
        where = str(path)
    payload = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != WEIGHTS_FORMAT:
        raise ValueError(f"{where}: not a {WEIGHTS_FORMAT} weights file.")
    if payload.get("scale") != scale:
        raise ValueError(f"{where}: holds a x{payload.get('scale')} model, expected x{scale}.")
    net = UpscaleNet(scale, channels=int(payload["channels"]), layers=int(payload["layers"]))
    net.load_state_dict(payload["state_dict"])
    return net.eval()


class _Network(Protocol):
    def __call__(self, x: torch.Tensor) -> torch.Tensor: ...


class Upscaler:
    """Enlarge images by exactly 2 or 4 (learned network by default; see the module doc)."""

    def __init__(self, config: UpscaleConfig | None = None) -> None:
        self.config = config if config is not None else UpscaleConfig()
        self._device = torch.device(self.config.device)
        if self._device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(
                f"Upscaler: device {self.config.device!r} requested but CUDA is not available; "
                "use device='cpu'."
            )
        self._nets: dict[int, _Network] = {}
        self._native = 0
        self.version: str = "upscale-lanczos-1"
        """Goes into result events."""
        if self.config.method == "learned":
            for scale in SCALES:
                net = load_learned_weights(scale, self.config.model).to(self._device)
                net.requires_grad_(False)
                cast(Any, net).to(memory_format=torch.channels_last)  # ~2x faster CPU convs
                self._nets[scale] = net
            self.version = "upscale-learned-1"
        elif self.config.method == "torchscript":
            ts_path = self.config.model
            if ts_path is None:  # pragma: no cover - UpscaleConfig rejects this
                raise ValueError("UpscaleConfig: method='torchscript' needs model.")
            module, self._native, digest = _load_torchscript(ts_path, self._device)
            self._nets[self._native] = module
            self.version = f"upscale-torchscript-x{self._native}-{digest}"

    def __call__(self, images: Sequence[Image], *, scale: int) -> list[Image]:
        """Each image enlarged to ``(H * scale, W * scale)``."""
        _check_scale(scale)
        checked = [check_image(im, f"images[{i}]") for i, im in enumerate(images)]
        if self.config.method == "lanczos":
            return [_resize(im, im.shape[1] * scale, im.shape[0] * scale) for im in checked]
        return [self._upscale(im, int(scale)) for im in checked]

    def _upscale(self, image: Image, scale: int) -> Image:
        x = to_tensor([image])  # whole images stay on the CPU; tiles visit the device
        with torch.inference_mode(), self._autocast():
            if self.config.method == "learned" or self._native == scale:
                y = self._tiled(self._nets[scale], x, scale)
            elif self._native > scale:
                y = self._tiled(self._nets[self._native], x, self._native)
                y = F.avg_pool2d(y.float(), self._native // scale)
            else:
                y = x
                for _ in range(round(math.log(scale, self._native))):
                    y = self._tiled(self._nets[self._native], y.float(), self._native)
        return from_tensor(y.float())[0]

    def _tiled(self, net: _Network, x: torch.Tensor, scale: int) -> torch.Tensor:
        """``net`` over overlapping tiles of ``x`` ([1, 3, H, W] on the CPU), ``tile_batch``
        tiles at a time on the device; each tile gives its core to the (CPU) output."""
        _, _, height, width = x.shape
        rows = _windows(height, self.config.tile, self.config.overlap)
        cols = _windows(width, self.config.tile, self.config.overlap)
        tiles = [(r, c) for r in rows for c in cols]
        out = torch.empty((1, 3, height * scale, width * scale))
        for start in range(0, len(tiles), self.config.tile_batch):
            chunk = tiles[start : start + self.config.tile_batch]
            batch = torch.cat([x[:, :, r[0] : r[1], c[0] : c[1]] for r, c in chunk])
            batch = batch.to(self._device)
            if self.config.method == "learned":
                batch = batch.contiguous(memory_format=torch.channels_last)
            result = net(batch)
            expected = (len(chunk), 3, batch.shape[2] * scale, batch.shape[3] * scale)
            if tuple(result.shape) != expected:
                raise ValueError(
                    f"Upscaler: the model returned shape {tuple(result.shape)} for input "
                    f"{tuple(batch.shape)}, expected {expected}."
                )
            for i, ((w0, _, c0, c1), (v0, _, d0, d1)) in enumerate(chunk):
                rows_in = slice((c0 - w0) * scale, (c1 - w0) * scale)
                cols_in = slice((d0 - v0) * scale, (d1 - v0) * scale)
                core = result[i, :, rows_in, cols_in].float().cpu()
                out[:, :, c0 * scale : c1 * scale, d0 * scale : d1 * scale] = core
        return out

    def _autocast(self) -> torch.autocast:
        enabled = self._device.type == "cuda" and self.config.autocast != "off"
        dtype = torch.bfloat16 if self.config.autocast == "bf16" else torch.float16
        return torch.autocast(device_type=self._device.type, dtype=dtype, enabled=enabled)


def plan_scale(height: int, width: int, target_long_side: int) -> int:
    """The smallest supported factor whose output long side reaches ``target_long_side``.

    Returns 4 when neither factor reaches it (the caller upscales by 4, then decides). Raises
    ValueError when the target is not larger than the current long side: nothing to upscale.
    """
    for name, value in (
        ("height", height),
        ("width", width),
        ("target_long_side", target_long_side),
    ):
        if not _is_int(value) or value < 1:
            raise ValueError(f"plan_scale: {name} must be a positive integer, got {value!r}.")
    long_side = max(height, width)
    if target_long_side <= long_side:
        raise ValueError(
            f"plan_scale: target long side {target_long_side} px is not larger than the image's "
            f"{long_side} px; no upscaling is needed (resize down with resize_long_side instead)."
        )
    for factor in SCALES:
        if long_side * factor >= target_long_side:
            return factor
    return SCALES[-1]


def resize_long_side(image: Image, long_side: int) -> Image:
    """``image`` resized so that ``max(H, W) == long_side``, aspect ratio kept (the short side is
    rounded, at least 1 px). Lanczos-4 when enlarging, area averaging when shrinking."""
    checked = check_image(image)
    if not _is_int(long_side) or long_side < 1:
        raise ValueError(
            f"resize_long_side: long_side must be a positive integer, got {long_side!r}."
        )
    height, width = checked.shape[:2]
    current = max(height, width)
    if long_side == current:
        return checked.copy()
    factor = long_side / current
    if height >= width:
        new_h, new_w = int(long_side), max(1, round(width * factor))
    else:
        new_h, new_w = max(1, round(height * factor)), int(long_side)
    return _resize(checked, new_w, new_h)


def _conv(c_in: int, c_out: int) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, padding=1, padding_mode="replicate", bias=False)


def _windows(length: int, tile: int, margin: int) -> list[tuple[int, int, int, int]]:
    """``(window_start, window_end, core_start, core_end)`` along one axis: at most ``tile``-long
    cores split ``[0, length)`` evenly; every window has the same size and holds its core plus
    ``margin`` context wherever the image has it."""
    count = -(-length // tile)
    core = -(-length // count)
    window = min(length, core + 2 * margin)
    if count == 1 or length <= window:
        return [(0, length, 0, length)]
    spans = []
    for c0 in range(0, length, core):
        c1 = min(c0 + core, length)
        w0 = min(max(c0 - margin, 0), length - window)
        spans.append((w0, w0 + window, c0, c1))
    return spans


def _load_torchscript(path: Path, device: torch.device) -> tuple[_Network, int, str]:
    """The scripted module at ``path``, its scale (from a probe) and a short content digest."""
    if not path.is_file():
        raise ValueError(f"UpscaleConfig.model: TorchScript file {path} not found.")
    blob = path.read_bytes()
    try:
        with warnings.catch_warnings():
            # torch >= 2.10 deprecates TorchScript in favour of torch.export; the user-weights
            # contract is TorchScript (see the module doc), so only this one notice is silenced.
            warnings.filterwarnings(
                "ignore", message=r"`torch\.jit\.load` is deprecated", category=DeprecationWarning
            )
            module = _jit_load(io.BytesIO(blob), map_location=device)
    except RuntimeError as error:
        raise ValueError(
            f"UpscaleConfig.model: {path} is not a TorchScript module (save one with "
            f"torch.jit.save(torch.jit.script(model), path)): {error}"
        ) from error
    module.eval()
    probe = torch.rand((1, 3, 16, 24), generator=torch.Generator().manual_seed(0)).to(device)
    with torch.inference_mode():
        try:
            out = module(probe)
        except RuntimeError as error:
            raise ValueError(
                f"UpscaleConfig.model: {path} failed on a probe of shape (1, 3, 16, 24); the "
                f"contract is forward(x: float32 [B, 3, h, w] in [0, 1]) -> [B, 3, h*s, w*s]: "
                f"{error}"
            ) from error
    shape = tuple(out.shape) if isinstance(out, torch.Tensor) else None
    scale = shape[2] // 16 if shape is not None and len(shape) == 4 else 0
    if shape != (1, 3, 16 * scale, 24 * scale) or scale not in SCALES:
        raise ValueError(
            f"UpscaleConfig.model: {path} returned {shape if shape else type(out).__name__} for "
            "a probe of shape (1, 3, 16, 24); expected (1, 3, 32, 48) for a x2 model or "
            "(1, 3, 64, 96) for a x4 model."
        )
    return module, scale, hashlib.sha256(blob).hexdigest()[:12]


def _check_scale(scale: object) -> None:
    if not _is_int(scale) or scale not in SCALES:
        raise ValueError(f"Upscaler: scale must be the integer 2 or 4, got {scale!r}.")


def _is_int(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _resize(image: Image, width: int, height: int) -> Image:
    enlarge = width * height >= image.shape[0] * image.shape[1]
    method = cv2.INTER_LANCZOS4 if enlarge else cv2.INTER_AREA
    return np.asarray(cv2.resize(image, (width, height), interpolation=method), dtype=np.uint8)
