"""Train the text segmenter (processors.text_seg.TextSegNet) on rendered overlays.

Reproducible: seeded torch and numpy, deterministic data order.

    .venv/bin/python -m bench.train_text_seg --steps 2500 --out processors/weights

A second stage goes on from the first's weights on new crops (``--init``, with its own
``--seed`` and a lower ``--lr``); the weights file's ``.json`` records the chain of stages.

Training data, all from declared dependencies, generated on the fly:

- **Backgrounds**: 70 % photos: scikit-image's camera, coins, moon, cell, clock_motion,
  hubble_deep_field, retina, ihc (immunohistochemistry), horse, microaneurysms, logo and color
  (grey ones stacked to RGB), scikit-learn's china.jpg and flower.jpg, matplotlib's
  Minduka_Present_Blue_Pack.png, at 0.5-1.5x, flipped, channel-swapped, with random gain and
  gamma; 30 % procedural scenes (gradients with antialiased shapes, gratings, blob noise, leaf
  litter, checks) drawn here. Left out on purpose: every image of the quality
  benchmark (astronaut, chelsea, coffee, rocket, grace_hopper, motorcycle_right, brick, grass,
  gravel), motorcycle_left (the other half of motorcycle_right's stereo pair), and page/text
  (real text without labels). The benchmark's overlay kinds (bench/corpus.py) are not used;
  both draw their text with :mod:`consumers.dev.overlay`.
- **Overlays**: 0-3 lines of random strings (letters, digits, symbols) per 192 px crop in
  matplotlib's DejaVu faces or Pillow's default font, cap height 7-70 px, in one of three
  styles: *watermark* (alpha 0.2-0.6, white or grey, often large and rotated up to 60 degrees),
  *caption* (opaque, optional outline and drop shadow, level or slightly rotated) and *plain*
  (any colour, alpha 0.5-1). 30 % of the crops carry no text (negatives).
- **Target**: every pixel the overlay changed (any channel, after rounding to uint8): the same
  definition as the benchmark's ground truth.

Loss: binary cross-entropy (positives weighted 2x) plus soft Dice; AdamW, cosine decay.
Writes ``OUT/text_seg.pt`` (what :func:`processors.text_seg.load_text_seg` reads) and
``OUT/text_seg.json`` (training figures: loss, and pixel recall/precision on a held-out
validation set of generated crops with its own seed).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import string
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import matplotlib as mpl
import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from PIL import Image as PILImage
from PIL import ImageDraw, ImageFilter, ImageFont
from rich.console import Console
from rich.progress import Progress
from skimage import data
from sklearn import datasets as sklearn_datasets
from torch import nn

from consumers.dev.overlay import (
    PILLOW_DEFAULT,
    changed,
    coverage,
    load_font,
    place,
    rotate_coverage,
    text_layer,
)
from processors.text_seg import WEIGHTS_FORMAT, TextSegNet, load_text_seg

__all__ = ["Sampler", "backgrounds", "fit", "main", "save_weights", "train"]

SKIMAGE_FILES = (
    "camera.png",
    "coins.png",
    "moon.png",
    "cell.png",
    "clock_motion.png",
    "hubble_deep_field.jpg",
    "retina.jpg",
    "ihc.png",
    "horse.png",
    "microaneurysms.png",
    "logo.png",
    "color.png",
)
"""scikit-image sample files the segmenter may train on (none is in the quality benchmark)."""
FONTS = (
    "DejaVuSans.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSans-Oblique.ttf",
    "DejaVuSansMono.ttf",
    "DejaVuSansMono-Bold.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSerif-Bold.ttf",
    PILLOW_DEFAULT,
)
CHARS = string.ascii_letters + string.digits + "©@&%-:._/#!"
CROP = 192
"""Side of a training crop."""
BATCH = 10
MIN_STEPS = 10
"""Fewest training steps (the learning-rate schedule needs a few)."""
SEED = 104729
PHOTO_SHARE = 0.7
"""Share of crops cut from photos (the rest from procedural scenes)."""
VAL_SEED = 1299709


def _scene(rng: np.random.Generator, size: int = 384) -> np.ndarray:
    """A procedural background: gradient + shapes, a grating, blob noise, leaves or checks."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) / size
    kind = int(rng.integers(0, 5))
    c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    if kind == 1:
        freq, angle = rng.uniform(4, 40), rng.uniform(0, math.pi)
        t = 0.5 + 0.5 * np.sin(2 * math.pi * freq * (np.cos(angle) * xx + np.sin(angle) * yy))
    elif kind == 2:
        noise = cv2.GaussianBlur(rng.standard_normal((size, size)), (0, 0), rng.uniform(1, 12))
        t = (noise - noise.min()) / (np.ptp(noise) + 1e-9)
    elif kind == 4:
        cells = int(rng.integers(4, 24))
        t = ((np.floor(xx * cells) + np.floor(yy * cells)) % 2) * rng.uniform(0.3, 1.0)
        t = cv2.GaussianBlur(t, (0, 0), 0.7)
    else:
        angle = rng.uniform(0, 2 * math.pi)
        t = (np.cos(angle) * xx + np.sin(angle) * yy + 1.0) / 2.0
    base = c0 * (1 - t[:, :, None]) + c1 * t[:, :, None]
    canvas = PILImage.fromarray(np.clip(base, 0, 255).astype(np.uint8))
    if kind in (0, 3):
        up = 2
        canvas = canvas.resize((size * up, size * up), PILImage.Resampling.BILINEAR)
        draw = ImageDraw.Draw(canvas)
        for _ in range(int(rng.integers(3, 40 if kind == 3 else 10))):
            x0, y0 = rng.uniform(-20, size * up, 2)
            w, h = rng.uniform(8 * up, size * up / (6 if kind == 3 else 2), 2)
            fill = tuple(int(v) for v in rng.integers(0, 256, 3))
            if kind == 3 or rng.random() < 0.5:
                draw.ellipse((x0, y0, x0 + w, y0 + h / 3 if kind == 3 else y0 + h), fill=fill)
            else:
                draw.rectangle((x0, y0, x0 + w, y0 + h), fill=fill)
        canvas = canvas.resize((size, size), PILImage.Resampling.BOX)
    return np.asarray(canvas, np.uint8)


def photos() -> list[np.ndarray]:
    """The training photos: scikit-image's (:data:`SKIMAGE_FILES`), scikit-learn's two sample
    photos (china.jpg, flower.jpg) and matplotlib's Minduka_Present_Blue_Pack.png."""
    folder = Path(data.__file__).parent
    paths = [folder / name for name in SKIMAGE_FILES]
    sklearn_images = Path(sklearn_datasets.__file__).parent / "images"
    paths += [sklearn_images / name for name in ("china.jpg", "flower.jpg")]
    paths.append(Path(mpl.get_data_path()) / "sample_data" / "Minduka_Present_Blue_Pack.png")
    # convert("RGB") gives HxWx3 uint8 for grey, palette and RGBA files alike.
    return [np.asarray(PILImage.open(path).convert("RGB"), np.uint8) for path in paths]


def backgrounds(scenes: int = 24, seed: int = SEED) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The training backgrounds (see the module doc): photos, and procedural scenes."""
    rng = np.random.default_rng(seed)
    return photos(), [_scene(rng) for _ in range(scenes)]


class Sampler:
    """Seeded generator of (image, target) training crops."""

    def __init__(
        self, pools: tuple[Sequence[np.ndarray], Sequence[np.ndarray]], seed: int
    ) -> None:
        self.photos, self.scenes = list(pools[0]), list(pools[1])
        self.rng = np.random.default_rng(seed)

    def _background(self) -> np.ndarray:
        rng = self.rng
        pool = self.photos if rng.random() < PHOTO_SHARE else self.scenes
        image = pool[int(rng.integers(0, len(pool)))]
        scale = float(np.exp(rng.uniform(math.log(0.5), math.log(1.5))))
        need = math.ceil(CROP / scale) + 2
        h, w = image.shape[:2]
        if h < need or w < need:
            factor = need / min(h, w)
            image = cv2.resize(image, (math.ceil(w * factor), math.ceil(h * factor)))
            h, w = image.shape[:2]
        y, x = int(rng.integers(0, h - need + 1)), int(rng.integers(0, w - need + 1))
        patch = cv2.resize(image[y : y + need, x : x + need], (CROP, CROP),
                           interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        if rng.random() < 0.5:
            patch = patch[:, ::-1]
        if rng.random() < 0.3:
            patch = patch[:, :, rng.permutation(3)]
        if rng.random() < 0.5:
            # Colour and exposure changes: more photos out of the few that ship.
            gain = rng.uniform(0.7, 1.3, 3) * rng.uniform(0.7, 1.2)
            gamma = float(np.exp(rng.uniform(-0.4, 0.4)))
            shifted = 255.0 * (patch / 255.0) ** gamma * gain
            patch = np.clip(np.rint(shifted), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(patch)

    def _element(self) -> tuple[str, list[tuple[np.ndarray, np.ndarray, float]]]:
        """One text line: its style and its (coverage HxW, colour, alpha) layers, bottom
        first."""
        rng = self.rng
        style, font, text = self._text()
        stroke = int(rng.integers(1, 4)) if style == "caption" and rng.random() < 0.6 else 0
        left, top, right, bottom = font.getbbox(text, stroke_width=stroke)
        pad = 4 + stroke
        shadow = style == "caption" and rng.random() < 0.4
        extra = 6 if shadow else 0
        cw, ch = int(right - left) + 2 * pad + extra, int(bottom - top) + 2 * pad + extra
        fill_l = text_layer((cw, ch), (pad - left, pad - top), text, font)
        layers: list[tuple[np.ndarray, np.ndarray, float]] = []
        colour, alpha = self._ink(style)
        if shadow:
            off = int(rng.integers(1, 4))
            sh = PILImage.new("L", (cw, ch), 0)
            sh.paste(fill_l, (off, off))
            sh = sh.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.5, 2.0))))
            layers.append((coverage(sh), np.zeros(3), 0.7))
        if stroke:
            out_l = text_layer((cw, ch), (pad - left, pad - top), text, font, stroke=stroke,
                               stroke_fill=255)
            dark = 255.0 - colour if rng.random() < 0.8 else rng.uniform(0, 255, 3)
            layers.append((coverage(out_l), np.clip(dark, 0, 255), 1.0))
        layers.append((coverage(fill_l), colour, alpha))
        angle = self._angle(style)
        if angle:
            layers = [(rotate_coverage(cov, angle), col, a) for cov, col, a in layers]
        return style, layers

    def _text(self) -> tuple[str, ImageFont.FreeTypeFont, str]:
        """A line's style, its font (cap height by style) and a random string, sometimes with
        a space."""
        rng = self.rng
        style = str(rng.choice(np.array(["watermark", "caption", "plain"]), p=[0.45, 0.3, 0.25]))
        if style == "watermark":
            cap = float(np.exp(rng.uniform(math.log(14), math.log(70))))
        else:
            cap = float(np.exp(rng.uniform(math.log(7), math.log(48))))
        name = str(rng.choice(np.array(FONTS)))
        size = max(6, round(cap * 1.4))
        font = load_font(name, size)
        length = int(rng.integers(2, 14))
        text = "".join(rng.choice(np.array(list(CHARS)), length))
        if rng.random() < 0.3:
            cut = int(rng.integers(1, length)) if length > 1 else 1
            text = text[:cut] + " " + text[cut:]
        return style, font, text

    def _ink(self, style: str) -> tuple[np.ndarray, float]:
        """The fill colour and alpha of a line: pale or grey translucent watermarks, any colour
        (often white or yellow) for the others."""
        rng = self.rng
        if style == "watermark":
            grey = rng.random() < 0.35
            colour = np.full(3, rng.uniform(90, 170) if grey else rng.uniform(225, 255))
            if rng.random() < 0.15:
                colour = np.full(3, rng.uniform(0, 40))
            return colour, float(rng.uniform(0.2, 0.6))
        colour = rng.uniform(0, 255, 3)
        if rng.random() < 0.5:
            colour = np.array([255.0, 255.0, 255.0]) if rng.random() < 0.6 else np.array(
                [255.0, 220.0, 0.0])
        return colour, 1.0 if style == "caption" else float(rng.uniform(0.5, 1.0))

    def _angle(self, style: str) -> float:
        """Rotation in degrees: watermarks mostly slanted, the others mostly level."""
        rng = self.rng
        if style == "watermark":
            return float(rng.uniform(-60, 60)) if rng.random() < 0.8 else 0.0
        return 0.0 if rng.random() < 0.75 else float(rng.uniform(-15, 15))

    def sample(self) -> tuple[np.ndarray, np.ndarray]:
        """One crop and its target (HxW uint8, 1 = changed by the overlay)."""
        rng = self.rng
        clean = self._background()
        lines = 0 if rng.random() < 0.3 else int(rng.integers(1, 4))
        image = self.compose(clean, lines)
        target = changed(clean, image).astype(np.uint8)
        return image, target

    def compose(self, clean: np.ndarray, lines: int) -> np.ndarray:
        """``clean`` with ``lines`` random text lines (:meth:`_element`) burned in."""
        rng = self.rng
        out = clean.astype(np.float64)
        for _ in range(lines):
            _, layers = self._element()
            lh, lw = layers[0][0].shape
            x = int(rng.integers(-lw // 3, max(1, CROP - 2 * lw // 3)))
            y = int(rng.integers(-lh // 3, max(1, CROP - 2 * lh // 3)))
            for cov, colour, alpha in layers:
                a = (place(cov, (CROP, CROP), x, y) * alpha)[:, :, None]
                out = out * (1 - a) + colour[None, None, :] * a
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)

    def batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        pairs = [self.sample() for _ in range(size)]
        x = torch.from_numpy(np.stack([p[0] for p in pairs])).permute(0, 3, 1, 2).float() / 255.0
        y = torch.from_numpy(np.stack([p[1] for p in pairs]))[:, None].float()
        return x, y


def _loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    bce = F.binary_cross_entropy_with_logits(
        logits, target, pos_weight=torch.tensor(2.0)
    )
    prob = torch.sigmoid(logits)
    inter = (prob * target).sum()
    dice = 1 - (2 * inter + 1) / (prob.sum() + target.sum() + 1)
    return bce + dice


def evaluate(net: TextSegNet, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, float]:
    """Pixel recall / precision at 0.5 on fixed validation batches (target dilated by 2 px for
    precision: antialiasing fringes are not false alarms)."""
    net.eval()
    tp = fn = fp = 0.0
    with torch.inference_mode():
        for x, y in batches:
            pred = torch.sigmoid(net(x)) > 0.5
            truth = y > 0.5
            near = F.max_pool2d(y, 5, stride=1, padding=2) > 0.5
            tp += float((pred & truth).sum())
            fn += float((~pred & truth).sum())
            fp += float((pred & ~near).sum())
    net.train()
    return {"recall": tp / max(1.0, tp + fn), "precision": tp / max(1.0, tp + fp)}


def train(
    steps: int,
    out: Path,
    threads: int,
    console: Console,
    *,
    init: Path | None = None,
    seed: int = SEED,
    lr: float = 2e-3,
) -> dict[str, Any]:
    """Train from scratch, or go on training the weights in ``init`` (a file this script
    wrote) on new crops: ``seed`` seeds torch and the sampler, so a second stage sees crops
    the first did not."""
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    images = backgrounds()
    sampler = Sampler(images, seed)
    val_sampler = Sampler(images, VAL_SEED)
    val = [val_sampler.batch(BATCH) for _ in range(6)]
    net = TextSegNet() if init is None else load_text_seg(init)
    net.train()
    started_from = None if init is None else _started_from(init)

    def batch_loss() -> torch.Tensor:
        x, y = sampler.batch(BATCH)
        return _loss(net(x), y)

    stage = {"seed": seed, "lr": lr, "init": started_from}
    return fit(
        net, steps=steps, lr=lr, label="train text segmenter", console=console,
        batch_loss=batch_loss, evaluate=lambda: evaluate(net, val),
        save=lambda history, seconds: _save(net, out, history, seconds, steps, stage),
    )


def _started_from(init: Path) -> dict[str, Any]:
    """What the run went on from: the weights file's sha256, and its own training record (the
    ``.json`` this script wrote beside it), so the chain of stages can be rerun."""
    record = init.with_suffix(".json")
    return {
        "sha256": hashlib.sha256(init.read_bytes()).hexdigest(),
        "record": json.loads(record.read_text()) if record.is_file() else None,
    }


def fit(
    net: nn.Module,
    *,
    steps: int,
    lr: float,
    label: str,
    console: Console,
    batch_loss: Callable[[], torch.Tensor],
    evaluate: Callable[[], dict[str, float]],
    save: Callable[[list[dict[str, float]], float], None],
) -> dict[str, float]:
    """Train ``net`` for ``steps`` steps with AdamW and a one-cycle schedule peaking at ``lr``;
    ``batch_loss()`` is the loss on the next training batch. Every 250 steps and at the end,
    the running loss and ``evaluate()``'s figures join the history, are printed, and
    ``save(history, seconds)`` writes a checkpoint (a stopped run keeps its work). Returns the
    last figures."""
    optimiser = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    # Warm-up over 5 % of the steps, but at least 2.5 steps (OneCycleLR divides by its length).
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=lr, total_steps=steps, pct_start=max(0.05, 2.5 / steps)
    )
    started = time.perf_counter()
    history: list[dict[str, float]] = []
    running = 0.0
    with Progress(console=console) as progress:
        task = progress.add_task(label, total=steps)
        for step in range(1, steps + 1):
            loss = batch_loss()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            value = float(loss.detach())
            running = 0.98 * running + 0.02 * value if step > 1 else value
            progress.update(task, advance=1, description=f"{label} loss {running:.3f}")
            if step % 250 == 0 or step == steps:
                figures = {"step": step, "loss": running, **evaluate()}
                history.append(figures)
                console.print(figures)
                save(history, time.perf_counter() - started)
    return history[-1]


def save_weights(net: nn.Module, widths: Sequence[int], fmt: str, path: Path) -> None:
    """Write ``net``'s weights as the loaders in ``processors`` read them: ``format``,
    ``widths`` and ``state_dict``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {"format": fmt, "widths": list(widths),
         "state_dict": {k: v.detach().clone() for k, v in net.state_dict().items()}},
        path,
    )


def _save(net: TextSegNet, out: Path, history: list[dict[str, float]], seconds: float,
          steps: int, stage: dict[str, Any]) -> None:
    save_weights(net, net.widths, WEIGHTS_FORMAT, out / "text_seg.pt")
    meta = {"steps": steps, "batch": BATCH, "crop": CROP, "seed": stage["seed"],
            "val_seed": VAL_SEED, "lr": stage["lr"], "seconds": round(seconds, 1),
            "history": history, "parameters": sum(p.numel() for p in net.parameters())}
    if stage["init"] is not None:
        meta["init"] = stage["init"]
    (out / "text_seg.json").write_text(json.dumps(meta, indent=2) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2500)
    parser.add_argument("--out", type=Path, default=Path("processors/weights"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--init", type=Path, default=None,
                        help="go on training these weights (a text_seg.pt this script wrote)")
    parser.add_argument("--seed", type=int, default=SEED,
                        help="seed of torch and the crop sampler (default: the first stage's)")
    parser.add_argument("--lr", type=float, default=2e-3, help="peak learning rate")
    parser.add_argument("--preview", type=Path, default=None,
                        help="write a few training crops and targets as PNGs here and stop")
    args = parser.parse_args(argv)
    if args.steps < MIN_STEPS:
        parser.error(f"--steps must be at least {MIN_STEPS}, got {args.steps}")
    console = Console()
    if args.preview is not None:
        args.preview.mkdir(parents=True, exist_ok=True)
        sampler = Sampler(backgrounds(), SEED)
        for k in range(12):
            image, target = sampler.sample()
            both = np.concatenate([image, np.repeat(target[:, :, None] * 255, 3, 2)], 1)
            PILImage.fromarray(both).save(args.preview / f"crop{k:02d}.png")
        return 0
    if args.init is not None and not args.init.is_file():
        parser.error(f"--init {args.init}: no such file")
    train(args.steps, args.out, args.threads, console, init=args.init, seed=args.seed, lr=args.lr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
