"""Benchmark: seconds per megapixel of each processor on this CPU, beside simple baselines.

    python bench/stage_speed.py --out bench/results

Writes ``stage_speed.json`` and ``stage_speed.md``. The machine is shared and noisy: compare the
ratios within one run.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
from common import median_seconds
from skimage import data

from processors.inpaint import InpaintConfig, Inpainter
from processors.preflight import Preflight
from processors.text import TextDetector
from processors.upscale import Upscaler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    image = np.ascontiguousarray(cv2.resize(data.astronaut(), (1000, 1000)))
    mp = image.shape[0] * image.shape[1] / 1e6
    mask = np.zeros(image.shape[:2], np.uint8)
    mask[850:930, 100:700] = 255  # a caption-sized band
    png = cv2.imencode(".png", image[:, :, ::-1])[1].tobytes()
    small = np.ascontiguousarray(cv2.resize(image, (500, 500)))
    rows = {
        "preflight (PNG bytes -> RGB8)": median_seconds(lambda: Preflight()([png]), args.repeats),
        "text detection": median_seconds(lambda: TextDetector()([image]), args.repeats),
        "inpaint telea (6% mask)": median_seconds(
            lambda: Inpainter()([image], [mask]), args.repeats
        ),
        "inpaint ns (6% mask)": median_seconds(
            lambda: Inpainter(InpaintConfig(method="ns"))([image], [mask]), args.repeats
        ),
        "upscale x2 lanczos (per output MP)": median_seconds(
            lambda: Upscaler()([small], scale=2), args.repeats
        )
        * (1.0 / (1000 * 1000 / 1e6)),
        "baseline: cv2 bicubic x2 (per output MP)": median_seconds(
            lambda: cv2.resize(small, (1000, 1000), interpolation=cv2.INTER_CUBIC), args.repeats
        ),
    }
    figures = {name: s / mp for name, s in rows.items()}
    (args.out / "stage_speed.json").write_text(json.dumps(figures, indent=2) + "\n")
    lines = ["# processors: seconds per megapixel (this CPU)", "", "| processor | s/MP |",
             "| --- | --- |", *[f"| {k} | {v:.4f} |" for k, v in figures.items()], ""]
    (args.out / "stage_speed.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
