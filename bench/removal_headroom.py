"""How much removal quality the text masks leave on the table: mask variants and oracles.

    python bench/removal_headroom.py --out bench/results [--seed 0]

``bench/quality.py`` scores removal with the detector's masks as shipped. This script asks
what *other* masks would score, with the same corpus, inpainter (ours, ``dilate=0``) and
definitions (PSNR inside ``dilate_mask(GT, 3)``, capped at ``PSNR_MEAN_CAP`` in the means;
SSIM over the image). It fills each mask as it is: the product's trim of text masks
(``processors.inpaint.trim_text_mask``) and its un-blending of watermarks
(``processors.unblend``), both added after this script was written, are not applied, so its
"shipped" row is the fill-only figure of the sixth session (33.84 / 0.9841), not
``bench/quality.py``'s "ours (detected mask)":

- **Growth variants**: the detector run with ``dilation`` 0-3 px and ``shadow_reach`` 0
  (no extra growth for drop shadows), beside the shipped config (3 px, 0.15).
- **Per-image oracle over those variants**: for each image the best of them, chosen with the
  clean original. No rule can do better by picking a growth per image.
- **Trim oracles**: the shipped mask intersected with the ground truth grown by k px (k = 0, 1,
  2, 3, 5): what a per-pixel trim of the detector's mask, perfect to within k px, would score.
- The targets: OpenCV NS and Telea with the exact ground-truth mask.
- With ``--refiner PATH``: the shipped mask trimmed by the learned per-pixel model of
  ``bench/train_text_refine.py`` (an experiment the product does not use), as it is and with
  the mask's core (pixels more than 5 px inside it) always kept.

Writes ``removal_headroom.json`` and ``removal_headroom.md``. It is slow (the detector runs
five times over the corpus): about 13 minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from common import exit_on_sigterm
from corpus import build_corpus
from quality import PSNR_MEAN_CAP, REMOVAL_DILATE, detection_scores
from rich.progress import Progress

from processors.inpaint import InpaintConfig, Inpainter, dilate_mask
from processors.quality import PSNR_CAP, psnr, ssim
from processors.text import TextDetector, TextDetectorConfig

SHIPPED = "shipped (dilation 3, shadow reach 0.15)"
GROWTHS: dict[str, dict[str, Any]] = {
    SHIPPED: {},
    "dilation 3, shadow reach 0": {"shadow_reach": 0.0},
    "dilation 2, shadow reach 0": {"dilation": 2, "shadow_reach": 0.0},
    "dilation 1, shadow reach 0": {"dilation": 1, "shadow_reach": 0.0},
    "dilation 0, shadow reach 0": {"dilation": 0, "shadow_reach": 0.0},
}
TRIMS = (0, 1, 2, 3, 5)

Image = np.ndarray


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--refiner", type=Path, default=None,
                        help="weights from bench/train_text_refine.py: add its trimmed masks")
    args = parser.parse_args(argv)
    exit_on_sigterm()
    corpus = build_corpus(args.seed)
    cases = list(corpus.text_cases)
    ours = Inpainter(InpaintConfig(dilate=0))
    baselines = {
        "ns, exact GT (PSNR target)": Inpainter(InpaintConfig(method="ns", dilate=0)),
        "telea, exact GT (SSIM target)": Inpainter(InpaintConfig(method="telea", dilate=0)),
        "ours, exact GT": ours,
    }
    rows: dict[str, list[dict[str, Any]]] = {}

    def score(label: str, fill: Callable[..., list[Image]], masks: list[Image]) -> None:
        rows[label] = []
        for case, mask in zip(cases, masks, strict=True):
            result = fill([case.image], [mask])[0]
            region = dilate_mask(case.mask, REMOVAL_DILATE)
            recall, fp_area = detection_scores(case.mask, mask)
            rows[label].append({
                "name": case.name, "kind": case.kind,
                "psnr_region": min(psnr(case.clean, result, region), PSNR_CAP),
                "ssim_image": ssim(case.clean, result),
                "recall": recall, "fp_area": fp_area,
            })
            progress.advance(task)

    detected: dict[str, list[Image]] = {}
    with Progress() as progress:
        extra = 2 if args.refiner is not None else 0
        total = len(cases) * (len(baselines) + 2 * len(GROWTHS) + len(TRIMS) + extra)
        task = progress.add_task("removal headroom", total=total)
        for label, fill in baselines.items():
            score(label, fill, [case.mask for case in cases])
        for label, knobs in GROWTHS.items():
            detector = TextDetector(TextDetectorConfig(threads=args.threads, **knobs))
            detected[label] = []
            for case in cases:
                detected[label].append(detector([case.image])[0].mask)
                progress.advance(task)
            score(label, ours, detected[label])
        for k in TRIMS:
            trimmed = [
                np.where((mask > 0) & (dilate_mask(case.mask, k) > 0), 255, 0).astype(np.uint8)
                for case, mask in zip(cases, detected[SHIPPED], strict=True)
            ]
            score(f"oracle: shipped mask ∩ GT grown {k} px", ours, trimmed)
        if args.refiner is not None:
            from train_text_refine import load_refiner, refine_masks  # noqa: PLC0415

            net = load_refiner(args.refiner)
            images = [case.image for case in cases]
            for core in (0, 5):
                refined = refine_masks(net, images, detected[SHIPPED], core=core)
                score(f"shipped mask, learned trim (core {core} px kept)", ours, refined)
    rows["oracle: best growth per image"] = [
        max((rows[label][i] for label in GROWTHS), key=lambda row: row["psnr_region"])
        for i in range(len(cases))
    ]
    summary = {label: _summary(values) for label, values in rows.items()}
    args.out.mkdir(parents=True, exist_ok=True)
    report = {"seed": args.seed, "summary": summary, "per_image": rows}
    (args.out / "removal_headroom.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "removal_headroom.md").write_text(_markdown(args.seed, summary))
    print(_markdown(args.seed, summary))
    return 0


def _summary(values: list[dict[str, Any]]) -> dict[str, float]:
    return {
        "psnr_region": float(np.mean([min(v["psnr_region"], PSNR_MEAN_CAP) for v in values])),
        "ssim_image": float(np.mean([v["ssim_image"] for v in values])),
        "recall": float(np.mean([v["recall"] for v in values])),
    }


def _markdown(seed: int, summary: dict[str, dict[str, float]]) -> str:
    lines = [
        f"# Removal headroom (corpus seed {seed})",
        "",
        f"PSNR inside dilate(GT, {REMOVAL_DILATE}) (per-image values capped at "
        f"{PSNR_MEAN_CAP:g} dB in the means), SSIM over the image, our inpainter with "
        "dilate 0 unless the row names another. The oracle rows use the clean original.",
        "",
        "| masks | PSNR (dB) | SSIM | GT pixel recall |",
        "| --- | --- | --- | --- |",
    ]
    lines += [
        f"| {label} | {s['psnr_region']:.2f} | {s['ssim_image']:.4f} | {s['recall']:.4f} |"
        for label, s in summary.items()
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
