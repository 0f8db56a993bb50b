"""A small text-segmentation network: the per-pixel "overlay text here" map behind faint watermarks.

PP-OCRv4's DBNet (``processors.text``) finds captions, timestamps and labels, but gives no
response at all to a large semi-transparent watermark rotated by 20-45 degrees over a busy
photo (grey or white at alpha 0.3: ten to forty levels of difference on a textured ground).
:class:`TextSegNet` is trained by ``bench/train_text_seg.py`` on exactly that kind of overlay
(and on level captions, outlined and shadowed text, at alpha 0.2-1), rendered over images that
ship with scikit-image and procedural scenes, with the photos and textures of the quality
benchmark left out. It predicts, for every pixel, the probability that an overlay changed it.

Architecture: a U-Net-like encoder-decoder (strides 1-16, dilated convolutions at the bottom
for a receptive field of about 250 px, skip connections by concatenation), 3x3 convolutions,
batch norm, ReLU; about 0.2 M parameters, ~9 k multiply-adds per input pixel. Input: float32
RGB in [0, 1], sides padded (reflect) to a multiple of :data:`STRIDE`. Output: logits of the
same height and width.

The weights ship in :mod:`processors.weights` (``text_seg.pt``, with its training figures in
``text_seg.json``); :func:`load_text_seg` reads them. :func:`segment` runs the network on
overlapping tiles so memory stays bounded for any image size.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F  # noqa: N812 - the conventional name
from torch import nn

from processors.tensors import Image

__all__ = ["STRIDE", "WEIGHTS_FORMAT", "TextSegNet", "conv_bn_relu", "load_text_seg", "segment"]

STRIDE = 16
"""Input sides must be multiples of this (the network downsamples four times)."""
WEIGHTS_FORMAT = "pixelgate-text-seg-1"
"""``format`` field of the weights file."""
WIDTHS = (16, 24, 32, 48, 64)
"""Channels at strides 1, 2, 4, 8 and 16."""
_MEAN, _STD = 0.5, 0.25


def conv_bn_relu(cin: int, cout: int, *, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class TextSegNet(nn.Module):
    """Encoder-decoder text segmenter (see the module doc). ``forward`` returns logits."""

    def __init__(self, widths: Sequence[int] = WIDTHS) -> None:
        super().__init__()
        c0, c1, c2, c3, c4 = widths
        self.widths = tuple(widths)
        self.stem = conv_bn_relu(3, c0)
        self.down1 = nn.Sequential(conv_bn_relu(c0, c1, stride=2), conv_bn_relu(c1, c1))
        self.down2 = nn.Sequential(conv_bn_relu(c1, c2, stride=2), conv_bn_relu(c2, c2))
        self.down3 = nn.Sequential(conv_bn_relu(c2, c3, stride=2), conv_bn_relu(c3, c3))
        self.down4 = nn.Sequential(
            conv_bn_relu(c3, c4, stride=2),
            conv_bn_relu(c4, c4, dilation=2),
            conv_bn_relu(c4, c4, dilation=4),
        )
        self.up3 = conv_bn_relu(c4 + c3, c3)
        self.up2 = conv_bn_relu(c3 + c2, c2)
        self.up1 = conv_bn_relu(c2 + c1, c1)
        self.up0 = conv_bn_relu(c1 + c0, c0)
        self.head = nn.Conv2d(c0, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x0 = self.stem((x - _MEAN) / _STD)
        x1 = self.down1(x0)
        x2 = self.down2(x1)
        x3 = self.down3(x2)
        y = self.down4(x3)
        y = self.up3(torch.cat([F.interpolate(y, size=x3.shape[2:]), x3], 1))
        y = self.up2(torch.cat([F.interpolate(y, size=x2.shape[2:]), x2], 1))
        y = self.up1(torch.cat([F.interpolate(y, size=x1.shape[2:]), x1], 1))
        y = self.up0(torch.cat([F.interpolate(y, size=x0.shape[2:]), x0], 1))
        out: torch.Tensor = self.head(y)
        return out


def load_text_seg(path: Path | None = None) -> TextSegNet:
    """The trained :class:`TextSegNet` (the packaged weights when ``path`` is None), in eval
    mode on the CPU."""
    if path is None:
        blob = resources.files("processors.weights").joinpath("text_seg.pt").read_bytes()
        where = "processors.weights/text_seg.pt"
    else:
        if not path.is_file():
            raise ValueError(
                f"text segmenter weights {path} not found; train them with "
                "bench/train_text_seg.py."
            )
        blob, where = path.read_bytes(), str(path)
    payload = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != WEIGHTS_FORMAT:
        raise ValueError(f"{where}: not a {WEIGHTS_FORMAT} weights file.")
    net = TextSegNet(tuple(int(w) for w in payload["widths"]))
    net.load_state_dict(payload["state_dict"])
    return net.eval()


def segment(
    net: nn.Module,
    image: Image,
    *,
    device: torch.device | None = None,
    tile: int = 768,
    overlap: int = 128,
) -> npt.NDArray[np.float32]:
    """Per-pixel text probability (HxW float32 in [0, 1]) of one HxWx3 uint8 image.

    Runs on tiles of at most ``tile`` px (plus ``overlap`` px of context on each side, which is
    cut off again), so memory stays bounded; an image that fits one tile runs whole.
    """
    device = device if device is not None else torch.device("cpu")
    height, width = image.shape[:2]
    prob = np.zeros((height, width), np.float32)
    whole = height <= tile + 2 * overlap and width <= tile + 2 * overlap
    step = max(height, width) if whole else tile
    with torch.inference_mode():
        for y0 in range(0, height, step):
            for x0 in range(0, width, step):
                y1, x1 = min(height, y0 + step), min(width, x0 + step)
                cy0, cx0 = max(0, y0 - overlap), max(0, x0 - overlap)
                cy1, cx1 = min(height, y1 + overlap), min(width, x1 + overlap)
                prob[y0:y1, x0:x1] = _probabilities(net, image[cy0:cy1, cx0:cx1], device)[
                    y0 - cy0 : y1 - cy0, x0 - cx0 : x1 - cx0
                ]
    return prob


def _probabilities(net: nn.Module, crop: Image, device: torch.device) -> npt.NDArray[np.float32]:
    """Sigmoid of the network's logits on one crop, padded to a multiple of :data:`STRIDE`."""
    # A copy: the input may be a read-only view, which torch refuses to wrap.
    pixels = np.array(crop, dtype=np.uint8, order="C")
    x = torch.from_numpy(pixels).to(device).permute(2, 0, 1)[None].float() / 255.0
    h, w = x.shape[2:]
    ph, pw = (-h) % STRIDE, (-w) % STRIDE
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    logits = net(x)[0, 0, :h, :w]
    out: npt.NDArray[np.float32] = torch.sigmoid(logits).float().cpu().numpy()
    return out
