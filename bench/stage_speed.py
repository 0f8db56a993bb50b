"""Benchmark: seconds per megapixel of each processor, ours beside its baseline, on one device.

    python -m bench.stage_speed --out bench/results                       # this CPU
    python -m bench.stage_speed --out bench/results --device cuda --batch-sizes 1 4 16

Part 1 times each processor on one 1000x1000 photo (median of ``--repeats``) next to the
baseline it replaces, in the same run: the learned text detector vs the classical one, patch
inpainting vs OpenCV Telea/NS, the learned upscaler vs Lanczos. Part 2 measures throughput
(images per second) of each stage at the given batch sizes on 512x512 images: the figure
docs/models.md asks for on a GPU. Writes ``stage_speed.json`` and ``stage_speed.md``. The
machine is shared and noisy: compare the ratios within one run.
"""

from __future__ import annotations

import argparse
import json
import platform
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch
from skimage import data

from bench.common import median_seconds
from bench.text_morph import MorphTextDetector
from processors.inpaint import InpaintConfig, Inpainter
from processors.preflight import Preflight
from processors.text import TextDetector, TextDetectorConfig
from processors.upscale import UpscaleConfig, Upscaler


def _device_name(device: str) -> str:
    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--batch-sizes", type=int, nargs="*", default=[1, 4],
                        help="throughput batch sizes (GPU: 1 4 16)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (pixelgate's default, settings.torch_threads)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    device = args.device
    image = np.ascontiguousarray(cv2.resize(data.astronaut(), (1000, 1000)))
    mask = np.zeros(image.shape[:2], np.uint8)
    mask[850:930, 100:700] = 255  # a caption-sized band, 4.8 % of the image
    png = cv2.imencode(".png", image[:, :, ::-1])[1].tobytes()
    small = np.ascontiguousarray(cv2.resize(image, (500, 500)))
    text_device = "cuda" if device.startswith("cuda") else "cpu"

    detector = TextDetector(TextDetectorConfig(device=text_device))
    morph = MorphTextDetector()
    patch = Inpainter(InpaintConfig(method="patch", device=device))
    telea = Inpainter(InpaintConfig(method="telea"))
    ns = Inpainter(InpaintConfig(method="ns"))
    learned = Upscaler(UpscaleConfig(method="learned", device=device))
    lanczos = Upscaler(UpscaleConfig(method="lanczos"))

    def per_mp(fn: Callable[[], object], megapixels: float = 1.0) -> float:
        return median_seconds(fn, args.repeats) / megapixels

    pairs = [
        ("preflight (PNG bytes -> RGB8)", per_mp(lambda: Preflight()([png])),
         "bare decode (cv2.imdecode)", per_mp(lambda: cv2.imdecode(
             np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR))),
        ("text detection: PP-OCRv4 + recognizer check", per_mp(lambda: detector([image])),
         "classical text_morph", per_mp(lambda: morph([image]))),
        ("inpaint patch (4.8 % band mask)", per_mp(lambda: patch([image], [mask])),
         "OpenCV Telea", per_mp(lambda: telea([image], [mask]))),
        ("inpaint patch (4.8 % band mask)", None,
         "OpenCV NS", per_mp(lambda: ns([image], [mask]))),
        ("upscale x2 learned (per output MP)", per_mp(lambda: learned([small], scale=2)),
         "Lanczos x2", per_mp(lambda: lanczos([small], scale=2))),
        ("upscale x4 learned (per output MP)",
         per_mp(lambda: learned([cv2.resize(small, (250, 250))], scale=4)),
         "Lanczos x4", per_mp(lambda: lanczos([cv2.resize(small, (250, 250))], scale=4))),
    ]
    speed = []
    first: dict[str, float] = {}
    for name, ours, base_name, base in pairs:
        ours_value = first.setdefault(name, ours) if ours is not None else first[name]
        speed.append({"processor": name, "s_per_mp": ours_value, "baseline": base_name,
                      "baseline_s_per_mp": base, "ratio": ours_value / base})

    tile = np.ascontiguousarray(cv2.resize(data.astronaut(), (512, 512)))
    tile_mask = np.ascontiguousarray(cv2.resize(mask, (512, 512), interpolation=cv2.INTER_NEAREST))
    low = np.ascontiguousarray(cv2.resize(tile, (256, 256)))
    stages: dict[str, Callable[[int], object]] = {
        "detect (512x512)": lambda b: detector([tile] * b),
        "inpaint patch (512x512)": lambda b: patch([tile] * b, [tile_mask] * b),
        "upscale x2 learned (256->512)": lambda b: learned([low] * b, scale=2),
    }
    throughput = []
    for stage, run in stages.items():
        for batch in args.batch_sizes:
            seconds = median_seconds(lambda run=run, batch=batch: run(batch), args.repeats)
            throughput.append({"stage": stage, "batch": batch, "images_per_s": batch / seconds})

    figures = {"device": _device_name(device), "speed": speed, "throughput": throughput}
    (args.out / "stage_speed.json").write_text(json.dumps(figures, indent=2) + "\n")
    lines = [
        f"# processors: seconds per megapixel, {figures['device']}", "",
        "| processor | s/MP | baseline | baseline s/MP | ours / baseline |",
        "| --- | --- | --- | --- | --- |",
        *[f"| {r['processor']} | {r['s_per_mp']:.3f} | {r['baseline']} | "
          f"{r['baseline_s_per_mp']:.4f} | {r['ratio']:.1f}x |" for r in speed],
        "", f"## throughput by batch size, {figures['device']}", "",
        "| stage | batch | images/s |", "| --- | --- | --- |",
        *[f"| {r['stage']} | {r['batch']} | {r['images_per_s']:.2f} |" for r in throughput], "",
    ]
    (args.out / "stage_speed.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
