"""Train the learned x2/x4 upscaler (processors.upscale.UpscaleNet) and measure it against Lanczos.

Reproducible: seeded torch and numpy, deterministic data order, single-threaded by default.

    .venv/bin/python -m bench.train_upscaler --scale 2 --steps 3000 --out processors/weights
    .venv/bin/python -m bench.train_upscaler --scale 4 --steps 2000 --out processors/weights
    .venv/bin/python -m bench.train_upscaler --eval-only --weights processors/weights

Training data (the fixed TRAIN split; the SR benchmark photos are never used here): scikit-image's
hubble_deep_field, retina, immunohistochemistry, motorcycle_left.png, camera, moon, brick, grass,
gravel, coins, cell, clock, page and text (grey ones stacked to RGB), each also at 0.6x (area
averaged) for more scales of detail, plus procedural renders (gradients, antialiased shapes and
text; plain linear/radial gradients), seed ``RENDER_SEED``, not the corpus seed. Degradation:
Pillow BICUBIC downscaling (its antialiasing filter, like MATLAB imresize) of the whole image,
then uint8 rounding: the one the benchmark uses. No blur or JPEG is added. Random aligned patch
pairs, the 8 flips/rotations, Adam, L1 loss on BT.601 luma, cosine learning-rate decay.

Writes ``OUT/upscale_x{scale}.pt`` (the format :func:`processors.upscale.load_learned_weights`
reads) and ``OUT/upscale_x{scale}.json`` (training figures and the benchmark table).
Benchmark: PSNR-Y / SSIM-Y (BT.601 luma, 16..235, 4 px border shaved) of ours and of Lanczos
(cv2.INTER_LANCZOS4) on the SR cases of the quality corpus (:mod:`bench.corpus`: astronaut,
chelsea, coffee, rocket, grace_hopper, motorcycle_right and the four product renders), HR
cropped to a multiple of 4 and LR made by Pillow BICUBIC.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from PIL import Image as PILImage
from PIL import ImageDraw, ImageFont
from rich.console import Console
from rich.progress import Progress
from skimage import data
from skimage.metrics import structural_similarity

from bench.corpus import build_corpus
from processors.quality import PSNR_CAP
from processors.tensors import from_tensor, to_tensor
from processors.upscale import WEIGHTS_FORMAT, UpscaleConfig, UpscaleNet, Upscaler

__all__ = ["benchmark", "main", "sr_pairs", "train"]

_structural_similarity: Callable[..., Any] = structural_similarity
"""scikit-image ships no annotations; a typed handle for strict mypy."""

TRAIN_SKIMAGE = (
    "hubble_deep_field",
    "retina",
    "immunohistochemistry",
    "camera",
    "moon",
    "brick",
    "grass",
    "gravel",
    "coins",
    "cell",
    "clock",
    "page",
    "text",
)
"""scikit-image samples the upscaler may train on (plus motorcycle_left.png)."""
RENDER_SEED = 7919
"""Seed of the training renders (the corpus uses its own seed, 0)."""
LR_PATCH = 40
"""Low-resolution side of a training patch."""
BATCH = 16
"""Patches per step."""
SHAVE = 4
"""Border shaved before PSNR-Y / SSIM-Y."""


def _rgb(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    return np.asarray(np.ascontiguousarray(image[:, :, :3]), dtype=np.uint8)


def _skimage_file(name: str) -> np.ndarray:
    return _rgb(np.asarray(PILImage.open(Path(data.__file__).parent / name).convert("RGB")))


def bicubic_down(image: np.ndarray, scale: int) -> np.ndarray:
    """Pillow BICUBIC (antialiased) downscaling by ``scale`` of an image whose sides are
    multiples of ``scale``."""
    height, width = image.shape[:2]
    small = PILImage.fromarray(image).resize(
        (width // scale, height // scale), PILImage.Resampling.BICUBIC
    )
    return np.asarray(small, dtype=np.uint8)


def crop_to(image: np.ndarray, multiple: int) -> np.ndarray:
    """``image`` cropped (top-left anchored) so its sides are multiples of ``multiple``."""
    height, width = image.shape[:2]
    return np.ascontiguousarray(image[: height - height % multiple, : width - width % multiple])


def render(rng: np.random.Generator, height: int = 320, width: int = 320) -> np.ndarray:
    """A procedural product-render-like scene: a gradient, antialiased shapes, some text."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    angle = rng.uniform(0, 2 * math.pi)
    t = (np.cos(angle) * xx / width + np.sin(angle) * yy / height + 1.0) / 2.0
    c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    base = c0[None, None, :] * (1 - t[:, :, None]) + c1[None, None, :] * t[:, :, None]
    up = 4  # draw at 4x and area-average: antialiased edges
    canvas = PILImage.fromarray(np.clip(base, 0, 255).round().astype(np.uint8)).resize(
        (width * up, height * up), PILImage.Resampling.BILINEAR
    )
    draw = ImageDraw.Draw(canvas)
    for _ in range(int(rng.integers(3, 9))):
        x0, y0 = rng.uniform(0, width * up, 2)
        w, h = rng.uniform(10 * up, width * up / 2, 2)
        fill = tuple(int(v) for v in rng.integers(0, 256, 3))
        kind = int(rng.integers(0, 4))
        if kind == 0:
            draw.ellipse((x0, y0, x0 + w, y0 + h), fill=fill)
        elif kind == 1:
            draw.rectangle((x0, y0, x0 + w, y0 + h), fill=fill)
        elif kind == 2:
            points = [tuple(rng.uniform(0, width * up, 2)) for _ in range(3)]
            draw.polygon(points, fill=fill)
        else:
            draw.line((x0, y0, x0 + w, y0 + h), fill=fill, width=int(rng.integers(1, 6)) * up)
    font = ImageFont.load_default(size=int(rng.integers(10, 40)) * up)
    for _ in range(int(rng.integers(1, 4))):
        words = "".join(chr(int(c)) for c in rng.integers(65, 91, int(rng.integers(3, 10))))
        xy = tuple(rng.uniform(0, width * up * 0.7, 2))
        draw.text(xy, words, font=font, fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    small = canvas.resize((width, height), PILImage.Resampling.BOX)
    return np.asarray(small, dtype=np.uint8)


def smooth_render(rng: np.random.Generator, height: int = 192, width: int = 192) -> np.ndarray:
    """A plain linear or radial two-colour gradient (studio backdrops)."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    if rng.integers(0, 2):
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        t = np.hypot(yy - cy, xx - cx) / math.hypot(height, width)
    else:
        angle = rng.uniform(0, 2 * math.pi)
        t = (np.cos(angle) * xx / width + np.sin(angle) * yy / height + 1.0) / 2.0
    c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    image = c0[None, None, :] * (1 - t[:, :, None]) + c1[None, None, :] * t[:, :, None]
    return np.asarray(np.clip(image, 0, 255).round(), dtype=np.uint8)


def train_images(renders: int = 16, smooth: int = 6) -> list[np.ndarray]:
    """The TRAIN split (see the module doc), full size and at 0.6x, plus renders."""
    images = [_rgb(getattr(data, name)()) for name in TRAIN_SKIMAGE]
    images.append(_skimage_file("motorcycle_left.png"))
    smaller = [
        np.asarray(
            cv2.resize(im, (round(im.shape[1] * 0.6), round(im.shape[0] * 0.6)),
                       interpolation=cv2.INTER_AREA),
            dtype=np.uint8,
        )
        for im in images
    ]
    rng = np.random.default_rng(RENDER_SEED)
    scenes = [render(rng) for _ in range(renders)]
    return images + smaller + scenes + [smooth_render(rng) for _ in range(smooth)]


def sr_pairs(scale: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``(name, HR, LR)`` of the SR benchmark: :mod:`bench.corpus`'s SR cases (HR cropped to a
    multiple of 4, LR by Pillow BICUBIC)."""
    cases = build_corpus().sr_cases
    return [(c.name, c.hr, c.lr2 if scale == 2 else c.lr4) for c in cases]


def luma(image: np.ndarray) -> np.ndarray:
    """BT.601 luma on 16..235 (the SR literature's Y), float64."""
    rgb = image.astype(np.float64)
    return 16.0 + (65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]) / 255.0


def psnr_ssim_y(hr: np.ndarray, out: np.ndarray) -> tuple[float, float]:
    """PSNR-Y (dB) and SSIM-Y (7x7 uniform window) with ``SHAVE`` px shaved."""
    a = luma(hr)[SHAVE:-SHAVE, SHAVE:-SHAVE]
    b = luma(out)[SHAVE:-SHAVE, SHAVE:-SHAVE]
    mse = float(np.mean((a - b) ** 2))
    psnr = 10.0 * math.log10(255.0**2 / mse) if mse > 0 else math.inf
    ssim = float(_structural_similarity(a, b, data_range=255.0, win_size=7))
    return psnr, ssim


def benchmark(upscaler: Callable[..., list[np.ndarray]], scale: int) -> dict[str, Any]:
    """Per-image and mean PSNR-Y / SSIM-Y of ``upscaler`` and of Lanczos at ``scale``."""
    rows: list[dict[str, Any]] = []
    for name, hr, lr in sr_pairs(scale):
        (ours,) = upscaler([lr], scale=scale)
        lanczos = np.asarray(
            cv2.resize(lr, (hr.shape[1], hr.shape[0]), interpolation=cv2.INTER_LANCZOS4),
            dtype=np.uint8,
        )
        p_ours, s_ours = psnr_ssim_y(hr, ours)
        p_lan, s_lan = psnr_ssim_y(hr, lanczos)
        rows.append(
            {"name": name, "psnr_y": p_ours, "ssim_y": s_ours, "lanczos_psnr_y": p_lan,
             "lanczos_ssim_y": s_lan, "gain_db": p_ours - p_lan}
        )
    for row in rows:  # identical pixels: PSNR inf, written as PSNR_CAP dB
        for key in ("psnr_y", "lanczos_psnr_y"):
            row[key] = min(row[key], PSNR_CAP)
        row["gain_db"] = row["psnr_y"] - row["lanczos_psnr_y"]
    mean = {k: float(np.mean([r[k] for r in rows])) for k in rows[0] if k != "name"}
    return {"scale": scale, "images": rows, "mean": mean}


def _luma_t(x: torch.Tensor) -> torch.Tensor:
    return 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]


class _Patches:
    """Deterministic random aligned (LR, HR) patch pairs with the 8 flips/rotations."""

    def __init__(self, images: Sequence[np.ndarray], scale: int, seed: int) -> None:
        self.scale = scale
        self.pairs = []
        for image in images:
            hr = crop_to(image, scale)
            if min(hr.shape[:2]) < LR_PATCH * scale:
                continue
            lr = bicubic_down(hr, scale).copy()
            hr = hr.copy()
            self.pairs.append((torch.from_numpy(lr).permute(2, 0, 1).float() / 255.0,
                               torch.from_numpy(hr).permute(2, 0, 1).float() / 255.0))
        areas = np.array([p[0].shape[1] * p[0].shape[2] for p in self.pairs], dtype=np.float64)
        self.weights = areas / areas.sum()
        self.rng = np.random.default_rng(seed)

    def batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        lrs, hrs = [], []
        s, p = self.scale, LR_PATCH
        for _ in range(BATCH):
            lr, hr = self.pairs[int(self.rng.choice(len(self.pairs), p=self.weights))]
            y = int(self.rng.integers(0, lr.shape[1] - p + 1))
            x = int(self.rng.integers(0, lr.shape[2] - p + 1))
            a = lr[:, y : y + p, x : x + p]
            b = hr[:, y * s : (y + p) * s, x * s : (x + p) * s]
            k = int(self.rng.integers(0, 8))
            if k & 4:
                a, b = a.flip(2), b.flip(2)
            a, b = torch.rot90(a, k & 3, (1, 2)), torch.rot90(b, k & 3, (1, 2))
            lrs.append(a)
            hrs.append(b)
        return torch.stack(lrs), torch.stack(hrs)


def train(
    scale: int, steps: int, seed: int, lr: float, *, channels: int = 32, layers: int = 4
) -> tuple[UpscaleNet, dict[str, Any]]:
    """Train one :class:`UpscaleNet` from scratch; returns it and its training figures."""
    torch.manual_seed(seed)
    net = UpscaleNet(scale, channels=channels, layers=layers)
    with torch.no_grad():
        net.tail.weight.mul_(0.1)  # start close to plain bicubic
    patches = _Patches(train_images(), scale, seed)
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps, eta_min=lr * 0.02)
    started = time.perf_counter()
    losses, bicubic = [], []
    with Progress(console=Console(stderr=True)) as progress:
        task = progress.add_task(f"x{scale}", total=steps)
        for step in range(steps):
            x, y = patches.batch()
            out = net(x)
            loss = F.l1_loss(_luma_t(out), _luma_t(y))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
            schedule.step()
            losses.append(float(loss.detach()))
            with torch.no_grad():
                base = F.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False)
                bicubic.append(float(F.l1_loss(_luma_t(base), _luma_t(y))))
            if (step + 1) % 100 == 0:
                progress.update(
                    task,
                    advance=100,
                    description=f"x{scale} L1-Y {np.mean(losses[-100:]):.5f} "
                    f"(bicubic {np.mean(bicubic[-100:]):.5f})",
                )
    figures = {
        "scale": scale,
        "steps": steps,
        "seed": seed,
        "learning_rate": lr,
        "channels": channels,
        "layers": layers,
        "batch": BATCH,
        "lr_patch": LR_PATCH,
        "train_pairs": len(patches.pairs),
        "parameters": sum(p.numel() for p in net.parameters()),
        "train_seconds": time.perf_counter() - started,
        "torch_threads": torch.get_num_threads(),
        "final_l1_luma": float(np.mean(losses[-200:])),
        "final_bicubic_l1_luma": float(np.mean(bicubic[-200:])),
    }
    return net.eval(), figures


def save(net: UpscaleNet, path: Path) -> None:
    """Write ``net`` in the :data:`processors.upscale.WEIGHTS_FORMAT` layout."""
    payload = {
        "format": WEIGHTS_FORMAT,
        "scale": net.scale,
        "channels": net.channels,
        "layers": net.layers,
        "state_dict": {k: v.detach().clone().contiguous() for k, v in net.state_dict().items()},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(payload, path)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, choices=(2, 4), default=2)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--channels", type=int, default=32, help="feature channels")
    parser.add_argument("--layers", type=int, default=4, help="3x3 body convolutions")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--out", type=Path, default=Path("processors/weights"))
    parser.add_argument("--eval-only", action="store_true", help="benchmark --weights, no training")
    parser.add_argument("--weights", type=Path, default=None, help="folder (default: packaged)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.eval_only:
        upscaler = Upscaler(UpscaleConfig(model=args.weights))
        report = {f"x{s}": benchmark(upscaler, s) for s in (2, 4)}
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
        return 0
    net, figures = train(
        args.scale, args.steps, args.seed, args.lr, channels=args.channels, layers=args.layers
    )
    save(net, args.out / f"upscale_x{args.scale}.pt")
    figures["benchmark"] = _benchmark_net(net, args.scale)
    (args.out / f"upscale_x{args.scale}.json").write_text(json.dumps(figures, indent=2) + "\n")
    sys.stdout.write(json.dumps(figures["benchmark"]["mean"], indent=2) + "\n")
    return 0


def _benchmark_net(net: UpscaleNet, scale: int) -> dict[str, Any]:
    """The freshly trained net, untiled, on the benchmark."""

    def upscale(images: Sequence[np.ndarray], *, scale: int) -> list[np.ndarray]:  # noqa: ARG001
        with torch.inference_mode():
            return [from_tensor(net(to_tensor([im])))[0] for im in images]

    return benchmark(upscale, scale)


if __name__ == "__main__":
    raise SystemExit(main())
