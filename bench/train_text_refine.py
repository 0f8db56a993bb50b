"""Experiment: trim the text detector's masks to the pixels worth repainting, with a learned
per-pixel model. **Not used by the product**: its trimmed masks do not improve removal (the
"learned trim" rows of ``python -m bench.removal_headroom --refiner``); the script reproduces
those rows.

    .venv/bin/python -m bench.train_text_refine --steps 1500 --out DIR
    .venv/bin/python -m bench.removal_headroom --out DIR --refiner DIR/text_refine.pt

Why: the detector's mask is grown over antialiasing, outline and shadow so that it finds every
changed pixel; for removal, every clean pixel in it must be invented, and between the strokes
of a timestamp the grown mask fills solid. Trimmed to the ground truth (an oracle), the shipped
masks score 37.4 dB / 0.9910 against 33.8 / 0.9841 untrimmed on the quality corpus
(``python -m bench.removal_headroom``).

:class:`MaskRefineNet` (about 54 k parameters): the image and the coarse mask in; a
full-resolution stem, a stride-2 body of dilated 3x3 convolutions (dilations 1-8), upsampled
and joined with the stem, a 1x1 head; logits of "the overlay changed this pixel by at least
:data:`TARGET_LEVELS` levels" out. :func:`refine_masks` keeps the mask's pixels above a
threshold (grown by ``grow`` px), plus the mask's core (pixels more than ``core`` px inside it).

Training data, all from declared dependencies, generated on the fly by the text segmenter's
sampler (``bench/train_text_seg.py``: the same scikit-image, scikit-learn and matplotlib photos
and procedural scenes, with the quality benchmark's images left out, and the same watermark,
caption and plain styles), with two changes:

- every crop carries 1-3 text lines, and a fifth of the caption and plain lines sit on an
  opaque label of one colour (a promo label);
- a coarse mask like the detector's is made from the overlay's footprint: grown by 1-8 px
  (round element), with blobs of background added near the text in a third of the crops (the
  detector's ink on a busy background picks up texture).

Target: the pixels the overlay changed by at least ``TARGET_LEVELS`` levels (max over RGB).
Loss: binary cross-entropy inside the coarse mask only; a changed pixel's weight grows with the
square of its change (what leaving it unfilled costs in PSNR), capped. AdamW, one-cycle
schedule. Writes ``OUT/text_refine.pt`` and ``OUT/text_refine.json`` (training figures, and
recall/precision inside the coarse mask on a validation set with its own seed).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F  # noqa: N812
from rich.console import Console
from torch import nn

from bench.train_text_seg import Sampler, backgrounds, fit, save_weights
from processors.inpaint import dilate_mask
from processors.tensors import Image, Mask, check_image, check_mask
from processors.text_seg import conv_bn_relu

__all__ = ["MaskRefineNet", "RefineSampler", "load_refiner", "main", "refine_masks", "train"]

WEIGHTS_FORMAT = "pixelgate-text-refine-1"
"""``format`` field of the weights file."""
TARGET_LEVELS = 6
"""A pixel is worth repainting when the overlay changed it by at least this much (0..255, max
over RGB)."""
WIDTHS = (16, 32)
"""Channels at full and half resolution."""
_MEAN, _STD = 0.5, 0.25
_CONTEXT = 48
"""Pixels of context kept around a mask's bounding box when the network runs on a crop."""


class MaskRefineNet(nn.Module):
    """Per-pixel "worth repainting" logits from an image and a coarse text mask."""

    def __init__(self, widths: Sequence[int] = WIDTHS) -> None:
        super().__init__()
        c0, c1 = widths
        self.widths = tuple(widths)
        self.stem = nn.Sequential(conv_bn_relu(4, c0), conv_bn_relu(c0, c0))
        self.body = nn.Sequential(
            conv_bn_relu(c0, c1, stride=2),
            conv_bn_relu(c1, c1, dilation=2),
            conv_bn_relu(c1, c1, dilation=4),
            conv_bn_relu(c1, c1, dilation=8),
            conv_bn_relu(c1, c1),
        )
        self.fuse = nn.Sequential(conv_bn_relu(c0 + c1, c0), conv_bn_relu(c0, c0))
        self.head = nn.Conv2d(c0, 1, 1)

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``image`` [B, 3, H, W] in [0, 1], ``mask`` [B, 1, H, W] in {0, 1}; H and W even."""
        x0 = self.stem(torch.cat([(image - _MEAN) / _STD, mask * 2.0 - 1.0], 1))
        y = self.body(x0)
        y = F.interpolate(y, size=x0.shape[2:], mode="bilinear", align_corners=False)
        out: torch.Tensor = self.head(self.fuse(torch.cat([x0, y], 1)))
        return out


def load_refiner(path: Path) -> MaskRefineNet:
    """A :class:`MaskRefineNet` saved by :func:`train`, in eval mode on the CPU."""
    if not path.is_file():
        raise ValueError(f"mask refiner weights {path} not found; train them with this script.")
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != WEIGHTS_FORMAT:
        raise ValueError(f"{path}: not a {WEIGHTS_FORMAT} weights file.")
    net = MaskRefineNet(tuple(int(w) for w in payload["widths"]))
    net.load_state_dict(payload["state_dict"])
    return net.eval()


def refine_masks(
    net: nn.Module,
    images: Sequence[Image],
    masks: Sequence[Mask],
    *,
    threshold: float = 0.5,
    grow: int = 0,
    core: int = 0,
    device: torch.device | None = None,
) -> list[Mask]:
    """Each mask (HW uint8, 255 = text) trimmed to the pixels the network marks above
    ``threshold``, grown by ``grow`` px and kept inside the mask.

    The network runs on the mask's bounding box plus some context, so the cost follows the
    text's extent, not the image's. An empty mask comes back empty.
    """
    if len(images) != len(masks):
        raise ValueError(
            f"refine_masks: got {len(images)} images but {len(masks)} masks; pass one mask "
            "per image."
        )
    device = device if device is not None else torch.device("cpu")
    out: list[Mask] = []
    for image, mask in zip(images, masks, strict=True):
        check_image(image)
        shape = image.shape[:2]
        inside = check_mask(mask, shape, "text") > 0
        refined = np.zeros(shape, np.uint8)
        if inside.any():
            ys, xs = np.nonzero(inside)
            y0, x0 = max(0, ys.min() - _CONTEXT), max(0, xs.min() - _CONTEXT)
            y1 = min(shape[0], ys.max() + 1 + _CONTEXT)
            x1 = min(shape[1], xs.max() + 1 + _CONTEXT)
            prob = _probabilities(net, image[y0:y1, x0:x1], inside[y0:y1, x0:x1], device)
            keep = dilate_mask(np.where(prob > threshold, 255, 0).astype(np.uint8), grow)
            if core > 0:
                # The mask's core: the mask shrunk by ``core`` px, with the same round element.
                side = 2 * core + 1
                element = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (side, side))
                keep[cv2.erode(inside[y0:y1, x0:x1].astype(np.uint8), element) > 0] = 255
            refined[y0:y1, x0:x1] = np.where(inside[y0:y1, x0:x1] & (keep > 0), 255, 0)
        out.append(refined)
    return out


def _probabilities(
    net: nn.Module, crop: Image, inside: npt.NDArray[np.bool_], device: torch.device
) -> npt.NDArray[np.float32]:
    """Sigmoid of the network's logits on one crop (padded to even sides)."""
    # Copies: the inputs may be read-only views, which torch refuses to wrap.
    pixels = np.array(crop, dtype=np.uint8, order="C")
    x = torch.from_numpy(pixels).to(device).permute(2, 0, 1)[None].float() / 255.0
    m = torch.from_numpy(np.array(inside, dtype=np.float32))[None, None].to(device)
    h, w = x.shape[2:]
    ph, pw = h % 2, w % 2
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        m = F.pad(m, (0, pw, 0, ph))
    with torch.inference_mode():
        logits = net(x, m)[0, 0, :h, :w]
    prob: npt.NDArray[np.float32] = torch.sigmoid(logits).float().cpu().numpy()
    return prob

SEED = 7919
VAL_SEED = 104723
BATCH = 8
MIN_STEPS = 10
LABEL_SHARE = 0.2
"""Share of level caption/plain lines drawn on an opaque label."""
POSITIVE_WEIGHT_CAP = 64.0
"""Largest extra loss weight of a changed pixel (reached at 128 levels of change)."""
BLOB_SHARE = 0.33
"""Share of crops whose coarse mask also takes blobs of background near the text."""


class RefineSampler(Sampler):
    """The segmenter's sampler, with labels, and crops that carry text and a coarse mask."""

    def _element(self) -> tuple[str, list[tuple[np.ndarray, np.ndarray, float]]]:
        style, layers = super()._element()
        rng = self.rng
        if style != "watermark" and rng.random() < LABEL_SHARE:
            cov = layers[0][0]
            box = np.zeros_like(cov)
            box[1:-1, 1:-1] = 1.0
            colour = rng.uniform(0, 255, 3)
            layers = [(cv2.GaussianBlur(box, (3, 3), 0.6), colour, 1.0), *layers]
        return style, layers

    def triple(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(image, coarse mask, change in levels) of one crop; the mask is 0/1, HxW uint8."""
        rng = self.rng
        clean = self._background()
        image = self.compose(clean, int(rng.integers(1, 4)))
        change = np.abs(image.astype(np.int16) - clean.astype(np.int16)).max(axis=2)
        touched = (change > 0).astype(np.uint8)
        coarse = (dilate_mask(touched * 255, int(rng.integers(1, 9))) > 0).astype(np.uint8)
        if rng.random() < BLOB_SHARE and touched.any():
            near = cv2.dilate(touched, np.ones((25, 25), np.uint8))
            ys, xs = np.nonzero(near)
            for _ in range(int(rng.integers(1, 12))):
                k = int(rng.integers(0, len(ys)))
                axes = (int(rng.integers(1, 8)), int(rng.integers(1, 8)))
                angle = float(rng.uniform(0, 180))
                cv2.ellipse(coarse, (int(xs[k]), int(ys[k])), axes, angle, 0, 360, 1, -1)
        return image, coarse.astype(np.uint8), change.astype(np.int16)

    def refine_batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        triples = [self.triple() for _ in range(size)]
        x = torch.from_numpy(np.stack([t[0] for t in triples])).permute(0, 3, 1, 2).float() / 255
        m = torch.from_numpy(np.stack([t[1] for t in triples]))[:, None].float()
        d = torch.from_numpy(np.stack([t[2] for t in triples]))[:, None].float()
        return x, m, d


def _loss(logits: torch.Tensor, mask: torch.Tensor, change: torch.Tensor) -> torch.Tensor:
    target = (change >= TARGET_LEVELS).float()
    # What a mistake costs in removal: a changed pixel left unfilled is off by its change, a
    # clean pixel filled is off by about the texture's level (~16): squared, as in PSNR.
    weight = mask * (1.0 + target * (change / 16.0).square().clamp(max=POSITIVE_WEIGHT_CAP))
    bce = F.binary_cross_entropy_with_logits(logits, target, weight=weight, reduction="sum")
    return bce / weight.sum().clamp_min(1.0)


def evaluate(
    net: MaskRefineNet, batches: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
) -> dict[str, float]:
    """Inside the coarse mask, at 0.5: recall of the target, recall weighted by the change,
    and the share of kept pixels that are targets (precision)."""
    net.eval()
    tp = fn = fp = wtp = wall = 0.0
    with torch.inference_mode():
        for x, m, d in batches:
            pred = (torch.sigmoid(net(x, m)) > 0.5) & (m > 0)
            truth = (d >= TARGET_LEVELS) & (m > 0)
            tp += float((pred & truth).sum())
            fn += float((~pred & truth).sum())
            fp += float((pred & ~truth).sum())
            wtp += float((d * (pred & truth)).sum())
            wall += float((d * truth).sum())
    net.train()
    return {
        "recall": tp / max(1.0, tp + fn),
        "weighted_recall": wtp / max(1.0, wall),
        "precision": tp / max(1.0, tp + fp),
    }


def train(steps: int, out: Path, threads: int, console: Console) -> dict[str, Any]:
    torch.manual_seed(SEED)
    torch.set_num_threads(threads)
    images = backgrounds()
    sampler = RefineSampler(images, SEED)
    val_sampler = RefineSampler(images, VAL_SEED)
    val = [val_sampler.refine_batch(BATCH) for _ in range(6)]
    net = MaskRefineNet()

    def batch_loss() -> torch.Tensor:
        x, m, d = sampler.refine_batch(BATCH)
        return _loss(net(x, m), m, d)

    return fit(
        net, steps=steps, lr=3e-3, label="train mask refiner", console=console,
        batch_loss=batch_loss, evaluate=lambda: evaluate(net, val),
        save=lambda history, seconds: _save(net, out, history, seconds, steps),
    )


def _save(
    net: MaskRefineNet, out: Path, history: list[dict[str, float]], seconds: float, steps: int
) -> None:
    save_weights(net, net.widths, WEIGHTS_FORMAT, out / "text_refine.pt")
    meta = {
        "steps": steps,
        "batch": BATCH,
        "seed": SEED,
        "val_seed": VAL_SEED,
        "target_levels": TARGET_LEVELS,
        "seconds": round(seconds, 1),
        "history": history,
        "parameters": sum(p.numel() for p in net.parameters()),
    }
    (out / "text_refine.json").write_text(json.dumps(meta, indent=2) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--out", type=Path, default=Path("processors/weights"))
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    if args.steps < MIN_STEPS:
        parser.error(f"--steps must be at least {MIN_STEPS}, got {args.steps}")
    train(args.steps, args.out, args.threads, Console())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
